//! The kernel's copy of our routes (`datapath.kernel_routes`), so that traffic the host itself
//! sends follows them too.
//!
//! ```text
//!   Fib ──Batch.kernel──> event loop ──bounded queue──> "kernel-routes" thread ──> RouteWriter
//!                          (XDP maps                      (in order, in bulk:      (netlink,
//!                           already written)               merges what queued)     256/sendmsg)
//! ```
//!
//! Forwarding never waits for it: the XDP maps are written before a batch's kernel changes are
//! queued. The queue is bounded, so when the kernel is the slower side (a full table takes
//! the kernel seconds) the event loop waits for room, and the routes waiting for the kernel
//! stay a few batches' worth of memory instead of a table's.

use anyhow::Context as _;
use tokio::sync::mpsc;

use crate::fib::KernelChange;
use crate::netlink::{
    KernelNexthop, KernelRoute, MESSAGES_PER_SEND, RouteChange, RouteFailure, RouteWriter,
};

/// Batches queued at most (the daemon's batches hold up to some 32k changes).
const QUEUED_BATCHES: usize = 2;

/// Changes converted and applied at once, between two looks at the abandon flag: a fraction of
/// a second of kernel work.
const CHANGES_PER_STEP: usize = 16 * MESSAGES_PER_SEND;

/// Refusals logged one by one per step; the rest are counted.
const LOGGED_FAILURES: usize = 10;

pub struct KernelMirror {
    queue: mpsc::Sender<Vec<KernelChange>>,
    /// Set to stop applying what is still queued (at exit, when the routes are removed
    /// anyway).
    abandon: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Returns the prefixes of the changes it did not apply.
    thread: std::thread::JoinHandle<Vec<ipnet::IpNet>>,
    /// Changes waiting and refused, for the metrics.
    stats: std::sync::Arc<MirrorStats>,
}

/// What the metrics read of the mirror (`metrics/fib.rs`).
#[derive(Debug, Default)]
pub struct MirrorStats {
    /// Changes submitted and not yet applied (nor skipped at exit).
    pub queued_changes: std::sync::atomic::AtomicU64,
    /// Changes the kernel refused, or that a failed send left out.
    pub failed_changes: std::sync::atomic::AtomicU64,
    /// Changes applied (refused ones included).
    pub applied_changes: std::sync::atomic::AtomicU64,
}

impl KernelMirror {
    /// Opens the netlink socket in the calling thread's network namespace and starts the
    /// thread. Routes are installed with route protocol `protocol`.
    pub fn start(protocol: u8) -> anyhow::Result<Self> {
        use std::sync::atomic::Ordering::Relaxed;

        let mut writer = RouteWriter::open()?;
        let (queue, mut batches) = mpsc::channel::<Vec<KernelChange>>(QUEUED_BATCHES);
        let abandon = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let abandoned = abandon.clone();
        let stats = std::sync::Arc::new(MirrorStats::default());
        let counted = stats.clone();
        let thread = std::thread::Builder::new()
            .name("kernel-routes".into())
            .spawn(move || {
                let mut changes = Vec::new();
                let mut unapplied = Vec::new();
                while let Some(batch) = batches.blocking_recv() {
                    let mut batch = batch;
                    while let Ok(more) = batches.try_recv() {
                        batch.extend(more);
                    }
                    for step in batch.chunks(CHANGES_PER_STEP) {
                        counted.queued_changes.fetch_sub(step.len() as u64, Relaxed);
                        if abandoned.load(Relaxed) {
                            // Its route may be in the kernel still (e.g. a delete of a route
                            // we installed): the exit removes it by prefix, not by a dump.
                            unapplied.extend(step.iter().map(changed_prefix));
                            continue;
                        }
                        changes.clear();
                        changes.extend(step.iter().map(|change| route_change(change, protocol)));
                        let failed = apply_logged(&mut writer, &changes);
                        counted.failed_changes.fetch_add(failed as u64, Relaxed);
                        counted
                            .applied_changes
                            .fetch_add(changes.len() as u64, Relaxed);
                    }
                }
                unapplied
            })
            .context("cannot start the kernel route thread")?;
        Ok(Self {
            queue,
            abandon,
            thread,
            stats,
        })
    }

    pub fn stats(&self) -> &MirrorStats {
        &self.stats
    }

    /// Queues a batch's kernel changes, applied after everything queued before; waits while
    /// the queue is full.
    pub async fn submit(&self, changes: Vec<KernelChange>) {
        if !changes.is_empty() {
            // Counted before the send: the thread subtracts once it takes them.
            self.stats
                .queued_changes
                .fetch_add(changes.len() as u64, std::sync::atomic::Ordering::Relaxed);
            // The thread only ends when the queue closes (finish), so this cannot fail.
            let _ = self.queue.send(changes).await;
        }
    }

    /// Stops the thread once every queued change is applied (`apply_queued`), or as soon as
    /// possible, skipping the rest. Blocking. Returns the prefixes of the changes skipped:
    /// the kernel may hold a route of ours for them.
    pub fn finish(self, apply_queued: bool) -> Vec<ipnet::IpNet> {
        if !apply_queued {
            self.abandon
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        drop(self.queue);
        self.thread.join().unwrap_or_else(|_| {
            tracing::error!("the kernel route thread panicked");
            Vec::new()
        })
    }
}

/// Deletes our kernel routes to `prefixes` (absent ones are fine; duplicates are removed
/// once), in bulk, IPv4 and IPv6 on a socket and thread each (the kernel takes them in
/// parallel), without acknowledgements. Blocking. Returns how many prefixes were asked for;
/// an error if any delete failed (the first one, and how many).
pub fn remove(protocol: u8, prefixes: &[ipnet::IpNet]) -> anyhow::Result<usize> {
    let (mut v4, mut v6): (Vec<ipnet::IpNet>, Vec<ipnet::IpNet>) =
        prefixes.iter().partition(|prefix| prefix.addr().is_ipv4());
    for family in [&mut v4, &mut v6] {
        // Scrambled, not in address order: the kernel's IPv4 trie shrinks its nodes as a
        // region empties, and a full table deleted in address order took it twice as long.
        family.sort_unstable_by_key(scrambled);
        family.dedup();
    }
    let asked = v4.len() + v6.len();
    let delete = |prefixes: &[ipnet::IpNet]| -> anyhow::Result<Vec<RouteFailure>> {
        if prefixes.is_empty() {
            return Ok(Vec::new());
        }
        RouteWriter::open()?.delete_quietly(prefixes, protocol)
    };
    let (v4, v6) = std::thread::scope(|scope| {
        // A new thread starts in its creator's network namespace.
        let v6 = scope.spawn(|| delete(&v6));
        let v4 = delete(&v4);
        (v4, v6.join())
    });
    let v6 = v6.unwrap_or_else(|_| Err(anyhow::anyhow!("the IPv6 route removal panicked")));
    let mut failures = v4?.into_iter().chain(v6?);
    if let Some(first) = failures.next() {
        let more = failures.count();
        return Err(first
            .error
            .context(format!("{} kernel routes not removed", more + 1)));
    }
    Ok(asked)
}

/// A key that orders prefixes pseudo-randomly; distinct prefixes have distinct keys (an odd
/// multiplier is a bijection), so equal ones end up side by side.
fn scrambled(prefix: &ipnet::IpNet) -> u128 {
    let address = match prefix.addr() {
        std::net::IpAddr::V4(v4) => u128::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => u128::from(v6),
    };
    (address ^ u128::from(prefix.prefix_len()).rotate_right(8))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
}

fn changed_prefix(change: &KernelChange) -> ipnet::IpNet {
    match change {
        KernelChange::Replace { prefix, .. } | KernelChange::Delete { prefix } => *prefix,
    }
}

fn route_change(change: &KernelChange, protocol: u8) -> RouteChange {
    let route = |prefix, nexthops: Vec<KernelNexthop>| KernelRoute {
        prefix,
        nexthops,
        protocol,
    };
    match change {
        KernelChange::Replace { prefix, nexthops } => RouteChange::Replace(route(
            *prefix,
            nexthops
                .iter()
                .map(|key| KernelNexthop {
                    gateway: key.via,
                    ifindex: key.ifindex,
                })
                .collect(),
        )),
        KernelChange::Delete { prefix } => RouteChange::Delete(route(*prefix, Vec::new())),
    }
}

/// Returns how many changes did not make it into the kernel.
fn apply_logged(writer: &mut RouteWriter, changes: &[RouteChange]) -> usize {
    match writer.apply(changes) {
        Ok(failures) => {
            for failure in failures.iter().take(LOGGED_FAILURES) {
                tracing::warn!("kernel route: {:#}", failure.error);
            }
            if failures.len() > LOGGED_FAILURES {
                tracing::warn!(
                    "{} more kernel route changes refused",
                    failures.len() - LOGGED_FAILURES
                );
            }
            failures.len()
        }
        Err(err) => {
            tracing::error!(
                changes = changes.len(),
                "kernel routes not updated: {err:#}"
            );
            changes.len()
        }
    }
}
