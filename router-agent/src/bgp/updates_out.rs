//! UPDATEs out: an Adj-RIB-Out diff as the messages that carry it.

use std::sync::Arc;

use ipnet::IpNet;

use super::{
    packet::{
        Update,
        types::{Afi, MpReach, MpUnreach, PathAttributes, Safi},
    },
    policy::ExportDiff,
    rib::NextHop,
};

/// UPDATEs for an Adj-RIB-Out diff: one per attribute set and next hop (the codec splits
/// them to fit 4096 bytes), IPv4 with NEXT_HOP in the body, the rest in MP_REACH_NLRI.
pub fn updates_from_diff(diff: ExportDiff) -> Vec<Update> {
    let mut groups: Vec<(Arc<PathAttributes>, NextHop, Vec<IpNet>)> = Vec::new();
    for (prefix, advertisement) in diff.announce {
        match groups.iter_mut().find(|(attrs, next_hop, _)| {
            Arc::ptr_eq(attrs, &advertisement.attrs) && *next_hop == advertisement.next_hop
        }) {
            Some(group) => group.2.push(prefix),
            None => groups.push((advertisement.attrs, advertisement.next_hop, vec![prefix])),
        }
    }
    let mut updates = Vec::new();
    for (attrs, next_hop, prefixes) in groups {
        let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = prefixes
            .into_iter()
            .partition(|p| matches!(p, IpNet::V4(_)));
        let in_body = attrs.next_hop.is_some();
        if !v4.is_empty() && in_body {
            updates.push(Update {
                attributes: (*attrs).clone(),
                nlri: v4
                    .iter()
                    .filter_map(|p| match p {
                        IpNet::V4(p) => Some(*p),
                        IpNet::V6(_) => None,
                    })
                    .collect(),
                ..Update::default()
            });
        }
        for (afi, nlri) in [
            (Afi::Ipv4, if in_body { Vec::new() } else { v4 }),
            (Afi::Ipv6, v6),
        ] {
            if nlri.is_empty() {
                continue;
            }
            let mut attributes = (*attrs).clone();
            attributes.next_hop = None;
            updates.push(Update {
                attributes,
                mp_reach: Some(MpReach {
                    afi,
                    safi: Safi::Unicast,
                    next_hop: next_hop.address,
                    link_local_next_hop: next_hop.link_local,
                    nlri,
                }),
                ..Update::default()
            });
        }
    }
    let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = diff
        .withdraw
        .into_iter()
        .partition(|p| matches!(p, IpNet::V4(_)));
    if !v4.is_empty() {
        updates.push(Update {
            withdrawn: v4
                .iter()
                .filter_map(|p| match p {
                    IpNet::V4(p) => Some(*p),
                    IpNet::V6(_) => None,
                })
                .collect(),
            ..Update::default()
        });
    }
    if !v6.is_empty() {
        updates.push(Update {
            mp_unreach: Some(MpUnreach {
                afi: Afi::Ipv6,
                safi: Safi::Unicast,
                withdrawn: v6,
            }),
            ..Update::default()
        });
    }
    updates
}
