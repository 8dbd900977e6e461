//! `drain --wait-traffic`: once the drained routes are out, wait until the traffic they drew
//! has moved away, judged by the XDP counters of the nexthops those prefixes are forwarded to
//! (read from the pinned maps, as `show counters` does, so the event loop is not involved).
//! Traffic to the host's own addresses is delivered by the kernel, not counted here: a drain
//! of local VIPs reports that it watched nothing.

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use serde::Serialize;

use crate::datapath::pinned::PinnedDatapath;

/// How often the counters are sampled.
const SAMPLE: Duration = Duration::from_secs(1);
/// Samples in a row under the threshold that count as "moved".
const IDLE_SAMPLES: u32 = 2;

/// What `--wait-traffic` saw.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrafficWait {
    /// Nexthops watched.
    pub nexthops: usize,
    /// The rate fell under the threshold (None: nothing to watch).
    pub idle: Option<bool>,
    /// Packets per second over the last sample.
    pub last_pps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Samples the packets sent to `nexthops` every second until the rate stays under
/// `idle_below` packets/s for two samples, or `deadline`.
pub async fn wait_idle(
    pin_dir: PathBuf,
    nexthops: BTreeSet<u32>,
    idle_below: u64,
    deadline: tokio::time::Instant,
) -> TrafficWait {
    let mut wait = TrafficWait {
        nexthops: nexthops.len(),
        idle: None,
        last_pps: None,
        note: None,
    };
    if nexthops.is_empty() {
        wait.note = Some(
            "no drained prefix is forwarded by XDP (traffic to local addresses is not counted)"
                .into(),
        );
        return wait;
    }
    let datapath = match PinnedDatapath::open(&pin_dir) {
        Ok(datapath) => datapath,
        Err(err) => {
            wait.note = Some(format!("counters unreadable: {err:#}"));
            return wait;
        }
    };
    let packets = |datapath: &PinnedDatapath| -> u64 {
        nexthops
            .iter()
            .filter_map(|id| datapath.nexthop_stats(*id).ok())
            .map(|stats| stats.packets)
            .sum()
    };
    let mut previous = (packets(&datapath), tokio::time::Instant::now());
    let mut quiet = 0;
    wait.idle = Some(false);
    while tokio::time::Instant::now() + SAMPLE <= deadline {
        tokio::time::sleep(SAMPLE).await;
        let now = (packets(&datapath), tokio::time::Instant::now());
        let seconds = now.1.duration_since(previous.1).as_secs_f64().max(0.001);
        let pps = now.0.saturating_sub(previous.0) as f64 / seconds;
        wait.last_pps = Some((pps * 10.0).round() / 10.0);
        previous = now;
        quiet = if pps < idle_below as f64 {
            quiet + 1
        } else {
            0
        };
        if quiet >= IDLE_SAMPLES {
            wait.idle = Some(true);
            break;
        }
    }
    wait
}
