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
use crate::netlink::{KernelNexthop, KernelRoute, MESSAGES_PER_SEND, RouteChange, RouteWriter};

/// Batches queued at most (the daemon's batches hold up to some 32k changes).
const QUEUED_BATCHES: usize = 2;

/// Changes converted and applied at once, between two looks at the abandon flag: a fraction of
/// a second of kernel work.
const CHANGES_PER_STEP: usize = 16 * MESSAGES_PER_SEND;

/// Refusals logged one by one per step; the rest are counted.
const LOGGED_FAILURES: usize = 10;

pub struct KernelMirror {
    queue: mpsc::Sender<Vec<KernelChange>>,
    /// Set to drop what is still queued (at exit, when the routes are flushed anyway).
    abandon: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
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
        let thread = std::thread::Builder::new()
            .name("kernel-routes".into())
            .spawn(move || {
                let mut changes = Vec::new();
                while let Some(batch) = batches.blocking_recv() {
                    let mut batch = batch;
                    while let Ok(more) = batches.try_recv() {
                        batch.extend(more);
                    }
                    for step in batch.chunks(CHANGES_PER_STEP) {
                        if abandoned.load(Relaxed) {
                            break;
                        }
                        changes.clear();
                        changes.extend(step.iter().map(|change| route_change(change, protocol)));
                        apply_logged(&mut writer, &changes);
                    }
                }
            })
            .context("cannot start the kernel route thread")?;
        Ok(Self {
            queue,
            abandon,
            thread,
        })
    }

    /// Queues a batch's kernel changes, applied after everything queued before; waits while
    /// the queue is full.
    pub async fn submit(&self, changes: Vec<KernelChange>) {
        if !changes.is_empty() {
            // The thread only ends when the queue closes (finish), so this cannot fail.
            let _ = self.queue.send(changes).await;
        }
    }

    /// Stops the thread once every queued change is applied (`apply_queued`), or as soon as
    /// possible, dropping the rest. Blocking.
    pub fn finish(self, apply_queued: bool) {
        if !apply_queued {
            self.abandon
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        drop(self.queue);
        if self.thread.join().is_err() {
            tracing::error!("the kernel route thread panicked");
        }
    }
}

/// Deletes our kernel routes to `prefixes` (absent ones are fine), in bulk. Blocking. Returns
/// how many were asked for.
pub fn remove(protocol: u8, prefixes: &[ipnet::IpNet]) -> anyhow::Result<usize> {
    let mut writer = RouteWriter::open()?;
    let mut changes = Vec::with_capacity(CHANGES_PER_STEP.min(prefixes.len()));
    for step in prefixes.chunks(CHANGES_PER_STEP) {
        changes.clear();
        changes.extend(
            step.iter()
                .map(|&prefix| route_change(&KernelChange::Delete { prefix }, protocol)),
        );
        if let Some(failure) = writer.apply(&changes)?.into_iter().next() {
            return Err(failure.error);
        }
    }
    Ok(prefixes.len())
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

fn apply_logged(writer: &mut RouteWriter, changes: &[RouteChange]) {
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
        }
        Err(err) => tracing::error!(
            changes = changes.len(),
            "kernel routes not updated: {err:#}"
        ),
    }
}
