//! The driver over loopback: two drivers with each other, and one against a peer played by
//! the test (its packets, their TTL, its silence).

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

use super::*;
use crate::bfd::packet::Flags;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const FAST: SessionConfig = SessionConfig {
    desired_min_tx: Duration::from_millis(50),
    required_min_rx: Duration::from_millis(50),
    detect_mult: 3,
};

fn free_port() -> u16 {
    UdpSocket::bind((LOOPBACK, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spec(config: SessionConfig) -> Vec<SessionSpec> {
    spec_at(LOOPBACK, config)
}

fn spec_at(address: IpAddr, config: SessionConfig) -> Vec<SessionSpec> {
    vec![SessionSpec {
        key: PeerKey {
            address,
            interface: None,
        },
        config,
    }]
}

async fn next_change(changes: &mut mpsc::UnboundedReceiver<StateChange>) -> StateChange {
    tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("a state change within 5 s")
        .expect("driver alive")
}

async fn until_state(changes: &mut mpsc::UnboundedReceiver<StateChange>, to: State) -> StateChange {
    loop {
        let change = next_change(changes).await;
        if change.to == to {
            return change;
        }
    }
}

#[tokio::test]
async fn two_drivers_come_up_and_a_removed_session_is_admin_down_not_a_failure() {
    let (port_a, port_b) = (free_port(), free_port());
    let (tx_a, mut changes_a) = mpsc::unbounded_channel();
    let (tx_b, mut changes_b) = mpsc::unbounded_channel();
    let ports_a = Ports {
        receive: port_a,
        peer: port_b,
    };
    let ports_b = Ports {
        receive: port_b,
        peer: port_a,
    };
    let a = Bfd::spawn(ports_a, tx_a).unwrap();
    let b = Bfd::spawn(ports_b, tx_b).unwrap();
    a.sync(spec(FAST));
    b.sync(spec(FAST));
    until_state(&mut changes_a, State::Up).await;
    until_state(&mut changes_b, State::Up).await;
    // The Up poll to 50 ms completes within a few packets.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (sa, sb) = (&a.sessions()[0], &b.sessions()[0]);
    assert_eq!((sa.state.as_str(), sa.remote_state.as_str()), ("Up", "Up"));
    assert_eq!(sa.remote_discriminator, sb.local_discriminator);
    assert_eq!(sb.remote_discriminator, sa.local_discriminator);
    assert_eq!(sa.transmit_interval_ms, 50.0);
    assert_eq!(sa.detection_time_ms, 150.0);
    assert!(crate::bfd::socket::SOURCE_PORTS.contains(&sa.source_port));

    // Re-timed in place: the same session (discriminator), the new detection time.
    a.sync(spec(SessionConfig {
        required_min_rx: Duration::from_millis(100),
        ..FAST
    }));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let sa2 = &a.sessions()[0];
    assert_eq!(sa2.local_discriminator, sa.local_discriminator);
    assert_eq!((sa2.state.as_str(), sa2.detection_time_ms), ("Up", 300.0));

    // B removes its session: A hears AdminDown, goes Down, and it is not a failure.
    b.sync(Vec::new());
    let down = until_state(&mut changes_a, State::Down).await;
    assert_eq!(down.diag, Diagnostic::NeighborSignaledSessionDown);
    assert!(!down.path_failed, "{down:?}");
    assert!(b.sessions().is_empty());
    a.shutdown().await;
    b.shutdown().await;
}

/// A peer played by hand: sends with the TTL given, answers with the state given.
struct FakePeer {
    socket: UdpSocket,
    driver_port: u16,
}

impl FakePeer {
    fn send(&self, ttl: u32, state: State, your_discriminator: u32) {
        self.socket.set_ttl(ttl).unwrap();
        let packet = ControlPacket {
            diag: Diagnostic::NoDiagnostic,
            state,
            flags: Flags::default(),
            detect_mult: 3,
            my_discriminator: 4242,
            your_discriminator,
            desired_min_tx_us: 50_000,
            required_min_rx_us: 50_000,
            required_min_echo_rx_us: 0,
            auth: None,
        };
        self.socket
            .send_to(&packet.encode(), (LOOPBACK, self.driver_port))
            .unwrap();
    }

    /// The driver's next packet (skipping nothing).
    fn receive(&self) -> ControlPacket {
        let mut buf = [0u8; 128];
        let (len, _) = self.socket.recv_from(&mut buf).unwrap();
        ControlPacket::decode(&buf[..len]).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_below_255_is_ignored_and_silence_fails_the_path_after_the_detection_time() {
    let driver_port = free_port();
    let peer_socket = UdpSocket::bind((LOOPBACK, 0)).unwrap();
    peer_socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let peer = FakePeer {
        driver_port,
        socket: peer_socket,
    };
    let ports = Ports {
        receive: driver_port,
        peer: peer.socket.local_addr().unwrap().port(),
    };
    let (tx, mut changes) = mpsc::unbounded_channel();
    let bfd = Bfd::spawn(ports, tx).unwrap();
    bfd.sync(spec(FAST));
    let first = tokio::task::block_in_place(|| peer.receive());
    assert_eq!((first.state, first.your_discriminator), (State::Down, 0));
    let ours = first.my_discriminator;

    // RFC 5881 5: TTL 254 is from beyond the link; the session must not move.
    peer.send(254, State::Down, 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        changes.try_recv().is_err(),
        "a TTL 254 packet moved the session"
    );

    peer.send(255, State::Down, 0);
    assert_eq!(next_change(&mut changes).await.to, State::Init);
    peer.send(255, State::Up, ours);
    let up = next_change(&mut changes).await;
    assert_eq!((up.from, up.to), (State::Init, State::Up));
    // Demultiplexed by Your Discriminator from now on; keep it Up for a while.
    let mut silent_since = Instant::now();
    for _ in 0..10 {
        peer.send(255, State::Up, ours);
        silent_since = Instant::now();
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert_eq!(bfd.sessions()[0].state, "Up");
    let down = next_change(&mut changes).await;
    let detected = silent_since.elapsed();
    assert_eq!((down.from, down.to), (State::Up, State::Down));
    assert_eq!(down.diag, Diagnostic::ControlDetectionTimeExpired);
    assert!(down.path_failed);
    // Detection time: 3 x max(50 ms, 50 ms) after the last packet.
    assert!(
        detected >= Duration::from_millis(140) && detected < Duration::from_millis(400),
        "{detected:?}"
    );
    let status = &bfd.sessions()[0];
    assert_eq!(
        status.last_down.as_ref().unwrap().diagnostic,
        "control detection time expired"
    );
    bfd.shutdown().await;
}

#[tokio::test]
async fn two_drivers_come_up_over_ipv6() {
    let loopback = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
    let (port_a, port_b) = (free_port(), free_port());
    let (tx_a, mut changes_a) = mpsc::unbounded_channel();
    let (tx_b, mut changes_b) = mpsc::unbounded_channel();
    let a = Bfd::spawn(
        Ports {
            receive: port_a,
            peer: port_b,
        },
        tx_a,
    )
    .unwrap();
    let b = Bfd::spawn(
        Ports {
            receive: port_b,
            peer: port_a,
        },
        tx_b,
    )
    .unwrap();
    a.sync(spec_at(loopback, FAST));
    b.sync(spec_at(loopback, FAST));
    until_state(&mut changes_a, State::Up).await;
    until_state(&mut changes_b, State::Up).await;
    let status = &a.sessions()[0];
    assert_eq!((status.peer, status.state.as_str()), (loopback, "Up"));
    a.shutdown().await;
    b.shutdown().await;
}
