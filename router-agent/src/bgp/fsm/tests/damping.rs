//! Restarts: damping of automatic restarts, max-prefix hold-down, clear, the retry counter,
//! and the configuration's validation.

use super::*;

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
