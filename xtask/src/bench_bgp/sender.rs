//! The fast sender: one BGP session over a plain TCP socket, no RIB, no policy. It opens the
//! session, takes the time it becomes Established (its own view: the receiver's KEEPALIVE
//! after the OPENs), writes the pre-encoded feed and the End-of-RIB markers as fast as the
//! receiver reads, and keeps the session up (KEEPALIVEs; anything received is read and
//! dropped, a NOTIFICATION is an error) until dropped.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use router_agent::bgp::graceful_restart::{GracefulRestartCapability, GracefulRestartFamily};
use router_agent::bgp::packet::{
    Capability, Codec, Message, Open,
    types::{Afi, Safi},
};

use super::feed::CODEC;

/// Hold time we propose; KEEPALIVEs go every third of it.
const HOLD_TIME: u16 = 90;
/// Writes go in pieces of about this size so that a KEEPALIVE can slip in between.
const WRITE_CHUNK: usize = 256 * 1024;

pub struct SenderConfig {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub remote: SocketAddr,
    /// Offer graceful restart (RFC 4724) with this restart time, forwarding state preserved
    /// for IPv4 and IPv6 unicast: a peer of a restarting receiver (`bench restart`).
    pub graceful_restart: Option<u16>,
}

/// An established session; the background threads stop when it is dropped.
pub struct Session {
    pub established_at: Instant,
    stream: Arc<Mutex<TcpStream>>,
    stop: Arc<AtomicBool>,
    /// Why the receiver ended the session, if it did.
    failure: Arc<Mutex<Option<String>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Session {
    /// Connects (retrying until `timeout`: the receiver may still be starting) and runs the
    /// OPEN / KEEPALIVE exchange.
    pub fn establish(config: &SenderConfig, timeout: Duration) -> Result<Self> {
        let deadline = Instant::now() + timeout;
        let mut stream = loop {
            // The sender's namespace has one address on the link: the source the receiver
            // expects as its neighbor.
            match TcpStream::connect_timeout(&config.remote, Duration::from_secs(1)) {
                Ok(stream) => break stream,
                // Refused: the receiver is not listening yet.
                Err(_) if Instant::now() < deadline => {
                    netns_lab::sleep(Duration::from_millis(200))?;
                }
                Err(err) => return Err(err).context(format!("connecting to {}", config.remote)),
            }
        };
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        let mut capabilities = vec![
            Capability::Multiprotocol {
                afi: Afi::Ipv4,
                safi: Safi::Unicast,
            },
            Capability::Multiprotocol {
                afi: Afi::Ipv6,
                safi: Safi::Unicast,
            },
            Capability::RouteRefresh,
            Capability::FourOctetAs(config.asn),
        ];
        if let Some(restart_time) = config.graceful_restart {
            capabilities.push(Capability::GracefulRestart(graceful_restart(restart_time)));
        }
        let open = Open::new(config.asn, HOLD_TIME, config.router_id, capabilities);
        stream.write_all(&Message::Open(open.clone()).encode(&Codec::default()))?;
        let mut reader = MessageReader::default();
        let remote_open = match reader.next(&mut stream, &Codec::default())? {
            Message::Open(remote) => remote,
            other => bail!("expected the receiver's OPEN, got {other:?}"),
        };
        let codec = Codec::negotiated(&open, &remote_open);
        ensure!(
            codec == CODEC,
            "the receiver negotiated {codec:?}; the feed is encoded for {CODEC:?}"
        );
        for family in [Afi::Ipv4, Afi::Ipv6] {
            ensure!(
                remote_open
                    .multiprotocol()
                    .any(|f| f == (family, Safi::Unicast)),
                "the receiver does not offer {family:?} unicast: {remote_open:?}"
            );
        }
        stream.write_all(&Message::Keepalive.encode(&codec))?;
        loop {
            match reader.next(&mut stream, &codec)? {
                Message::Keepalive => break,
                // Some speakers send their (empty) table right away; that counts as alive too
                // only after the KEEPALIVE, so keep reading.
                Message::Update(_) => {}
                other => bail!("expected a KEEPALIVE after the OPENs, got {other:?}"),
            }
        }
        let established_at = Instant::now();
        stream.set_read_timeout(Some(Duration::from_millis(500)))?;

        let stop = Arc::new(AtomicBool::new(false));
        let failure = Arc::new(Mutex::new(None));
        let reader_stream = stream.try_clone()?;
        let stream = Arc::new(Mutex::new(stream));
        let mut threads = Vec::new();
        {
            let (stop, failure) = (stop.clone(), failure.clone());
            threads.push(std::thread::spawn(move || {
                drain(reader_stream, reader, codec, &stop, &failure)
            }));
        }
        // RFC 4271 4.4: a third of the negotiated hold time; none at all if it is zero.
        let hold_time = HOLD_TIME.min(remote_open.hold_time);
        if hold_time > 0 {
            let (stop, stream, failure) = (stop.clone(), stream.clone(), failure.clone());
            let interval = Duration::from_secs(u64::from(hold_time / 3));
            threads.push(std::thread::spawn(move || {
                let keepalive = Message::Keepalive.encode(&codec);
                let mut next = Instant::now() + interval;
                while !stop.load(Ordering::Relaxed) {
                    if Instant::now() >= next {
                        let result = stream.lock().expect("not poisoned").write_all(&keepalive);
                        if let Err(err) = result {
                            record(&failure, format!("sending a KEEPALIVE: {err}"));
                            return;
                        }
                        next += interval;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }));
        }
        Ok(Self {
            established_at,
            stream,
            stop,
            failure,
            threads,
        })
    }

    /// Writes `bytes` (whole messages) to the receiver; returns when the kernel took them all.
    pub fn send(&self, bytes: &[u8]) -> Result<()> {
        let mut rest = bytes;
        while !rest.is_empty() {
            self.check()?;
            // Cut at a message boundary, so that a KEEPALIVE can go in between.
            let mut cut = 0;
            while cut < rest.len() && cut < WRITE_CHUNK {
                cut += usize::from(u16::from_be_bytes([rest[cut + 16], rest[cut + 17]]));
            }
            self.stream
                .lock()
                .expect("not poisoned")
                .write_all(&rest[..cut])
                .context("sending the feed")?;
            rest = &rest[cut..];
        }
        Ok(())
    }

    /// An error if the receiver ended the session.
    pub fn check(&self) -> Result<()> {
        match &*self.failure.lock().expect("not poisoned") {
            Some(failure) => bail!("the BGP session failed: {failure}"),
            None => Ok(()),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(stream) = self.stream.lock() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The graceful restart capability (RFC 4724 3): not restarting, forwarding state preserved
/// for IPv4 and IPv6 unicast.
fn graceful_restart(restart_time: u16) -> GracefulRestartCapability {
    GracefulRestartCapability {
        restarted: false,
        notification: false,
        restart_time,
        families: [Afi::Ipv4, Afi::Ipv6]
            .into_iter()
            .map(|afi| GracefulRestartFamily {
                afi,
                safi: Safi::Unicast,
                forwarding: true,
            })
            .collect(),
    }
}

fn record(failure: &Mutex<Option<String>>, message: String) {
    failure.lock().expect("not poisoned").get_or_insert(message);
}

/// Reads and drops what the receiver sends until told to stop; records a NOTIFICATION or a
/// closed connection.
fn drain(
    mut stream: TcpStream,
    mut reader: MessageReader,
    codec: Codec,
    stop: &AtomicBool,
    failure: &Mutex<Option<String>>,
) {
    while !stop.load(Ordering::Relaxed) {
        match reader.next(&mut stream, &codec) {
            Ok(Message::Notification(notification)) => {
                record(failure, format!("the receiver sent {notification:?}"));
                return;
            }
            Ok(_) => {}
            Err(err)
                if err.downcast_ref::<std::io::Error>().is_some_and(|e| {
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    )
                }) => {}
            Err(err) => {
                if !stop.load(Ordering::Relaxed) {
                    record(failure, format!("{err:#}"));
                }
                return;
            }
        }
    }
}

/// Frames messages out of a byte stream.
#[derive(Default)]
struct MessageReader {
    buffer: Vec<u8>,
}

impl MessageReader {
    fn next(&mut self, stream: &mut TcpStream, codec: &Codec) -> Result<Message> {
        loop {
            if self.buffer.len() >= 19 {
                let length = usize::from(u16::from_be_bytes([self.buffer[16], self.buffer[17]]));
                ensure!(
                    (19..=65535).contains(&length),
                    "bad message length {length} from the receiver"
                );
                if self.buffer.len() >= length {
                    let decoded = Message::decode(&self.buffer[..length], codec)
                        .map_err(|err| anyhow::anyhow!("undecodable message: {err:?}"))?;
                    self.buffer.drain(..length);
                    return Ok(decoded.message);
                }
            }
            let mut chunk = [0u8; 65536];
            let read = stream.read(&mut chunk)?;
            if read == 0 {
                bail!("the receiver closed the connection");
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}
