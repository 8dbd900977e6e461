//! The collision procedure event by event: both sides active, OPENs arriving in either order,
//! either identifier higher, Established connections, restarting peers, one-shot peerings.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;
use crate::bgp::fsm::{
    BGP_VERSION as VERSION, Capabilities, OpenInfo, RemoteAs, Timer, error_code,
};
use crate::bgp::packet::types::{Afi, Safi};

const LOCAL_AS: u32 = 65001;
const PEER_AS: u32 = 65002;
const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const HIGHER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);
const LOWER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn config() -> SessionConfig {
    SessionConfig::new(LOCAL_AS, RemoteAs::Exact(PEER_AS), LOCAL_ID)
}

fn open_from(router_id: Ipv4Addr) -> Event {
    Event::BgpOpen(OpenInfo {
        version: VERSION,
        my_as: PEER_AS,
        hold_time: 90,
        router_id,
        capabilities: Capabilities {
            multiprotocol: [(Afi::Ipv4, Safi::Unicast)].into(),
            route_refresh: true,
            four_octet_as: Some(PEER_AS),
            ..Capabilities::default()
        },
    })
}

fn collision_cease() -> Action {
    Action::SendNotification(NotificationInfo::new(error_code::CEASE, 7, Vec::new()))
}

fn on(out: &[(Conn, Action)], conn: Conn) -> Vec<Action> {
    out.iter()
        .filter(|(c, _)| *c == conn)
        .map(|(_, action)| action.clone())
        .collect()
}

fn downs(out: &[(Conn, Action)]) -> Vec<Conn> {
    out.iter()
        .filter(|(_, action)| matches!(action, Action::Down { .. }))
        .map(|(conn, _)| *conn)
        .collect()
}

fn state(peering: &Peering, conn: Conn) -> Option<State> {
    peering.session(conn).map(Session::state)
}

/// Both sides active: our connection is up (primary in OpenSent) and the peer's arrives.
fn both_connected() -> Peering {
    let mut peering = Peering::new(config(), Restart::Always).unwrap();
    let out = peering.handle(Conn::Primary, Event::ManualStart);
    assert!(on(&out, Conn::Primary).contains(&Action::Connect));
    peering.handle(Conn::Primary, Event::TcpCrAcked);
    assert_eq!(state(&peering, Conn::Primary), Some(State::OpenSent));
    assert_eq!(
        peering.incoming(),
        Incoming::Accept {
            conn: Conn::Second,
            probe: None
        }
    );
    let out = peering.handle(Conn::Second, Event::TcpConnectionConfirmed);
    assert!(matches!(
        on(&out, Conn::Second)[..],
        [Action::SendOpen(_), ..]
    ));
    assert_eq!(state(&peering, Conn::Second), Some(State::OpenSent));
    assert_eq!(peering.state(), State::OpenSent);
    peering
}

fn establish(peering: &mut Peering, conn: Conn) {
    let out = peering.handle(conn, Event::KeepAliveMsg);
    assert!(matches!(
        on(&out, conn).last(),
        Some(Action::Established(_))
    ));
    assert_eq!(peering.established(), Some(conn));
    assert_eq!(peering.state(), State::Established);
}

#[test]
fn higher_peer_identifier_keeps_the_connection_it_initiated() {
    let mut peering = both_connected();
    // The peer's OPEN on its own connection first: it wins, ours is dumped with Cease / 7.
    let out = peering.handle(Conn::Second, open_from(HIGHER_ID));
    assert_eq!(
        on(&out, Conn::Primary),
        vec![
            collision_cease(),
            Action::StopTimer(Timer::Hold),
            Action::Disconnect
        ]
    );
    assert_eq!(downs(&out), vec![], "a collision loser is no session loss");
    assert_eq!(state(&peering, Conn::Primary), Some(State::Idle));
    assert_eq!(state(&peering, Conn::Second), Some(State::OpenConfirm));
    // The primary stays down while the second lives: no restart, no connection refused.
    assert!(!out.iter().any(|(_, a)| matches!(a, Action::Connect)));
    assert_eq!(
        peering.incoming(),
        Incoming::Refuse {
            reason: "two connections already",
            probe: None
        }
    );
    establish(&mut peering, Conn::Second);
    // A third connection while the second is Established: refused, the second probed.
    assert_eq!(
        peering.incoming(),
        Incoming::Refuse {
            reason: "two connections already",
            probe: Some(Conn::Second)
        }
    );
}

#[test]
fn higher_local_identifier_keeps_our_connection() {
    let mut peering = both_connected();
    let out = peering.handle(Conn::Primary, open_from(LOWER_ID));
    assert_eq!(
        on(&out, Conn::Second),
        vec![
            collision_cease(),
            Action::StopTimer(Timer::Hold),
            Action::Disconnect
        ]
    );
    assert_eq!(downs(&out), vec![]);
    assert!(!peering.has_second(), "the loser is disposed of");
    establish(&mut peering, Conn::Primary);
}

#[test]
fn the_open_on_the_losing_connection_first_dumps_it() {
    // Higher peer identifier, but its OPEN arrives on our connection first.
    let mut peering = both_connected();
    let out = peering.handle(Conn::Primary, open_from(HIGHER_ID));
    assert!(on(&out, Conn::Primary).contains(&collision_cease()));
    assert_eq!(state(&peering, Conn::Primary), Some(State::Idle));
    assert_eq!(state(&peering, Conn::Second), Some(State::OpenSent));
    peering.handle(Conn::Second, open_from(HIGHER_ID));
    establish(&mut peering, Conn::Second);

    // Lower peer identifier, its OPEN on its connection first: that one is dumped.
    let mut peering = both_connected();
    let out = peering.handle(Conn::Second, open_from(LOWER_ID));
    assert!(on(&out, Conn::Second).contains(&collision_cease()));
    assert!(!peering.has_second());
    assert_eq!(state(&peering, Conn::Primary), Some(State::OpenSent));
    peering.handle(Conn::Primary, open_from(LOWER_ID));
    establish(&mut peering, Conn::Primary);
}

#[test]
fn both_opens_confirmed_resolves_on_the_second() {
    // Equal identifiers between ASes: the larger AS (the peer's) wins.
    let mut peering = both_connected();
    peering.handle(Conn::Primary, open_from(LOCAL_ID));
    assert_eq!(state(&peering, Conn::Primary), Some(State::Idle));
    peering.handle(Conn::Second, open_from(LOCAL_ID));
    establish(&mut peering, Conn::Second);
}

#[test]
fn winner_down_restarts_the_primary_damped() {
    let mut peering = both_connected();
    peering.handle(Conn::Second, open_from(HIGHER_ID));
    establish(&mut peering, Conn::Second);
    let out = peering.handle(Conn::Second, Event::TcpConnectionFails);
    assert_eq!(downs(&out), vec![Conn::Second], "routes of the session go");
    assert!(!peering.has_second());
    // The primary lost a collision (one failure): its restart waits IdleHold.
    assert_eq!(
        on(&out, Conn::Primary),
        vec![Action::StartTimer(Timer::IdleHold, Duration::from_secs(5))]
    );
    let out = peering.handle(Conn::Primary, Event::IdleHoldTimerExpires);
    assert!(on(&out, Conn::Primary).contains(&Action::Connect));
    assert_eq!(peering.state(), State::Connect);
}

fn established_peering() -> Peering {
    let mut peering = Peering::new(config(), Restart::Always).unwrap();
    peering.handle(Conn::Primary, Event::ManualStart);
    peering.handle(Conn::Primary, Event::TcpCrAcked);
    peering.handle(Conn::Primary, open_from(HIGHER_ID));
    establish(&mut peering, Conn::Primary);
    peering
}

#[test]
fn established_keeps_its_connection_and_probes() {
    let mut peering = established_peering();
    // The peer connects again (its higher identifier does not matter in Established).
    assert_eq!(
        peering.incoming(),
        Incoming::Refuse {
            reason: "Established (RFC 4271 6.8 keeps that connection)",
            probe: Some(Conn::Primary)
        }
    );
    assert!(!peering.has_second());
    assert_eq!(peering.established(), Some(Conn::Primary));
}

#[test]
fn restarted_peer_gets_in_once_the_probe_kills_the_old_connection() {
    let mut peering = established_peering();
    assert!(matches!(
        peering.incoming(),
        Incoming::Refuse {
            probe: Some(Conn::Primary),
            ..
        }
    ));
    // The probe KEEPALIVE met a reset: the old session is gone, its routes with it.
    let out = peering.handle(Conn::Primary, Event::TcpConnectionFails);
    assert_eq!(downs(&out), vec![Conn::Primary]);
    assert_eq!(state(&peering, Conn::Primary), Some(State::Idle));
    // One failure: the peer's next connection is let in without waiting for IdleHold.
    assert_eq!(
        peering.incoming(),
        Incoming::Accept {
            conn: Conn::Primary,
            probe: None
        }
    );
    let out = peering.handle(Conn::Primary, Event::TcpConnectionConfirmed);
    assert!(matches!(
        on(&out, Conn::Primary)[..],
        [
            Action::StopTimer(Timer::ConnectRetry),
            Action::SendOpen(_),
            ..
        ]
    ));
    peering.handle(Conn::Primary, open_from(HIGHER_ID));
    establish(&mut peering, Conn::Primary);
    // A stale IdleHold expiry from the driver is ignored.
    assert_eq!(
        peering.handle(Conn::Primary, Event::IdleHoldTimerExpires),
        vec![]
    );
}

#[test]
fn idle_refuses_after_repeated_failures() {
    let mut peering = Peering::new(config(), Restart::Always).unwrap();
    peering.handle(Conn::Primary, Event::ManualStart);
    for failures in 1..=2 {
        peering.handle(Conn::Primary, Event::TcpCrAcked);
        peering.handle(Conn::Primary, Event::HoldTimerExpires);
        assert_eq!(state(&peering, Conn::Primary), Some(State::Idle));
        if failures == 2 {
            break;
        }
        peering.handle(Conn::Primary, Event::IdleHoldTimerExpires);
    }
    assert_eq!(
        peering.incoming(),
        Incoming::Refuse {
            reason: "Idle (restart pending)",
            probe: None
        }
    );
}

#[test]
fn incoming_by_primary_state() {
    let mut peering = Peering::new(config(), Restart::Always).unwrap();
    assert_eq!(
        peering.incoming(),
        Incoming::Refuse {
            reason: "Idle (restart pending)",
            probe: None
        }
    );
    peering.handle(Conn::Primary, Event::ManualStart);
    assert_eq!(
        peering.incoming(),
        Incoming::Accept {
            conn: Conn::Primary,
            probe: None
        }
    );
    peering.handle(Conn::Primary, Event::TcpConnectionConfirmed);
    assert!(matches!(
        peering.incoming(),
        Incoming::Accept {
            conn: Conn::Second,
            ..
        }
    ));
    assert_eq!(
        peering.incoming(),
        Incoming::Refuse {
            reason: "two connections already",
            probe: None
        }
    );
}

#[test]
fn primary_falling_back_waits_for_the_second() {
    let mut peering = both_connected();
    // Our connection drops in OpenSent (to Active): the primary is held in Idle.
    let out = peering.handle(Conn::Primary, Event::TcpConnectionFails);
    assert_eq!(state(&peering, Conn::Primary), Some(State::Idle));
    assert_eq!(downs(&out), vec![]);
    assert!(!out.iter().any(|(_, a)| matches!(a, Action::Connect)));
    peering.handle(Conn::Second, open_from(LOWER_ID));
    establish(&mut peering, Conn::Second);
}

#[test]
fn second_closing_before_open_restarts_nothing_while_the_primary_runs() {
    let mut peering = both_connected();
    let out = peering.handle(Conn::Second, Event::TcpConnectionFails);
    assert!(!peering.has_second());
    assert_eq!(downs(&out), vec![]);
    assert_eq!(on(&out, Conn::Primary), vec![]);
    assert_eq!(state(&peering, Conn::Primary), Some(State::OpenSent));
    // Events of the disposed connection are stale.
    assert_eq!(
        peering.handle(Conn::Second, Event::HoldTimerExpires),
        vec![]
    );
}

#[test]
fn one_shot_peering_ends_with_its_session() {
    let passive = SessionConfig {
        passive: true,
        ..config()
    };
    let mut peering = Peering::new(passive.clone(), Restart::Never).unwrap();
    peering.handle(Conn::Primary, Event::ManualStart);
    assert!(!peering.finished(), "waiting for its connection");
    assert!(matches!(
        peering.incoming(),
        Incoming::Accept {
            conn: Conn::Primary,
            ..
        }
    ));
    peering.handle(Conn::Primary, Event::TcpConnectionConfirmed);
    peering.handle(Conn::Primary, open_from(HIGHER_ID));
    establish(&mut peering, Conn::Primary);
    let out = peering.handle(Conn::Primary, Event::HoldTimerExpires);
    assert_eq!(downs(&out), vec![Conn::Primary]);
    assert!(!out.iter().any(|(_, a)| matches!(a, Action::StartTimer(..))));
    assert!(peering.finished());
    assert!(matches!(peering.incoming(), Incoming::Refuse { .. }));

    // Its connection closing before OPEN (OpenSent to Active) ends it too.
    let mut peering = Peering::new(passive, Restart::Never).unwrap();
    peering.handle(Conn::Primary, Event::ManualStart);
    peering.incoming();
    peering.handle(Conn::Primary, Event::TcpConnectionConfirmed);
    peering.handle(Conn::Primary, Event::TcpConnectionFails);
    assert!(peering.finished());
}

#[test]
fn stop_ends_both_sessions() {
    let mut peering = both_connected();
    let cease = NotificationInfo::cease(CeaseSubcode::AdministrativeShutdown, None);
    let out = peering.stop(cease.clone());
    assert!(on(&out, Conn::Second).contains(&Action::SendNotification(cease.clone())));
    assert!(on(&out, Conn::Primary).contains(&Action::SendNotification(cease)));
    assert_eq!(downs(&out), vec![Conn::Primary], "the peer is down once");
    assert!(peering.finished());
    assert!(
        !out.iter()
            .any(|(_, a)| matches!(a, Action::StartTimer(..) | Action::Connect))
    );
}

fn max_prefix_cease() -> NotificationInfo {
    NotificationInfo::cease_max_prefixes(Afi::Ipv4, Safi::Unicast, 10)
}

fn held_down_refusal() -> Incoming {
    Incoming::Refuse {
        reason: "held down",
        probe: None,
    }
}

#[test]
fn hold_down_refuses_the_peer_until_restart_after() {
    let mut peering = established_peering();
    let after = Duration::from_secs(30);
    let out = peering.hold_down(max_prefix_cease(), Some(after));
    assert!(on(&out, Conn::Primary).contains(&Action::SendNotification(max_prefix_cease())));
    assert!(on(&out, Conn::Primary).contains(&Action::StartTimer(Timer::IdleHold, after)));
    assert_eq!(downs(&out), vec![Conn::Primary]);
    assert!(!on(&out, Conn::Primary).contains(&Action::Connect));
    assert_eq!(peering.state(), State::Idle);
    // After one failure an Idle peering lets the peer in; a held one does not.
    assert_eq!(peering.incoming(), held_down_refusal());
    assert_eq!(peering.handle(Conn::Primary, Event::AutomaticStart), vec![]);
    let out = peering.handle(Conn::Primary, Event::IdleHoldTimerExpires);
    assert!(on(&out, Conn::Primary).contains(&Action::Connect));
    assert!(!peering.finished());
}

#[test]
fn hold_down_without_restart_after_lasts_until_clear() {
    let mut peering = established_peering();
    let out = peering.hold_down(max_prefix_cease(), None);
    assert!(
        !out.iter()
            .any(|(_, a)| matches!(a, Action::StartTimer(Timer::IdleHold, _) | Action::Connect))
    );
    assert_eq!(peering.incoming(), held_down_refusal());
    let reset = NotificationInfo::cease(CeaseSubcode::AdministrativeReset, None);
    let out = peering.clear(reset.clone());
    // Nothing to tell the peer in Idle; the session starts at once.
    assert!(!on(&out, Conn::Primary).contains(&Action::SendNotification(reset)));
    assert!(on(&out, Conn::Primary).contains(&Action::Connect));
    assert_eq!(
        peering.incoming(),
        Incoming::Accept {
            conn: Conn::Primary,
            probe: None
        }
    );
}

#[test]
fn hold_down_closes_an_established_second_connection() {
    let mut peering = both_connected();
    // The peer's connection wins the collision and is the Established one.
    peering.handle(Conn::Second, open_from(HIGHER_ID));
    establish(&mut peering, Conn::Second);
    let out = peering.hold_down(max_prefix_cease(), None);
    assert!(on(&out, Conn::Second).contains(&Action::SendNotification(max_prefix_cease())));
    assert_eq!(downs(&out), vec![Conn::Second]);
    assert!(!on(&out, Conn::Primary).contains(&Action::Connect));
    assert!(!peering.has_second());
    assert_eq!(peering.state(), State::Idle);
    assert_eq!(peering.incoming(), held_down_refusal());
}

#[test]
fn clear_resets_an_established_session_and_restarts_it() {
    let mut peering = established_peering();
    let reset = NotificationInfo::cease(CeaseSubcode::AdministrativeReset, None);
    let out = peering.clear(reset.clone());
    assert!(on(&out, Conn::Primary).contains(&Action::SendNotification(reset)));
    assert_eq!(downs(&out), vec![Conn::Primary]);
    assert!(on(&out, Conn::Primary).contains(&Action::Connect));
    assert_eq!(peering.state(), State::Connect);
}

#[test]
fn clear_ends_a_one_shot_peering() {
    let mut peering = Peering::new(config(), Restart::Never).unwrap();
    peering.handle(Conn::Primary, Event::ManualStart);
    peering.handle(Conn::Primary, Event::TcpCrAcked);
    peering.handle(Conn::Primary, open_from(HIGHER_ID));
    establish(&mut peering, Conn::Primary);
    let out = peering.clear(NotificationInfo::cease(
        CeaseSubcode::AdministrativeReset,
        None,
    ));
    assert!(!on(&out, Conn::Primary).contains(&Action::Connect));
    assert!(peering.finished());
}
