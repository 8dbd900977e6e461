//! `cargo +nightly fuzz run -s none peering_sequence`: the connections of one peer (bgp/fsm/
//! peering.rs: collisions, the second session, restarts, hold-downs) fed long sequences of
//! events on either connection, incoming connections, stops, hold-downs and clears, as the
//! session task drives them. It must never panic (the debug assertions in peering.rs are on)
//! and never have both connections Established at once; an `Established` action is only ever
//! emitted for a connection whose session is then Established.
#![no_main]

use std::{net::Ipv4Addr, time::Duration};

use libfuzzer_sys::fuzz_target;
use router_agent::bgp::fsm::{
    Action, CeaseSubcode, Conn, Event, Incoming, NotificationInfo, OpenInfo, Peering, RemoteAs,
    Restart, SessionConfig, State,
};

const LOCAL_AS: u32 = 65001;
const PEER_AS: u32 = 65002;

fn cease() -> NotificationInfo {
    NotificationInfo::cease(CeaseSubcode::AdministrativeShutdown, None)
}

/// A valid OPEN from the peer, with a BGP Identifier below or above ours (who wins
/// collisions) and a hold time from the op.
fn peer_open(config: &SessionConfig, op: u8) -> OpenInfo {
    let mut capabilities = config.capabilities.clone();
    capabilities.four_octet_as = Some(PEER_AS);
    OpenInfo {
        version: 4,
        my_as: PEER_AS,
        hold_time: [90, 0, 3, 240][usize::from((op >> 5) & 3)],
        router_id: if op & 0x80 != 0 {
            Ipv4Addr::new(192, 0, 2, 200)
        } else {
            Ipv4Addr::new(192, 0, 2, 2)
        },
        capabilities,
    }
}

fn event(op: u8, config: &SessionConfig) -> Option<Event> {
    Some(match op % 16 {
        0 => Event::ManualStart,
        1 => Event::AutomaticStart,
        2 => Event::ConnectRetryTimerExpires,
        3 => Event::HoldTimerExpires,
        4 => Event::KeepaliveTimerExpires,
        5 => Event::IdleHoldTimerExpires,
        6 => Event::TcpCrAcked,
        7 => Event::TcpConnectionConfirmed,
        8 => Event::TcpConnectionFails,
        9 => Event::BgpOpen(peer_open(config, op)),
        10 => Event::KeepAliveMsg,
        11 => Event::UpdateMsg,
        12 => Event::notification(cease()),
        13 => Event::OpenCollisionDump,
        14 => Event::AutomaticStop(cease()),
        _ => return None,
    })
}

fn check(peering: &Peering, actions: &[(Conn, Action)]) {
    let established =
        |conn| peering.session(conn).map(|session| session.state()) == Some(State::Established);
    assert!(
        !(established(Conn::Primary) && established(Conn::Second)),
        "both connections Established: {actions:?}"
    );
    for (conn, action) in actions {
        if matches!(action, Action::Established(_)) {
            assert!(established(*conn), "{conn:?} Established? {actions:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, ops)) = data.split_first() else {
        return;
    };
    let mut config = SessionConfig::new(
        LOCAL_AS,
        RemoteAs::Exact(PEER_AS),
        Ipv4Addr::new(192, 0, 2, 100),
    );
    config.passive = setup & 1 != 0;
    config.hold_time = [90, 0, 3, 9][usize::from((setup >> 1) & 3)];
    let restart = if setup & 8 != 0 {
        Restart::Never
    } else {
        Restart::Always
    };
    let mut peering = Peering::new(config.clone(), restart).expect("a valid configuration");
    for &op in ops {
        let actions = match op % 20 {
            16 => match peering.incoming() {
                // The driver attaches the connection, then confirms it to its session.
                Incoming::Accept { conn, .. } => {
                    peering.handle(conn, Event::TcpConnectionConfirmed)
                }
                Incoming::Refuse { .. } => Vec::new(),
            },
            17 => peering.stop(cease()),
            18 => peering.hold_down(
                NotificationInfo::cease(CeaseSubcode::MaximumPrefixesReached, None),
                (op & 0x80 != 0).then(|| Duration::from_secs(60)),
            ),
            19 => peering.clear(cease()),
            _ => {
                let Some(event) = event(op, &config) else {
                    continue;
                };
                let conn = if op & 0x40 != 0 {
                    Conn::Second
                } else {
                    Conn::Primary
                };
                peering.handle(conn, event)
            }
        };
        check(&peering, &actions);
    }
});
