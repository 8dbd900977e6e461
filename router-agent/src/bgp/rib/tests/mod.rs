//! RIB tests; this module holds the fixtures they share.

mod limits;
mod model;
mod peers;
mod scale;
mod selection;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::bgp::packet::types::{AsPath, AsSegment, AsSegmentKind, Origin};
use crate::bgp::policy::{Filter, MaxPrefix, MaxPrefixAction};

mod next_hop_sanity;

const LOCAL_AS: u32 = 65000;

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn tor(id: u32, remote_as: u32) -> PeerInfo {
    PeerInfo {
        id: PeerId(id),
        address: IpAddr::V4(Ipv4Addr::new(10, 0, id as u8, 1)),
        router_id: Ipv4Addr::new(192, 0, 2, id as u8),
        remote_as,
        local_as: LOCAL_AS,
        ebgp: remote_as != LOCAL_AS,
        ifindex: Some(100 + id),
        own_next_hops_only: false,
    }
}

fn accept_all() -> ImportPolicy {
    ImportPolicy {
        filter: Filter::All,
        max_prefix: None,
    }
}

fn attrs(asns: &[u32]) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: AsPath {
            segments: vec![AsSegment {
                kind: AsSegmentKind::Sequence,
                asns: asns.to_vec(),
            }],
        },
        ..Default::default()
    }
}

fn spec(peer: &PeerInfo, attrs: PathAttributes) -> PathSpec {
    PathSpec {
        attrs: Arc::new(attrs),
        next_hop: NextHop::new(peer.address),
    }
}

/// Two ToRs in different ASes, both accepting everything.
fn dual_homed() -> (Rib, PeerInfo, PeerInfo) {
    let mut rib = Rib::default();
    let (a, b) = (tor(1, 65001), tor(2, 65002));
    rib.peer_up(a.clone(), accept_all()).unwrap();
    rib.peer_up(b.clone(), accept_all()).unwrap();
    (rib, a, b)
}

fn installed_peers(change: &LocRibChange) -> Vec<PeerId> {
    change
        .best
        .as_ref()
        .map(|best| best.paths.iter().map(|path| path.peer).collect())
        .unwrap_or_default()
}
