//! Exhaustive walk of short event sequences, checking after each event the invariants a
//! driver relies on.

use super::*;

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
