//! Waiting until what was queued for the sessions has been written: `drain --wait` and a
//! stop with `[drain] on_stop` answer only once the drained routes are on the wire.

use std::time::Duration;

use tokio::sync::oneshot;

use super::Speaker;
use crate::bgp::{fsm::State, peer::PeerCommand};

/// Sessions whose flush came back in time, and those that did not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    pub peers_flushed: usize,
    pub peers_timed_out: usize,
}

/// One pending flush per Established session (see [`Speaker::flush`]).
pub struct PendingFlush(Vec<oneshot::Receiver<()>>);

impl Speaker {
    /// Asks every Established session to report once each UPDATE queued for it before now is
    /// written to its socket. Sessions not Established have nothing to write.
    pub fn flush(&self) -> PendingFlush {
        let mut pending = Vec::new();
        for state in self.peers.values() {
            if state.state != State::Established {
                continue;
            }
            let (done, answer) = oneshot::channel();
            if state.handle.commands.send(PeerCommand::Flush(done)).is_ok() {
                pending.push(answer);
            }
        }
        PendingFlush(pending)
    }
}

impl PendingFlush {
    /// Waits for every session's answer, `max_wait` in all. A session that ends meanwhile
    /// counts as timed out: its peer may not have what was queued.
    pub async fn wait(self, max_wait: Duration) -> Flushed {
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut flushed = Flushed::default();
        for answer in self.0 {
            match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(())) => flushed.peers_flushed += 1,
                _ => flushed.peers_timed_out += 1,
            }
        }
        flushed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answered_flushes_count_and_silent_ones_time_out() {
        let (answered, a) = oneshot::channel();
        let (_silent, b) = oneshot::channel::<()>();
        let (dropped, c) = oneshot::channel::<()>();
        answered.send(()).unwrap();
        drop(dropped);
        let started = std::time::Instant::now();
        let flushed = PendingFlush(vec![a, b, c])
            .wait(Duration::from_millis(200))
            .await;
        assert_eq!(
            flushed,
            Flushed {
                peers_flushed: 1,
                peers_timed_out: 2
            }
        );
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(2));
    }
}
