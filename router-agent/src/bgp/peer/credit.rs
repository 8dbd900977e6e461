//! Bounded per-peer queues with TCP back-pressure: a session hands the speaker at most
//! [`MAX_UPDATES_IN_FLIGHT`] decoded UPDATEs that it has not applied yet. Each UPDATE event
//! carries a credit, returned when the speaker drops the event; without credit the session
//! stops decoding and reading, the socket's receive buffer fills, and TCP's window holds
//! the peer back. Keepalives, timers and writes go on meanwhile.
//!
//! The bound: 1024 UPDATEs of at most 4096 octets (RFC 4271; extended messages are not
//! offered) is at most 4 MiB of wire bytes per peer; decoded, an NLRI takes 5 bytes
//! (`Ipv4Net`) or 17 (`Ipv6Net`) against at least 2 on the wire, so at most 10 MiB of IPv4
//! or 34 MiB of IPv6 prefixes per peer (a real feed, with longer prefixes, about 5 to 8 MiB),
//! plus the 64 KiB read buffer. A full table through one fast peer therefore never piles up
//! in the agent beyond that: the rest waits in the peer's send buffer. 256 was measured too:
//! it held the event loop's batches to fewer routes and cost about 0.8 s of 6.7 s with every
//! route mirrored into the kernel (BENCHMARKS.md).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Decoded UPDATEs a session may have handed the speaker and not seen applied.
pub const MAX_UPDATES_IN_FLIGHT: usize = 1024;

/// One peer's credits.
#[derive(Clone, Debug)]
pub(super) struct Credits(Arc<Semaphore>);

impl Credits {
    pub(super) fn new() -> Self {
        Credits(Arc::new(Semaphore::new(MAX_UPDATES_IN_FLIGHT)))
    }

    pub(super) fn available(&self) -> bool {
        self.0.available_permits() > 0
    }

    /// A credit for one UPDATE event; None when all are out.
    pub(super) fn take(&self) -> UpdateCredit {
        UpdateCredit(self.0.clone().try_acquire_owned().ok())
    }

    /// Returns once a credit is back.
    pub(super) async fn returned(&self) {
        // The semaphore is never closed.
        let _ = self.0.acquire().await;
    }
}

/// Held by an UPDATE event until the speaker has applied it (dropping the event returns
/// it). `Default`: no credit (events made up in tests).
#[derive(Debug, Default)]
pub struct UpdateCredit(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_run_out_and_come_back_when_events_are_dropped() {
        let credits = Credits::new();
        let taken: Vec<UpdateCredit> = (0..MAX_UPDATES_IN_FLIGHT).map(|_| credits.take()).collect();
        assert!(taken.iter().all(|credit| credit.0.is_some()));
        assert!(!credits.available());
        assert!(credits.take().0.is_none());
        drop(taken);
        assert!(credits.available());
    }
}
