//! Session hardening in the FSM: RFC 9687's send hold timer, and hold time 0 refused unless
//! configured.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;
use crate::bgp::packet::types::{Afi, Safi};

const LOCAL_AS: u32 = 65001;
const PEER_AS: u32 = 65002;

fn config() -> SessionConfig {
    SessionConfig::new(
        LOCAL_AS,
        RemoteAs::Exact(PEER_AS),
        Ipv4Addr::new(192, 0, 2, 1),
    )
}

fn peer_open(hold_time: u16) -> OpenInfo {
    OpenInfo {
        version: 4,
        my_as: PEER_AS,
        hold_time,
        router_id: Ipv4Addr::new(192, 0, 2, 2),
        capabilities: Capabilities {
            multiprotocol: [(Afi::Ipv4, Safi::Unicast)].into(),
            route_refresh: true,
            four_octet_as: Some(PEER_AS),
            extended_next_hop: BTreeSet::new(),
            graceful_restart: None,
        },
    }
}

/// A session of `config` that has sent its OPEN on a connection we initiated.
fn open_sent(config: SessionConfig) -> Session {
    let mut session = Session::new(config).unwrap();
    session.handle(Event::ManualStart);
    session.handle(Event::TcpCrAcked);
    assert_eq!(session.state(), State::OpenSent);
    session
}

fn established() -> Session {
    let mut session = open_sent(config());
    session.handle(Event::BgpOpen(peer_open(90)));
    session.handle(Event::KeepAliveMsg);
    assert_eq!(session.state(), State::Established);
    session
}

fn send_hold_expired() -> NotificationInfo {
    NotificationInfo::new(8, 0, Vec::new())
}

#[test]
fn send_hold_expiry_ends_an_established_session_with_code_8() {
    let mut session = established();
    let actions = session.handle(Event::SendHoldTimerExpires);
    assert_eq!(
        actions,
        [
            Action::SendNotification(send_hold_expired()),
            Action::StopTimer(Timer::Hold),
            Action::StopTimer(Timer::Keepalive),
            Action::Disconnect,
            Action::Down {
                reason: DownReason::SendHoldTimerExpired
            },
        ]
    );
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.connect_retry_counter(), 1);
    assert_eq!(
        send_hold_expired().to_string(),
        NotificationInfo::send_hold_timer_expired().to_string()
    );
    assert!(
        send_hold_expired()
            .to_string()
            .contains("Send Hold Timer Expired")
    );
}

#[test]
fn send_hold_expiry_before_established_closes_after_our_open() {
    for opened in [false, true] {
        let mut session = open_sent(config());
        if opened {
            session.handle(Event::BgpOpen(peer_open(90)));
            assert_eq!(session.state(), State::OpenConfirm);
        }
        let actions = session.handle(Event::SendHoldTimerExpires);
        assert_eq!(
            actions.first(),
            Some(&Action::SendNotification(send_hold_expired()))
        );
        assert!(actions.contains(&Action::Disconnect));
        assert_eq!(session.state(), State::Idle);
    }
}

#[test]
fn send_hold_expiry_without_a_connection_is_ignored() {
    let mut idle = Session::new(config()).unwrap();
    assert_eq!(idle.handle(Event::SendHoldTimerExpires), []);
    let mut connect = Session::new(config()).unwrap();
    connect.handle(Event::ManualStart);
    assert_eq!(connect.handle(Event::SendHoldTimerExpires), []);
    assert_eq!(connect.state(), State::Connect);
}

#[test]
fn send_hold_time_is_twice_the_hold_time() {
    assert_eq!(send_hold_time(9), Duration::from_secs(18));
    assert_eq!(send_hold_time(90), Duration::from_secs(180));
    // Before the OPEN exchange (hold time 240 s, RFC 4271 8.2.2).
    assert_eq!(send_hold_time(240), Duration::from_secs(480));
    // No hold timer: RFC 9687's 8 minutes.
    assert_eq!(send_hold_time(0), Duration::from_secs(480));
}

#[test]
fn hold_time_zero_is_refused_unless_configured() {
    let unacceptable = NotificationInfo::open_error(open_error::UNACCEPTABLE_HOLD_TIME, Vec::new());
    let mut session = open_sent(config());
    let actions = session.handle(Event::BgpOpen(peer_open(0)));
    assert_eq!(
        actions.first(),
        Some(&Action::SendNotification(unacceptable))
    );
    assert_eq!(session.state(), State::Idle);

    let zero = SessionConfig {
        hold_time: 0,
        ..config()
    };
    let mut session = open_sent(zero);
    session.handle(Event::BgpOpen(peer_open(0)));
    assert_eq!(session.state(), State::OpenConfirm);
    // Ours 0, theirs 90: 0 is what we asked for.
    let mut session = open_sent(SessionConfig {
        hold_time: 0,
        ..config()
    });
    session.handle(Event::BgpOpen(peer_open(90)));
    assert_eq!(session.state(), State::OpenConfirm);
}
