//! The event loop's side of `[metrics]`: a [`Snapshot`] of what it owns, built between two
//! commits (so the FIB counts are what the maps hold).

use std::sync::atomic::Ordering::Relaxed;

use super::Agent;
use crate::metrics::{KernelMirrorCounts, NexthopLabel, Snapshot};

impl Agent {
    pub(super) fn metrics_snapshot(&self) -> Snapshot {
        Snapshot {
            neighbors: self
                .speaker
                .as_ref()
                .map(|speaker| speaker.neighbor_metrics())
                .unwrap_or_default(),
            fib: self.fib.census(),
            batches_applied: self.batches_applied,
            kernel_mirror: self.kernel_mirror.as_ref().map(|mirror| {
                let stats = mirror.stats();
                KernelMirrorCounts {
                    queued_changes: stats.queued_changes.load(Relaxed),
                    applied_changes: stats.applied_changes.load(Relaxed),
                    failed_changes: stats.failed_changes.load(Relaxed),
                }
            }),
            bfd: self.bfd.sessions(),
            services: self.service_views(),
            nexthops: self
                .fib
                .nexthop_ids()
                .into_iter()
                .map(|(id, via, ifindex)| NexthopLabel {
                    id,
                    via,
                    interface: self
                        .interfaces
                        .get(&ifindex)
                        .cloned()
                        .unwrap_or_else(|| format!("if{ifindex}")),
                })
                .collect(),
        }
    }
}
