//! State x event tables (RFC 4271 8.2.2, with the deviations documented in the FSM's module):
//! every event in every state, exact actions and next state.

use super::*;

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
