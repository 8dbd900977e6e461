//! Waiting for the XDP program's running invocations to end: an RCU grace period, observed
//! through the kernel's own promise for map-in-map updates.
//!
//! After a `BPF_MAP_UPDATE_ELEM` on an `ARRAY_OF_MAPS` returns, the kernel has waited
//! (`synchronize_rcu()`, `maybe_wait_bpf_programs()` in kernel/bpf/syscall.c) for every
//! non-sleepable BPF program that could still see the old inner map. XDP programs run in RCU
//! read-side sections, so when the call returns, no run that started before it still holds a
//! pointer it read then: space unhooked before the call can be reused. That takes a grace
//! period (milliseconds) instead of a fixed quarantine's worst-case guess.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{Arc, Condvar, Mutex, PoisonError},
    thread::JoinHandle,
    time::Instant,
};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_ARRAY_OF_MAPS: u32 = 12;

/// The start of the `map_create` member of `union bpf_attr` (the rest stays zero).
#[repr(C)]
#[derive(Default)]
struct CreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
    map_ifindex: u32,
    btf_fd: u32,
    btf_key_type_id: u32,
    btf_value_type_id: u32,
    btf_vmlinux_value_type_id: u32,
    map_extra: u64,
}

/// The element member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn bpf<T>(command: libc::c_long, attr: &mut T) -> io::Result<i64> {
    // SAFETY: attr is a valid prefix of `union bpf_attr` for `command`, its pointers (if any)
    // outlive the call, and the kernel reads at most size_of::<T>() bytes of it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            attr as *mut T,
            size_of::<T>() as u32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn create(map_type: u32, inner: Option<&OwnedFd>) -> io::Result<OwnedFd> {
    let mut attr = CreateAttr {
        map_type,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        inner_map_fd: inner.map_or(0, |fd| fd.as_raw_fd() as u32),
        ..CreateAttr::default()
    };
    attr.map_name[..11].copy_from_slice(b"hr_grace_rc");
    let fd = bpf(BPF_MAP_CREATE, &mut attr)?;
    // SAFETY: BPF_MAP_CREATE returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A one-slot map-in-map whose updates wait for a grace period.
pub struct GracePeriod {
    outer: OwnedFd,
    inner: OwnedFd,
}

impl GracePeriod {
    pub fn new() -> io::Result<Self> {
        let inner = create(BPF_MAP_TYPE_ARRAY, None)?;
        let outer = create(BPF_MAP_TYPE_ARRAY_OF_MAPS, Some(&inner))?;
        Ok(Self { outer, inner })
    }

    /// Returns once every BPF program run that started before the call has ended.
    pub fn wait(&self) -> io::Result<()> {
        let key = 0u32;
        let value = self.inner.as_raw_fd() as u32;
        let mut attr = ElemAttr {
            map_fd: self.outer.as_raw_fd() as u32,
            key: &key as *const u32 as u64,
            value: &value as *const u32 as u64,
            ..ElemAttr::default()
        };
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
    }
}

/// Grace periods run one after another on a thread of their own while asked for, so a writer
/// learns without blocking which of its unhooked space has no reader left (as the kernel's
/// `call_rcu()` does, where [`GracePeriod::wait`] is `synchronize_rcu()`).
pub struct BackgroundGrace {
    grace: Arc<GracePeriod>,
    shared: Arc<(Mutex<Progress>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Progress {
    /// Another grace period is wanted.
    requested: bool,
    /// The start of the latest grace period that ended.
    completed: Option<Instant>,
    stop: bool,
}

impl BackgroundGrace {
    pub fn new() -> io::Result<Self> {
        let grace = Arc::new(GracePeriod::new()?);
        let shared = Arc::new((Mutex::new(Progress::default()), Condvar::new()));
        let thread = std::thread::Builder::new()
            .name("dxr-grace".into())
            .spawn({
                let (grace, shared) = (grace.clone(), shared.clone());
                move || run(&grace, &shared)
            })?;
        Ok(Self {
            grace,
            shared,
            thread: Some(thread),
        })
    }

    /// The start of the latest grace period that ended: no program run that began before it
    /// is still running. With `more`, another grace period starts if none is under way.
    pub fn poll(&self, more: bool) -> Option<Instant> {
        let (progress, wake) = &*self.shared;
        let mut progress = progress.lock().unwrap_or_else(PoisonError::into_inner);
        if more && !progress.requested {
            progress.requested = true;
            wake.notify_one();
        }
        progress.completed
    }

    /// Waits for a grace period here (see [`GracePeriod::wait`]).
    pub fn wait(&self) -> io::Result<()> {
        self.grace.wait()
    }
}

fn run(grace: &GracePeriod, shared: &(Mutex<Progress>, Condvar)) {
    let (progress, wake) = shared;
    let mut guard = progress.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        while !guard.requested && !guard.stop {
            guard = wake.wait(guard).unwrap_or_else(PoisonError::into_inner);
        }
        if guard.stop {
            return;
        }
        guard.requested = false;
        drop(guard);
        let started = Instant::now();
        let waited = grace.wait();
        guard = progress.lock().unwrap_or_else(PoisonError::into_inner);
        match waited {
            Ok(()) => guard.completed = Some(started),
            // Logged once by whoever created it; the writer falls back to waiting itself.
            Err(_) => return,
        }
    }
}

impl Drop for BackgroundGrace {
    fn drop(&mut self) {
        let (progress, wake) = &*self.shared;
        progress.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
        wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs CAP_BPF (CI runs as root). Each wait is a grace period: far below the 100 ms
    /// quarantine it replaces.
    #[test]
    fn waits_for_a_grace_period() {
        let grace = GracePeriod::new().expect("creating the map-in-map (needs root)");
        let started = std::time::Instant::now();
        for _ in 0..10 {
            grace.wait().unwrap();
        }
        let each = started.elapsed() / 10;
        eprintln!("grace period: {each:?}");
        assert!(each < std::time::Duration::from_millis(100), "{each:?}");
    }

    /// A poll asks for a grace period; a later poll sees it ended, having started after the
    /// first poll.
    #[test]
    fn background_grace_periods_follow_requests() {
        let grace = BackgroundGrace::new().expect("creating the map-in-map (needs root)");
        let asked = Instant::now();
        assert_eq!(grace.poll(false), None, "nothing asked for yet");
        grace.poll(true);
        let deadline = asked + std::time::Duration::from_secs(5);
        let completed = loop {
            if let Some(completed) = grace.poll(false) {
                break completed;
            }
            assert!(Instant::now() < deadline, "no grace period ended in 5 s");
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        assert!(completed >= asked);
        // No request, no new grace period.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(grace.poll(false), Some(completed));
    }
}
