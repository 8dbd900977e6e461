//! The per-packet measurements: `BPF_PROG_TEST_RUN` of the loaded XDP program, each run with
//! `ctx.ingress_ifindex` set to the bench's device (the kernel engine's `bpf_fib_lookup` needs
//! an input device; the other engines read the device's `INTERFACES` record).

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use anyhow::{Context, Result};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use router_agent::datapath::Datapath;
use router_common::Verdict;

use super::report::{Hot, Series};

pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;

/// Program runs of the hot measurement's long and short calls (see [`hot`]).
pub const HOT_LONG: u32 = 254;
pub const HOT_SHORT: u32 = 127;

/// One `BPF_PROG_TEST_RUN` call on `ingress`: (action, kernel-measured time per run).
pub fn test_run(program: &Xdp, ingress: u32, frame: &[u8], repeat: u32) -> Result<(u32, Duration)> {
    // struct xdp_md { data, data_end, data_meta, ingress_ifindex, rx_queue_index,
    // egress_ifindex }: the kernel wants data_end == the frame's length and no metadata.
    let ctx: [u32; 6] = [0, frame.len() as u32, 0, ingress, 0, 0];
    let ctx_bytes: Vec<u8> = ctx.iter().flat_map(|v| v.to_ne_bytes()).collect();
    let result = program
        .test_run(TestRunOptions {
            data_in: Some(frame),
            ctx_in: Some(&ctx_bytes),
            repeat,
            ..TestRunOptions::default()
        })
        .context("BPF_PROG_TEST_RUN")?;
    // Outside the kernel-timed duration.
    if let Some(log) = XDP_LOG.lock().expect("not poisoned").as_mut() {
        log.drain();
    }
    Ok((result.return_value, result.duration))
}

/// With `--xdp-log`: the loaded program's debug events, read after every call so that the
/// ring buffer never fills (a full one makes an event cheaper than the real thing).
pub static XDP_LOG: std::sync::Mutex<Option<router_agent::datapath::xdp_log::XdpLog>> =
    std::sync::Mutex::new(None);

/// Verdict counter changes, by name, the ones that moved.
fn verdict_delta(before: &[u64], after: &[u64]) -> BTreeMap<&'static str, u64> {
    Verdict::ALL
        .iter()
        .zip(before.iter().zip(after))
        .filter(|(_, (b, a))| a > b)
        .map(|(verdict, (b, a))| (verdict.name(), a - b))
        .collect()
}

/// (destination, frame) pairs, borrowed.
pub fn frames(probes: &[(IpAddr, Vec<u8>)]) -> impl Iterator<Item = (IpAddr, &[u8])> {
    probes.iter().map(|(dst, frame)| (*dst, frame.as_slice()))
}

/// The same frame `count` times (its destination is not reported).
pub fn repeat(frame: &[u8], count: usize) -> impl Iterator<Item = (IpAddr, &[u8])> {
    std::iter::repeat_n((IpAddr::from([0, 0, 0, 0]), frame), count)
}

/// Runs each frame once (`repeat: 1`) on `ingress`; counts the runs whose action is not
/// `expect`.
pub fn series<'a>(
    datapath: &mut Datapath,
    ingress: u32,
    frames: impl Iterator<Item = (IpAddr, &'a [u8])>,
    expect: u32,
) -> Result<Series> {
    let before = datapath.verdict_counts()?;
    let program = datapath.program_mut();
    let mut times = Vec::new();
    let mut failed = Vec::new();
    let mut failures = 0;
    for (dst, frame) in frames {
        let (action, time) = test_run(program, ingress, frame, 1)?;
        times.push(time.as_nanos() as u64);
        if action != expect {
            failures += 1;
            if failed.len() < 5 {
                failed.push(format!("{dst}: action {action}"));
            }
        }
    }
    let verdicts = verdict_delta(&before, &datapath.verdict_counts()?);
    times.sort_unstable();
    let percentile = |p: f64| {
        times
            .get(((times.len() as f64 * p) as usize).min(times.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Ok(Series {
        packets: times.len(),
        mean_ns: times.iter().sum::<u64>() as f64 / times.len().max(1) as f64,
        p50_ns: percentile(0.5),
        p99_ns: percentile(0.99),
        failures,
        failed,
        verdicts,
    })
}

/// One TTL-255 frame, in `pairs` pairs of calls of [`HOT_LONG`] and [`HOT_SHORT`] runs; each run
/// must be forwarded.
///
/// A call with `repeat > 1` switches the kernel's XDP dispatcher to the program and back (text
/// patching, RCU grace periods: the call takes tens of ms), and its first run is much slower than
/// the others (cold after the patching: µs). That fixed cost is inside the kernel's duration, so
/// a plain average over 254 runs overstates the steady state. The difference between a long and
/// a short call cancels it: (total of long − total of short) / (254 − 127) runs; the result is
/// the median over the pairs.
pub fn hot(datapath: &mut Datapath, ingress: u32, frame: &[u8], pairs: u32) -> Result<Hot> {
    let before = datapath.verdict_counts()?;
    let program = datapath.program_mut();
    let mut slopes = Vec::new();
    let mut long_ns = 0.0;
    let mut failed_calls = 0;
    for _ in 0..pairs {
        let mut totals = [0.0; 2];
        for (repeat, total) in [HOT_LONG, HOT_SHORT].into_iter().zip(&mut totals) {
            let (action, time) = test_run(program, ingress, frame, repeat)?;
            // The kernel reports the call's time divided by `repeat` (rounded down).
            *total = time.as_nanos() as f64 * f64::from(repeat);
            if action != XDP_REDIRECT {
                failed_calls += 1;
            }
        }
        slopes.push((totals[0] - totals[1]) / f64::from(HOT_LONG - HOT_SHORT));
        long_ns += totals[0];
    }
    let verdicts = verdict_delta(&before, &datapath.verdict_counts()?);
    let packets = u64::from(pairs) * u64::from(HOT_LONG + HOT_SHORT);
    // The action is the last run's only: the counters tell about every run.
    let forwarded = verdicts
        .get(Verdict::Forwarded.name())
        .copied()
        .unwrap_or(0);
    // The median pair: a pair that a host preemption or an interrupt hit does not move it.
    slopes.sort_by(f64::total_cmp);
    Ok(Hot {
        packets,
        calls: 2 * pairs,
        ns: slopes.get(slopes.len() / 2).copied().unwrap_or(0.0),
        long_call_mean_ns: long_ns / (f64::from(pairs) * f64::from(HOT_LONG)).max(1.0),
        failed_calls,
        failures: packets.saturating_sub(forwarded),
        verdicts,
    })
}
