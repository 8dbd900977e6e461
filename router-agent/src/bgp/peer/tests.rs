//! A session task against a scripted peer over loopback TCP: how a planned restart closes
//! the session (graceful restart's restarting side) and how our hard stops are sent.

use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::*;
use crate::bgp::fsm::RemoteAs;
use crate::bgp::graceful_restart::{GracefulRestartCapability, GracefulRestartFamily};
use crate::bgp::packet::{Capability, Open};

fn capability(notification: bool) -> GracefulRestartCapability {
    GracefulRestartCapability {
        restarted: false,
        notification,
        restart_time: 120,
        families: vec![GracefulRestartFamily {
            afi: Afi::Ipv4,
            safi: Safi::Unicast,
            forwarding: true,
        }],
    }
}

/// The next whole message from the peer's side of the connection; None at EOF.
async fn read_message(stream: &mut TcpStream) -> Option<Message> {
    let mut header = [0u8; 19];
    stream.read_exact(&mut header).await.ok()?;
    let length = usize::from(u16::from_be_bytes([header[16], header[17]]));
    let mut frame = header.to_vec();
    frame.resize(length, 0);
    stream.read_exact(&mut frame[19..]).await.ok()?;
    Some(Message::decode(&frame, &Codec::default()).ok()?.message)
}

/// Runs a session with `ours` against a peer sending `theirs`, up to Established, then
/// sends `command` and returns the NOTIFICATION the peer received before the close (None:
/// closed without one).
async fn close_with(
    ours: Option<GracefulRestartCapability>,
    theirs: Option<GracefulRestartCapability>,
    command: PeerCommand,
) -> Option<NotificationInfo> {
    let mut config = SessionConfig::new(65101, RemoteAs::Exact(65001), Ipv4Addr::new(10, 0, 0, 1));
    config.capabilities.graceful_restart = ours;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (handle, mut stream, _events) = establish(config, listener, None, theirs, 90).await;
    handle.commands.send(command).unwrap();
    let mut notification = None;
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_secs(5), read_message(&mut stream)).await
    {
        if let Message::Notification(received) = message {
            notification = Some((&received).into());
        }
    }
    notification
}

/// A session task with `config` up to Established against a scripted peer: the task
/// connects to `listener` or, with `incoming`, is handed that connection (whose other end
/// `listener` accepts). The peer offers `theirs` and hold time `hold_time`. Returns the
/// task's handle, the peer's end and the task's events (Established consumed).
pub(super) async fn establish(
    config: SessionConfig,
    listener: TcpListener,
    incoming: Option<TcpStream>,
    theirs: Option<GracefulRestartCapability>,
    hold_time: u16,
) -> (PeerHandle, TcpStream, mpsc::UnboundedReceiver<PeerEvent>) {
    let address = listener.local_addr().unwrap();
    let (events, mut event_rx) = mpsc::unbounded_channel();
    let handle = spawn(
        PeerSpec {
            peer: PeerId(0),
            remote: incoming.is_none().then_some(address),
            config,
            security: Default::default(),
            restart: Restart::Never,
            incoming,
        },
        events,
    )
    .unwrap();
    let (mut stream, _) = listener.accept().await.unwrap();
    assert!(matches!(
        read_message(&mut stream).await,
        Some(Message::Open(_))
    ));
    let mut capabilities = vec![
        Capability::Multiprotocol {
            afi: Afi::Ipv4,
            safi: Safi::Unicast,
        },
        Capability::FourOctetAs(65001),
    ];
    capabilities.extend(theirs.map(Capability::GracefulRestart));
    let open = Message::Open(Open {
        version: 4,
        my_as: 65001,
        hold_time,
        router_id: Ipv4Addr::new(10, 0, 0, 2),
        capabilities,
    });
    stream
        .write_all(&open.encode(&Codec::default()))
        .await
        .unwrap();
    stream
        .write_all(&Message::Keepalive.encode(&Codec::default()))
        .await
        .unwrap();
    assert!(matches!(
        read_message(&mut stream).await,
        Some(Message::Keepalive)
    ));
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), event_rx.recv())
            .await
            .expect("Established in time")
            .expect("task alive");
        if let PeerEvent::Session {
            event: SessionEvent::Established { .. },
            ..
        } = event
        {
            break;
        }
    }
    (handle, stream, event_rx)
}

fn cease(subcode: CeaseSubcode, message: &str) -> NotificationInfo {
    NotificationInfo::cease(subcode, Some(message))
}

#[tokio::test]
async fn a_planned_restart_closes_the_graceful_restart_way() {
    let stop = || PeerCommand::GracefulStop("restart".to_owned());
    // N on both sides: Cease / Administrative Reset (RFC 8538 keeps GR).
    assert_eq!(
        close_with(Some(capability(true)), Some(capability(true)), stop()).await,
        Some(cease(CeaseSubcode::AdministrativeReset, "restart"))
    );
    // GR without N: a bare TCP close.
    assert_eq!(
        close_with(Some(capability(true)), Some(capability(false)), stop()).await,
        None
    );
    // No GR: the usual Cease.
    assert_eq!(
        close_with(Some(capability(true)), None, stop()).await,
        Some(cease(CeaseSubcode::AdministrativeShutdown, "restart"))
    );
}

#[tokio::test]
async fn our_hard_stops_are_hard_resets_with_n() {
    let stop = || PeerCommand::Stop(Some("bye".to_owned()));
    assert_eq!(
        close_with(Some(capability(true)), Some(capability(true)), stop()).await,
        Some(crate::bgp::graceful_restart::session::hard_reset(cease(
            CeaseSubcode::AdministrativeShutdown,
            "bye"
        )))
    );
    assert_eq!(
        close_with(Some(capability(true)), Some(capability(false)), stop()).await,
        Some(cease(CeaseSubcode::AdministrativeShutdown, "bye"))
    );
}
