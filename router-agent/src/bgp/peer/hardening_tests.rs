//! A session task under load, against a scripted peer over loopback TCP: a fast peer's
//! UPDATEs are handed on at most `MAX_UPDATES_IN_FLIGHT` at a time (back-pressure), and a
//! peer that stops reading is dropped after the send hold time (RFC 9687).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket};

use super::tests::establish;
use super::*;
use crate::bgp::fsm::{DownReason, RemoteAs};

fn config() -> SessionConfig {
    SessionConfig::new(65101, RemoteAs::Exact(65001), Ipv4Addr::new(10, 0, 0, 1))
}

/// `count` distinct /32s.
fn prefixes(count: u32) -> Vec<Ipv4Net> {
    (0..count)
        .map(|i| Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + i), 32).unwrap())
        .collect()
}

/// The UPDATE events queued on `events` now (kept, so their credits stay out).
fn queued_updates(events: &mut mpsc::UnboundedReceiver<PeerEvent>) -> Vec<PeerEvent> {
    let mut updates = Vec::new();
    while let Ok(event) = events.try_recv() {
        if matches!(
            event,
            PeerEvent::Session {
                event: SessionEvent::Update { .. },
                ..
            }
        ) {
            updates.push(event);
        }
    }
    updates
}

#[tokio::test]
async fn a_fast_peer_has_at_most_the_bound_of_updates_in_flight() {
    const SENT: usize = 5_000;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_handle, mut stream, mut events) = establish(config(), listener, None, None, 90).await;
    // SENT small UPDATEs (withdrawals: no attributes needed), written by another task.
    let messages: Vec<_> = prefixes(SENT as u32)
        .into_iter()
        .flat_map(|prefix| {
            let update = Update {
                withdrawn: vec![prefix],
                ..Update::default()
            };
            encode_updates(&update, &Codec::default())
        })
        .collect();
    assert_eq!(messages.len(), SENT);
    let writer = tokio::spawn(async move {
        for message in messages {
            stream.write_all(&message).await.unwrap();
        }
        stream
    });
    // The speaker applies nothing for a while: the session stops at the bound.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = queued_updates(&mut events);
    assert_eq!(held.len(), MAX_UPDATES_IN_FLIGHT);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(queued_updates(&mut events).is_empty(), "over the bound");
    // Applied (dropped): the rest follows, in bounded steps.
    drop(held);
    let mut received = MAX_UPDATES_IN_FLIGHT;
    while received < SENT {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("the rest of the UPDATEs")
            .expect("task alive");
        if matches!(
            event,
            PeerEvent::Session {
                event: SessionEvent::Update { .. },
                ..
            }
        ) {
            received += 1;
        }
    }
    let _stream = writer.await.unwrap();
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_dropped_after_the_send_hold_time() {
    // Small socket buffers at both ends, so that a few hundred kilobytes stall the writes.
    let peer_socket = TcpSocket::new_v4().unwrap();
    peer_socket.set_recv_buffer_size(4096).unwrap();
    peer_socket
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .unwrap();
    let listener = peer_socket.listen(1).unwrap();
    let ours = TcpSocket::new_v4().unwrap();
    ours.set_send_buffer_size(4096).unwrap();
    let connection = ours.connect(listener.local_addr().unwrap()).await.unwrap();
    let passive = SessionConfig {
        passive: true,
        hold_time: 3,
        ..config()
    };
    let (handle, _stream, mut events) =
        establish(passive, listener, Some(connection), None, 3).await;
    // 50,000 withdrawals (about 250 kB) to a peer that reads nothing more.
    let update = Update {
        withdrawn: prefixes(50_000),
        ..Update::default()
    };
    let sent = Instant::now();
    handle
        .commands
        .send(PeerCommand::Send(vec![update]))
        .unwrap();
    let cause = loop {
        let event = tokio::time::timeout(Duration::from_secs(15), events.recv())
            .await
            .expect("the session down in time")
            .expect("task alive");
        if let PeerEvent::Session {
            event: SessionEvent::Down { cause, .. },
            ..
        } = event
        {
            break cause;
        }
    };
    let after = sent.elapsed();
    assert_eq!(cause, DownReason::SendHoldTimerExpired);
    // Twice the hold time of 3 s, from the last write that made progress.
    assert!(
        after >= Duration::from_secs(5) && after < Duration::from_secs(10),
        "{after:?}"
    );
}
