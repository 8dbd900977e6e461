//! The BGP listening sockets' accept loops, and the log of refused connections.
//!
//! `accept` failing for want of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) fails again at
//! once until something is freed: the loop backs off (10 ms doubling to 1 s, reset by the
//! next success) instead of spinning, and says so once per streak. Connections from
//! non-neighbors are logged once per source per minute, with the count refused meanwhile.

use std::{
    collections::HashMap,
    future::Future,
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use tokio::{net::TcpListener, sync::mpsc};

use crate::bgp::peer::PeerEvent;

const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Accepts connections on `listener` and hands them to the speaker until it is gone.
pub(super) fn spawn(listener: TcpListener, events: mpsc::UnboundedSender<PeerEvent>) {
    tokio::spawn(async move {
        accept_loop(
            || listener.accept(),
            |stream, remote| events.send(PeerEvent::Accepted { stream, remote }).is_ok(),
        )
        .await
    });
}

/// Calls `accept` and passes each connection to `deliver` until it returns false; errors
/// back off.
async fn accept_loop<S, A, F>(mut accept: A, mut deliver: impl FnMut(S, SocketAddr) -> bool)
where
    A: FnMut() -> F,
    F: Future<Output = std::io::Result<(S, SocketAddr)>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut failing = false;
    loop {
        match accept().await {
            Ok((stream, remote)) => {
                if failing {
                    tracing::info!("BGP accept works again");
                }
                failing = false;
                backoff = FIRST_BACKOFF;
                if !deliver(stream, remote) {
                    return;
                }
            }
            Err(err) => {
                if !failing {
                    tracing::warn!(
                        "BGP accept failed: {err}; retrying with backoff up to {MAX_BACKOFF:?}"
                    );
                }
                failing = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Refused connections, logged once per source per interval.
#[derive(Debug)]
pub(in crate::bgp) struct RefusalLog {
    interval: Duration,
    /// Per source: when last logged, and refusals since.
    sources: HashMap<IpAddr, (Instant, u64)>,
}

/// Sources remembered at most (a scan from many addresses): beyond, new ones are not logged
/// until old ones expire.
const MAX_SOURCES: usize = 4096;

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog {
            interval: Duration::from_secs(60),
            sources: HashMap::new(),
        }
    }
}

impl RefusalLog {
    /// A connection from `source` was refused: Some(refusals not logged since the last time)
    /// when this one is to be logged.
    pub(in crate::bgp) fn refused(&mut self, source: IpAddr, now: Instant) -> Option<u64> {
        if let Some((logged, since)) = self.sources.get_mut(&source) {
            if now.duration_since(*logged) < self.interval {
                *since += 1;
                return None;
            }
            let unlogged = *since;
            *logged = now;
            *since = 0;
            return Some(unlogged);
        }
        if self.sources.len() >= MAX_SOURCES {
            let interval = self.interval;
            self.sources
                .retain(|_, (logged, _)| now.duration_since(*logged) < interval);
            if self.sources.len() >= MAX_SOURCES {
                return None;
            }
        }
        self.sources.insert(source, (now, 0));
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn accept_errors_back_off_instead_of_spinning() {
        let calls = AtomicUsize::new(0);
        let emfile = || {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err::<((), SocketAddr), _>(std::io::Error::from_raw_os_error(libc::EMFILE)) }
        };
        let looping = accept_loop(emfile, |(), _| true);
        // 1.2 s of failures: calls at 0, 10, 30, 70, 150, 310, 630 ms and 1.27 s (spinning:
        // hundreds of thousands).
        let _ = tokio::time::timeout(Duration::from_millis(1200), looping).await;
        let calls = calls.load(Ordering::Relaxed);
        assert!((5..=10).contains(&calls), "{calls} accept calls in 1.2 s");
    }

    #[tokio::test]
    async fn accept_delivers_until_the_speaker_is_gone() {
        let mut results = vec![
            Ok(((), "10.0.0.1:1000".parse().unwrap())),
            Err(std::io::Error::from_raw_os_error(libc::ECONNABORTED)),
            Ok(((), "10.0.0.2:1000".parse().unwrap())),
        ]
        .into_iter();
        let mut delivered = Vec::new();
        accept_loop(
            || std::future::ready(results.next().expect("stops after the second")),
            |(), remote| {
                delivered.push(remote);
                delivered.len() < 2
            },
        )
        .await;
        assert_eq!(delivered.len(), 2);
    }

    #[test]
    fn refusals_are_logged_once_per_source_per_interval_with_a_count() {
        let mut log = RefusalLog::default();
        let start = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(log.refused(a, start), Some(0));
        for i in 1..=5 {
            assert_eq!(log.refused(a, start + Duration::from_secs(i)), None);
        }
        assert_eq!(log.refused(b, start + Duration::from_secs(1)), Some(0));
        assert_eq!(log.refused(a, start + Duration::from_secs(61)), Some(5));
        assert_eq!(log.refused(a, start + Duration::from_secs(62)), None);
    }

    #[test]
    fn a_scan_from_many_sources_is_bounded() {
        let mut log = RefusalLog::default();
        let now = Instant::now();
        for i in 0..(MAX_SOURCES as u32 + 100) {
            log.refused(IpAddr::from(std::net::Ipv4Addr::from(i)), now);
        }
        assert_eq!(log.sources.len(), MAX_SOURCES);
        // Once they have expired, a new source is logged again.
        let later = now + Duration::from_secs(61);
        assert_eq!(log.refused("198.51.100.1".parse().unwrap(), later), Some(0));
        assert_eq!(log.sources.len(), 1);
    }
}
