//! `cargo +nightly fuzz run -s none fsm_sequence`: the sans-IO session FSM (bgp/fsm.rs) fed
//! long sequences of events, as the session task would feed them: timer expiries (current and
//! stale), TCP events, operator and max-prefix events, and messages decoded by the codec from
//! fuzzed bytes (OPENs with any capabilities, malformed ones, NOTIFICATIONs...), mapped to
//! events the way bgp/peer.rs maps them. It must never panic, and the driver contract of
//! bgp/fsm.rs holds after every step (the same invariants as fsm/tests.rs's exhaustive walk,
//! over sequences far longer than that walk's three or four events).
#![no_main]

use std::{collections::BTreeSet, net::Ipv4Addr, time::Duration};

use libfuzzer_sys::fuzz_target;
use router_agent::bgp::{
    fsm::{
        Action, CeaseSubcode, Event, NotificationInfo, OpenInfo, RemoteAs, Session, SessionConfig,
        State, Timer,
    },
    packet::{Codec, MAX_MESSAGE_LEN, Message, MessageType},
};

const LOCAL_AS: u32 = 65001;
const PEER_AS: u32 = 65002;

/// The session's configuration, from the first byte: passive or not, hold time, remote AS.
fn config(byte: u8) -> SessionConfig {
    let remote_as = match (byte >> 3) % 3 {
        0 => RemoteAs::Exact(PEER_AS),
        1 => RemoteAs::External,
        _ => RemoteAs::Internal,
    };
    let mut config = SessionConfig::new(LOCAL_AS, remote_as, Ipv4Addr::new(192, 0, 2, 1));
    config.passive = byte & 1 != 0;
    config.hold_time = [90, 0, 3, 9][usize::from((byte >> 1) & 3)];
    config
}

/// A valid OPEN from the peer (so that sequences reach Established without the fuzzer having
/// to find one byte by byte).
fn peer_open(config: &SessionConfig, hold_time: u16) -> OpenInfo {
    let my_as = match config.remote_as {
        RemoteAs::Internal => LOCAL_AS,
        _ => PEER_AS,
    };
    let mut capabilities = config.capabilities.clone();
    capabilities.four_octet_as = Some(my_as);
    OpenInfo {
        version: 4,
        my_as,
        hold_time,
        router_id: Ipv4Addr::new(192, 0, 2, 2),
        capabilities,
    }
}

/// The event of a message decoded from `bytes` (type octet, then body), as bgp/peer.rs feeds
/// it: decoded messages by kind, decoding errors by the message's type.
fn message_event(bytes: &[u8], codec: &Codec) -> Option<Event> {
    let (&message_type, body) = bytes.split_first()?;
    let body = &body[..body.len().min(MAX_MESSAGE_LEN - 19)];
    let mut framed = vec![0xff; 16];
    framed.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    framed.push(message_type);
    framed.extend_from_slice(body);
    Some(match Message::decode(&framed, codec) {
        Ok(decoded) => match decoded.message {
            Message::Open(open) => Event::BgpOpen((&open).into()),
            Message::Keepalive => Event::KeepAliveMsg,
            Message::Notification(notification) => Event::notification((&notification).into()),
            Message::Update(_) => Event::UpdateMsg,
            Message::RouteRefresh(_) | Message::RouteRefreshUnknownFamily { .. } => {
                Event::RouteRefreshMsg
            }
        },
        Err(err) => {
            let notification = (&err.notification).into();
            match MessageType::from_u8(message_type) {
                Some(MessageType::Open) => Event::BgpOpenMsgErr(notification),
                Some(MessageType::Update) => Event::UpdateMsgErr(notification),
                _ => Event::BgpHeaderErr(notification),
            }
        }
    })
}

fn timer_of(event: &Event) -> Option<Timer> {
    match event {
        Event::ConnectRetryTimerExpires => Some(Timer::ConnectRetry),
        Event::HoldTimerExpires => Some(Timer::Hold),
        Event::KeepaliveTimerExpires => Some(Timer::Keepalive),
        Event::IdleHoldTimerExpires => Some(Timer::IdleHold),
        _ => None,
    }
}

/// Checks one step's actions against the driver contract; `timers` is the driver's view of
/// the running timers, updated here.
fn check_step(
    config: &SessionConfig,
    session: &Session,
    from: State,
    stale: bool,
    actions: &[Action],
    timers: &mut BTreeSet<Timer>,
) {
    let to = session.state();
    let context = || format!("{from} -> {to}: {actions:?}");
    if stale {
        assert!(actions.is_empty(), "stale expiry acted: {}", context());
    }
    for action in actions {
        match action {
            Action::StartTimer(timer, duration) => {
                assert!(!duration.is_zero(), "{}", context());
                timers.insert(*timer);
            }
            Action::StopTimer(timer) => {
                assert!(
                    timers.remove(timer),
                    "stopped a stopped timer: {}",
                    context()
                )
            }
            Action::Connect => assert!(!config.passive, "a passive session connects"),
            Action::Established(_) => assert_eq!(to, State::Established, "{}", context()),
            _ => {}
        }
    }
    // Down: exactly on entering Idle, last, right after Disconnect.
    let downs = actions
        .iter()
        .filter(|action| matches!(action, Action::Down { .. }))
        .count();
    assert_eq!(
        downs,
        usize::from(from != State::Idle && to == State::Idle),
        "{}",
        context()
    );
    if downs == 1 {
        assert!(
            matches!(actions, [.., Action::Disconnect, Action::Down { .. }]),
            "{}",
            context()
        );
    }
    // Each state's timers.
    // The negotiated hold time: the smaller proposal (ours or the peer's OPEN's).
    let hold = session.negotiated().is_some_and(|n| n.hold_time != 0);
    let expected: BTreeSet<Timer> = match to {
        State::Idle => timers
            .intersection(&[Timer::IdleHold].into())
            .copied()
            .collect(),
        State::Connect => [Timer::ConnectRetry].into(),
        State::Active if config.passive => [].into(),
        State::Active => [Timer::ConnectRetry].into(),
        State::OpenSent => [Timer::Hold].into(),
        State::OpenConfirm | State::Established if hold => [Timer::Hold, Timer::Keepalive].into(),
        State::OpenConfirm | State::Established => [].into(),
    };
    assert_eq!(*timers, expected, "timers in {to}: {}", context());
    assert_eq!(
        session.negotiated().is_some(),
        matches!(to, State::OpenConfirm | State::Established),
        "{}",
        context()
    );
    // Nothing is sent to a peer before our OPEN.
    if matches!(from, State::Idle | State::Connect | State::Active) {
        assert!(
            !actions.iter().any(|action| matches!(
                action,
                Action::SendNotification(_) | Action::SendKeepalive
            )),
            "{}",
            context()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut rest)) = data.split_first() else {
        return;
    };
    let config = config(setup);
    let mut session = Session::new(config.clone()).expect("a valid configuration");
    let mut timers = BTreeSet::new();
    let mut codec = Codec::default();
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        let event = match op % 20 {
            0 => Event::ManualStart,
            1 => Event::ManualStop(NotificationInfo::cease(
                CeaseSubcode::AdministrativeShutdown,
                Some("fuzz"),
            )),
            2 => Event::AutomaticStart,
            3 => Event::AutomaticStop(NotificationInfo::cease(
                CeaseSubcode::MaximumPrefixesReached,
                None,
            )),
            4 => Event::ConnectRetryTimerExpires,
            5 => Event::HoldTimerExpires,
            6 => Event::KeepaliveTimerExpires,
            7 => Event::IdleHoldTimerExpires,
            8 => Event::TcpCrAcked,
            9 => Event::TcpConnectionConfirmed,
            10 => Event::TcpConnectionFails,
            11 => Event::OpenCollisionDump,
            12 => Event::HoldDown {
                notification: NotificationInfo::cease(CeaseSubcode::MaximumPrefixesReached, None),
                restart_after: (op & 0x80 != 0).then(|| Duration::from_secs(60)),
            },
            13 => Event::KeepAliveMsg,
            14 => Event::UpdateMsg,
            15 => Event::RouteRefreshMsg,
            16 => Event::BgpOpen(peer_open(&config, u16::from(op >> 5) * 30)),
            // What an OPEN exchange negotiates for the messages after it.
            17 => {
                codec = Codec::FOUR_OCTET_AS;
                continue;
            }
            // A message from fuzzed bytes: a length octet, then that many bytes.
            _ => {
                let Some((&len, tail)) = rest.split_first() else {
                    return;
                };
                let len = usize::from(len).min(tail.len());
                let (message, tail) = tail.split_at(len);
                rest = tail;
                let Some(event) = message_event(message, &codec) else {
                    continue;
                };
                event
            }
        };
        let from = session.state();
        let stale = timer_of(&event).is_some_and(|timer| !timers.remove(&timer));
        let actions = session.handle(event);
        check_step(&config, &session, from, stale, &actions, &mut timers);
    }
});
