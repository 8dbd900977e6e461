//! The FSM's tests: a state x event table for each state (every event, exact actions and next
//! state), scenarios (happy paths, failures, negotiation, collisions, damping), and an
//! exhaustive walk of short event sequences checking invariants.

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

// ---------------------------------------------------------------------------------------------
// State x event tables (RFC 4271 8.2.2, with the deviations documented in the module)
// ---------------------------------------------------------------------------------------------

#[test]
fn table_idle() {
    let connect = vec![start(Timer::ConnectRetry, CONNECT_RETRY), Action::Connect];
    let ignored = |event: Event| (event, vec![], State::Idle);
    check_table(
        &config(),
        State::Idle,
        vec![
            (Event::ManualStart, connect.clone(), State::Connect),
            ignored(Event::ManualStop(shutdown())),
            (Event::AutomaticStart, connect, State::Connect),
            ignored(Event::AutomaticStop(max_prefixes())),
            ignored(Event::ConnectRetryTimerExpires),
            ignored(Event::HoldTimerExpires),
            ignored(Event::KeepaliveTimerExpires),
            ignored(Event::IdleHoldTimerExpires),
            ignored(Event::TcpCrAcked),
            // Idle refuses connections.
            ignored(Event::TcpConnectionConfirmed),
            ignored(Event::TcpConnectionFails),
            ignored(Event::BgpOpen(peer_open())),
            ignored(Event::BgpHeaderErr(header_err())),
            ignored(Event::BgpOpenMsgErr(open_msg_err())),
            ignored(Event::OpenCollisionDump),
            ignored(Event::NotifMsgVerErr(version_err())),
            ignored(Event::NotifMsg(peer_cease())),
            ignored(Event::KeepAliveMsg),
            ignored(Event::UpdateMsg),
            ignored(Event::UpdateMsgErr(update_err())),
            ignored(Event::RouteRefreshMsg),
            // A hold-down in Idle only arms its restart.
            (
                hold_down(),
                vec![start(Timer::IdleHold, RESTART_AFTER)],
                State::Idle,
            ),
        ],
    );
}

#[test]
fn table_connect() {
    let open_sent = vec![
        stop(Timer::ConnectRetry),
        Action::SendOpen(our_open()),
        start(Timer::Hold, OPEN_HOLD_TIME),
    ];
    let to_idle = |reason| teardown(None, &[Timer::ConnectRetry], reason);
    check_table(
        &config(),
        State::Connect,
        vec![
            (Event::ManualStart, vec![], State::Connect),
            // No NOTIFICATION: our OPEN is not out.
            (
                Event::ManualStop(shutdown()),
                to_idle(DownReason::ManualStop),
                State::Idle,
            ),
            (Event::AutomaticStart, vec![], State::Connect),
            (
                Event::AutomaticStop(max_prefixes()),
                to_idle(DownReason::AutomaticStop),
                State::Idle,
            ),
            (
                Event::ConnectRetryTimerExpires,
                vec![
                    Action::Disconnect,
                    start(Timer::ConnectRetry, CONNECT_RETRY),
                    Action::Connect,
                ],
                State::Connect,
            ),
            // Not running: stale.
            (Event::HoldTimerExpires, vec![], State::Connect),
            (Event::KeepaliveTimerExpires, vec![], State::Connect),
            (Event::IdleHoldTimerExpires, vec![], State::Connect),
            (Event::TcpCrAcked, open_sent.clone(), State::OpenSent),
            (Event::TcpConnectionConfirmed, open_sent, State::OpenSent),
            // Deviation 3: Active, retrying after ConnectRetry.
            (
                Event::TcpConnectionFails,
                vec![
                    Action::Disconnect,
                    start(Timer::ConnectRetry, CONNECT_RETRY),
                ],
                State::Active,
            ),
            (
                Event::BgpOpen(peer_open()),
                to_idle(fsm("BGPOpen")),
                State::Idle,
            ),
            (
                Event::BgpHeaderErr(header_err()),
                to_idle(DownReason::ErrorDetected(header_err())),
                State::Idle,
            ),
            (
                Event::BgpOpenMsgErr(open_msg_err()),
                to_idle(DownReason::ErrorDetected(open_msg_err())),
                State::Idle,
            ),
            (
                Event::OpenCollisionDump,
                to_idle(DownReason::OpenCollisionDump),
                State::Idle,
            ),
            (
                Event::NotifMsgVerErr(version_err()),
                to_idle(DownReason::NotificationReceived(version_err())),
                State::Idle,
            ),
            (
                Event::NotifMsg(peer_cease()),
                to_idle(DownReason::NotificationReceived(peer_cease())),
                State::Idle,
            ),
            (
                Event::KeepAliveMsg,
                to_idle(fsm("KeepAliveMsg")),
                State::Idle,
            ),
            (Event::UpdateMsg, to_idle(fsm("UpdateMsg")), State::Idle),
            (
                Event::UpdateMsgErr(update_err()),
                to_idle(fsm("UpdateMsgErr")),
                State::Idle,
            ),
            (
                Event::RouteRefreshMsg,
                to_idle(fsm("RouteRefreshMsg")),
                State::Idle,
            ),
            (hold_down(), before_open(), State::Idle),
        ],
    );
}

#[test]
fn table_active() {
    let open_sent = vec![
        stop(Timer::ConnectRetry),
        Action::SendOpen(our_open()),
        start(Timer::Hold, OPEN_HOLD_TIME),
    ];
    let to_idle = |reason| teardown(None, &[Timer::ConnectRetry], reason);
    check_table(
        &config(),
        State::Active,
        vec![
            (Event::ManualStart, vec![], State::Active),
            (
                Event::ManualStop(shutdown()),
                to_idle(DownReason::ManualStop),
                State::Idle,
            ),
            (Event::AutomaticStart, vec![], State::Active),
            (
                Event::AutomaticStop(max_prefixes()),
                to_idle(DownReason::AutomaticStop),
                State::Idle,
            ),
            (
                Event::ConnectRetryTimerExpires,
                vec![start(Timer::ConnectRetry, CONNECT_RETRY), Action::Connect],
                State::Connect,
            ),
            (Event::HoldTimerExpires, vec![], State::Active),
            (Event::KeepaliveTimerExpires, vec![], State::Active),
            (Event::IdleHoldTimerExpires, vec![], State::Active),
            (Event::TcpCrAcked, open_sent.clone(), State::OpenSent),
            (Event::TcpConnectionConfirmed, open_sent, State::OpenSent),
            (
                Event::TcpConnectionFails,
                to_idle(DownReason::TcpConnectionFails),
                State::Idle,
            ),
            (
                Event::BgpOpen(peer_open()),
                to_idle(fsm("BGPOpen")),
                State::Idle,
            ),
            (
                Event::BgpHeaderErr(header_err()),
                to_idle(DownReason::ErrorDetected(header_err())),
                State::Idle,
            ),
            (
                Event::BgpOpenMsgErr(open_msg_err()),
                to_idle(DownReason::ErrorDetected(open_msg_err())),
                State::Idle,
            ),
            (
                Event::OpenCollisionDump,
                to_idle(DownReason::OpenCollisionDump),
                State::Idle,
            ),
            (
                Event::NotifMsgVerErr(version_err()),
                to_idle(DownReason::NotificationReceived(version_err())),
                State::Idle,
            ),
            (
                Event::NotifMsg(peer_cease()),
                to_idle(DownReason::NotificationReceived(peer_cease())),
                State::Idle,
            ),
            (
                Event::KeepAliveMsg,
                to_idle(fsm("KeepAliveMsg")),
                State::Idle,
            ),
            (Event::UpdateMsg, to_idle(fsm("UpdateMsg")), State::Idle),
            (
                Event::UpdateMsgErr(update_err()),
                to_idle(fsm("UpdateMsgErr")),
                State::Idle,
            ),
            (
                Event::RouteRefreshMsg,
                to_idle(fsm("RouteRefreshMsg")),
                State::Idle,
            ),
            (hold_down(), before_open(), State::Idle),
        ],
    );
}

#[test]
fn table_active_passive() {
    check_rows(
        &passive_config(),
        State::Active,
        vec![
            (Event::ManualStart, vec![], State::Active),
            (
                Event::ManualStop(shutdown()),
                teardown(None, &[], DownReason::ManualStop),
                State::Idle,
            ),
            // No ConnectRetry timer runs: stale.
            (Event::ConnectRetryTimerExpires, vec![], State::Active),
            (
                Event::TcpConnectionConfirmed,
                vec![
                    Action::SendOpen(our_open()),
                    start(Timer::Hold, OPEN_HOLD_TIME),
                ],
                State::OpenSent,
            ),
            (
                Event::TcpConnectionFails,
                teardown(None, &[], DownReason::TcpConnectionFails),
                State::Idle,
            ),
        ],
    );
}

#[test]
fn table_open_sent() {
    let to_idle = |notification, reason| teardown(notification, &[Timer::Hold], reason);
    let unexpected = |event: Event| {
        let name = event.name();
        let actions = to_idle(Some(fsm_err(1)), fsm(name));
        (event, actions, State::Idle)
    };
    check_table(
        &config(),
        State::OpenSent,
        vec![
            (Event::ManualStart, vec![], State::OpenSent),
            (
                Event::ManualStop(shutdown()),
                to_idle(Some(shutdown()), DownReason::ManualStop),
                State::Idle,
            ),
            (Event::AutomaticStart, vec![], State::OpenSent),
            (
                Event::AutomaticStop(max_prefixes()),
                to_idle(Some(max_prefixes()), DownReason::AutomaticStop),
                State::Idle,
            ),
            (Event::ConnectRetryTimerExpires, vec![], State::OpenSent),
            (
                Event::HoldTimerExpires,
                teardown(Some(hold_expired()), &[], DownReason::HoldTimerExpired),
                State::Idle,
            ),
            (Event::KeepaliveTimerExpires, vec![], State::OpenSent),
            (Event::IdleHoldTimerExpires, vec![], State::OpenSent),
            // A second connection is the driver's (another session).
            (Event::TcpCrAcked, vec![], State::OpenSent),
            (Event::TcpConnectionConfirmed, vec![], State::OpenSent),
            (
                Event::TcpConnectionFails,
                vec![
                    stop(Timer::Hold),
                    Action::Disconnect,
                    start(Timer::ConnectRetry, CONNECT_RETRY),
                ],
                State::Active,
            ),
            (
                Event::BgpOpen(peer_open()),
                vec![
                    Action::SendKeepalive,
                    start(Timer::Keepalive, KEEPALIVE),
                    start(Timer::Hold, HOLD),
                ],
                State::OpenConfirm,
            ),
            (
                Event::BgpHeaderErr(header_err()),
                to_idle(Some(header_err()), DownReason::ErrorDetected(header_err())),
                State::Idle,
            ),
            (
                Event::BgpOpenMsgErr(open_msg_err()),
                to_idle(
                    Some(open_msg_err()),
                    DownReason::ErrorDetected(open_msg_err()),
                ),
                State::Idle,
            ),
            (
                Event::OpenCollisionDump,
                to_idle(Some(collision_cease()), DownReason::OpenCollisionDump),
                State::Idle,
            ),
            (
                Event::NotifMsgVerErr(version_err()),
                to_idle(None, DownReason::NotificationReceived(version_err())),
                State::Idle,
            ),
            // Deviation 4: no FSM Error in answer.
            (
                Event::NotifMsg(peer_cease()),
                to_idle(None, DownReason::NotificationReceived(peer_cease())),
                State::Idle,
            ),
            unexpected(Event::KeepAliveMsg),
            unexpected(Event::UpdateMsg),
            unexpected(Event::UpdateMsgErr(update_err())),
            unexpected(Event::RouteRefreshMsg),
            (hold_down(), after_open(&[Timer::Hold]), State::Idle),
        ],
    );
}

#[test]
fn table_open_confirm() {
    let running = [Timer::Hold, Timer::Keepalive];
    let to_idle = |notification, reason| teardown(notification, &running, reason);
    let unexpected = |event: Event| {
        let name = event.name();
        let actions = to_idle(Some(fsm_err(2)), fsm(name));
        (event, actions, State::Idle)
    };
    check_table(
        &config(),
        State::OpenConfirm,
        vec![
            (Event::ManualStart, vec![], State::OpenConfirm),
            (
                Event::ManualStop(shutdown()),
                to_idle(Some(shutdown()), DownReason::ManualStop),
                State::Idle,
            ),
            (Event::AutomaticStart, vec![], State::OpenConfirm),
            (
                Event::AutomaticStop(max_prefixes()),
                to_idle(Some(max_prefixes()), DownReason::AutomaticStop),
                State::Idle,
            ),
            (Event::ConnectRetryTimerExpires, vec![], State::OpenConfirm),
            (
                Event::HoldTimerExpires,
                teardown(
                    Some(hold_expired()),
                    &[Timer::Keepalive],
                    DownReason::HoldTimerExpired,
                ),
                State::Idle,
            ),
            (
                Event::KeepaliveTimerExpires,
                vec![Action::SendKeepalive, start(Timer::Keepalive, KEEPALIVE)],
                State::OpenConfirm,
            ),
            (Event::IdleHoldTimerExpires, vec![], State::OpenConfirm),
            (Event::TcpCrAcked, vec![], State::OpenConfirm),
            (Event::TcpConnectionConfirmed, vec![], State::OpenConfirm),
            (
                Event::TcpConnectionFails,
                to_idle(None, DownReason::TcpConnectionFails),
                State::Idle,
            ),
            // Deviation 6: a second OPEN on this connection.
            unexpected(Event::BgpOpen(peer_open())),
            (
                Event::BgpHeaderErr(header_err()),
                to_idle(Some(header_err()), DownReason::ErrorDetected(header_err())),
                State::Idle,
            ),
            (
                Event::BgpOpenMsgErr(open_msg_err()),
                to_idle(
                    Some(open_msg_err()),
                    DownReason::ErrorDetected(open_msg_err()),
                ),
                State::Idle,
            ),
            (
                Event::OpenCollisionDump,
                to_idle(Some(collision_cease()), DownReason::OpenCollisionDump),
                State::Idle,
            ),
            (
                Event::NotifMsgVerErr(version_err()),
                to_idle(None, DownReason::NotificationReceived(version_err())),
                State::Idle,
            ),
            (
                Event::NotifMsg(peer_cease()),
                to_idle(None, DownReason::NotificationReceived(peer_cease())),
                State::Idle,
            ),
            (
                Event::KeepAliveMsg,
                vec![start(Timer::Hold, HOLD), Action::Established(negotiated())],
                State::Established,
            ),
            unexpected(Event::UpdateMsg),
            unexpected(Event::UpdateMsgErr(update_err())),
            unexpected(Event::RouteRefreshMsg),
            (hold_down(), after_open(&running), State::Idle),
        ],
    );
}

#[test]
fn table_established() {
    let running = [Timer::Hold, Timer::Keepalive];
    let to_idle = |notification, reason| teardown(notification, &running, reason);
    let unexpected = |event: Event| {
        let name = event.name();
        let actions = to_idle(Some(fsm_err(3)), fsm(name));
        (event, actions, State::Idle)
    };
    let alive = |event: Event| (event, vec![start(Timer::Hold, HOLD)], State::Established);
    check_table(
        &config(),
        State::Established,
        vec![
            (Event::ManualStart, vec![], State::Established),
            (
                Event::ManualStop(shutdown()),
                to_idle(Some(shutdown()), DownReason::ManualStop),
                State::Idle,
            ),
            (Event::AutomaticStart, vec![], State::Established),
            (
                Event::AutomaticStop(max_prefixes()),
                to_idle(Some(max_prefixes()), DownReason::AutomaticStop),
                State::Idle,
            ),
            (Event::ConnectRetryTimerExpires, vec![], State::Established),
            (
                Event::HoldTimerExpires,
                teardown(
                    Some(hold_expired()),
                    &[Timer::Keepalive],
                    DownReason::HoldTimerExpired,
                ),
                State::Idle,
            ),
            (
                Event::KeepaliveTimerExpires,
                vec![Action::SendKeepalive, start(Timer::Keepalive, KEEPALIVE)],
                State::Established,
            ),
            (Event::IdleHoldTimerExpires, vec![], State::Established),
            (Event::TcpCrAcked, vec![], State::Established),
            (Event::TcpConnectionConfirmed, vec![], State::Established),
            (
                Event::TcpConnectionFails,
                to_idle(None, DownReason::TcpConnectionFails),
                State::Idle,
            ),
            unexpected(Event::BgpOpen(peer_open())),
            // Deviation 5: the header error itself, not an FSM Error.
            (
                Event::BgpHeaderErr(header_err()),
                to_idle(Some(header_err()), DownReason::ErrorDetected(header_err())),
                State::Idle,
            ),
            unexpected(Event::BgpOpenMsgErr(open_msg_err())),
            (
                Event::OpenCollisionDump,
                to_idle(Some(collision_cease()), DownReason::OpenCollisionDump),
                State::Idle,
            ),
            (
                Event::NotifMsgVerErr(version_err()),
                to_idle(None, DownReason::NotificationReceived(version_err())),
                State::Idle,
            ),
            (
                Event::NotifMsg(peer_cease()),
                to_idle(None, DownReason::NotificationReceived(peer_cease())),
                State::Idle,
            ),
            alive(Event::KeepAliveMsg),
            alive(Event::UpdateMsg),
            (
                Event::UpdateMsgErr(update_err()),
                to_idle(Some(update_err()), DownReason::ErrorDetected(update_err())),
                State::Idle,
            ),
            alive(Event::RouteRefreshMsg),
            (hold_down(), after_open(&running), State::Idle),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

#[test]
fn active_open_to_established() {
    let mut session = Session::new(config()).unwrap();
    assert_eq!(session.state(), State::Idle);
    assert_eq!(
        session.handle(Event::ManualStart),
        [start(Timer::ConnectRetry, CONNECT_RETRY), Action::Connect]
    );
    assert_eq!(session.state(), State::Connect);
    assert_eq!(
        session.handle(Event::TcpCrAcked),
        [
            stop(Timer::ConnectRetry),
            Action::SendOpen(our_open()),
            start(Timer::Hold, Duration::from_secs(240)),
        ]
    );
    assert_eq!(session.state(), State::OpenSent);
    assert_eq!(session.initiator(), Some(Side::Local));
    assert_eq!(session.negotiated(), None);
    assert_eq!(
        session.handle(Event::BgpOpen(peer_open())),
        [
            Action::SendKeepalive,
            start(Timer::Keepalive, KEEPALIVE),
            start(Timer::Hold, HOLD),
        ]
    );
    assert_eq!(session.state(), State::OpenConfirm);
    assert_eq!(session.peer_open(), Some(&peer_open()));
    assert_eq!(session.negotiated(), Some(&negotiated()));
    assert_eq!(
        session.handle(Event::KeepAliveMsg),
        [start(Timer::Hold, HOLD), Action::Established(negotiated())]
    );
    assert_eq!(session.state(), State::Established);
    // Steady state: our keepalives, the peer's messages.
    assert_eq!(
        session.handle(Event::KeepaliveTimerExpires),
        [Action::SendKeepalive, start(Timer::Keepalive, KEEPALIVE)]
    );
    assert_eq!(session.handle(Event::UpdateMsg), [start(Timer::Hold, HOLD)]);
    assert_eq!(
        session.handle(Event::KeepAliveMsg),
        [start(Timer::Hold, HOLD)]
    );
    assert_eq!(session.state(), State::Established);
}

#[test]
fn passive_open_to_established() {
    let mut session = Session::new(passive_config()).unwrap();
    // No Connect, no ConnectRetry: wait for the peer.
    assert_eq!(session.handle(Event::ManualStart), NOTHING);
    assert_eq!(session.state(), State::Active);
    assert_eq!(
        session.handle(Event::TcpConnectionConfirmed),
        [
            Action::SendOpen(our_open()),
            start(Timer::Hold, OPEN_HOLD_TIME),
        ]
    );
    assert_eq!(session.initiator(), Some(Side::Remote));
    session.handle(Event::BgpOpen(peer_open()));
    assert_eq!(
        session.handle(Event::KeepAliveMsg),
        [start(Timer::Hold, HOLD), Action::Established(negotiated())]
    );
}

#[test]
fn hold_timer_expiry_in_established() {
    let mut session = session_in(config(), State::Established);
    assert_eq!(
        session.handle(Event::HoldTimerExpires),
        [
            Action::SendNotification(NotificationInfo::new(4, 0, vec![])),
            stop(Timer::Keepalive),
            Action::Disconnect,
            down(DownReason::HoldTimerExpired),
        ]
    );
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.connect_retry_counter(), 1);
    assert_eq!(session.negotiated(), None);
    assert_eq!(session.peer_open(), None);
    assert_eq!(session.initiator(), None);
}

#[test]
fn manual_stop_in_established_sends_shutdown_communication() {
    let mut session = session_in(config(), State::Established);
    let cease = NotificationInfo::cease(CeaseSubcode::AdministrativeShutdown, Some("maintenance"));
    let mut data = vec![11];
    data.extend_from_slice(b"maintenance");
    assert_eq!(cease, NotificationInfo::new(6, 2, data));
    assert_eq!(
        session.handle(Event::ManualStop(cease.clone())),
        [
            Action::SendNotification(cease),
            stop(Timer::Hold),
            stop(Timer::Keepalive),
            Action::Disconnect,
            down(DownReason::ManualStop),
        ]
    );
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.connect_retry_counter(), 0);
    // Idle stays Idle until started again.
    assert_eq!(session.handle(Event::TcpConnectionConfirmed), NOTHING);
    assert_eq!(session.state(), State::Idle);
}

#[test]
fn notification_received_in_established() {
    let mut session = session_in(config(), State::Established);
    let cease = NotificationInfo::cease(CeaseSubcode::AdministrativeReset, Some("upgrade"));
    let actions = session.handle(Event::notification(cease.clone()));
    assert_eq!(
        actions,
        [
            stop(Timer::Hold),
            stop(Timer::Keepalive),
            Action::Disconnect,
            down(DownReason::NotificationReceived(cease.clone())),
        ]
    );
    assert_eq!(session.connect_retry_counter(), 1);
    let Some(Action::Down { reason }) = actions.last() else {
        unreachable!()
    };
    assert_eq!(
        reason.to_string(),
        "NOTIFICATION received: 6/4 (Cease / Administrative Reset) \"upgrade\""
    );
}

#[test]
fn tcp_failure_in_connect_retries_from_active() {
    let mut session = session_in(config(), State::Connect);
    assert_eq!(
        session.handle(Event::TcpConnectionFails),
        [
            Action::Disconnect,
            start(Timer::ConnectRetry, CONNECT_RETRY)
        ]
    );
    assert_eq!(session.state(), State::Active);
    // Not a session failure: no damping accounting.
    assert_eq!(session.connect_retry_counter(), 0);
}

#[test]
fn tcp_failure_in_active_goes_idle() {
    let mut session = session_in(config(), State::Active);
    assert_eq!(
        session.handle(Event::TcpConnectionFails),
        teardown(None, &[Timer::ConnectRetry], DownReason::TcpConnectionFails)
    );
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.connect_retry_counter(), 1);
}

#[test]
fn tcp_failure_in_open_sent_returns_to_active() {
    let mut session = session_in(config(), State::OpenSent);
    assert_eq!(
        session.handle(Event::TcpConnectionFails),
        [
            stop(Timer::Hold),
            Action::Disconnect,
            start(Timer::ConnectRetry, CONNECT_RETRY),
        ]
    );
    assert_eq!(session.state(), State::Active);
    assert_eq!(session.initiator(), None);
    // The passive session keeps waiting, without a ConnectRetry timer.
    let mut session = session_in(passive_config(), State::OpenSent);
    assert_eq!(
        session.handle(Event::TcpConnectionFails),
        [stop(Timer::Hold), Action::Disconnect]
    );
    assert_eq!(session.state(), State::Active);
}

#[test]
fn connect_retry_timer() {
    let mut session = session_in(config(), State::Connect);
    // The attempt hangs: abandon it and try again.
    for _ in 0..3 {
        assert_eq!(
            session.handle(Event::ConnectRetryTimerExpires),
            [
                Action::Disconnect,
                start(Timer::ConnectRetry, CONNECT_RETRY),
                Action::Connect,
            ]
        );
        assert_eq!(session.state(), State::Connect);
    }
    // Refused: wait in Active, then try again.
    session.handle(Event::TcpConnectionFails);
    assert_eq!(session.state(), State::Active);
    assert_eq!(
        session.handle(Event::ConnectRetryTimerExpires),
        [start(Timer::ConnectRetry, CONNECT_RETRY), Action::Connect]
    );
    assert_eq!(session.state(), State::Connect);
    // The peer's connection arrives first while ours is pending: adopt it.
    assert_eq!(
        session.handle(Event::TcpConnectionConfirmed),
        [
            stop(Timer::ConnectRetry),
            Action::SendOpen(our_open()),
            start(Timer::Hold, OPEN_HOLD_TIME),
        ]
    );
    assert_eq!(session.initiator(), Some(Side::Remote));
    // Stopped: a late expiry is stale.
    assert_eq!(session.handle(Event::ConnectRetryTimerExpires), NOTHING);
    assert_eq!(session.state(), State::OpenSent);
}

#[test]
fn custom_connect_retry_time() {
    let config = SessionConfig {
        connect_retry: Duration::from_secs(30),
        ..config()
    };
    let mut session = Session::new(config).unwrap();
    assert_eq!(
        session.handle(Event::ManualStart),
        [
            start(Timer::ConnectRetry, Duration::from_secs(30)),
            Action::Connect
        ]
    );
}

/// Sends `open` to a session in OpenSent; returns the actions and the session.
fn receive_open(config: SessionConfig, open: OpenInfo) -> (Vec<Action>, Session) {
    let mut session = session_in(config, State::OpenSent);
    let actions = session.handle(Event::BgpOpen(open));
    (actions, session)
}

/// The OPEN is rejected with `notification`.
#[track_caller]
fn assert_rejected(config: SessionConfig, open: OpenInfo, notification: NotificationInfo) {
    let (actions, session) = receive_open(config, open);
    assert_eq!(
        actions,
        teardown(
            Some(notification.clone()),
            &[Timer::Hold],
            DownReason::ErrorDetected(notification),
        )
    );
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.connect_retry_counter(), 1);
}

#[track_caller]
fn assert_accepted(config: SessionConfig, open: OpenInfo) -> Negotiated {
    let (_, session) = receive_open(config, open);
    assert_eq!(session.state(), State::OpenConfirm);
    session.negotiated().unwrap().clone()
}

#[test]
fn open_bad_version() {
    for version in [3, 5] {
        assert_rejected(
            config(),
            OpenInfo {
                version,
                ..peer_open()
            },
            // Data: the version we support, 2 octets.
            NotificationInfo::new(2, 1, vec![0, 4]),
        );
    }
}

#[test]
fn open_bad_peer_as() {
    let bad_peer_as = NotificationInfo::new(2, 2, vec![]);
    let from_as = |asn: u32| OpenInfo {
        my_as: asn,
        capabilities: Capabilities {
            four_octet_as: Some(asn),
            ..peer_open().capabilities
        },
        ..peer_open()
    };
    // Not the configured AS.
    assert_rejected(config(), from_as(65003), bad_peer_as.clone());
    // External: anything but ours.
    let external = SessionConfig {
        remote_as: RemoteAs::External,
        ..config()
    };
    assert_rejected(external.clone(), from_as(LOCAL_AS), bad_peer_as.clone());
    assert_eq!(assert_accepted(external, from_as(64512)).peer_as, 64512);
    // Internal: ours only.
    let internal = SessionConfig {
        remote_as: RemoteAs::Internal,
        ..config()
    };
    assert_rejected(internal.clone(), from_as(PEER_AS), bad_peer_as.clone());
    assert_eq!(
        assert_accepted(internal, from_as(LOCAL_AS)).peer_as,
        LOCAL_AS
    );
    // AS 0 (RFC 7607), with or without the 4-octet capability.
    let any = SessionConfig {
        remote_as: RemoteAs::External,
        ..config()
    };
    assert_rejected(any.clone(), from_as(0), bad_peer_as.clone());
    let mut old_zero = from_as(0);
    old_zero.capabilities.four_octet_as = None;
    assert_rejected(any, old_zero, bad_peer_as.clone());
    // My Autonomous System contradicting the 4-octet AS capability.
    let mut inconsistent = peer_open();
    inconsistent.my_as = 65010;
    assert_rejected(config(), inconsistent, bad_peer_as);
}

#[test]
fn open_bad_hold_time() {
    for hold_time in [1, 2] {
        assert_rejected(
            config(),
            OpenInfo {
                hold_time,
                ..peer_open()
            },
            NotificationInfo::new(2, 6, vec![]),
        );
    }
    // 0 only when we propose 0 too (see `hardening_tests.rs`).
    assert_rejected(
        config(),
        OpenInfo {
            hold_time: 0,
            ..peer_open()
        },
        NotificationInfo::new(2, 6, vec![]),
    );
    for hold_time in [3, u16::MAX] {
        assert_accepted(
            config(),
            OpenInfo {
                hold_time,
                ..peer_open()
            },
        );
    }
}

#[test]
fn open_bad_bgp_identifier() {
    let bad_id = NotificationInfo::new(2, 3, vec![]);
    assert_rejected(
        config(),
        OpenInfo {
            router_id: Ipv4Addr::UNSPECIFIED,
            ..peer_open()
        },
        bad_id.clone(),
    );
    // Our own identifier: rejected from an internal peer...
    let internal = SessionConfig {
        remote_as: RemoteAs::Internal,
        ..config()
    };
    let ibgp_open = OpenInfo {
        my_as: LOCAL_AS,
        router_id: LOCAL_ID,
        capabilities: Capabilities {
            four_octet_as: Some(LOCAL_AS),
            ..peer_open().capabilities
        },
        ..peer_open()
    };
    assert_rejected(internal, ibgp_open, bad_id);
    // ... legal from an external one (RFC 6286: unique within an AS only).
    assert_accepted(
        config(),
        OpenInfo {
            router_id: LOCAL_ID,
            ..peer_open()
        },
    );
}

#[test]
fn malformed_open_from_codec() {
    let (actions, session) = {
        let mut session = session_in(config(), State::OpenSent);
        let notification = NotificationInfo::open_error(open_error::UNSPECIFIC, Vec::new());
        (session.handle(Event::BgpOpenMsgErr(notification)), session)
    };
    let notification = NotificationInfo::new(2, 0, vec![]);
    assert_eq!(
        actions,
        teardown(
            Some(notification.clone()),
            &[Timer::Hold],
            DownReason::ErrorDetected(notification)
        )
    );
    assert_eq!(session.state(), State::Idle);
}

#[test]
fn four_octet_as_peer() {
    const BIG_AS: u32 = 4_200_000_001;
    let config = SessionConfig {
        remote_as: RemoteAs::Exact(BIG_AS),
        ..config()
    };
    let open = OpenInfo {
        my_as: AS_TRANS,
        capabilities: Capabilities {
            four_octet_as: Some(BIG_AS),
            ..peer_open().capabilities
        },
        ..peer_open()
    };
    let negotiated = assert_accepted(config.clone(), open.clone());
    assert_eq!(negotiated.peer_as, BIG_AS);
    assert!(negotiated.four_octet_as);
    // A 2-octet-only speaker can only say AS_TRANS, which is not the configured AS.
    let old = OpenInfo {
        capabilities: Capabilities {
            four_octet_as: None,
            ..open.capabilities
        },
        ..open
    };
    assert_rejected(config, old, NotificationInfo::new(2, 2, vec![]));
}

#[test]
fn two_octet_only_peer() {
    let open = OpenInfo {
        capabilities: Capabilities {
            four_octet_as: None,
            ..peer_open().capabilities
        },
        ..peer_open()
    };
    let negotiated = assert_accepted(config(), open);
    assert_eq!(negotiated.peer_as, PEER_AS);
    assert!(!negotiated.four_octet_as);
}

#[test]
fn four_octet_local_as_is_sent_as_as_trans() {
    const BIG_AS: u32 = 4_200_000_000;
    let config = SessionConfig {
        local_as: BIG_AS,
        // Ignored: the OPEN carries the local AS.
        capabilities: Capabilities {
            four_octet_as: None,
            ..config().capabilities
        },
        ..config()
    };
    let mut session = session_in(config, State::Connect);
    let actions = session.handle(Event::TcpCrAcked);
    let Some(Action::SendOpen(open)) = actions.get(1) else {
        panic!("no OPEN in {actions:?}")
    };
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(open.capabilities.four_octet_as, Some(BIG_AS));
    assert_eq!(open.asn(), Some(BIG_AS));
}

#[test]
fn families_negotiation() {
    let with_families = |config: SessionConfig, ours: &[(Afi, Safi)]| SessionConfig {
        capabilities: Capabilities {
            multiprotocol: ours.iter().copied().collect(),
            ..config.capabilities
        },
        ..config
    };
    let open_with = |theirs: &[(Afi, Safi)]| OpenInfo {
        capabilities: Capabilities {
            multiprotocol: theirs.iter().copied().collect(),
            ..peer_open().capabilities
        },
        ..peer_open()
    };
    let families = |ours: &[(Afi, Safi)], theirs: &[(Afi, Safi)]| {
        assert_accepted(with_families(config(), ours), open_with(theirs)).families
    };
    assert_eq!(families(&[V4, V6], &[V6]), [V6].into());
    assert_eq!(families(&[V4, V6], &[V4, V6]), [V4, V6].into());
    // No Multiprotocol capability: IPv4 unicast, on either side.
    assert_eq!(families(&[], &[]), [V4].into());
    assert_eq!(families(&[V4, V6], &[]), [V4].into());
    assert_eq!(families(&[], &[V4, V6]), [V4].into());
    // Nothing in common: established all the same, with nothing to exchange.
    assert_eq!(families(&[V6], &[]), BTreeSet::new());
}

#[test]
fn extended_next_hop_negotiation() {
    let v4_over_v6 = (Afi::Ipv4, Safi::Unicast, Afi::Ipv6);
    let v6_over_v4 = (Afi::Ipv6, Safi::Unicast, Afi::Ipv4);
    let config = SessionConfig {
        capabilities: Capabilities {
            multiprotocol: [V4, V6].into(),
            extended_next_hop: [v4_over_v6, v6_over_v4].into(),
            ..config().capabilities
        },
        ..config()
    };
    let open = OpenInfo {
        capabilities: Capabilities {
            multiprotocol: [V4].into(),
            extended_next_hop: [v4_over_v6, v6_over_v4].into(),
            ..peer_open().capabilities
        },
        ..peer_open()
    };
    // IPv6 is not negotiated, so neither is its encoding.
    let negotiated = assert_accepted(config.clone(), open.clone());
    assert_eq!(negotiated.extended_next_hop, [v4_over_v6].into());
    let mut open = open;
    open.capabilities.extended_next_hop.clear();
    assert_eq!(
        assert_accepted(config, open).extended_next_hop,
        BTreeSet::new()
    );
}

#[test]
fn route_refresh_negotiation() {
    let open = |route_refresh| OpenInfo {
        capabilities: Capabilities {
            route_refresh,
            ..peer_open().capabilities
        },
        ..peer_open()
    };
    assert!(assert_accepted(config(), open(true)).route_refresh);
    assert!(!assert_accepted(config(), open(false)).route_refresh);
    let not_offered = SessionConfig {
        capabilities: Capabilities {
            route_refresh: false,
            ..config().capabilities
        },
        ..config()
    };
    assert!(!assert_accepted(not_offered, open(true)).route_refresh);
}

#[test]
fn hold_time_negotiation() {
    let hold = |ours: u16, theirs: u16| {
        let config = SessionConfig {
            hold_time: ours,
            ..config()
        };
        let negotiated = assert_accepted(
            config,
            OpenInfo {
                hold_time: theirs,
                ..peer_open()
            },
        );
        (negotiated.hold_time, negotiated.keepalive)
    };
    assert_eq!(hold(90, 30), (30, Duration::from_secs(10)));
    assert_eq!(hold(9, 90), (9, Duration::from_secs(3)));
    assert_eq!(hold(90, 3), (3, Duration::from_secs(1)));
    assert_eq!(
        hold(90, 4),
        (
            4,
            Duration::from_millis(1333) + Duration::from_nanos(333_333)
        )
    );
    assert_eq!(hold(0, 90), (0, Duration::ZERO));
    assert_eq!(hold(0, 0), (0, Duration::ZERO));
}

#[test]
fn hold_time_zero_runs_no_timers() {
    // Hold time 0 is accepted only when configured (see `hardening_tests.rs`).
    let zero_hold = SessionConfig {
        hold_time: 0,
        ..config()
    };
    let mut session = session_in(zero_hold, State::OpenSent);
    let open = OpenInfo {
        hold_time: 0,
        ..peer_open()
    };
    // The OpenSent hold timer goes, no keepalive timer starts.
    assert_eq!(
        session.handle(Event::BgpOpen(open)),
        [Action::SendKeepalive, stop(Timer::Hold)]
    );
    let negotiated = Negotiated {
        hold_time: 0,
        keepalive: Duration::ZERO,
        ..negotiated()
    };
    assert_eq!(
        session.handle(Event::KeepAliveMsg),
        [Action::Established(negotiated)]
    );
    assert_eq!(session.handle(Event::KeepAliveMsg), NOTHING);
    assert_eq!(session.handle(Event::UpdateMsg), NOTHING);
    // No timer runs, so none can expire.
    assert_eq!(session.handle(Event::HoldTimerExpires), NOTHING);
    assert_eq!(session.handle(Event::KeepaliveTimerExpires), NOTHING);
    assert_eq!(session.state(), State::Established);
    assert_eq!(
        session.handle(Event::ManualStop(shutdown())),
        teardown(Some(shutdown()), &[], DownReason::ManualStop)
    );
}

#[test]
fn update_outside_established_is_an_fsm_error() {
    let mut session = session_in(config(), State::OpenConfirm);
    assert_eq!(
        session.handle(Event::UpdateMsg),
        teardown(
            Some(NotificationInfo::new(5, 2, vec![])),
            &[Timer::Hold, Timer::Keepalive],
            fsm("UpdateMsg"),
        )
    );
}

#[test]
fn collision_winner_compares_identifiers_then_as() {
    let low = Ipv4Addr::new(10, 0, 0, 1);
    let high = Ipv4Addr::new(10, 0, 0, 2);
    assert_eq!(collision_winner(low, 65001, high, 65002), Side::Remote);
    assert_eq!(collision_winner(high, 65001, low, 65002), Side::Local);
    // As unsigned integers, not per octet text.
    assert_eq!(
        collision_winner(
            Ipv4Addr::new(9, 255, 255, 255),
            1,
            Ipv4Addr::new(10, 0, 0, 0),
            1
        ),
        Side::Remote
    );
    assert_eq!(
        collision_winner(
            Ipv4Addr::new(200, 0, 0, 0),
            1,
            Ipv4Addr::new(100, 255, 255, 255),
            1
        ),
        Side::Local
    );
    // Equal identifiers (between ASes, RFC 6286): the larger AS.
    assert_eq!(collision_winner(low, 65001, low, 65002), Side::Remote);
    assert_eq!(collision_winner(low, 65002, low, 65001), Side::Local);
}

/// The driver's collision procedure with two sessions to one peer: ours (outgoing) and the
/// peer's (incoming). Returns (outgoing, incoming) after resolution.
fn collide(peer_id: Ipv4Addr) -> (Session, Session) {
    let open = OpenInfo {
        router_id: peer_id,
        ..peer_open()
    };
    let mut outgoing = session_in(config(), State::OpenSent);
    // The peer's connection arrives while ours is in OpenSent: a second, passive session.
    let mut incoming = Session::new(passive_config()).unwrap();
    assert_eq!(incoming.handle(Event::AutomaticStart), NOTHING);
    incoming.handle(Event::TcpConnectionConfirmed);
    assert_eq!(incoming.state(), State::OpenSent);
    // The peer's OPEN arrives on its connection first.
    incoming.handle(Event::BgpOpen(open.clone()));
    assert_eq!(incoming.state(), State::OpenConfirm);
    let dump = |session: &mut Session| {
        assert_eq!(
            session.handle(Event::OpenCollisionDump).first(),
            Some(&Action::SendNotification(collision_cease()))
        );
        assert_eq!(session.state(), State::Idle);
    };
    if incoming.wins_collision().unwrap() {
        dump(&mut outgoing);
    } else {
        dump(&mut incoming);
        outgoing.handle(Event::BgpOpen(open));
        assert_eq!(outgoing.wins_collision(), Some(true));
    }
    (outgoing, incoming)
}

#[test]
fn collision_higher_peer_identifier_keeps_its_connection() {
    let (outgoing, mut incoming) = collide(Ipv4Addr::new(192, 0, 2, 200));
    assert_eq!(outgoing.state(), State::Idle);
    assert_eq!(incoming.state(), State::OpenConfirm);
    assert!(matches!(
        incoming.handle(Event::KeepAliveMsg).last(),
        Some(Action::Established(_))
    ));
}

#[test]
fn collision_higher_local_identifier_keeps_our_connection() {
    let (mut outgoing, incoming) = collide(Ipv4Addr::new(192, 0, 2, 0));
    assert_eq!(incoming.state(), State::Idle);
    assert_eq!(outgoing.state(), State::OpenConfirm);
    assert!(matches!(
        outgoing.handle(Event::KeepAliveMsg).last(),
        Some(Action::Established(_))
    ));
}

#[test]
fn wins_collision_needs_the_peer_open() {
    assert_eq!(session_in(config(), State::OpenSent).wins_collision(), None);
    assert_eq!(session_in(config(), State::Idle).wins_collision(), None);
    // Ours is the lower identifier: our connection loses.
    assert_eq!(
        session_in(config(), State::Established).wins_collision(),
        Some(false)
    );
}

#[test]
fn automatic_restart_is_damped() {
    let mut session = session_in(config(), State::OpenSent);
    let mut expected = Vec::new();
    // The peer rejects every OPEN: each failure doubles the IdleHold delay, up to 120 s.
    for _ in 0..8 {
        assert_eq!(session.state(), State::OpenSent);
        session.handle(Event::NotifMsg(peer_cease()));
        let delay = match session.handle(Event::AutomaticStart).as_slice() {
            [Action::StartTimer(Timer::IdleHold, delay)] => *delay,
            other => panic!("{other:?}"),
        };
        expected.push(delay.as_secs());
        // A second AutomaticStart while damped changes nothing.
        assert_eq!(session.handle(Event::AutomaticStart), NOTHING);
        assert_eq!(session.state(), State::Idle);
        assert_eq!(
            session.handle(Event::IdleHoldTimerExpires),
            [start(Timer::ConnectRetry, CONNECT_RETRY), Action::Connect]
        );
        session.handle(Event::TcpCrAcked);
    }
    assert_eq!(expected, [5, 10, 20, 40, 80, 120, 120, 120]);
    assert_eq!(session.connect_retry_counter(), 8);
    // Established resets the count: the next failure waits the base delay.
    session.handle(Event::BgpOpen(peer_open()));
    session.handle(Event::KeepAliveMsg);
    assert_eq!(session.connect_retry_counter(), 0);
    session.handle(Event::TcpConnectionFails);
    assert_eq!(
        session.handle(Event::AutomaticStart),
        [start(Timer::IdleHold, Duration::from_secs(5))]
    );
}

#[test]
fn manual_events_override_damping() {
    let mut session = session_in(config(), State::Established);
    session.handle(Event::HoldTimerExpires);
    assert_eq!(
        session.handle(Event::AutomaticStart),
        [start(Timer::IdleHold, Duration::from_secs(5))]
    );
    // The operator starts it now.
    assert_eq!(
        session.handle(Event::ManualStart),
        [
            stop(Timer::IdleHold),
            start(Timer::ConnectRetry, CONNECT_RETRY),
            Action::Connect,
        ]
    );
    assert_eq!(session.connect_retry_counter(), 0);
    // Or stops it for good: the pending restart is cancelled.
    let mut session = session_in(config(), State::Established);
    session.handle(Event::HoldTimerExpires);
    session.handle(Event::AutomaticStart);
    assert_eq!(
        session.handle(Event::ManualStop(shutdown())),
        [stop(Timer::IdleHold)]
    );
    assert_eq!(session.handle(Event::IdleHoldTimerExpires), NOTHING);
    assert_eq!(session.state(), State::Idle);
}

#[test]
fn hold_down_with_restart_after_stays_idle_then_restarts() {
    let mut session = session_in(config(), State::Established);
    session.handle(hold_down());
    assert_eq!(session.state(), State::Idle);
    assert!(session.held_down());
    // The driver's automatic restart after Down, and the neighbor's connections, do nothing.
    assert_eq!(session.handle(Event::AutomaticStart), NOTHING);
    assert_eq!(session.handle(Event::TcpConnectionConfirmed), NOTHING);
    assert_eq!(session.state(), State::Idle);
    // restart_after passed: the session starts, with no damping on top.
    assert_eq!(
        session.handle(Event::IdleHoldTimerExpires),
        [start(Timer::ConnectRetry, CONNECT_RETRY), Action::Connect]
    );
    assert!(!session.held_down());
    // A later failure is damped as usual again.
    session.handle(Event::TcpCrAcked);
    session.handle(Event::NotifMsg(peer_cease()));
    assert_eq!(session.state(), State::Idle);
    assert!(matches!(
        session.handle(Event::AutomaticStart).as_slice(),
        [Action::StartTimer(Timer::IdleHold, _)]
    ));
}

#[test]
fn hold_down_without_restart_after_waits_for_the_operator() {
    let mut session = session_in(config(), State::OpenConfirm);
    let actions = session.handle(Event::HoldDown {
        notification: max_prefixes(),
        restart_after: None,
    });
    assert_eq!(
        actions,
        teardown(
            Some(max_prefixes()),
            &[Timer::Hold, Timer::Keepalive],
            DownReason::HeldDown {
                restart_after: None
            }
        )
    );
    for event in [
        Event::AutomaticStart,
        Event::IdleHoldTimerExpires,
        Event::AutomaticStart,
    ] {
        assert_eq!(session.handle(event), NOTHING);
    }
    assert!(session.held_down());
    // `clear neighbor`: ManualStop (nothing to close in Idle), then ManualStart.
    assert_eq!(
        session.handle(Event::ManualStop(shutdown())),
        NOTHING,
        "no timer runs"
    );
    assert_eq!(
        session.handle(Event::ManualStart),
        [start(Timer::ConnectRetry, CONNECT_RETRY), Action::Connect]
    );
    assert!(!session.held_down());
}

#[test]
fn hold_down_replaces_a_pending_damped_restart() {
    let mut session = session_in(config(), State::Established);
    session.handle(Event::HoldTimerExpires);
    session.handle(Event::AutomaticStart);
    // Damped restart pending; a hold-down until cleared cancels it, a timed one replaces it.
    let mut forever = session.clone();
    assert_eq!(
        forever.handle(Event::HoldDown {
            notification: max_prefixes(),
            restart_after: None,
        }),
        [stop(Timer::IdleHold)]
    );
    assert_eq!(forever.handle(Event::IdleHoldTimerExpires), NOTHING);
    assert_eq!(
        session.handle(hold_down()),
        [start(Timer::IdleHold, RESTART_AFTER)]
    );
    assert_eq!(
        session.handle(Event::IdleHoldTimerExpires),
        [start(Timer::ConnectRetry, CONNECT_RETRY), Action::Connect]
    );
}

#[test]
fn clear_resets_a_running_session_and_restarts_it_at_once() {
    let mut session = session_in(config(), State::Established);
    session.handle(hold_down());
    session.handle(Event::IdleHoldTimerExpires);
    session.handle(Event::TcpCrAcked);
    session.handle(Event::BgpOpen(peer_open()));
    session.handle(Event::KeepAliveMsg);
    assert_eq!(session.state(), State::Established);
    // What the driver does for `clear neighbor`: ManualStop with Administrative Reset, the
    // AutomaticStart it feeds after every Down, then ManualStart.
    let reset = NotificationInfo::cease(CeaseSubcode::AdministrativeReset, None);
    let actions = session.handle(Event::ManualStop(reset.clone()));
    assert_eq!(actions[0], Action::SendNotification(reset));
    assert_eq!(
        session.handle(Event::AutomaticStart),
        [start(Timer::ConnectRetry, CONNECT_RETRY), Action::Connect],
        "no damping after an operator's stop"
    );
    assert_eq!(session.handle(Event::ManualStart), NOTHING);
    assert_eq!(session.state(), State::Connect);
}

#[test]
fn damping_disabled() {
    let config = SessionConfig {
        idle_hold_time: Duration::ZERO,
        ..config()
    };
    let mut session = session_in(config, State::Established);
    session.handle(Event::HoldTimerExpires);
    assert_eq!(
        session.handle(Event::AutomaticStart),
        [start(Timer::ConnectRetry, CONNECT_RETRY), Action::Connect]
    );
}

#[test]
fn connect_retry_counter() {
    // Incremented by failures, zeroed by a manual stop.
    let mut session = session_in(config(), State::OpenSent);
    session.handle(Event::HoldTimerExpires);
    assert_eq!(session.connect_retry_counter(), 1);
    session.handle(Event::AutomaticStart);
    session.handle(Event::IdleHoldTimerExpires);
    session.handle(Event::ManualStop(shutdown()));
    assert_eq!(session.connect_retry_counter(), 0);
    // A version error before Established is not counted (RFC 4271 8.2.2).
    let mut session = session_in(config(), State::OpenSent);
    session.handle(Event::AutomaticStop(max_prefixes()));
    assert_eq!(session.connect_retry_counter(), 1);
    session.handle(Event::AutomaticStart);
    session.handle(Event::IdleHoldTimerExpires);
    session.handle(Event::TcpCrAcked);
    session.handle(Event::notification(version_err()));
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.connect_retry_counter(), 1);
}

#[test]
fn config_validation() {
    let invalid = |config: SessionConfig| Session::new(config).unwrap_err();
    assert_eq!(
        invalid(SessionConfig {
            hold_time: 2,
            ..config()
        }),
        ConfigError::HoldTime(2)
    );
    assert_eq!(
        invalid(SessionConfig {
            local_as: 0,
            ..config()
        }),
        ConfigError::ZeroAs
    );
    assert_eq!(
        invalid(SessionConfig {
            remote_as: RemoteAs::Exact(0),
            ..config()
        }),
        ConfigError::ZeroAs
    );
    assert_eq!(
        invalid(SessionConfig {
            router_id: Ipv4Addr::UNSPECIFIED,
            ..config()
        }),
        ConfigError::ZeroRouterId
    );
    assert_eq!(
        invalid(SessionConfig {
            connect_retry: Duration::ZERO,
            ..config()
        }),
        ConfigError::ZeroConnectRetry
    );
    for hold_time in [0, 3, 90] {
        Session::new(SessionConfig {
            hold_time,
            ..config()
        })
        .unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// NOTIFICATION helpers and events
// ---------------------------------------------------------------------------------------------

#[test]
fn cease_shutdown_communication() {
    // Empty message: a zero length octet.
    assert_eq!(
        NotificationInfo::cease(CeaseSubcode::AdministrativeShutdown, Some("")).data,
        [0u8]
    );
    assert_eq!(
        NotificationInfo::cease(CeaseSubcode::AdministrativeShutdown, None).data,
        [0u8; 0]
    );
    // Only Administrative Shutdown and Reset carry one.
    assert_eq!(
        NotificationInfo::cease(CeaseSubcode::PeerDeConfigured, Some("bye")),
        NotificationInfo::new(6, 3, vec![])
    );
    // Truncated to 255 bytes on a character boundary: 'é' is 2 bytes, so 127 of them.
    let long = "é".repeat(300);
    let cease = NotificationInfo::cease(CeaseSubcode::AdministrativeReset, Some(&long));
    assert_eq!(cease.data[0], 254);
    assert_eq!(cease.data.len(), 255);
    assert_eq!(cease.shutdown_message(), Some("é".repeat(127).as_str()));
    let ascii = "a".repeat(300);
    let cease = NotificationInfo::cease(CeaseSubcode::AdministrativeShutdown, Some(&ascii));
    assert_eq!(cease.data[0], 255);
    assert_eq!(cease.shutdown_message(), Some(&ascii[..255]));
}

#[test]
fn shutdown_message_decoding() {
    let cease = |subcode, data: &[u8]| NotificationInfo::new(6, subcode, data.to_vec());
    assert_eq!(cease(2, b"\x05hello").shutdown_message(), Some("hello"));
    // Trailing bytes past the length are not part of it.
    assert_eq!(cease(4, b"\x02hello").shutdown_message(), Some("he"));
    assert_eq!(cease(2, b"").shutdown_message(), None);
    assert_eq!(cease(2, b"\x00").shutdown_message(), None);
    // Length past the data, invalid UTF-8.
    assert_eq!(cease(2, b"\x09hello").shutdown_message(), None);
    assert_eq!(cease(2, b"\x02\xff\xfe").shutdown_message(), None);
    // Not a subcode with a Shutdown Communication, not a Cease.
    assert_eq!(cease(3, b"\x05hello").shutdown_message(), None);
    assert_eq!(
        NotificationInfo::new(2, 2, b"\x05hello".to_vec()).shutdown_message(),
        None
    );
}

#[test]
fn cease_subcodes() {
    for subcode in 1..=10 {
        let cease = CeaseSubcode::try_from(subcode).unwrap();
        assert_eq!(cease as u8, subcode);
        assert_eq!(
            NotificationInfo::cease(cease, None).cease_subcode(),
            Some(cease)
        );
    }
    assert_eq!(CeaseSubcode::try_from(0), Err(0));
    assert_eq!(CeaseSubcode::try_from(11), Err(11));
    assert_eq!(NotificationInfo::hold_timer_expired().cease_subcode(), None);
}

#[test]
fn cease_max_prefixes_data() {
    assert_eq!(
        NotificationInfo::cease_max_prefixes(Afi::Ipv6, Safi::Unicast, 0x0001_0203),
        NotificationInfo::new(6, 1, vec![0, 2, 1, 0, 1, 2, 3])
    );
}

#[test]
fn notification_display() {
    let shown = |notification: NotificationInfo| notification.to_string();
    assert_eq!(
        shown(NotificationInfo::hold_timer_expired()),
        "4/0 (Hold Timer Expired)"
    );
    assert_eq!(
        shown(shutdown()),
        "6/2 (Cease / Administrative Shutdown) \"maintenance\""
    );
    // Control characters are escaped, not written to the log.
    assert_eq!(
        shown(NotificationInfo::cease(
            CeaseSubcode::AdministrativeShutdown,
            Some("a\nb")
        )),
        "6/2 (Cease / Administrative Shutdown) \"a\\nb\""
    );
    assert_eq!(
        shown(header_err()),
        "1/2 (Message Header Error / Bad Message Length) [2 bytes of data]"
    );
    assert_eq!(
        shown(fsm_err(2)),
        "5/2 (Finite State Machine Error / Receive Unexpected Message in OpenConfirm State)"
    );
    assert_eq!(
        shown(NotificationInfo::new(3, 99, vec![])),
        "3/99 (UPDATE Message Error)"
    );
    assert_eq!(shown(NotificationInfo::new(42, 1, vec![])), "42/1");
}

#[test]
fn received_notification_events() {
    assert_eq!(
        Event::notification(version_err()),
        Event::NotifMsgVerErr(version_err())
    );
    assert_eq!(
        Event::notification(peer_cease()),
        Event::NotifMsg(peer_cease())
    );
    // Other OPEN errors are plain NotifMsg.
    let bad_as = NotificationInfo::new(2, 2, vec![]);
    assert_eq!(Event::notification(bad_as.clone()), Event::NotifMsg(bad_as));
}

#[test]
fn event_numbers_and_names() {
    let events = all_events();
    let numbers: Vec<Option<u8>> = events.iter().map(Event::number).collect();
    assert_eq!(
        numbers,
        [
            1, 2, 3, 8, 9, 10, 11, 13, 16, 17, 18, 19, 21, 22, 23, 24, 25, 26, 27, 28
        ]
        .map(Some)
        .into_iter()
        .chain([None, None])
        .collect::<Vec<_>>()
    );
    let names: BTreeSet<&str> = events.iter().map(Event::name).collect();
    assert_eq!(names.len(), events.len());
}

// ---------------------------------------------------------------------------------------------
// Exhaustive walk of short event sequences
// ---------------------------------------------------------------------------------------------

/// Feeds every event sequence of length `depth` to `session` and checks, after each event,
/// the invariants a driver relies on.
fn walk(session: &Session, timers: &BTreeSet<Timer>, depth: usize) {
    if depth == 0 {
        return;
    }
    let config = session.config().clone();
    for event in all_events() {
        let mut session = session.clone();
        let mut timers = timers.clone();
        let from = session.state();
        let name = event.name();
        let stale = event.timer().is_some_and(|timer| !timers.remove(&timer));
        let actions = session.handle(event);
        let to = session.state();
        let context = format!("{from} + {name} -> {to}: {actions:?}");
        if stale {
            assert!(actions.is_empty(), "stale expiry acted: {context}");
        }
        for action in &actions {
            match action {
                Action::StartTimer(timer, duration) => {
                    assert!(!duration.is_zero(), "{context}");
                    timers.insert(*timer);
                }
                Action::StopTimer(timer) => {
                    assert!(timers.remove(timer), "stopped a stopped timer: {context}")
                }
                Action::Connect => {
                    assert!(!config.passive, "a passive session connects: {context}")
                }
                _ => {}
            }
        }
        // The session's idea of running timers is the driver's.
        for timer in [
            Timer::ConnectRetry,
            Timer::Hold,
            Timer::Keepalive,
            Timer::IdleHold,
        ] {
            assert_eq!(
                session.timers.contains(timer),
                timers.contains(&timer),
                "{timer:?}: {context}"
            );
        }
        // Down: exactly on entering Idle, last, right after Disconnect.
        let downs = actions
            .iter()
            .filter(|action| matches!(action, Action::Down { .. }))
            .count();
        assert_eq!(
            downs,
            usize::from(from != State::Idle && to == State::Idle),
            "{context}"
        );
        if downs == 1 {
            assert!(
                matches!(actions[..], [.., Action::Disconnect, Action::Down { .. }]),
                "{context}"
            );
        }
        // Each state's timers.
        let hold = config.hold_time != 0;
        let expected: BTreeSet<Timer> = match to {
            State::Idle => timers
                .intersection(&[Timer::IdleHold].into())
                .copied()
                .collect(),
            State::Connect => [Timer::ConnectRetry].into(),
            State::Active if config.passive => [].into(),
            State::Active => [Timer::ConnectRetry].into(),
            State::OpenSent => [Timer::Hold].into(),
            State::OpenConfirm | State::Established if hold => {
                [Timer::Hold, Timer::Keepalive].into()
            }
            State::OpenConfirm | State::Established => [].into(),
        };
        assert_eq!(timers, expected, "timers in {to}: {context}");
        assert_eq!(
            session.negotiated().is_some(),
            matches!(to, State::OpenConfirm | State::Established),
            "{context}"
        );
        assert_eq!(
            session.initiator().is_some(),
            matches!(
                to,
                State::OpenSent | State::OpenConfirm | State::Established
            ),
            "{context}"
        );
        // Nothing is sent to a peer before our OPEN.
        if matches!(from, State::Idle | State::Connect | State::Active) {
            assert!(
                !actions.iter().any(|action| matches!(
                    action,
                    Action::SendNotification(_) | Action::SendKeepalive
                )),
                "{context}"
            );
        }
        walk(&session, &timers, depth - 1);
    }
}

/// The timers running in a session set up by `session_in`.
fn running(session: &Session) -> BTreeSet<Timer> {
    [
        Timer::ConnectRetry,
        Timer::Hold,
        Timer::Keepalive,
        Timer::IdleHold,
    ]
    .into_iter()
    .filter(|&timer| session.timers.contains(timer))
    .collect()
}

#[test]
fn exhaustive_short_sequences() {
    let zero_hold = SessionConfig {
        hold_time: 0,
        ..config()
    };
    for config in [config(), passive_config(), zero_hold] {
        for state in [
            State::Idle,
            State::Connect,
            State::Active,
            State::OpenSent,
            State::OpenConfirm,
            State::Established,
        ] {
            if config.passive && state == State::Connect {
                continue;
            }
            let session = session_in(config.clone(), state);
            let depth = if state == State::Idle { 4 } else { 3 };
            walk(&session, &running(&session), depth);
        }
    }
}

/// Graceful restart (RFC 4724): our OPEN carries the configured capability; the session
/// negotiates it only when the peer sent one too, with N only when both did.
#[test]
fn graceful_restart_is_sent_and_negotiated() {
    use crate::bgp::graceful_restart::{GracefulRestartCapability, GracefulRestartFamily};
    let capability = |notification: bool, forwarding: bool| GracefulRestartCapability {
        restarted: false,
        notification,
        restart_time: 120,
        families: vec![GracefulRestartFamily {
            afi: Afi::Ipv4,
            safi: Safi::Unicast,
            forwarding,
        }],
    };
    let mut config = config();
    config.capabilities.graceful_restart = Some(capability(true, false));
    let mut session = Session::new(config.clone()).unwrap();
    session.handle(Event::ManualStart);
    let actions = session.handle(Event::TcpCrAcked);
    let Some(Action::SendOpen(open)) = actions.iter().find(|a| matches!(a, Action::SendOpen(_)))
    else {
        panic!("no OPEN sent: {actions:?}");
    };
    assert_eq!(
        open.capabilities.graceful_restart,
        Some(capability(true, false))
    );
    let established = |peer: Option<GracefulRestartCapability>| {
        let mut session = Session::new(config.clone()).unwrap();
        let mut open = peer_open();
        open.capabilities.graceful_restart = peer;
        for event in [Event::ManualStart, Event::TcpCrAcked, Event::BgpOpen(open)] {
            session.handle(event);
        }
        let actions = session.handle(Event::KeepAliveMsg);
        match actions.last() {
            Some(Action::Established(negotiated)) => negotiated.graceful_restart.clone(),
            other => panic!("not established: {other:?}"),
        }
    };
    assert_eq!(established(None), None);
    let with_n = established(Some(capability(true, true))).unwrap();
    assert!(with_n.notification);
    assert!(with_n.forwarding_preserved(Afi::Ipv4));
    assert_eq!(with_n.families, [V4].into());
    let without_n = established(Some(capability(false, false))).unwrap();
    assert!(!without_n.notification);
    assert!(!without_n.forwarding_preserved(Afi::Ipv4));
}
