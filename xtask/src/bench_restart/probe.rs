//! A one-way UDP probe between two bench namespaces (as tests/restart_lab/probe.rs): a sender paced at one datagram per
//! millisecond, each carrying its sequence number, and a receiver that records which numbers
//! arrived. Losses are counted over a window of sequence numbers ([`Probe::mark`] before and
//! after what is measured), so that the start-up of the lab never counts.

use std::{
    fs,
    net::{SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

/// One datagram per millisecond.
const INTERVAL: Duration = Duration::from_millis(1);

pub struct Probe {
    /// Sequence number of the next datagram to send.
    sent: Arc<AtomicU64>,
    /// Sequence numbers received (bit per number).
    received: Arc<Mutex<Vec<u64>>>,
    /// Datagrams the sender's kernel refused (no route, ...): lost as well.
    send_errors: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Losses over a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Losses {
    pub sent: u64,
    pub lost: u64,
}

impl std::fmt::Display for Losses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {} lost", self.lost, self.sent)
    }
}

/// Runs `body` on a thread that entered the network namespace `ns` (`/run/netns/<ns>`).
fn spawn_in(ns: &str, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    let netns = fs::File::open(format!("/run/netns/{ns}")).unwrap();
    thread::spawn(move || {
        // SAFETY: setns on this thread only, with a namespace file we hold open.
        assert_eq!(
            unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
            0,
            "setns"
        );
        body();
    })
}

impl Probe {
    /// Starts the receiver in `to_ns` on `dst` and the sender in `from_ns`.
    pub fn start(from_ns: &str, to_ns: &str, dst: SocketAddr) -> Self {
        let mut probe = Self {
            sent: Arc::new(AtomicU64::new(0)),
            received: Arc::new(Mutex::new(Vec::new())),
            send_errors: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let (received, stop) = (probe.received.clone(), probe.stop.clone());
        probe.threads.push(spawn_in(to_ns, move || {
            let socket = UdpSocket::bind(dst).expect("binding the probe's receiver");
            socket
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            bound_tx.send(()).unwrap();
            let mut buffer = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                let Ok(length) = socket.recv(&mut buffer) else {
                    continue;
                };
                if length < 8 {
                    continue;
                }
                let seq = u64::from_be_bytes(buffer[..8].try_into().unwrap());
                let mut bits = received.lock().unwrap();
                let word = (seq / 64) as usize;
                if bits.len() <= word {
                    bits.resize(word + 1024, 0);
                }
                bits[word] |= 1 << (seq % 64);
            }
        }));
        bound_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the probe's receiver is bound");
        let (sent, errors, stop) = (
            probe.sent.clone(),
            probe.send_errors.clone(),
            probe.stop.clone(),
        );
        probe.threads.push(spawn_in(from_ns, move || {
            let bind = if dst.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
            let socket = UdpSocket::bind(bind).unwrap();
            let start = Instant::now();
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = start + INTERVAL * seq as u32;
                let now = Instant::now();
                if due > now {
                    thread::sleep(due - now);
                }
                let mut payload = [0u8; 32];
                payload[..8].copy_from_slice(&seq.to_be_bytes());
                if socket.send_to(&payload, dst).is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                seq += 1;
                sent.store(seq, Ordering::Relaxed);
            }
        }));
        probe
    }

    /// The sequence number the next datagram will carry: a window's start or end.
    pub fn mark(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits until datagrams sent from now on arrive (up to `timeout`): the path works.
    pub fn flowing(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut from = self.mark();
        while Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
            let to = self.mark();
            // What was just sent may still be on its way.
            thread::sleep(Duration::from_millis(100));
            if to > from + 20 && self.lost_between(from, to) == 0 {
                return true;
            }
            from = to;
        }
        false
    }

    /// Losses among the datagrams numbered `from..to`, after waiting 300 ms for those still
    /// in flight.
    pub fn losses(&self, from: u64, to: u64) -> Losses {
        thread::sleep(Duration::from_millis(300));
        Losses {
            sent: to - from,
            lost: self.lost_between(from, to),
        }
    }

    fn lost_between(&self, from: u64, to: u64) -> u64 {
        let bits = self.received.lock().unwrap();
        (from..to)
            .filter(|seq| {
                bits.get((*seq / 64) as usize)
                    .is_none_or(|word| word & (1 << (seq % 64)) == 0)
            })
            .count() as u64
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
