//! BFD's consumer inside the speaker (no sockets: the peer's task is a channel the test reads).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::sync::mpsc;

use super::super::Speaker;
use crate::bfd::{
    packet::{Diagnostic, State},
    runtime::{PeerKey, StateChange},
    session::SessionConfig,
};
use crate::bgp::{
    fsm::{CeaseSubcode, DownReason, Negotiated},
    packet::{
        Update,
        types::{Afi, AsPath, AsSegment, AsSegmentKind, Origin, PathAttributes, Safi},
    },
    peer::{PeerCommand, PeerEvent, SessionEvent},
    rib::PeerId,
};
use crate::fib::{Batch, Fib, FibLimits, LinkState, Owner};
use crate::next_hop_check::Unresolved;

const PEER: PeerId = PeerId(0);
const TOR: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);

fn resolver(via: IpAddr) -> Result<u32, Unresolved> {
    match via {
        IpAddr::V4(v4) if v4.octets()[..3] == [10, 0, 1] => Ok(101),
        _ => Err(Unresolved::NotConnected),
    }
}

struct Lab {
    speaker: Speaker,
    fib: Fib,
    commands: mpsc::UnboundedReceiver<PeerCommand>,
}

impl Lab {
    /// One neighbour (10.0.1.1, `bfd = true`), Established, with `routes` /32s via itself.
    fn up(routes: u32) -> Lab {
        let config: crate::config::Config = toml::from_str(&format!(
            "[bgp]\nasn = 65101\nrouter_id = \"10.255.0.1\"\n\
             [[bgp.neighbor]]\naddress = \"{TOR}\"\nremote_as = 65001\nimport = \"all\"\nbfd = true\n"
        ))
        .unwrap();
        let setup = config
            .bgp
            .as_ref()
            .unwrap()
            .compile_with_bfd(&config.bfd)
            .unwrap();
        let address = SocketAddr::new(TOR.into(), 179);
        let (speaker, commands) = Speaker::with_one_peer(setup, PEER, None, address);
        let mut lab = Lab {
            speaker,
            fib: Fib::new(FibLimits::default()),
            commands,
        };
        let mut batch = Batch::default();
        let link = LinkState {
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
            up: true,
        };
        lab.fib.update_link(&mut batch, 101, Some(link));
        lab.fib
            .update_neighbor(&mut batch, 101, TOR.into(), Some([2, 0, 0, 0, 0, 2]));
        let families = BTreeSet::from([(Afi::Ipv4, Safi::Unicast)]);
        lab.event(SessionEvent::Established {
            negotiated: Negotiated {
                peer_as: 65001,
                peer_router_id: "10.255.0.2".parse().unwrap(),
                hold_time: 9,
                keepalive: Duration::from_secs(3),
                four_octet_as: true,
                families,
                route_refresh: true,
                extended_next_hop: BTreeSet::new(),
                graceful_restart: None,
            },
            local: SocketAddr::new("10.0.1.2".parse().unwrap(), 40000),
            remote: address,
        });
        let update = Update {
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: AsPath {
                    segments: vec![AsSegment {
                        kind: AsSegmentKind::Sequence,
                        asns: vec![65001],
                    }],
                },
                next_hop: Some(TOR),
                ..PathAttributes::default()
            },
            nlri: (0..routes)
                .map(|i| {
                    format!("198.18.{}.{}/32", i / 256, i % 256)
                        .parse()
                        .unwrap()
                })
                .collect(),
            ..Update::default()
        };
        lab.event(SessionEvent::Update {
            update: Box::new(update),
            error: None,
            credit: Default::default(),
        });
        assert!(
            lab.fib
                .installed_group(&"198.18.0.0/32".parse().unwrap())
                .is_some()
        );
        // What Established sent (End-of-RIB, our routes).
        while lab.commands.try_recv().is_ok() {}
        lab
    }

    fn event(&mut self, event: SessionEvent) {
        let event = PeerEvent::Session { peer: PEER, event };
        let mut batch = Batch::default();
        self.speaker
            .on_event(event, &mut self.fib, &mut batch, &resolver, &|_| None);
    }

    /// A BFD state change; the batch it made.
    fn bfd(&mut self, from: State, to: State, diag: Diagnostic, path_failed: bool) -> Batch {
        let change = StateChange {
            key: PeerKey {
                address: TOR.into(),
                interface: None,
            },
            from,
            to,
            diag,
            path_failed,
        };
        let mut batch = Batch::default();
        self.speaker
            .on_bfd_change(&change, &mut self.fib, &mut batch);
        batch
    }

    fn usable(&self) -> Option<bool> {
        self.fib
            .nexthops()
            .find(|(key, _)| key.via == IpAddr::V4(TOR) && key.owner == Owner::Bgp(PEER.0))
            .map(|(_, usable)| usable)
    }
}

#[test]
fn the_neighbour_wants_a_session_from_the_start() {
    let lab = Lab::up(1);
    let sessions = lab.speaker.bfd_sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].key.address, IpAddr::V4(TOR));
    assert_eq!(sessions[0].config, SessionConfig::default());
}

#[test]
fn a_failed_path_fails_the_next_hop_in_one_write_whatever_the_table_size() {
    let mut sizes = Vec::new();
    for routes in [10, 2000] {
        let mut lab = Lab::up(routes);
        assert_eq!(lab.usable(), Some(true));
        let batch = lab.bfd(
            State::Up,
            State::Down,
            Diagnostic::ControlDetectionTimeExpired,
            true,
        );
        assert_eq!(lab.usable(), Some(false));
        assert!(
            batch.kernel.is_empty(),
            "no route changes: {:?}",
            batch.kernel
        );
        sizes.push(batch.len());
        // The session is torn down and held down (Cease / BFD Down).
        match lab.commands.try_recv() {
            Ok(PeerCommand::HoldDown {
                notification,
                restart_after: None,
            }) => assert_eq!(notification.subcode, CeaseSubcode::BfdDown as u8),
            other => panic!("{other:?}"),
        }
        // Its Down says why it stays down.
        lab.event(SessionEvent::Down {
            reason: "held down until cleared by the operator".into(),
            cause: DownReason::HeldDown {
                restart_after: None,
            },
        });
        let error = lab.speaker.neighbors()[0].last_error.clone().unwrap();
        assert_eq!(
            error,
            "BFD down: control detection time expired (held down until BFD is up)"
        );
        assert!(
            lab.fib
                .installed_group(&"198.18.0.0/32".parse().unwrap())
                .is_none()
        );

        // Back Up: the session restarts at once.
        lab.bfd(State::Init, State::Up, Diagnostic::NoDiagnostic, false);
        assert!(matches!(lab.commands.try_recv(), Ok(PeerCommand::Clear)));
    }
    assert_eq!(sizes[0], sizes[1], "the same writes for 10 and 2000 routes");
    assert!(sizes[0] > 0 && sizes[0] <= 4, "{sizes:?}");
}

#[test]
fn the_peer_going_admin_down_is_not_a_failure() {
    let mut lab = Lab::up(5);
    let batch = lab.bfd(
        State::Up,
        State::Down,
        Diagnostic::NeighborSignaledSessionDown,
        false,
    );
    assert!(batch.is_empty());
    assert_eq!(lab.usable(), Some(true));
    assert!(
        lab.commands.try_recv().is_err(),
        "the session is left alone"
    );
    // Nor does its return restart anything.
    lab.bfd(State::Down, State::Up, Diagnostic::NoDiagnostic, false);
    assert!(lab.commands.try_recv().is_err());
}
