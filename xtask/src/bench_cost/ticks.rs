//! The guest's timer interrupts taken by the calling thread: a per-thread perf counter of the
//! `irq_vectors:local_timer_entry` tracepoint (x86).
//!
//! Why: on a VM, a timer tick can cost far more than its handler. In `perf record -k mono`
//! traces of `bench cost` on this machine, the tick came 15-30 µs after its deadline (the vCPU
//! was out meanwhile), the handler took 7-12 µs and each of its softirqs (TIMER, RCU, SCHED)
//! up to 19 µs; an update that straddles one then runs on the caches it left cold. An update
//! over 50 µs that took a tick measured the machine largely: the bench says which did.

use std::{
    fs,
    io::Read,
    os::fd::{FromRawFd, OwnedFd},
};

/// The tracepoint, as tracefs names it.
const TRACEPOINT: &str = "irq_vectors/local_timer_entry";
/// Where tracefs is found (mounted on its own, or under debugfs).
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;

/// `struct perf_event_attr` as of its first version (`PERF_ATTR_SIZE_VER0`, 64 bytes): the
/// kernel zero-extends what it is not given, and a counting event needs no more. All flags
/// off: enabled at once, kernel and user both counted (the tick is kernel work), not inherited.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttrV0 {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

/// A counter of the calling thread's timer interrupts.
pub struct TimerTicks {
    counter: fs::File,
}

impl TimerTicks {
    /// The counter of the calling thread, or `None` where the tracepoint or perf events are
    /// not available (another architecture, no tracefs, not root): the bench then says `-`.
    pub fn open() -> Option<Self> {
        let id = TRACEFS.iter().find_map(|root| {
            fs::read_to_string(format!("{root}/events/{TRACEPOINT}/id"))
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()
        })?;
        let attr = PerfEventAttrV0 {
            kind: PERF_TYPE_TRACEPOINT,
            size: size_of::<PerfEventAttrV0>() as u32,
            config: id,
            ..Default::default()
        };
        // SAFETY: a valid attr of the size it states; pid 0 / cpu -1: this thread on any CPU.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &attr as *const PerfEventAttrV0,
                0,
                -1,
                -1,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: the descriptor was just opened, and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Some(Self {
            counter: fs::File::from(fd),
        })
    }

    /// Timer interrupts this thread has taken since `open` (`None`: the counter could not be
    /// read).
    pub fn read(&mut self) -> Option<u64> {
        let mut count = [0u8; 8];
        self.counter.read_exact(&mut count).ok()?;
        Some(u64::from_ne_bytes(count))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::TimerTicks;

    /// Where the counter opens (root, x86, tracefs), a busy thread takes ticks: at least one in
    /// 100 ms at any HZ the kernel offers (100-1000), unless the CPU runs tickless
    /// (`nohz_full`), which CI machines do not.
    #[test]
    fn counts_the_ticks_of_a_busy_thread() {
        let Some(mut ticks) = TimerTicks::open() else {
            eprintln!("no tracepoint counter here: nothing to check");
            return;
        };
        let before = ticks.read().expect("readable");
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(100) {
            std::hint::spin_loop();
        }
        assert!(ticks.read().expect("readable") > before);
    }
}
