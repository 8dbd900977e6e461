//! Policy tests; this module holds the fixtures they share.

mod configuration;
mod exports;
mod imports;
mod prefix_lists;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::config::*;
use super::export::*;
use super::import::*;
use super::prefix_list::*;
use super::*;
use crate::bgp::packet::types::{AsPath, AsSegment, AsSegmentKind, Origin, PathAttributes};
use crate::bgp::rib::{NextHop, PathSpec, PeerId, PeerInfo, Rib};

const LOCAL_AS: u32 = 65000;

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn peer(id: u32, ebgp: bool) -> PeerInfo {
    PeerInfo {
        id: PeerId(id),
        address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8)),
        router_id: Ipv4Addr::new(192, 0, 2, id as u8),
        remote_as: if ebgp { 65100 + id } else { LOCAL_AS },
        local_as: LOCAL_AS,
        ebgp,
        ifindex: Some(id),
        own_next_hops_only: false,
    }
}

fn path_from(asns: &[u32]) -> PathAttributes {
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

fn entry(
    action: PolicyAction,
    prefix: &str,
    ge: Option<u8>,
    le: Option<u8>,
) -> PrefixListEntryConfig {
    PrefixListEntryConfig {
        action,
        prefix: net(prefix),
        ge,
        le,
    }
}

fn list_v4(entries: Vec<PrefixListEntryConfig>) -> PrefixList {
    PrefixList::compile(
        "test",
        &PrefixListConfig {
            ipv4: entries,
            ipv6: Vec::new(),
        },
    )
    .unwrap()
}

use PolicyAction::{Deny, Permit};

pub(super) fn originated(prefixes: &[&str]) -> Originated {
    let mut table = Originated::new();
    for prefix in prefixes {
        table.insert(OriginatedRoute::new(net(prefix), &[], &[]).unwrap());
    }
    table
}

pub(super) fn session(ebgp: bool) -> ExportSession {
    ExportSession {
        local_as: LOCAL_AS,
        ebgp,
        ipv4_next_hop: Some(NextHop::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100)))),
        ipv6_next_hop: Some(NextHop {
            address: "2001:db8::100".parse().unwrap(),
            link_local: Some("fe80::100".parse().unwrap()),
        }),
        peer_address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
    }
}
