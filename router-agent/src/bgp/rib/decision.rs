//! The BGP decision process (RFC 4271 9.1.2.2, with the RFC 4456 route-reflection additions)
//! and the multipath (ECMP) set.
//!
//! Each rule is one [`Step`] with a pairwise comparison ([`prefer`]). Selection applies the
//! steps the way the RFC words them, as successive eliminations: at each step, a route is
//! removed when another remaining route beats it at that step. For every step but MED this is
//! "keep the maxima" of a total order. MED is only compared between routes from the same
//! neighbor AS, so it is a partial order, and a plain `sort_by` over a pairwise comparator would
//! be non-transitive (the result would depend on arrival order, and Rust's sort may panic on an
//! inconsistent order). Elimination makes the result independent of the candidates' order.

use std::cmp::Ordering;
use std::net::Ipv4Addr;

use serde::Deserialize;

use super::PeerInfo;
use crate::bgp::packet::types::{GRACEFUL_SHUTDOWN, Origin, PathAttributes};

/// Knobs of the decision process.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionConfig {
    /// Most paths installed for one prefix (ECMP width), best included. At least 1.
    pub max_paths: usize,
    /// Allow ECMP across paths from different neighbor ASes (FRR's "bestpath as-path
    /// multipath-relax"). A host dual-homed to two ToRs with different ASNs needs this to use
    /// both uplinks; when false, multipath paths must come from the best path's neighbor AS.
    pub multipath_relax: bool,
    /// Compare MED between routes from different neighbor ASes too (off per RFC 4271).
    pub always_compare_med: bool,
    /// LOCAL_PREF given to eBGP-learned routes (which must ignore a received LOCAL_PREF,
    /// RFC 4271 5.1.5) and to iBGP routes that lack one.
    pub default_local_pref: u32,
    /// LOCAL_PREF given to a received route tagged GRACEFUL_SHUTDOWN (65535:0): the receiver
    /// action of RFC 8326, so a draining peer's paths leave the multipath set
    /// while another path exists. `"off"` (None) ranks them like any other route.
    #[serde(deserialize_with = "local_pref_or_off")]
    pub graceful_shutdown_local_pref: Option<u32>,
}

/// A LOCAL_PREF value, or `"off"`.
fn local_pref_or_off<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ValueOrOff {
        Value(u32),
        Word(String),
    }
    match ValueOrOff::deserialize(de)? {
        ValueOrOff::Value(value) => Ok(Some(value)),
        ValueOrOff::Word(word) if word == "off" => Ok(None),
        ValueOrOff::Word(word) => Err(serde::de::Error::custom(format!(
            "expected a LOCAL_PREF (0..=4294967295) or \"off\", found \"{word}\""
        ))),
    }
}

/// ECMP width the FIB can spread over evenly (`router_common::NEXTHOP_BUCKETS`).
pub const MAX_PATHS_LIMIT: usize = 64;

impl Default for DecisionConfig {
    fn default() -> Self {
        Self {
            max_paths: 8,
            multipath_relax: true,
            always_compare_med: false,
            default_local_pref: 100,
            graceful_shutdown_local_pref: Some(0),
        }
    }
}

impl DecisionConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_paths == 0 || self.max_paths > MAX_PATHS_LIMIT {
            return Err(format!(
                "max_paths = {} must be between 1 and {MAX_PATHS_LIMIT}",
                self.max_paths
            ));
        }
        Ok(())
    }
}

/// One rule of the decision process, in the order they apply. Steps up to and including
/// [`Step::IgpCost`] decide multipath equality; the rest only break ties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// RFC 4271 9.1.2.1: a route whose NEXT_HOP is unresolvable is excluded.
    NextHopReachable,
    /// RFC 4271 9.1.1: highest degree of preference (LOCAL_PREF).
    LocalPref,
    /// RFC 4271 9.1.2.2 (a): fewest ASes in AS_PATH.
    AsPathLength,
    /// 9.1.2.2 (b): lowest ORIGIN (IGP < EGP < INCOMPLETE).
    Origin,
    /// 9.1.2.2 (c): lowest MULTI_EXIT_DISC among routes from the same neighbor AS (missing is 0).
    Med,
    /// 9.1.2.2 (d): routes learned over eBGP beat those learned over iBGP.
    ExternalOverInternal,
    /// 9.1.2.2 (e): lowest interior cost to the NEXT_HOP.
    IgpCost,
    /// 9.1.2.2 (f), RFC 4456 9: lowest BGP Identifier of the advertiser, ORIGINATOR_ID when the
    /// route carries one.
    RouterId,
    /// RFC 4456 9: shortest CLUSTER_LIST (inserted between (f) and (g)).
    ClusterListLength,
    /// 9.1.2.2 (g): lowest peer address.
    PeerAddress,
    /// Not in the RFC: two sessions can share an address (the same link-local address on two
    /// interfaces); the lowest session id keeps the outcome deterministic.
    PeerId,
}

impl Step {
    pub const ALL: [Step; 11] = [
        Step::NextHopReachable,
        Step::LocalPref,
        Step::AsPathLength,
        Step::Origin,
        Step::Med,
        Step::ExternalOverInternal,
        Step::IgpCost,
        Step::RouterId,
        Step::ClusterListLength,
        Step::PeerAddress,
        Step::PeerId,
    ];

    /// Whether paths tied up to here are equal enough to share traffic (ECMP).
    pub fn decides_multipath(self) -> bool {
        self <= Step::IgpCost
    }
}

/// What the decision process needs to know of one path.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub attrs: &'a PathAttributes,
    pub peer: &'a PeerInfo,
    /// False when the caller marked the NEXT_HOP unreachable.
    pub reachable: bool,
    pub igp_cost: u32,
}

impl Candidate<'_> {
    /// The AS the route entered our neighborhood from (RFC 4271 9.1.2.2 c, "neighborAS"):
    /// leftmost AS of AS_PATH; a route with an empty AS_PATH was originated by the peer's AS.
    pub fn neighbor_as(&self) -> u32 {
        self.attrs.as_path.first_as().unwrap_or(if self.peer.ebgp {
            self.peer.remote_as
        } else {
            self.peer.local_as
        })
    }

    fn local_pref(&self, config: &DecisionConfig) -> u32 {
        if let Some(local_pref) = config.graceful_shutdown_local_pref
            && self.attrs.communities.contains(&GRACEFUL_SHUTDOWN)
        {
            return local_pref;
        }
        if self.peer.ebgp {
            // RFC 4271 5.1.5: a LOCAL_PREF received from an external peer MUST be ignored.
            config.default_local_pref
        } else {
            self.attrs.local_pref.unwrap_or(config.default_local_pref)
        }
    }

    fn router_id(&self) -> Ipv4Addr {
        self.attrs.originator_id.unwrap_or(self.peer.router_id)
    }
}

/// Compares `a` and `b` at one step: `Greater` means `a` is preferred, `None` means the step
/// does not compare them (MED across neighbor ASes).
pub fn prefer(
    step: Step,
    a: &Candidate,
    b: &Candidate,
    config: &DecisionConfig,
) -> Option<Ordering> {
    // "higher is better" for the first two, "lower is better" (hence the reversal) for the rest.
    let ordering = match step {
        Step::NextHopReachable => a.reachable.cmp(&b.reachable),
        Step::LocalPref => a.local_pref(config).cmp(&b.local_pref(config)),
        Step::AsPathLength => b.attrs.as_path.length().cmp(&a.attrs.as_path.length()),
        Step::Origin => origin_rank(b.attrs).cmp(&origin_rank(a.attrs)),
        Step::Med => {
            if !config.always_compare_med && a.neighbor_as() != b.neighbor_as() {
                return None;
            }
            // RFC 4271 9.1.2.2 (c): a missing MED is the lowest possible value.
            b.attrs.med.unwrap_or(0).cmp(&a.attrs.med.unwrap_or(0))
        }
        Step::ExternalOverInternal => a.peer.ebgp.cmp(&b.peer.ebgp),
        Step::IgpCost => b.igp_cost.cmp(&a.igp_cost),
        Step::RouterId => b.router_id().cmp(&a.router_id()),
        Step::ClusterListLength => b.attrs.cluster_list.len().cmp(&a.attrs.cluster_list.len()),
        Step::PeerAddress => b.peer.address.cmp(&a.peer.address),
        Step::PeerId => b.peer.id.cmp(&a.peer.id),
    };
    Some(ordering)
}

/// ORIGIN is mandatory; a route without one (the codec should have rejected it) ranks last.
fn origin_rank(attrs: &PathAttributes) -> u8 {
    attrs.origin.map_or(u8::MAX, |origin| match origin {
        Origin::Igp => 0,
        Origin::Egp => 1,
        Origin::Incomplete => 2,
    })
}

/// The outcome of the decision process for one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// Every candidate index, the installed ones first (best, then the other multipath
    /// members), then the others from most to least preferred.
    pub order: Vec<usize>,
    /// How many leading entries of `order` are installed: 0 when no path is usable.
    pub installed: usize,
    /// The step that set the best path apart from the runner-up (None with one candidate).
    pub decided_by: Option<Step>,
}

/// Runs the decision process over `candidates`.
pub fn select(candidates: &[Candidate], config: &DecisionConfig) -> Selection {
    match candidates.len() {
        0 => {
            return Selection {
                order: Vec::new(),
                installed: 0,
                decided_by: None,
            };
        }
        1 => {
            return Selection {
                order: vec![0],
                installed: usize::from(candidates[0].reachable),
                decided_by: None,
            };
        }
        _ => {}
    }
    let all: Vec<usize> = (0..candidates.len()).collect();
    let outcome = eliminate(candidates, &all, config, true);
    let best = outcome.winner;

    let mut order = Vec::with_capacity(candidates.len());
    if candidates[best].reachable {
        // The multipath set: the routes still standing after the IGP cost step.
        let best_as = candidates[best].neighbor_as();
        let mut pool: Vec<usize> = outcome
            .equal_through_igp
            .iter()
            .copied()
            .filter(|&i| config.multipath_relax || candidates[i].neighbor_as() == best_as)
            .collect();
        // Order the set by the tie-breaking steps, which order routes equal up to (e) totally;
        // the best route wins them, so it comes first.
        pool.sort_by(|&a, &b| tie_break(&candidates[b], &candidates[a], config));
        debug_assert_eq!(pool.first(), Some(&best));
        pool.truncate(config.max_paths.max(1));
        order.extend(pool);
    }
    let installed = order.len();
    if installed == 0 {
        order.push(best);
    }
    // The rest, ranked by running the process again on what is left (for `show` and so that a
    // withdrawal's successor is visible; the next decision recomputes from scratch anyway).
    let mut rest: Vec<usize> = all.into_iter().filter(|i| !order.contains(i)).collect();
    while rest.len() > 1 {
        let next = eliminate(candidates, &rest, config, false).winner;
        order.push(next);
        rest.retain(|&i| i != next);
    }
    order.extend(rest);
    Selection {
        order,
        installed,
        decided_by: outcome.decided_by,
    }
}

/// Compares two routes on the tie-breaking steps only: `Greater` means `a` is preferred.
fn tie_break(a: &Candidate, b: &Candidate, config: &DecisionConfig) -> Ordering {
    Step::ALL
        .iter()
        .filter(|step| !step.decides_multipath())
        .map(|&step| prefer(step, a, b, config).expect("tie-break steps are total"))
        .find(|ordering| ordering.is_ne())
        .unwrap_or(Ordering::Equal)
}

struct Elimination {
    winner: usize,
    decided_by: Option<Step>,
    /// Routes remaining after the IGP cost step: the multipath candidates (only filled when
    /// asked for).
    equal_through_igp: Vec<usize>,
}

/// Applies the steps to `among` as successive eliminations until one route is left.
fn eliminate(
    candidates: &[Candidate],
    among: &[usize],
    config: &DecisionConfig,
    want_multipath: bool,
) -> Elimination {
    let mut remaining = among.to_vec();
    let mut decided_by = None;
    let mut equal_through_igp = Vec::new();
    for step in Step::ALL {
        if remaining.len() > 1 {
            // Keep the routes no other remaining route beats at this step, compacting in
            // place. Checking against the routes kept so far and those not yet visited is
            // enough: a route dropped earlier was itself beaten by one that stays (each step
            // is transitive among the routes it compares: MED within one neighbor AS), and
            // that one beats whatever the dropped route beat.
            let mut kept = 0;
            for visit in 0..remaining.len() {
                let route = remaining[visit];
                let beaten =
                    remaining[..kept]
                        .iter()
                        .chain(&remaining[visit + 1..])
                        .any(|&other| {
                            prefer(step, &candidates[other], &candidates[route], config)
                                == Some(Ordering::Greater)
                        });
                if !beaten {
                    remaining[kept] = route;
                    kept += 1;
                }
            }
            remaining.truncate(kept);
            if kept == 1 {
                decided_by = Some(step);
            }
        }
        if want_multipath && step == Step::IgpCost {
            equal_through_igp.clone_from(&remaining);
        }
    }
    debug_assert_eq!(remaining.len(), 1, "PeerId is unique per candidate");
    Elimination {
        winner: remaining[0],
        decided_by,
        equal_through_igp,
    }
}

#[cfg(test)]
mod tests;
