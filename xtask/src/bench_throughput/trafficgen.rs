//! The XDP traffic generator and sink (`router-ebpf/src/bin/trafficgen.rs`).
//!
//! The generator is never attached: it runs through `BPF_PROG_TEST_RUN` with
//! `BPF_F_TEST_XDP_LIVE_FRAMES`, which hands the program real page-pool frames and carries out
//! its verdict. It writes a whole Eth/IP/UDP frame each time and returns `XDP_TX`, which the
//! test run turns into a redirect out of the ingress device (gen0): the frame crosses the veth
//! to rtr0. The run happens in the calling thread's network namespace (the ingress ifindex is
//! looked up there), hence [`Generator::run`] enters the gen namespace on its own thread.
//!
//! Each test-run call with `repeat > 1` costs two `synchronize_rcu()` in the kernel (the XDP
//! dispatcher is switched to the program and back), tens of milliseconds on a busy VM during
//! which nothing is sent. So a call is long (millions of frames), and [`GeneratorStop`] ends it
//! early with a signal: the kernel's test-run loop checks for pending signals and returns
//! EINTR.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray},
    programs::{ProgramError, TestRun, TestRunAttrs, TestRunOptions, Xdp, xdp::XdpMode},
    sys::SyscallError,
};
use router_agent::datapath::TRAFFICGEN_OBJECT;
use router_common::trafficgen::{GenConfig, MAX_DESTINATIONS};

use netns_lab::Namespace;

/// Frame length handed to the generator (the minimum Ethernet frame without FCS).
pub const FRAME_LEN: usize = 64;
/// Frames per test-run call: several seconds' worth; [`GeneratorStop`] interrupts it.
const FRAMES_PER_CALL: u32 = 1 << 25;
/// Frames per live-frames batch (the kernel's maximum is 256; 64 is NAPI's budget).
const BATCH: u32 = 64;

/// The kernel refuses `BPF_F_TEST_XDP_LIVE_FRAMES` (seen: EPERM to root on one of this
/// workplace's kernels, where plain test runs work): no frame can be generated on it.
#[derive(Debug)]
pub struct LiveFramesRefused(std::io::Error);

impl std::fmt::Display for LiveFramesRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this kernel refuses BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES ({}): the \
             generator cannot send frames here",
            self.0
        )
    }
}

impl std::error::Error for LiveFramesRefused {}

pub struct Generator {
    ebpf: Ebpf,
}

/// Stops a running [`Generator::run`]: sets the flag, then signals the thread until its
/// test-run call returns.
pub struct GeneratorStop {
    stop: AtomicBool,
    /// pthread_t of the generator thread, once it runs.
    thread: AtomicU64,
}

impl GeneratorStop {
    pub fn new() -> Self {
        install_wakeup_handler();
        Self {
            stop: AtomicBool::new(false),
            thread: AtomicU64::new(0),
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Asks the generator to stop and interrupts its current call; `finished` tells when the
    /// thread is done.
    pub fn stop(&self, finished: impl Fn() -> bool) {
        self.stop.store(true, Ordering::SeqCst);
        while !finished() {
            let thread = self.thread.load(Ordering::SeqCst);
            if thread != 0 {
                // SAFETY: the thread is alive (not finished) and its pthread_t was stored by
                // itself; SIGUSR1 has a no-op handler.
                unsafe { libc::pthread_kill(thread as libc::pthread_t, libc::SIGUSR1) };
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A no-op SIGUSR1 handler without SA_RESTART: the signal only makes a blocking call return.
fn install_wakeup_handler() {
    extern "C" fn wake(_: libc::c_int) {}
    // SAFETY: a zeroed sigaction with a valid handler and an empty mask.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = wake as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut());
    }
}

impl Generator {
    pub fn load() -> Result<Self> {
        let mut ebpf = EbpfLoader::new()
            .load(TRAFFICGEN_OBJECT)
            .context("loading the trafficgen object")?;
        let program: &mut Xdp = ebpf
            .program_mut("trafficgen")
            .context("no trafficgen program")?
            .try_into()?;
        program.load().context("loading the trafficgen program")?;
        Ok(Self { ebpf })
    }

    /// Sets the frame template (MACs, source) and the destinations to cycle through.
    pub fn configure(
        &mut self,
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        src_ip: IpAddr,
        destinations: &[IpAddr],
    ) -> Result<()> {
        if destinations.is_empty() || destinations.len() > MAX_DESTINATIONS as usize {
            bail!(
                "1 to {MAX_DESTINATIONS} destinations, not {}",
                destinations.len()
            );
        }
        let ip_version = if src_ip.is_ipv4() { 4 } else { 6 };
        let mut dsts: Array<&mut MapData, [u8; 16]> = Array::try_from(
            self.ebpf
                .map_mut("GEN_DESTINATIONS")
                .context("GEN_DESTINATIONS")?,
        )?;
        for (index, dst) in destinations.iter().enumerate() {
            if dst.is_ipv4() != src_ip.is_ipv4() {
                bail!("destination {dst} is not of the source's family");
            }
            dsts.set(index as u32, address_bytes(*dst), 0)?;
        }
        let config = GenConfig {
            src_mac,
            dst_mac,
            ip_version,
            destinations: destinations.len() as u32,
            src_ip: address_bytes(src_ip),
        };
        let mut configs: Array<&mut MapData, GenConfig> =
            Array::try_from(self.ebpf.map_mut("GEN_CONFIG").context("GEN_CONFIG")?)?;
        configs.set(0, config, 0)?;
        Ok(())
    }

    /// Sends frames out of `ingress_ifindex` in `ns` until `stop` says so. Call on a thread of
    /// its own: it enters `ns` and, if asked, pins itself to `placement.cpu` and takes a
    /// real-time priority. (How many frames went out: gen0's veth counters.)
    pub fn run(
        &self,
        ns: &Namespace,
        ingress_ifindex: u32,
        placement: Placement,
        stop: &GeneratorStop,
    ) -> Result<()> {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        stop.thread.store(me as u64, Ordering::SeqCst);
        ns.enter_current_thread()?;
        if let Some(cpu) = placement.cpu {
            pin_current_thread(cpu)?;
        }
        if placement.realtime {
            make_current_thread_realtime()?;
        }
        let program: &Xdp = self
            .ebpf
            .program("trafficgen")
            .context("no trafficgen program")?
            .try_into()?;
        let frame = [0u8; FRAME_LEN];
        // struct xdp_md { data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex }: the kernel requires data_end == frame length and no metadata.
        let ctx: [u32; 6] = [0, FRAME_LEN as u32, 0, ingress_ifindex, 0, 0];
        let ctx_bytes: Vec<u8> = ctx.iter().flat_map(|v| v.to_ne_bytes()).collect();
        while !stop.stopping() {
            let result = program.test_run(TestRunOptions {
                data_in: Some(&frame),
                ctx_in: Some(&ctx_bytes),
                repeat: FRAMES_PER_CALL,
                attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
                ..TestRunOptions::default()
            });
            match result {
                // XDP_TX = 3; anything else means the program refused (XDP_ABORTED: bad config).
                Ok(result) if result.return_value != 3 && result.return_value != 0 => {
                    bail!("trafficgen returned {}", result.return_value)
                }
                Ok(_) => {}
                // Interrupted by GeneratorStop (EINTR).
                Err(_) if stop.stopping() => {}
                Err(ProgramError::SyscallError(SyscallError { io_error, .. }))
                    if io_error.raw_os_error() == Some(libc::EPERM) =>
                {
                    return Err(LiveFramesRefused(io_error).into());
                }
                Err(err) => {
                    return Err(err).context("BPF_PROG_TEST_RUN (live frames) of trafficgen");
                }
            }
        }
        Ok(())
    }
}

/// The `sink` program on the sink's veth: counts what arrives and drops it.
pub struct Sink {
    ebpf: Ebpf,
}

impl Sink {
    /// Loads `sink` and attaches it (native XDP) to `ifname` in `ns`.
    pub fn attach(ns: &Namespace, ifname: &str) -> Result<Self> {
        let mut ebpf = EbpfLoader::new()
            .load(TRAFFICGEN_OBJECT)
            .context("loading the trafficgen object")?;
        let program: &mut Xdp = ebpf
            .program_mut("sink")
            .context("no sink program")?
            .try_into()?;
        program.load().context("loading the sink program")?;
        ns.run_in(|| {
            program
                .attach(ifname, XdpMode::Driver)
                .with_context(|| format!("attaching sink to {ifname}"))
        })?;
        Ok(Self { ebpf })
    }

    /// (packets, bytes) seen so far, summed over CPUs.
    pub fn counters(&self) -> Result<(u64, u64)> {
        let stats: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.ebpf.map("SINK_STATS").context("SINK_STATS")?)?;
        let sum = |index: u32| -> Result<u64> { Ok(stats.get(&index, 0)?.iter().sum()) };
        Ok((sum(0)?, sum(1)?))
    }
}

fn address_bytes(addr: IpAddr) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    match addr {
        IpAddr::V4(v4) => bytes[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => bytes = v6.octets(),
    }
    bytes
}

/// Where and how the generator thread runs.
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    pub cpu: Option<usize>,
    /// SCHED_FIFO: other programs cannot take the CPU from the generator (and from the router
    /// and sink work that runs in its softirq context). The kernel's RT throttling still leaves
    /// them 5% of it.
    pub realtime: bool,
}

fn make_current_thread_realtime() -> Result<()> {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: sched_setscheduler(0) affects the calling thread only.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        return Err(std::io::Error::last_os_error()).context("SCHED_FIFO for the generator");
    }
    Ok(())
}

fn pin_current_thread(cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity(0) affects the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("pinning the generator to CPU {cpu}"));
        }
    }
    Ok(())
}

/// Converts the table's destination lists for [`Generator::configure`].
pub fn v4_destinations(list: &[Ipv4Addr]) -> Vec<IpAddr> {
    list.iter().copied().map(IpAddr::V4).collect()
}

pub fn v6_destinations(list: &[Ipv6Addr]) -> Vec<IpAddr> {
    list.iter().copied().map(IpAddr::V6).collect()
}
