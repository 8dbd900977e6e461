//! `BPF_MAP_UPDATE_BATCH` / `BPF_MAP_DELETE_BATCH` for the LPM tries. aya 0.14 has no batch
//! API, and one `bpf(2)` call per route costs more than the trie update itself (a few µs with
//! retpolines): a full table loads many times faster in batches.

use std::{io, os::fd::RawFd};

const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Keys and values of one map, packed as the kernel reads them.
pub struct PendingBatch {
    key_size: usize,
    keys: Vec<u8>,
    values: Vec<u32>,
}

impl PendingBatch {
    pub fn new(key_size: usize) -> Self {
        Self {
            key_size,
            keys: Vec::new(),
            values: Vec::new(),
        }
    }

    pub fn push(&mut self, key: &[u8], value: u32) {
        debug_assert_eq!(key.len(), self.key_size);
        self.keys.extend_from_slice(key);
        self.values.push(value);
    }

    pub fn push_key(&mut self, key: &[u8]) {
        debug_assert_eq!(key.len(), self.key_size);
        self.keys.extend_from_slice(key);
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len() / self.key_size
    }

    /// Writes everything pending (updates if values were pushed, else deletes) and empties
    /// the batch. On error, elements before the failing one were applied.
    pub fn flush(&mut self, map_fd: RawFd) -> io::Result<()> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let count = self.keys.len() / self.key_size;
        let (command, values) = if self.values.is_empty() {
            (BPF_MAP_DELETE_BATCH, 0)
        } else {
            (BPF_MAP_UPDATE_BATCH, self.values.as_ptr() as u64)
        };
        let mut attr = BatchAttr {
            keys: self.keys.as_ptr() as u64,
            values,
            count: count as u32,
            map_fd: map_fd as u32,
            ..BatchAttr::default()
        };
        // SAFETY: attr points at key and value buffers of `count` elements that outlive the
        // call; the kernel reads at most size_of::<BatchAttr>() bytes of attr.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                command,
                &mut attr as *mut BatchAttr,
                size_of::<BatchAttr>() as u32,
            )
        };
        self.keys.clear();
        self.values.clear();
        if rc < 0 {
            let err = io::Error::last_os_error();
            return Err(io::Error::new(
                err.kind(),
                format!("batch of {count}: {} of them applied: {err}", attr.count),
            ));
        }
        Ok(())
    }
}
