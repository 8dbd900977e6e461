//! One measured run: the generator(s) running, the sink's and generator's counters read over
//! a window, and the check that the run forwarded at all.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use router_agent::datapath::Datapath;
use router_common::Verdict;

use super::{
    Mode,
    report::Sample,
    topology::Topology,
    trafficgen::{Generator, GeneratorStop, Placement, Sink},
};

/// What happened during the measured window.
struct Window {
    elapsed: Duration,
    at_sink: u64,
    generated: u64,
    /// See `Sample::others_cpu_percent`.
    others: Option<f64>,
}

/// Counters read before and after a run.
struct Snapshot {
    sink: u64,
    generated: u64,
    kernel: (u64, u64),
    verdicts: Option<Vec<u64>>,
    /// rtr0's frames per receive queue (`rx_queue_N_xdp_packets`).
    rtr0_queues: Vec<u64>,
}

fn snapshot(topo: &Topology, sink: &Sink, datapath: Option<&Datapath>) -> Result<Snapshot> {
    Ok(Snapshot {
        sink: sink.counters()?.0,
        generated: topo.generated()?,
        kernel: topo.kernel_forwarded()?,
        verdicts: datapath.map(Datapath::verdict_counts).transpose()?,
        rtr0_queues: rx_queue_packets(&Topology::ethtool_stats(&topo.rtr, "rtr0")?),
    })
}

/// `rx_queue_N_xdp_packets` for N = 0, 1, ... (what veth's NAPI took from each queue).
fn rx_queue_packets(stats: &[(String, u64)]) -> Vec<u64> {
    (0..)
        .map_while(|queue| {
            let name = format!("rx_queue_{queue}_xdp_packets");
            stats.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
        })
        .collect()
}

/// Runs the generator for a warm-up plus `seconds`, and measures the sink's and the
/// generator's rates over the `seconds` window.
///
/// One generator thread per entry of `placements` (each on its CPU, all cycling through the
/// same destinations): with veths of several queues each thread's frames go to the queue of its
/// CPU, and the whole chain (router included) runs on that CPU, so two placements measure the
/// router on two cores.
pub fn measure(
    topo: &Topology,
    sink: &Sink,
    generator: &Generator,
    datapath: Option<&Datapath>,
    placements: &[Placement],
    seconds: f64,
    (table, family, mode, round): (&str, &'static str, Mode, usize),
) -> Result<Sample> {
    const WARMUP: Duration = Duration::from_millis(500);
    let before = snapshot(topo, sink, datapath)?;
    let stops: Vec<GeneratorStop> = placements.iter().map(|_| GeneratorStop::new()).collect();
    let window = std::thread::scope(|scope| {
        let threads: Vec<_> = placements
            .iter()
            .zip(&stops)
            .map(|(&placement, stop)| {
                scope.spawn(move || generator.run(&topo.gen_ns, topo.gen0.ifindex, placement, stop))
            })
            .collect();
        let measured = (|| -> Result<Window> {
            netns_lab::sleep(WARMUP)?;
            if threads.iter().any(|t| t.is_finished()) {
                bail!("a generator stopped during warm-up");
            }
            let cpus = || -> Vec<Option<CpuTimes>> {
                placements
                    .iter()
                    .map(|p| p.cpu.and_then(cpu_times))
                    .collect()
            };
            let cpu0 = cpus();
            let (t0, p0, g0) = (Instant::now(), sink.counters()?.0, topo.generated()?);
            netns_lab::sleep(Duration::from_secs_f64(seconds))?;
            let (t1, p1, g1) = (Instant::now(), sink.counters()?.0, topo.generated()?);
            let cpu1 = cpus();
            // The most disturbed of the generators' CPUs.
            let others = cpu0
                .into_iter()
                .zip(cpu1)
                .filter_map(|pair| match pair {
                    (Some(a), Some(b)) if b.total > a.total => {
                        Some(100.0 * (b.user - a.user) as f64 / (b.total - a.total) as f64)
                    }
                    _ => None,
                })
                .reduce(f64::max);
            Ok(Window {
                elapsed: t1 - t0,
                at_sink: p1 - p0,
                generated: g1 - g0,
                others,
            })
        })();
        // Always stop the generators, also when measuring failed or was interrupted.
        for (thread, stop) in threads.iter().zip(&stops) {
            stop.stop(|| thread.is_finished());
        }
        for thread in threads {
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        }
        measured
    })?;
    // Let frames in flight reach the sink before the final counters.
    std::thread::sleep(Duration::from_millis(200));
    let after = snapshot(topo, sink, datapath)?;

    let kernel_forwarded = if family == "IPv4" {
        after.kernel.0 - before.kernel.0
    } else {
        after.kernel.1 - before.kernel.1
    };
    let verdicts = match (&before.verdicts, &after.verdicts) {
        (Some(b), Some(a)) => Some(a.iter().zip(b).map(|(a, b)| a - b).collect::<Vec<_>>()),
        _ => None,
    };
    let sum = |verdicts: &[u64], first: Verdict, last: Verdict| -> u64 {
        verdicts[first as usize..=last as usize].iter().sum()
    };
    let sample = Sample {
        table: table.to_owned(),
        family,
        mode,
        cores: placements.len(),
        rtr0_queue_share: {
            let counts: Vec<u64> = after
                .rtr0_queues
                .iter()
                .zip(before.rtr0_queues.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect();
            let total = counts.iter().sum::<u64>().max(1) as f64;
            counts.iter().map(|&c| c as f64 / total).collect()
        },
        round,
        seconds: window.elapsed.as_secs_f64(),
        sink_mpps: window.at_sink as f64 / window.elapsed.as_secs_f64() / 1e6,
        others_cpu_percent: window.others,
        offered_mpps: window.generated as f64 / window.elapsed.as_secs_f64() / 1e6,
        generated: after.generated - before.generated,
        at_sink: after.sink - before.sink,
        kernel_forwarded,
        xdp_forwarded: verdicts.as_ref().map(|v| v[Verdict::Forwarded as usize]),
        xdp_passed: verdicts
            .as_ref()
            .map(|v| sum(v, Verdict::PassedLocal, Verdict::PassedVlan)),
        xdp_dropped: verdicts
            .as_ref()
            .map(|v| sum(v, Verdict::DroppedMalformed, Verdict::DroppedRedirect)),
    };
    check_sample(topo, &sample)?;
    Ok(sample)
}

/// A run where (next to) nothing arrived is a broken setup, not a result: say what the veths
/// saw and stop.
pub fn check_sample(topo: &Topology, sample: &Sample) -> Result<()> {
    if sample.at_sink * 10 >= sample.generated {
        return Ok(());
    }
    let mut details = String::new();
    for (ns, dev) in [
        (&topo.gen_ns, "gen0"),
        (&topo.rtr, "rtr0"),
        (&topo.rtr, "rtr1"),
        (&topo.sink, "sink0"),
    ] {
        if let Ok(stats) = Topology::ethtool_stats(ns, dev) {
            let nonzero: Vec<String> = stats
                .into_iter()
                .filter(|(_, v)| *v != 0)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            details.push_str(&format!("\n  {dev}: {}", nonzero.join(" ")));
        }
    }
    bail!(
        "{} / {} / {}: only {} of {} generated frames reached the sink (kernel forwarded {}, \
         XDP forwarded {:?}, passed {:?}, dropped {:?}); veth counters:{details}",
        sample.table,
        sample.family,
        sample.mode.label(),
        sample.at_sink,
        sample.generated,
        sample.kernel_forwarded,
        sample.xdp_forwarded,
        sample.xdp_passed,
        sample.xdp_dropped
    )
}

/// Jiffies of one CPU from /proc/stat: user + nice, and the total.
struct CpuTimes {
    user: u64,
    total: u64,
}

fn cpu_times(cpu: usize) -> Option<CpuTimes> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let name = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    Some(CpuTimes {
        user: values.first()? + values.get(1)?,
        total: values.iter().take(8).sum(),
    })
}
