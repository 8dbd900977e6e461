//! `router-agent reload` for dynamic peers: each one follows the `dynamic_neighbor` range that
//! accepts its address in the new configuration. Policy changes (import, export) are applied
//! to the running session; only what the session was negotiated with (remote AS, hold time,
//! which next hops it may use) or a range that no longer takes the peer ends it; a lowered
//! `limit` ends the newest sessions over it, and no other.

use std::{collections::BTreeMap, net::IpAddr};

use crate::bgp::{
    config::{DynamicNeighbors, DynamicSource},
    rib::PeerId,
};

/// A running dynamic peer, as the reload sees it.
#[derive(Clone, Debug)]
pub(super) struct DynamicPeer {
    pub(super) peer: PeerId,
    /// Its range in the running configuration.
    pub(super) index: usize,
    pub(super) address: IpAddr,
}

/// What a reload does to one dynamic peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum DynamicAction {
    /// The session goes on under range `index` of the new configuration, its import policy
    /// re-applied and its exports re-sent if they changed.
    Keep {
        index: usize,
        import_changed: bool,
        export_changed: bool,
    },
    /// The session ends (the peer may connect again, under the new configuration).
    End(EndCause),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EndCause {
    /// No range of the new configuration accepts its address.
    NoRange,
    /// Its range's session parameters changed: the session must be negotiated again.
    SessionChanged,
    /// Its range (`index` in the new configuration) has fewer sessions allowed than it has
    /// now; the newest go.
    OverLimit { index: usize },
}

impl EndCause {
    pub(super) fn reason(self) -> &'static str {
        match self {
            EndCause::NoRange => "no dynamic_neighbor range accepts it any more",
            EndCause::SessionChanged => "its dynamic_neighbor range's session parameters changed",
            EndCause::OverLimit { .. } => "over its dynamic_neighbor range's lowered limit",
        }
    }
}

/// The plan for every dynamic peer (in `peers`' order). `peers` are all the running dynamic
/// peers; a higher [`PeerId`] is a newer session.
pub(super) fn plan(
    old: &[DynamicNeighbors],
    new: &[DynamicNeighbors],
    peers: &[DynamicPeer],
) -> Vec<(PeerId, DynamicAction)> {
    let mut actions: Vec<(PeerId, DynamicAction)> = peers
        .iter()
        .map(|peer| (peer.peer, action(old, new, peer)))
        .collect();
    // Per new range, the sessions kept, newest first: those past the limit end.
    let mut kept: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (at, (_, action)) in actions.iter().enumerate() {
        if let DynamicAction::Keep { index, .. } = action {
            kept.entry(*index).or_default().push(at);
        }
    }
    for (index, mut members) in kept {
        let limit = new[index].limit;
        if members.len() <= limit {
            continue;
        }
        members.sort_by_key(|&at| std::cmp::Reverse(actions[at].0));
        for &at in &members[..members.len() - limit] {
            actions[at].1 = DynamicAction::End(EndCause::OverLimit { index });
        }
    }
    actions
}

fn action(old: &[DynamicNeighbors], new: &[DynamicNeighbors], peer: &DynamicPeer) -> DynamicAction {
    let Some(was) = old.get(peer.index) else {
        return DynamicAction::End(EndCause::NoRange);
    };
    // The range the listener would pick for this address now: the first that takes it.
    let Some(index) = new.iter().position(|range| match &range.source {
        DynamicSource::Range(net) => net.contains(&peer.address),
        // A link-local peer came in on its range's interface; the address alone cannot say.
        DynamicSource::Interface(name) => was.source == DynamicSource::Interface(name.clone()),
    }) else {
        return DynamicAction::End(EndCause::NoRange);
    };
    let now = &new[index];
    let session = |range: &DynamicNeighbors| {
        (
            range.template.remote_as,
            range.template.passive,
            range.template.hold_time,
            // The connection carries them (TCP MD5 key, GTSM).
            range.template.security.clone(),
            // Decided when the session comes up (the RIB's view of the peer).
            range.third_party_next_hop,
        )
    };
    if session(now) != session(was) {
        return DynamicAction::End(EndCause::SessionChanged);
    }
    DynamicAction::Keep {
        index,
        import_changed: now.template.import != was.template.import,
        export_changed: now.template.export != was.template.export,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::config::BgpConfig;

    /// The dynamic ranges of a `[bgp]` section made of `ranges` (`[[bgp.dynamic_neighbor]]`
    /// bodies) and two prefix lists.
    fn ranges(ranges: &[&str]) -> Vec<DynamicNeighbors> {
        let mut text = String::from("asn = 65000\nrouter_id = \"192.0.2.1\"\n");
        for range in ranges {
            text.push_str(&format!("[[dynamic_neighbor]]\n{range}\n"));
        }
        text.push_str(
            "[prefix_list.narrow]\nipv4 = [{ action = \"permit\", prefix = \"10.1.0.0/16\" }]\n\
             [prefix_list.wide]\nipv4 = [{ action = \"permit\", prefix = \"10.0.0.0/8\", le = 32 }]\n",
        );
        let config: BgpConfig = toml::from_str(&text).unwrap();
        config.compile().unwrap().dynamic_neighbors
    }

    const VMS: &str = "range = \"10.0.0.0/24\"\nremote_as = 65100\nimport = { prefix_list = \"narrow\" }\nexport = \"all\"";

    fn peers(addresses: &[&str]) -> Vec<DynamicPeer> {
        addresses
            .iter()
            .enumerate()
            .map(|(i, address)| DynamicPeer {
                peer: PeerId(10 + i as u32),
                index: 0,
                address: address.parse().unwrap(),
            })
            .collect()
    }

    fn keep(index: usize, import_changed: bool, export_changed: bool) -> DynamicAction {
        DynamicAction::Keep {
            index,
            import_changed,
            export_changed,
        }
    }

    fn actions(old: &[&str], new: &[&str], addresses: &[&str]) -> Vec<DynamicAction> {
        plan(&ranges(old), &ranges(new), &peers(addresses))
            .into_iter()
            .map(|(_, action)| action)
            .collect()
    }

    #[test]
    fn unchanged_ranges_keep_every_session_as_it_is() {
        assert_eq!(
            actions(&[VMS], &[VMS], &["10.0.0.2", "10.0.0.3"]),
            vec![keep(0, false, false); 2]
        );
    }

    #[test]
    fn import_and_export_changes_keep_the_sessions() {
        let wider = VMS.replace("narrow", "wide");
        assert_eq!(
            actions(&[VMS], &[&wider], &["10.0.0.2", "10.0.0.3"]),
            vec![keep(0, true, false); 2]
        );
        let max_prefix = format!("{VMS}\nmax_prefix = {{ limit = 5, action = \"warn\" }}");
        assert_eq!(
            actions(&[VMS], &[&max_prefix], &["10.0.0.2"]),
            vec![keep(0, true, false)]
        );
        let no_export = VMS.replace("export = \"all\"", "");
        assert_eq!(
            actions(&[VMS], &[&no_export], &["10.0.0.2"]),
            vec![keep(0, false, true)]
        );
    }

    #[test]
    fn session_parameter_changes_end_only_the_sessions_of_that_range() {
        let other = "range = \"10.0.1.0/24\"\nremote_as = 65200";
        let slower = format!("{VMS}\nhold_time = 30");
        let third_party = format!("{VMS}\nthird_party_next_hop = true");
        let other_as = VMS.replace("65100", "65101");
        for changed in [&slower, &third_party, &other_as] {
            let old = ranges(&[VMS, other]);
            let new = ranges(&[changed, other]);
            let mut running = peers(&["10.0.0.2", "10.0.1.2"]);
            running[1].index = 1;
            let plan: Vec<_> = plan(&old, &new, &running)
                .into_iter()
                .map(|(_, a)| a)
                .collect();
            assert_eq!(
                plan,
                vec![
                    DynamicAction::End(EndCause::SessionChanged),
                    keep(1, false, false)
                ],
                "{changed}"
            );
        }
    }

    #[test]
    fn a_changed_range_ends_only_the_addresses_it_no_longer_takes() {
        let narrower = VMS.replace("10.0.0.0/24", "10.0.0.0/25");
        assert_eq!(
            actions(&[VMS], &[&narrower], &["10.0.0.2", "10.0.0.200"]),
            vec![keep(0, false, false), DynamicAction::End(EndCause::NoRange)]
        );
        assert_eq!(
            actions(&[VMS], &[], &["10.0.0.2"]),
            vec![DynamicAction::End(EndCause::NoRange)]
        );
    }

    #[test]
    fn reordered_ranges_follow_the_address() {
        let other = "range = \"10.0.1.0/24\"\nremote_as = 65200";
        assert_eq!(
            actions(&[VMS, other], &[other, VMS], &["10.0.0.2"]),
            vec![keep(1, false, false)]
        );
    }

    #[test]
    fn a_lowered_limit_ends_the_newest_sessions_only() {
        let two = format!("{VMS}\nlimit = 2");
        let addresses = ["10.0.0.5", "10.0.0.3", "10.0.0.9", "10.0.0.4"];
        // Listed out of age order: PeerId says which is newer.
        let mut running = peers(&addresses);
        for (peer, id) in running.iter_mut().zip([12, 10, 13, 11]) {
            peer.peer = PeerId(id);
        }
        let wider = two.replace("narrow", "wide");
        let plan = plan(&ranges(&[VMS]), &ranges(&[&wider]), &running);
        let over = DynamicAction::End(EndCause::OverLimit { index: 0 });
        assert_eq!(
            plan,
            vec![
                (PeerId(12), over.clone()),
                (PeerId(10), keep(0, true, false)),
                (PeerId(13), over),
                (PeerId(11), keep(0, true, false)),
            ]
        );
        // Raised, or as many as the limit: nobody goes.
        let four = format!("{VMS}\nlimit = 4");
        assert!(
            super::plan(&ranges(&[VMS]), &ranges(&[&four]), &running)
                .iter()
                .all(|(_, action)| *action == keep(0, false, false))
        );
    }

    #[test]
    fn link_local_peers_stay_with_their_interface() {
        let on_vms = "interface = \"veth-vms\"\nremote_as = \"external\"\nimport = { prefix_list = \"narrow\" }";
        let on_other = "interface = \"veth-other\"\nremote_as = \"external\"";
        let mut running = peers(&["fe80::2"]);
        running[0].index = 1;
        let old = ranges(&[on_other, on_vms]);
        let new = ranges(&[on_other, &on_vms.replace("narrow", "wide")]);
        assert_eq!(
            plan(&old, &new, &running),
            vec![(PeerId(10), keep(1, true, false))]
        );
        let gone = ranges(&[on_other]);
        assert_eq!(
            plan(&old, &gone, &running),
            vec![(PeerId(10), DynamicAction::End(EndCause::NoRange))]
        );
    }
}
