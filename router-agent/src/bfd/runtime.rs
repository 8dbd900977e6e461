//! The BFD driver: one thread with a current-thread tokio runtime that owns every session, its
//! two timers and its socket, so that nothing on the BGP event loop (a 1.2M-route load) can
//! delay a BFD packet. The daemon talks to it over channels: [`Bfd::sync`] in (the sessions
//! wanted: added, removed, re-timed), [`StateChange`]s out; `show bfd` reads a snapshot that
//! the thread keeps current ([`Bfd::sessions`]).

use std::{
    collections::{BTreeMap, HashMap},
    io,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, oneshot};

use super::{
    packet::{ControlPacket, Diagnostic, State},
    session::{Event, Output, Session, SessionConfig},
    show::{LastDown, SessionStatus},
    socket::{CONTROL_PORT, ONE_HOP_TTL, ReceiveSocket, RegisteredReceiveSocket, SendSocket},
};

/// A BFD peer: its address and, for link-local and unnumbered peers, the interface.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey {
    pub address: IpAddr,
    pub interface: Option<String>,
}

impl std::fmt::Display for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.interface {
            Some(interface) => write!(f, "{}%{interface}", self.address),
            None => self.address.fmt(f),
        }
    }
}

/// A session wanted, with its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSpec {
    pub key: PeerKey,
    pub config: SessionConfig,
}

/// A session's state changed (every transition; consumers act on `path_failed` and on Up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub key: PeerKey,
    pub from: State,
    pub to: State,
    pub diag: Diagnostic,
    /// Up to Down, not by AdminDown (RFC 5882 3.2): the neighbour's path failed.
    pub path_failed: bool,
}

/// UDP ports: 3784 for both in production; tests run two drivers on one host.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub receive: u16,
    pub peer: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            receive: CONTROL_PORT,
            peer: CONTROL_PORT,
        }
    }
}

enum Command {
    Sync(Vec<SessionSpec>),
    /// Every session to AdminDown (its peer is told: not a failure), then the thread ends.
    Shutdown(oneshot::Sender<()>),
}

type Snapshot = Arc<Mutex<BTreeMap<PeerKey, SessionStatus>>>;

/// The daemon's handle on the BFD thread.
pub struct Bfd {
    commands: mpsc::UnboundedSender<Command>,
    status: Snapshot,
}

impl Bfd {
    /// Binds the receive sockets (an IPv4 failure is an error; IPv6 may be off on the host)
    /// and starts the thread, which sends its state changes to `changes`.
    pub fn spawn(ports: Ports, changes: mpsc::UnboundedSender<StateChange>) -> io::Result<Bfd> {
        let v4 = ReceiveSocket::bind(false, ports.receive)?;
        let v6 = ReceiveSocket::bind(true, ports.receive)
            .inspect_err(|err| tracing::warn!("BFD over IPv6 unavailable: {err}"))
            .ok();
        let (commands, command_rx) = mpsc::unbounded_channel();
        let status = Snapshot::default();
        let driver = Driver {
            sessions: HashMap::new(),
            by_key: BTreeMap::new(),
            changes,
            status: status.clone(),
            ports,
            next_discriminator: rand::random::<u32>() | 1,
            open_errors: BTreeMap::new(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("bfd".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let v4 = match v4.register() {
                        Ok(socket) => socket,
                        Err(err) => return tracing::error!("BFD stopped: {err}"),
                    };
                    let v6 = v6.and_then(|socket| socket.register().ok());
                    driver.run(command_rx, v4, v6).await
                })
            })?;
        Ok(Bfd { commands, status })
    }

    /// The sessions wanted now: new ones start, missing ones go (AdminDown first), changed
    /// parameters are negotiated (a Poll Sequence when Up).
    pub fn sync(&self, wanted: Vec<SessionSpec>) {
        let _ = self.commands.send(Command::Sync(wanted));
    }

    /// Every session, as `show bfd` lists them.
    pub fn sessions(&self) -> Vec<SessionStatus> {
        let status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        status.values().map(|s| s.clone().at(now)).collect()
    }

    /// Tells every peer we go AdminDown (so that a restart is no failure to them) and stops
    /// the thread; waits at most 100 ms.
    pub async fn shutdown(self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Shutdown(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_millis(100), wait).await;
        }
    }
}

/// One session and what drives it.
struct Entry {
    key: PeerKey,
    config: SessionConfig,
    session: Session,
    socket: SendSocket,
    /// The interface a packet must arrive on (link-local / unnumbered peers); 0: any.
    ifindex: u32,
    transmit_at: Option<Instant>,
    detect_at: Option<Instant>,
    up_since: Option<Instant>,
    last_down: Option<(Instant, Diagnostic)>,
    /// The last send error, logged once until sending works again.
    send_error: Option<io::ErrorKind>,
}

struct Driver {
    sessions: HashMap<NonZeroU32, Entry>,
    by_key: BTreeMap<PeerKey, NonZeroU32>,
    changes: mpsc::UnboundedSender<StateChange>,
    status: Snapshot,
    ports: Ports,
    next_discriminator: u32,
    /// Sessions that could not start, with the error logged (once per cause).
    open_errors: BTreeMap<PeerKey, String>,
}

async fn recv_on(
    socket: Option<&RegisteredReceiveSocket>,
    buf: &mut [u8],
) -> io::Result<super::socket::Envelope> {
    match socket {
        Some(socket) => socket.recv(buf).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        v4: RegisteredReceiveSocket,
        v6: Option<RegisteredReceiveSocket>,
    ) {
        let mut buf4 = [0u8; 512];
        let mut buf6 = [0u8; 512];
        loop {
            let next = self.next_deadline();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Sync(wanted)) => self.sync(wanted),
                    Some(Command::Shutdown(done)) => {
                        self.admin_down_all();
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.admin_down_all();
                        return;
                    }
                },
                received = v4.recv(&mut buf4) => self.on_datagram(received, &buf4),
                received = recv_on(v6.as_ref(), &mut buf6) => self.on_datagram(received, &buf6),
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now).into()),
                    if next.is_some() => self.fire_timers(Instant::now()),
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.sessions
            .values()
            .flat_map(|entry| [entry.transmit_at, entry.detect_at])
            .flatten()
            .min()
    }

    fn fire_timers(&mut self, now: Instant) {
        let due: Vec<(NonZeroU32, bool, bool)> = self
            .sessions
            .iter()
            .map(|(discr, entry)| {
                let transmit = entry.transmit_at.is_some_and(|at| at <= now);
                let detect = entry.detect_at.is_some_and(|at| at <= now);
                (*discr, transmit, detect)
            })
            .filter(|(_, transmit, detect)| *transmit || *detect)
            .collect();
        for (discr, transmit, detect) in due {
            // Detection first: a session that expires does not send its periodic packet with
            // the old state.
            if detect {
                self.handle(discr, Event::DetectionTimeExpired);
            }
            if transmit {
                self.handle(discr, Event::TransmitTimerExpired);
            }
        }
    }

    fn on_datagram(&mut self, received: io::Result<super::socket::Envelope>, buf: &[u8]) {
        let envelope = match received {
            Ok(envelope) => envelope,
            Err(err) => {
                tracing::debug!("BFD receive: {err}");
                return;
            }
        };
        if envelope.ttl != Some(ONE_HOP_TTL) {
            // RFC 5881 5: a single-hop packet arrives with 255, or it came from further away.
            tracing::debug!(source = %envelope.source, ttl = ?envelope.ttl, "BFD packet discarded: TTL not 255");
            return;
        }
        let packet = match ControlPacket::decode(&buf[..envelope.len.min(buf.len())]) {
            Ok(packet) => packet,
            Err(why) => {
                tracing::debug!(source = %envelope.source, "BFD packet discarded: {why}");
                return;
            }
        };
        let Some(discr) = self.demultiplex(&packet, &envelope) else {
            tracing::debug!(source = %envelope.source, "BFD packet for no session of ours");
            return;
        };
        self.handle(discr, Event::ControlPacketReceived(packet));
    }

    /// Your Discriminator when the peer knows it (its source must still be the session's
    /// peer), else the source address and interface (RFC 5881 3).
    fn demultiplex(
        &self,
        packet: &ControlPacket,
        envelope: &super::socket::Envelope,
    ) -> Option<NonZeroU32> {
        let matches = |entry: &Entry| {
            entry.key.address == envelope.source
                && (entry.ifindex == 0 || entry.ifindex == envelope.ifindex)
        };
        match NonZeroU32::new(packet.your_discriminator) {
            Some(discr) => self
                .sessions
                .get(&discr)
                .filter(|entry| matches(entry))
                .map(|_| discr),
            None => self
                .sessions
                .iter()
                .find(|(_, entry)| matches(entry))
                .map(|(discr, _)| *discr),
        }
    }

    fn handle(&mut self, discr: NonZeroU32, event: Event) {
        let Some(entry) = self.sessions.get_mut(&discr) else {
            return;
        };
        let outputs = entry.session.handle(event);
        self.carry_out(discr, outputs);
    }

    fn carry_out(&mut self, discr: NonZeroU32, outputs: Vec<Output>) {
        let Some(entry) = self.sessions.get_mut(&discr) else {
            return;
        };
        let now = Instant::now();
        let mut changes = Vec::new();
        for output in outputs {
            match output {
                Output::Send(packet) => entry.send(&packet),
                Output::ArmTransmitTimer(after) => entry.transmit_at = Some(now + after),
                Output::StopTransmitTimer => entry.transmit_at = None,
                Output::ArmDetectionTimer(after) => entry.detect_at = Some(now + after),
                Output::StopDetectionTimer => entry.detect_at = None,
                Output::StateChanged {
                    from,
                    to,
                    diag,
                    path_failed,
                } => {
                    if to == State::Up {
                        entry.up_since = Some(now);
                    } else if from == State::Up {
                        entry.up_since = None;
                        entry.last_down = Some((now, diag));
                    }
                    if path_failed {
                        tracing::warn!(peer = %entry.key, %diag, "BFD session down");
                    } else {
                        tracing::info!(peer = %entry.key, %from, %to, %diag, "BFD session state");
                    }
                    changes.push(StateChange {
                        key: entry.key.clone(),
                        from,
                        to,
                        diag,
                        path_failed,
                    });
                }
            }
        }
        let status = entry.status(discr);
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(entry.key.clone(), status);
        // After the snapshot: a consumer that asks sees the state it was told of.
        for change in changes {
            let _ = self.changes.send(change);
        }
    }

    fn sync(&mut self, wanted: Vec<SessionSpec>) {
        let wanted: BTreeMap<PeerKey, SessionConfig> = wanted
            .into_iter()
            .map(|spec| (spec.key, spec.config))
            .collect();
        let gone: Vec<PeerKey> = self
            .by_key
            .keys()
            .filter(|key| !wanted.contains_key(*key))
            .cloned()
            .collect();
        for key in gone {
            self.remove(&key);
        }
        self.open_errors.retain(|key, _| wanted.contains_key(key));
        for (key, config) in wanted {
            match self.by_key.get(&key) {
                Some(discr) => {
                    let discr = *discr;
                    if self.sessions[&discr].config != config {
                        tracing::info!(peer = %key, ?config, "BFD parameters changed");
                        self.sessions.get_mut(&discr).expect("indexed").config = config;
                        self.handle(discr, Event::ParametersChanged(config));
                    }
                }
                None => self.add(key, config),
            }
        }
    }

    fn add(&mut self, key: PeerKey, config: SessionConfig) {
        let opened = resolve_ifindex(&key).and_then(|ifindex| {
            let socket = SendSocket::open(
                key.address,
                ifindex,
                key.interface.as_deref(),
                self.ports.peer,
            )?;
            Ok((ifindex, socket))
        });
        let (ifindex, socket) = match opened {
            Ok(opened) => opened,
            Err(err) => {
                let error = err.to_string();
                if self.open_errors.get(&key) != Some(&error) {
                    tracing::error!(peer = %key, "BFD session not started: {error}");
                    self.open_errors.insert(key, error);
                }
                return;
            }
        };
        self.open_errors.remove(&key);
        let discr = self.new_discriminator();
        let mut session = Session::new(config, discr, rand::random());
        let outputs = session.start();
        tracing::info!(peer = %key, discriminator = discr, source_port = socket.source_port, "BFD session started");
        self.by_key.insert(key.clone(), discr);
        self.sessions.insert(
            discr,
            Entry {
                key,
                config,
                session,
                socket,
                ifindex,
                transmit_at: None,
                detect_at: None,
                up_since: None,
                last_down: None,
                send_error: None,
            },
        );
        self.carry_out(discr, outputs);
    }

    /// Tells the peer we go AdminDown, so that it does not take the end of the session for a
    /// failure of the path (RFC 5880 6.8.16), then forgets it.
    fn remove(&mut self, key: &PeerKey) {
        let Some(discr) = self.by_key.remove(key) else {
            return;
        };
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        if let Some(mut entry) = self.sessions.remove(&discr) {
            for output in entry.session.handle(Event::AdminDown) {
                if let Output::Send(packet) = output {
                    entry.send(&packet);
                }
            }
            tracing::info!(peer = %key, "BFD session removed");
        }
    }

    fn admin_down_all(&mut self) {
        let keys: Vec<PeerKey> = self.by_key.keys().cloned().collect();
        for key in keys {
            self.remove(&key);
        }
    }

    fn new_discriminator(&mut self) -> NonZeroU32 {
        loop {
            let candidate = self.next_discriminator;
            self.next_discriminator = self.next_discriminator.wrapping_add(1);
            if let Some(discr) = NonZeroU32::new(candidate)
                && !self.sessions.contains_key(&discr)
            {
                return discr;
            }
        }
    }
}

fn resolve_ifindex(key: &PeerKey) -> io::Result<u32> {
    match &key.interface {
        None => Ok(0),
        Some(name) => crate::netlink::ifindex_by_name(name)
            .map_err(|err| io::Error::new(io::ErrorKind::NotFound, format!("{err:#}"))),
    }
}

impl Entry {
    fn send(&mut self, packet: &ControlPacket) {
        match self.socket.send(&packet.encode()) {
            Ok(()) => {
                if self.send_error.take().is_some() {
                    tracing::info!(peer = %self.key, "BFD sending again");
                }
            }
            Err(err) => {
                if self.send_error != Some(err.kind()) {
                    tracing::warn!(peer = %self.key, "BFD send: {err}");
                    self.send_error = Some(err.kind());
                }
            }
        }
    }

    fn status(&self, discr: NonZeroU32) -> SessionStatus {
        let session = &self.session;
        let millis = |d: Duration| d.as_secs_f64() * 1000.0;
        SessionStatus {
            peer: self.key.address,
            interface: self.key.interface.clone(),
            state: session.state().to_string(),
            remote_state: session.remote_state().to_string(),
            local_discriminator: discr.get(),
            remote_discriminator: session.remote_discriminator(),
            desired_min_tx_ms: millis(self.config.desired_min_tx),
            required_min_rx_ms: millis(self.config.required_min_rx),
            detect_multiplier: self.config.detect_mult,
            transmit_interval_ms: millis(session.transmit_interval()),
            detection_time_ms: millis(session.detection_time()),
            source_port: self.socket.source_port,
            uptime_seconds: None,
            last_down: self.last_down.map(|(_, diag)| LastDown {
                seconds_ago: 0,
                diagnostic: diag.to_string(),
            }),
            up_at: self.up_since,
            down_at: self.last_down.map(|(at, _)| at),
        }
    }
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
