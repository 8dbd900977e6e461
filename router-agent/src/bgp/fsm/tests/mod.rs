//! The FSM's tests: a state x event table for each state (every event, exact actions and next
//! state), scenarios (happy paths, failures, negotiation, collisions, damping), and an
//! exhaustive walk of short event sequences checking invariants. This module holds the
//! fixtures they share.

mod collision;
mod damping;
mod notifications;
mod open;
mod scenarios;
mod tables;
mod walk;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;
use crate::bgp::packet::types::{Afi, Safi};

const LOCAL_AS: u32 = 65001;
const PEER_AS: u32 = 65002;
const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const CONNECT_RETRY: Duration = Duration::from_secs(5);
const HOLD: Duration = Duration::from_secs(90);
const KEEPALIVE: Duration = Duration::from_secs(30);

/// No action.
const NOTHING: [Action; 0] = [];

const V4: (Afi, Safi) = (Afi::Ipv4, Safi::Unicast);
const V6: (Afi, Safi) = (Afi::Ipv6, Safi::Unicast);

fn config() -> SessionConfig {
    SessionConfig::new(LOCAL_AS, RemoteAs::Exact(PEER_AS), LOCAL_ID)
}

fn passive_config() -> SessionConfig {
    SessionConfig {
        passive: true,
        ..config()
    }
}

/// A valid OPEN from the peer of `config()`.
fn peer_open() -> OpenInfo {
    OpenInfo {
        version: 4,
        my_as: PEER_AS,
        hold_time: 90,
        router_id: PEER_ID,
        capabilities: Capabilities {
            multiprotocol: [V4].into(),
            route_refresh: true,
            four_octet_as: Some(PEER_AS),
            extended_next_hop: BTreeSet::new(),
            graceful_restart: None,
        },
    }
}

/// The OPEN a session with `config()` sends.
fn our_open() -> OpenInfo {
    OpenInfo {
        version: 4,
        my_as: LOCAL_AS,
        hold_time: 90,
        router_id: LOCAL_ID,
        capabilities: Capabilities {
            multiprotocol: [V4].into(),
            route_refresh: true,
            four_octet_as: Some(LOCAL_AS),
            extended_next_hop: BTreeSet::new(),
            graceful_restart: None,
        },
    }
}

/// What `config()` and `peer_open()` negotiate.
fn negotiated() -> Negotiated {
    Negotiated {
        peer_as: PEER_AS,
        peer_router_id: PEER_ID,
        hold_time: 90,
        keepalive: KEEPALIVE,
        four_octet_as: true,
        families: [V4].into(),
        route_refresh: true,
        extended_next_hop: BTreeSet::new(),
        graceful_restart: None,
    }
}

fn shutdown() -> NotificationInfo {
    NotificationInfo::cease(CeaseSubcode::AdministrativeShutdown, Some("maintenance"))
}

fn max_prefixes() -> NotificationInfo {
    NotificationInfo::cease_max_prefixes(Afi::Ipv4, Safi::Unicast, 1000)
}

/// Bad Message Length, 18.
fn header_err() -> NotificationInfo {
    NotificationInfo::new(error_code::MESSAGE_HEADER_ERROR, 2, vec![0, 18])
}

fn open_msg_err() -> NotificationInfo {
    NotificationInfo::open_error(open_error::UNSUPPORTED_OPTIONAL_PARAMETER, Vec::new())
}

/// Malformed AS_PATH.
fn update_err() -> NotificationInfo {
    NotificationInfo::new(error_code::UPDATE_MESSAGE_ERROR, 11, Vec::new())
}

fn version_err() -> NotificationInfo {
    NotificationInfo::open_error(open_error::UNSUPPORTED_VERSION_NUMBER, vec![0, 4])
}

fn peer_cease() -> NotificationInfo {
    NotificationInfo::cease(CeaseSubcode::PeerDeConfigured, None)
}

fn collision_cease() -> NotificationInfo {
    NotificationInfo::new(error_code::CEASE, 7, Vec::new())
}

fn fsm_err(subcode: u8) -> NotificationInfo {
    NotificationInfo::new(error_code::FSM_ERROR, subcode, Vec::new())
}

fn hold_expired() -> NotificationInfo {
    NotificationInfo::new(error_code::HOLD_TIMER_EXPIRED, 0, Vec::new())
}

/// Every event once, with representative payloads.
fn all_events() -> Vec<Event> {
    vec![
        Event::ManualStart,
        Event::ManualStop(shutdown()),
        Event::AutomaticStart,
        Event::AutomaticStop(max_prefixes()),
        Event::ConnectRetryTimerExpires,
        Event::HoldTimerExpires,
        Event::KeepaliveTimerExpires,
        Event::IdleHoldTimerExpires,
        Event::TcpCrAcked,
        Event::TcpConnectionConfirmed,
        Event::TcpConnectionFails,
        Event::BgpOpen(peer_open()),
        Event::BgpHeaderErr(header_err()),
        Event::BgpOpenMsgErr(open_msg_err()),
        Event::OpenCollisionDump,
        Event::NotifMsgVerErr(version_err()),
        Event::NotifMsg(peer_cease()),
        Event::KeepAliveMsg,
        Event::UpdateMsg,
        Event::UpdateMsgErr(update_err()),
        Event::RouteRefreshMsg,
        hold_down(),
    ]
}

/// The max-prefix hold-down of the tables.
const RESTART_AFTER: Duration = Duration::from_secs(3);

fn hold_down() -> Event {
    Event::HoldDown {
        notification: max_prefixes(),
        restart_after: Some(RESTART_AFTER),
    }
}

fn held_down() -> DownReason {
    DownReason::HeldDown {
        restart_after: Some(RESTART_AFTER),
    }
}

/// `hold_down()` in Connect or Active: restart armed, closed without NOTIFICATION.
fn before_open() -> Vec<Action> {
    let mut actions = vec![start(Timer::IdleHold, RESTART_AFTER)];
    actions.extend(teardown(None, &[Timer::ConnectRetry], held_down()));
    actions
}

/// `hold_down()` once our OPEN is out: restart armed, the Cease, then the close.
fn after_open(running: &[Timer]) -> Vec<Action> {
    let mut actions = vec![start(Timer::IdleHold, RESTART_AFTER)];
    actions.extend(teardown(Some(max_prefixes()), running, held_down()));
    actions
}

fn start(timer: Timer, duration: Duration) -> Action {
    Action::StartTimer(timer, duration)
}

fn stop(timer: Timer) -> Action {
    Action::StopTimer(timer)
}

fn down(reason: DownReason) -> Action {
    Action::Down { reason }
}

fn fsm(event: &'static str) -> DownReason {
    DownReason::FsmError { event }
}

/// The actions of a teardown to Idle: NOTIFICATION, timers stopped, connection dropped, Down.
fn teardown(
    notification: Option<NotificationInfo>,
    running: &[Timer],
    reason: DownReason,
) -> Vec<Action> {
    notification
        .map(Action::SendNotification)
        .into_iter()
        .chain(running.iter().map(|&timer| stop(timer)))
        .chain([Action::Disconnect, down(reason)])
        .collect()
}

/// A new session driven to `state` along the happy path (for an active session, Active is
/// reached through a failed connection attempt).
fn session_in(config: SessionConfig, state: State) -> Session {
    let passive = config.passive;
    let mut session = Session::new(config).unwrap();
    let connected = if passive {
        Event::TcpConnectionConfirmed
    } else {
        Event::TcpCrAcked
    };
    let path = match state {
        State::Idle => vec![],
        State::Connect => vec![Event::ManualStart],
        State::Active if passive => vec![Event::ManualStart],
        State::Active => vec![Event::ManualStart, Event::TcpConnectionFails],
        State::OpenSent => vec![Event::ManualStart, connected],
        State::OpenConfirm => vec![Event::ManualStart, connected, Event::BgpOpen(peer_open())],
        State::Established => vec![
            Event::ManualStart,
            connected,
            Event::BgpOpen(peer_open()),
            Event::KeepAliveMsg,
        ],
    };
    for event in path {
        session.handle(event);
    }
    assert_eq!(session.state(), state, "setting up {state}");
    session
}

type Row = (Event, Vec<Action>, State);

#[track_caller]
fn check_rows(config: &SessionConfig, from: State, rows: Vec<Row>) {
    for (event, actions, to) in rows {
        let mut session = session_in(config.clone(), from);
        let name = event.name();
        assert_eq!(session.handle(event), actions, "{from} + {name}: actions");
        assert_eq!(session.state(), to, "{from} + {name}: next state");
    }
}

/// A state's complete table: every event exactly once.
#[track_caller]
fn check_table(config: &SessionConfig, from: State, rows: Vec<Row>) {
    let covered: Vec<&str> = rows.iter().map(|(event, _, _)| event.name()).collect();
    let all: Vec<&str> = all_events().iter().map(Event::name).collect();
    assert_eq!(covered, all, "the {from} table lists every event, in order");
    check_rows(config, from, rows);
}
