//! Scenarios: the happy paths to Established, timer expiries, failures of the transport.

use super::*;

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
