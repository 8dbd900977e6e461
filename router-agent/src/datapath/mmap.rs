//! Userspace view of a `BPF_F_MMAPABLE` array map.
//!
//! Writing through the mapping costs a store instead of a `bpf(2)` call per element (1M+ route
//! updates per second for DIR-24-8), and lets us publish with single aligned 32-bit atomic
//! stores, which a `BPF_MAP_UPDATE_ELEM` (a `memcpy` in the kernel) does not promise.

use std::{
    io,
    marker::PhantomData,
    os::fd::{AsFd, AsRawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicU64, Ordering, fence},
};

/// An mmap-ed BPF array of `T` (a `#[repr(C)]` type whose size is a multiple of 8, so that the
/// kernel's per-element padding is zero and elements sit at `index * size_of::<T>()`).
pub struct MmapArray<T> {
    base: NonNull<u8>,
    len: usize,
    entries: u32,
    _marker: PhantomData<T>,
}

// SAFETY: the mapping is plain shared memory; all mutation goes through &mut self or atomics.
unsafe impl<T: Send> Send for MmapArray<T> {}

impl<T: Copy> MmapArray<T> {
    /// Maps `entries` elements of the array behind `fd`.
    pub fn new(fd: impl AsFd, entries: u32) -> io::Result<Self> {
        assert!(
            size_of::<T>().is_multiple_of(8),
            "mmap-able array elements are 8-byte padded"
        );
        let bytes = size_of::<T>() * entries as usize;
        let page = 4096;
        let len = bytes.div_ceil(page) * page;
        // SAFETY: mapping a BPF array fd shared and read-write, as the kernel documents for
        // BPF_F_MMAPABLE maps; the length does not exceed the map's size rounded to pages.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                // Fault every page in now, at load, not one page at a time while routes go in.
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            base: NonNull::new(ptr.cast()).expect("mmap returned null"),
            len,
            entries,
            _marker: PhantomData,
        })
    }

    pub fn entries(&self) -> u32 {
        self.entries
    }

    fn element(&self, index: u32) -> *mut T {
        assert!(index < self.entries, "index {index} >= {}", self.entries);
        // SAFETY: in bounds by the assert above.
        unsafe { self.base.as_ptr().cast::<T>().add(index as usize) }
    }

    /// Reads an element. Only meaningful for elements the XDP program does not write.
    pub fn get(&self, index: u32) -> T {
        // SAFETY: in bounds, properly aligned (page-aligned base, 8-multiple element size).
        unsafe { self.element(index).read_volatile() }
    }

    /// Writes a whole element non-atomically. Use only for elements no reader can reach yet
    /// (fresh nexthop slots, TBL8 groups not linked in); publish them with `store_u32`.
    pub fn write_unpublished(&mut self, index: u32, value: &T) {
        // SAFETY: in bounds and aligned, see get.
        unsafe { self.element(index).write_volatile(*value) };
        // Order the element before the store that publishes it.
        fence(Ordering::Release);
    }

    /// The `word`-th 32-bit word of an element, as an atomic: single aligned stores, so a
    /// concurrent reader sees the old or the new value, never a mix.
    pub fn word(&self, index: u32, word: usize) -> &AtomicU32 {
        assert!(word < size_of::<T>() / 4);
        // SAFETY: in bounds; 4-byte aligned since elements are 8-byte aligned; AtomicU32 has
        // the layout of u32 and the memory lives as long as &self.
        unsafe { &*(self.element(index).cast::<AtomicU32>().add(word)) }
    }

    pub fn load_u32(&self, index: u32, word: usize) -> u32 {
        self.word(index, word).load(Ordering::Acquire)
    }

    pub fn store_u32(&mut self, index: u32, word: usize, value: u32) {
        self.word(index, word).store(value, Ordering::Release);
    }

    /// The `word`-th 64-bit word of an element, as an atomic (DXR descriptors: base, count and
    /// default change together in one aligned store).
    pub fn word64(&self, index: u32, word: usize) -> &AtomicU64 {
        assert!(word < size_of::<T>() / 8);
        // SAFETY: in bounds; 8-byte aligned since elements are 8-byte multiples on a
        // page-aligned base; AtomicU64 has the layout of u64 and lives as long as &self.
        unsafe { &*(self.element(index).cast::<AtomicU64>().add(word)) }
    }

    pub fn load_u64(&self, index: u32, word: usize) -> u64 {
        self.word64(index, word).load(Ordering::Acquire)
    }

    pub fn store_u64(&mut self, index: u32, word: usize, value: u64) {
        self.word64(index, word).store(value, Ordering::Release);
    }
}

impl<T> Drop for MmapArray<T> {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what new() mapped.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}
