//! The helper end to end inside the speaker: session events in, RIB and FIB out (no
//! sockets: the peer's task is replaced by a channel the test reads).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::sync::mpsc;

use super::super::Speaker;
use crate::bgp::packet::types::Afi;
use crate::bgp::{
    config::BgpConfig,
    fsm::{CeaseSubcode, DownReason, Negotiated, NotificationInfo},
    graceful_restart::{GracefulRestartCapability, NegotiatedGracefulRestart, session::hard_reset},
    packet::{
        Update,
        types::{AsPath, AsSegment, AsSegmentKind, MpReach, Origin, PathAttributes, Safi},
    },
    peer::{PeerCommand, PeerEvent, SessionEvent},
    rib::PeerId,
};
use crate::fib::{Batch, Fib, FibLimits, LinkState, Owner};
use crate::next_hop_check::Unresolved;

const PEER: PeerId = PeerId(0);
const GATEWAY_V4: &str = "10.0.1.1";
const GATEWAY_V6: &str = "2001:db8:1::1";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

/// 10.0.1.0/24 and 2001:db8:1::/64 are on interface 101.
fn resolver(via: IpAddr) -> Result<u32, Unresolved> {
    match via {
        IpAddr::V4(v4) if v4.octets()[..3] == [10, 0, 1] => Ok(101),
        IpAddr::V6(v6) if v6.segments()[..4] == [0x2001, 0xdb8, 1, 0] => Ok(101),
        _ => Err(Unresolved::NotConnected),
    }
}

struct Lab {
    speaker: Speaker,
    fib: Fib,
    batch: Batch,
    commands: mpsc::UnboundedReceiver<PeerCommand>,
}

impl Lab {
    /// A speaker with one neighbor (10.0.1.1, AS 65001, importing all) as `PEER`, its
    /// `[bgp.graceful_restart]` set by `graceful_restart` (TOML lines), `dynamic` if made
    /// by a dynamic range.
    fn new(graceful_restart: &str, dynamic: bool) -> Lab {
        let config: BgpConfig = toml::from_str(&format!(
            "asn = 65101\nrouter_id = \"10.255.0.1\"\n\
             [[neighbor]]\naddress = \"{GATEWAY_V4}\"\nremote_as = 65001\nimport = \"all\"\n\
             [[dynamic_neighbor]]\nrange = \"10.0.2.0/24\"\nremote_as = 65001\nimport = \"all\"\n\
             [graceful_restart]\n{graceful_restart}\n"
        ))
        .unwrap();
        let setup = config.compile().unwrap();
        let address = SocketAddr::new(ip(GATEWAY_V4), 179);
        let (speaker, commands) =
            Speaker::with_one_peer(setup, PEER, dynamic.then_some(0), address);
        let mut fib = Fib::new(FibLimits::default());
        let mut batch = Batch::default();
        let link = LinkState {
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
            up: true,
        };
        fib.update_link(&mut batch, 101, Some(link));
        for gateway in [GATEWAY_V4, GATEWAY_V6] {
            fib.update_neighbor(&mut batch, 101, ip(gateway), Some([2, 0, 0, 0, 0, 2]));
        }
        Lab {
            speaker,
            fib,
            batch,
            commands,
        }
    }

    fn event(&mut self, event: SessionEvent) {
        let event = PeerEvent::Session { peer: PEER, event };
        self.speaker
            .on_event(event, &mut self.fib, &mut self.batch, &resolver, &|_| None);
    }

    /// Established; the peer sent `peer_capability` (None: no GR capability).
    fn established(&mut self, peer_capability: Option<GracefulRestartCapability>) {
        let families = BTreeSet::from([(Afi::Ipv4, Safi::Unicast), (Afi::Ipv6, Safi::Unicast)]);
        let ours = self
            .speaker
            .session_config(&self.speaker.peers[&PEER].neighbor)
            .capabilities
            .graceful_restart;
        let negotiated = Negotiated {
            peer_as: 65001,
            peer_router_id: "10.255.0.2".parse().unwrap(),
            hold_time: 90,
            keepalive: Duration::from_secs(30),
            four_octet_as: true,
            families: families.clone(),
            route_refresh: true,
            extended_next_hop: BTreeSet::new(),
            graceful_restart: NegotiatedGracefulRestart::negotiate(
                ours.as_ref(),
                peer_capability.as_ref(),
                &families,
            ),
        };
        self.event(SessionEvent::Established {
            negotiated,
            local: SocketAddr::new(ip("10.0.1.2"), 40000),
            remote: SocketAddr::new(ip(GATEWAY_V4), 179),
        });
    }

    fn announce(&mut self, prefixes: &[&str]) {
        let attributes = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: AsPath {
                segments: vec![AsSegment {
                    kind: AsSegmentKind::Sequence,
                    asns: vec![65001],
                }],
            },
            ..PathAttributes::default()
        };
        let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = prefixes
            .iter()
            .map(|p| net(p))
            .partition(|p| p.addr().is_ipv4());
        if !v4.is_empty() {
            let update = Update {
                attributes: PathAttributes {
                    next_hop: Some(GATEWAY_V4.parse().unwrap()),
                    ..attributes.clone()
                },
                nlri: v4
                    .iter()
                    .map(|p| match p {
                        IpNet::V4(v4) => *v4,
                        IpNet::V6(_) => unreachable!(),
                    })
                    .collect(),
                ..Update::default()
            };
            self.update(update);
        }
        if !v6.is_empty() {
            let update = Update {
                attributes: attributes.clone(),
                mp_reach: Some(MpReach {
                    afi: Afi::Ipv6,
                    safi: Safi::Unicast,
                    next_hop: ip(GATEWAY_V6),
                    link_local_next_hop: None,
                    nlri: v6,
                }),
                ..Update::default()
            };
            self.update(update);
        }
    }

    fn update(&mut self, update: Update) {
        self.event(SessionEvent::Update {
            update: Box::new(update),
            error: None,
            credit: Default::default(),
        });
    }

    fn end_of_rib(&mut self, afi: Afi) {
        self.update(Update::end_of_rib(afi));
    }

    fn down(&mut self, cause: DownReason) {
        self.event(SessionEvent::Down {
            reason: cause.to_string(),
            cause,
        });
    }

    fn tick_after(&mut self, after: Duration) {
        let now = Instant::now() + after;
        self.speaker
            .on_tick(now, &mut self.fib, &mut self.batch, &resolver);
    }

    fn in_fib(&self, prefix: &str) -> bool {
        self.fib.installed_group(&net(prefix)).is_some()
    }

    /// Whether the peer's nexthop through `gateway` is usable (not failed).
    fn gateway_usable(&self, gateway: &str) -> Option<bool> {
        self.fib
            .nexthops()
            .find(|(key, _)| key.via == ip(gateway) && key.owner == Owner::Bgp(PEER.0))
            .map(|(_, usable)| usable)
    }

    fn stale(&self, prefix: &str) -> bool {
        self.speaker.rib.is_stale(PEER, &net(prefix))
    }
}

fn capability(notification: bool, families: &[(Afi, bool)]) -> GracefulRestartCapability {
    GracefulRestartCapability::unicast(notification, 120, families)
}

const BOTH: [(Afi, bool); 2] = [(Afi::Ipv4, false), (Afi::Ipv6, false)];
const BOTH_FORWARDING: [(Afi, bool); 2] = [(Afi::Ipv4, true), (Afi::Ipv6, true)];
const ROUTES: [&str; 3] = ["198.18.0.0/24", "198.18.1.0/24", "2001:db8:100::/48"];

/// Up with GR, three routes installed.
fn up(peer_capability: Option<GracefulRestartCapability>) -> Lab {
    let mut lab = Lab::new("", false);
    lab.established(peer_capability);
    lab.announce(&ROUTES);
    for route in ROUTES {
        assert!(lab.in_fib(route), "{route}");
    }
    lab
}

#[test]
fn a_connection_failure_keeps_the_routes_stale_and_forwarding() {
    let mut lab = up(Some(capability(true, &BOTH)));
    lab.down(DownReason::TcpConnectionFails);
    for route in ROUTES {
        assert!(lab.in_fib(route), "{route} kept");
        assert!(lab.stale(route), "{route} stale");
    }
    assert_eq!(lab.gateway_usable(GATEWAY_V4), Some(true), "not failed");
    assert_eq!(lab.gateway_usable(GATEWAY_V6), Some(true), "not failed");
    assert_eq!(lab.speaker.rib.stale_count(PEER), 3);
    // Hold timer expiry too, once back and down again.
    lab.established(Some(capability(true, &BOTH_FORWARDING)));
    lab.down(DownReason::HoldTimerExpired);
    assert!(lab.in_fib(ROUTES[0]));
    assert_eq!(lab.speaker.rib.stale_count(PEER), 3);
}

#[test]
fn without_graceful_restart_the_routes_go_at_once() {
    let mut lab = up(None);
    lab.down(DownReason::TcpConnectionFails);
    for route in ROUTES {
        assert!(!lab.in_fib(route), "{route} withdrawn");
    }
    assert_eq!(lab.speaker.rib.stale_count(PEER), 0);
    assert!(lab.speaker.rib.peer(PEER).is_none());
}

#[test]
fn graceful_restart_disabled_here_means_no_helper() {
    let mut lab = Lab::new("enabled = false", false);
    lab.established(Some(capability(true, &BOTH)));
    lab.announce(&ROUTES);
    lab.down(DownReason::TcpConnectionFails);
    assert!(!lab.in_fib(ROUTES[0]));
}

#[test]
fn notifications_keep_the_routes_only_with_n_and_never_a_hard_reset() {
    let admin_reset = NotificationInfo::cease(CeaseSubcode::AdministrativeReset, None);
    let cases = [
        (
            true,
            DownReason::NotificationReceived(admin_reset.clone()),
            true,
        ),
        (
            false,
            DownReason::NotificationReceived(admin_reset.clone()),
            false,
        ),
        (
            true,
            DownReason::NotificationReceived(hard_reset(admin_reset.clone())),
            false,
        ),
        (
            true,
            DownReason::ErrorDetected(NotificationInfo::new(3, 1, vec![])),
            true,
        ),
        (
            false,
            DownReason::ErrorDetected(NotificationInfo::new(3, 1, vec![])),
            false,
        ),
        // Our own stops are hard resets.
        (true, DownReason::ManualStop, false),
        (
            true,
            DownReason::HeldDown {
                restart_after: None,
            },
            false,
        ),
    ];
    for (peer_n, cause, kept) in cases {
        let mut lab = up(Some(capability(peer_n, &BOTH)));
        let label = format!("N {peer_n}, {cause}");
        lab.down(cause);
        assert_eq!(lab.in_fib(ROUTES[0]), kept, "{label}");
        assert_eq!(
            lab.gateway_usable(GATEWAY_V4) == Some(true),
            kept,
            "{label}"
        );
    }
}

#[test]
fn families_the_peer_does_not_preserve_are_withdrawn_at_once() {
    let mut lab = up(Some(capability(true, &[(Afi::Ipv4, false)])));
    lab.down(DownReason::TcpConnectionFails);
    assert!(lab.in_fib("198.18.0.0/24") && lab.stale("198.18.0.0/24"));
    assert!(!lab.in_fib("2001:db8:100::/48"));
}

#[test]
fn the_restart_time_runs_out_and_everything_goes() {
    let mut lab = up(Some(capability(true, &BOTH)));
    lab.down(DownReason::TcpConnectionFails);
    lab.tick_after(Duration::from_secs(119));
    assert!(lab.in_fib(ROUTES[0]), "still within the restart time");
    // Failed reconnection attempts do not restart the timer.
    lab.down(DownReason::TcpConnectionFails);
    lab.tick_after(Duration::from_secs(121));
    for route in ROUTES {
        assert!(!lab.in_fib(route), "{route} withdrawn");
    }
    assert_ne!(lab.gateway_usable(GATEWAY_V4), Some(true));
    assert_eq!(lab.speaker.rib.stale_count(PEER), 0);
    assert!(lab.speaker.peers[&PEER].restart.is_none());
}

#[test]
fn end_of_rib_sweeps_what_was_not_announced_again() {
    let mut lab = up(Some(capability(true, &BOTH)));
    lab.down(DownReason::TcpConnectionFails);
    while lab.commands.try_recv().is_ok() {}
    lab.established(Some(capability(true, &BOTH_FORWARDING)));
    // Our End-of-RIB for both families went out at once.
    let Ok(PeerCommand::Send(updates)) = lab.commands.try_recv() else {
        panic!("nothing sent at Established");
    };
    for afi in [Afi::Ipv4, Afi::Ipv6] {
        assert!(
            updates
                .iter()
                .any(|u| u.end_of_rib_family() == Some((afi, Safi::Unicast))),
            "{afi:?} End-of-RIB"
        );
    }
    lab.announce(&["198.18.0.0/24"]);
    assert!(!lab.stale("198.18.0.0/24"));
    assert!(lab.stale("198.18.1.0/24"));
    lab.end_of_rib(Afi::Ipv4);
    assert!(lab.in_fib("198.18.0.0/24"));
    assert!(!lab.in_fib("198.18.1.0/24"), "not announced again: swept");
    assert!(
        lab.in_fib("2001:db8:100::/48"),
        "IPv6 waits for its own End-of-RIB"
    );
    lab.end_of_rib(Afi::Ipv6);
    assert!(!lab.in_fib("2001:db8:100::/48"));
    assert!(lab.speaker.peers[&PEER].restart.is_none());
    assert_eq!(lab.speaker.rib.stale_count(PEER), 0);
}

#[test]
fn stale_routes_time_sweeps_without_end_of_rib() {
    let mut lab = Lab::new("stale_routes_time = \"30s\"", false);
    lab.established(Some(capability(true, &BOTH)));
    lab.announce(&ROUTES);
    lab.down(DownReason::TcpConnectionFails);
    lab.established(Some(capability(true, &BOTH_FORWARDING)));
    lab.announce(&["198.18.0.0/24"]);
    lab.tick_after(Duration::from_secs(29));
    assert!(lab.in_fib("198.18.1.0/24"));
    lab.tick_after(Duration::from_secs(31));
    assert!(lab.in_fib("198.18.0.0/24"), "announced again: kept");
    assert!(!lab.in_fib("198.18.1.0/24"));
    assert!(!lab.in_fib("2001:db8:100::/48"));
    assert!(lab.speaker.peers[&PEER].restart.is_none());
}

#[test]
fn back_without_f_bit_or_capability_drops_the_stale_routes_at_once() {
    let mut lab = up(Some(capability(true, &BOTH)));
    lab.down(DownReason::TcpConnectionFails);
    // F for IPv4 only.
    lab.established(Some(capability(
        true,
        &[(Afi::Ipv4, true), (Afi::Ipv6, false)],
    )));
    assert!(lab.in_fib("198.18.0.0/24"));
    assert!(!lab.in_fib("2001:db8:100::/48"));

    let mut lab = up(Some(capability(true, &BOTH)));
    lab.down(DownReason::TcpConnectionFails);
    lab.established(None);
    for route in ROUTES {
        assert!(!lab.in_fib(route), "{route}");
    }
    assert!(lab.speaker.peers[&PEER].restart.is_none());
}

#[test]
fn a_restarting_dynamic_peer_is_kept_until_its_timer_then_forgotten() {
    let mut lab = Lab::new("", true);
    lab.established(Some(capability(true, &BOTH)));
    lab.announce(&ROUTES);
    lab.down(DownReason::TcpConnectionFails);
    lab.event(SessionEvent::Closed);
    assert!(lab.speaker.peers[&PEER].session_ended);
    assert!(lab.in_fib(ROUTES[0]));
    lab.tick_after(Duration::from_secs(121));
    assert!(lab.speaker.peers.is_empty(), "forgotten");
    assert!(lab.speaker.rib.is_empty(), "nothing left in the RIB");
    assert!(!lab.in_fib(ROUTES[0]));
}

#[test]
fn a_dynamic_peer_without_graceful_restart_is_forgotten_when_its_session_ends() {
    let mut lab = Lab::new("", true);
    lab.established(None);
    lab.announce(&ROUTES);
    lab.down(DownReason::TcpConnectionFails);
    lab.event(SessionEvent::Closed);
    assert!(lab.speaker.peers.is_empty());
    assert!(lab.speaker.rib.is_empty());
}

#[test]
fn our_capability_is_in_the_session_config() {
    let lab = Lab::new("restart_time = \"90s\"\nnotification = false", false);
    let config = lab
        .speaker
        .session_config(&lab.speaker.peers[&PEER].neighbor);
    let capability = config.capabilities.graceful_restart.unwrap();
    assert_eq!(capability.restart_time, 90);
    assert!(!capability.notification && !capability.restarted);
    assert_eq!(capability.families.len(), 2);
    assert!(capability.families.iter().all(|f| !f.forwarding));
    let _unused: Option<Ipv6Addr> = None;
}

#[test]
fn show_neighbors_and_routes_tell_the_restart() {
    let mut lab = up(Some(capability(
        true,
        &[(Afi::Ipv4, true), (Afi::Ipv6, false)],
    )));
    let status = lab.speaker.neighbors()[0].graceful_restart.clone().unwrap();
    assert_eq!(status.peer_restart_time_seconds, 120);
    assert!(status.notification);
    assert_eq!(status.peer_families, ["ipv4", "ipv6"]);
    assert_eq!(status.peer_forwarding, ["ipv4"]);
    assert!(status.restarting.is_none());
    assert!(
        lab.speaker
            .routes()
            .iter()
            .all(|r| r.paths.iter().all(|p| !p.stale))
    );

    lab.down(DownReason::TcpConnectionFails);
    let status = lab.speaker.neighbors()[0].graceful_restart.clone().unwrap();
    let restarting = status.restarting.unwrap();
    assert_eq!(restarting.phase, "restarting");
    assert_eq!(restarting.stale_routes, 3);
    assert!((119..=120).contains(&restarting.seconds_left));
    let routes = lab.speaker.routes();
    assert!(routes.iter().all(|r| r.paths.iter().all(|p| p.stale)));

    lab.established(Some(capability(true, &BOTH_FORWARDING)));
    lab.announce(&["198.18.0.0/24"]);
    let restarting = lab.speaker.neighbors()[0]
        .graceful_restart
        .clone()
        .unwrap()
        .restarting
        .unwrap();
    assert_eq!(restarting.phase, "awaiting-end-of-rib");
    assert_eq!(restarting.stale_routes, 2);
    let fresh = lab
        .speaker
        .routes()
        .into_iter()
        .find(|r| r.prefix == net("198.18.0.0/24"))
        .unwrap();
    assert!(!fresh.paths[0].stale);
}

#[test]
fn our_hard_stop_of_a_restarting_peer_drops_its_routes() {
    let mut lab = up(Some(capability(true, &BOTH)));
    lab.down(DownReason::TcpConnectionFails);
    // A failed reconnection keeps them; the operator's stop does not.
    lab.down(DownReason::TcpConnectionFails);
    assert!(lab.in_fib(ROUTES[0]));
    lab.down(DownReason::ManualStop);
    assert!(!lab.in_fib(ROUTES[0]));
    assert!(lab.speaker.peers[&PEER].restart.is_none());
}

#[test]
fn a_planned_restart_of_ours_leaves_the_fib_alone() {
    let mut lab = up(None);
    lab.speaker.graceful_stop();
    assert!(matches!(
        lab.commands.try_recv(),
        Ok(PeerCommand::Send(_)) // the Established advertisement
    ));
    assert!(matches!(
        lab.commands.try_recv(),
        Ok(PeerCommand::GracefulStop(_))
    ));
    lab.down(DownReason::ManualStop);
    for route in ROUTES {
        assert!(lab.in_fib(route), "{route} kept for the next run");
    }
    assert_eq!(lab.gateway_usable(GATEWAY_V4), Some(true));
}

#[tokio::test]
async fn a_restarting_dynamic_peer_comes_back_under_the_same_id() {
    let mut lab = Lab::new("", true);
    lab.established(Some(capability(true, &BOTH)));
    lab.announce(&ROUTES);
    lab.down(DownReason::TcpConnectionFails);
    lab.event(SessionEvent::Closed);
    assert!(lab.speaker.peers[&PEER].session_ended);
    // Its new connection (any stream will do: the task is what is checked).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
    let (client, accepted) = tokio::join!(client, listener.accept());
    let (_client, (stream, _)) = (client.unwrap(), accepted.unwrap());
    lab.speaker
        .accept(stream, SocketAddr::new(ip(GATEWAY_V4), 50000));
    assert_eq!(lab.speaker.peers.len(), 1, "no second peer for the address");
    assert!(!lab.speaker.peers[&PEER].session_ended, "a task again");
    lab.established(Some(capability(true, &BOTH_FORWARDING)));
    lab.announce(&["198.18.0.0/24"]);
    lab.end_of_rib(Afi::Ipv4);
    lab.end_of_rib(Afi::Ipv6);
    assert!(lab.in_fib("198.18.0.0/24"));
    assert!(!lab.in_fib("198.18.1.0/24"));
    assert!(lab.speaker.peers[&PEER].restart.is_none());
}

#[test]
fn clearing_a_restarting_dynamic_peer_flushes_it_at_the_next_tick() {
    let mut lab = Lab::new("", true);
    lab.established(Some(capability(true, &BOTH)));
    lab.announce(&ROUTES);
    lab.down(DownReason::TcpConnectionFails);
    lab.event(SessionEvent::Closed);
    lab.speaker.clear(ip(GATEWAY_V4)).unwrap();
    lab.tick_after(Duration::ZERO);
    assert!(lab.speaker.peers.is_empty());
    assert!(!lab.in_fib(ROUTES[0]));
}
