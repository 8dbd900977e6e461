//! `[[redistribute]]` at run time: which of the host's kernel routes, addresses and connected
//! subnets each rule announces, followed live from netlink's events.
//!
//! The [`Redistributor`] keeps everything netlink reports (every observed route, address and
//! link, matched or not), so a rule added or changed by a reload is evaluated in memory, with
//! no re-dump. The daemon feeds it each event of a burst ([`Redistributor::on_event`]) and,
//! once per burst, takes the rules whose announced set changed
//! ([`Redistributor::take_changes`]): one re-export per burst, not one per route.
//!
//! Never transit: the prefixes come only from netlink's parsed kernel state ([`FollowedRoute`],
//! [`AddressInfo`]), never from the BGP RIB, and our own protocol (the kernel copy of learned
//! routes) is refused by the config and by [`HostPrefix::from_kernel_route`].

pub mod config;
pub mod pattern;
mod show;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use crate::{
    bgp::policy::HostPrefix,
    netlink::{AddressInfo, FollowedRoute, FollowedRouteKey, KernelEvent, RouteKind},
};
pub use config::Rule;
pub use show::{RuleStatus, render};

/// What one rule takes from the kernel now, and what of it is announced.
#[derive(Debug, Default)]
struct RuleState {
    /// Announced: kept while they are candidates, even when the limit is lowered.
    announced: BTreeSet<HostPrefix>,
    /// Candidates over the limit, admitted in prefix order when room frees up.
    held_back: BTreeSet<HostPrefix>,
    /// The default route was a candidate (logged once per rule).
    default_logged: bool,
    /// Set when the announced set changed since the last `take_changes`.
    changed: bool,
}

/// A rule's announced set changed: the daemon passes it to the speaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleChange {
    /// The rule's full current set (it replaces the previous one).
    Set {
        rule: Arc<str>,
        prefixes: Vec<HostPrefix>,
    },
    /// The rule is gone (a reload removed it): withdraw all of it.
    Removed { rule: Arc<str> },
}

/// Every observed kernel route, address and link, and each rule's announced set.
#[derive(Debug)]
pub struct Redistributor {
    rules: Vec<Rule>,
    states: BTreeMap<Arc<str>, RuleState>,
    removed: Vec<Arc<str>>,
    own_protocol: u8,
    /// Link names (patterns match names) and whether each is up.
    links: HashMap<u32, (String, bool)>,
    routes: BTreeMap<FollowedRouteKey, FollowedRoute>,
    addresses: BTreeSet<AddressInfo>,
    /// Something a rule may read changed since the last evaluation.
    dirty: bool,
}

impl Redistributor {
    /// `own_protocol`: `datapath.route_protocol`, never redistributed.
    pub fn new(rules: Vec<Rule>, own_protocol: u8) -> Self {
        let states = rules
            .iter()
            .map(|rule| (rule.name.clone(), RuleState::default()))
            .collect();
        Self {
            rules,
            states,
            removed: Vec::new(),
            own_protocol,
            links: HashMap::new(),
            routes: BTreeMap::new(),
            addresses: BTreeSet::new(),
            dirty: false,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Takes one kernel event in; whether a rule may have to be re-evaluated.
    pub fn on_event(&mut self, event: &KernelEvent) -> bool {
        let relevant = match event {
            KernelEvent::Link(link) => {
                // A rename changes what the patterns match; a link going down takes its
                // routes and subnets out.
                let now = (link.name.clone(), link.up);
                self.links.insert(link.ifindex, now.clone()) != Some(now)
            }
            KernelEvent::LinkRemoved { ifindex } => self.links.remove(ifindex).is_some(),
            KernelEvent::Address(address) => self.addresses.insert(address.clone()),
            KernelEvent::AddressRemoved(address) => self.addresses.remove(address),
            KernelEvent::Route(route) => {
                self.routes.insert(route.key, route.clone()).as_ref() != Some(route)
            }
            KernelEvent::RouteRemoved(key) => self.routes.remove(key).is_some(),
            KernelEvent::DumpDone => {
                // Once: patterns matching nothing yet are worth a word at start only.
                self.warn_unmatched_patterns();
                false
            }
            KernelEvent::Neighbor(_)
            | KernelEvent::NeighborRemoved { .. }
            | KernelEvent::NeighborStale { .. }
            | KernelEvent::LocalRoute(_)
            | KernelEvent::LocalRouteRemoved(_) => false,
        };
        let relevant = relevant && !self.rules.is_empty();
        self.dirty |= relevant;
        relevant
    }

    /// Replaces the rules (reload): added, changed and removed rules are evaluated against
    /// what is held, with no re-dump. A changed rule keeps what it announced if still a
    /// candidate.
    pub fn set_rules(&mut self, rules: Vec<Rule>) {
        let names: BTreeSet<&Arc<str>> = rules.iter().map(|rule| &rule.name).collect();
        let gone: Vec<Arc<str>> = self
            .states
            .keys()
            .filter(|name| !names.contains(name))
            .cloned()
            .collect();
        for name in gone {
            self.states.remove(&name);
            self.removed.push(name);
        }
        for rule in &rules {
            if let Some(at) = self.removed.iter().position(|n| *n == rule.name) {
                self.removed.remove(at);
            }
            let state = self.states.entry(rule.name.clone()).or_default();
            state.changed = true; // communities or MED may have changed: re-send the set
        }
        self.rules = rules;
        self.dirty = true;
    }

    /// Whether [`Redistributor::take_changes`] may have something to give.
    pub fn pending(&self) -> bool {
        self.dirty || !self.removed.is_empty() || self.states.values().any(|s| s.changed)
    }

    /// Re-evaluates the rules if anything changed, and returns the rules whose announced set
    /// changed (and those removed) since the last call. Called once per kernel-event burst.
    pub fn take_changes(&mut self) -> Vec<RuleChange> {
        if std::mem::take(&mut self.dirty) {
            for i in 0..self.rules.len() {
                self.evaluate(i);
            }
        }
        let mut changes: Vec<RuleChange> = self
            .removed
            .drain(..)
            .map(|rule| RuleChange::Removed { rule })
            .collect();
        for rule in &self.rules {
            let state = self.states.get_mut(&rule.name).expect("a state per rule");
            if std::mem::take(&mut state.changed) {
                changes.push(RuleChange::Set {
                    rule: rule.name.clone(),
                    prefixes: state.announced.iter().copied().collect(),
                });
            }
        }
        changes
    }

    /// Each rule's counts, for `show redistribute`.
    pub fn status(&self) -> Vec<RuleStatus> {
        self.rules
            .iter()
            .map(|rule| {
                let state = &self.states[&rule.name];
                RuleStatus {
                    name: rule.name.to_string(),
                    limit: rule.limit,
                    announced: state.announced.len(),
                    held_back: state.held_back.len(),
                    prefixes: state
                        .announced
                        .iter()
                        .map(|p| p.prefix().to_string())
                        .collect(),
                }
            })
            .collect()
    }

    /// Brings rule `i`'s announced set to its current candidates, within its limit.
    fn evaluate(&mut self, i: usize) {
        let rule = &self.rules[i];
        let (candidates, saw_default) = self.candidates(rule);
        let state = self.states.get_mut(&rule.name).expect("a state per rule");
        if saw_default && !state.default_logged {
            state.default_logged = true;
            tracing::warn!(
                "{} {:?}: a default route matches; a host never announces one, so it is left \
                 out",
                rule.key,
                rule.name.as_ref()
            );
        }
        let mut announced: BTreeSet<HostPrefix> =
            state.announced.intersection(&candidates).copied().collect();
        let mut held_back = BTreeSet::new();
        // New candidates in prefix order: the same ones win on every evaluation.
        for prefix in candidates.difference(&state.announced) {
            if announced.len() < rule.limit {
                announced.insert(*prefix);
            } else {
                held_back.insert(*prefix);
            }
        }
        if held_back.is_empty() {
            if !state.held_back.is_empty() {
                tracing::info!(
                    "{} {:?}: back within its limit of {}; all {} prefixes announced",
                    rule.key,
                    rule.name.as_ref(),
                    rule.limit,
                    announced.len()
                );
            }
        } else if state.held_back.is_empty() {
            // Once per crossing, not once per prefix.
            tracing::warn!(
                "{} {:?}: {} prefixes, over its limit; {} more not announced",
                rule.key,
                rule.name.as_ref(),
                rule.limit,
                held_back.len()
            );
        }
        state.changed |= announced != state.announced;
        state.announced = announced;
        state.held_back = held_back;
    }

    /// The prefixes rule `rule` takes from the kernel now (prefix list applied, default
    /// routes left out), and whether the prefix list let a default route through.
    fn candidates(&self, rule: &Rule) -> (BTreeSet<HostPrefix>, bool) {
        let matches = |ifindex: u32, patterns: &[config::KeyedPattern]| {
            self.links
                .get(&ifindex)
                .is_some_and(|(name, _)| patterns.iter().any(|p| p.pattern.matches(name)))
        };
        let up = |ifindex: u32| self.links.get(&ifindex).is_some_and(|(_, up)| *up);
        let mut found = Vec::new();
        let mut saw_default = false;
        if let Some(selection) = &rule.kernel_routes {
            for route in self.routes.values() {
                if !selection.tables.contains_key(&route.key.table)
                    || !selection.protocols.contains(&route.protocol)
                    || !announceable_kind(route)
                {
                    continue;
                }
                // Through a matching interface that is up (a workload's veth going down
                // withdraws its routes, which the kernel keeps, marked linkdown).
                // A route without hops (blackhole, nexthop object) names no interface: only a
                // rule without interface patterns takes it.
                let mut hops = route.ifindexes().peekable();
                let through = if hops.peek().is_none() {
                    selection.interfaces.is_empty()
                } else {
                    hops.any(|ifindex| {
                        up(ifindex)
                            && (selection.interfaces.is_empty()
                                || matches(ifindex, &selection.interfaces))
                    })
                };
                if !through {
                    continue;
                }
                saw_default |= route.key.prefix.prefix_len() == 0
                    && rule.prefix_list.permits(&route.key.prefix);
                found.extend(HostPrefix::from_kernel_route(route, self.own_protocol));
            }
        }
        for address in &self.addresses {
            if !rule.addresses.is_empty() && matches(address.ifindex, &rule.addresses) {
                found.extend(HostPrefix::from_address(address));
            }
            if !rule.connected.is_empty()
                && up(address.ifindex)
                && matches(address.ifindex, &rule.connected)
            {
                found.extend(HostPrefix::connected(address));
            }
        }
        // HostPrefix never holds a default route.
        let candidates = found
            .into_iter()
            .filter(|prefix| rule.prefix_list.permits(&prefix.prefix()))
            .collect();
        (candidates, saw_default)
    }

    /// At the end of the first dump: each pattern that matches no link yet, once.
    fn warn_unmatched_patterns(&self) {
        for rule in &self.rules {
            for keyed in rule.patterns() {
                if !self
                    .links
                    .values()
                    .any(|(name, _)| keyed.pattern.matches(name))
                {
                    tracing::warn!(
                        "{} {:?} matches nothing yet",
                        keyed.key,
                        keyed.pattern.as_str()
                    );
                }
            }
        }
    }

    /// At start: each kernel-route interface pattern that matches no attached interface
    /// (`attached`: the `[[interface]]` names), once. Its routes are announced, but their
    /// traffic is forwarded by the kernel, not XDP.
    pub fn warn_unattached<'a>(&self, attached: impl Iterator<Item = &'a str> + Clone) {
        for rule in &self.rules {
            let Some(selection) = &rule.kernel_routes else {
                continue;
            };
            for keyed in &selection.interfaces {
                if !attached.clone().any(|name| keyed.pattern.matches(name)) {
                    tracing::warn!(
                        "{} {:?} matches no [[interface]]: its routes are announced, but \
                         forwarded by the kernel, not XDP",
                        keyed.key,
                        keyed.pattern.as_str()
                    );
                }
            }
        }
    }
}

/// Which kinds of kernel route a host may announce: one it delivers (unicast, through a
/// nexthop object, or with attributes XDP leaves to the kernel) or a blackhole (an aggregate
/// anchored on the host). Never a route whose packets the host rejects (unreachable,
/// prohibit), hands to another table (throw), or that applies to some packets only (TOS /
/// source-specific).
fn announceable_kind(route: &FollowedRoute) -> bool {
    if route.key.selector != 0 {
        return false;
    }
    match route.kind {
        RouteKind::Unicast(_)
        | RouteKind::Unsupported(_)
        | RouteKind::NexthopObject(_)
        | RouteKind::Blackhole => true,
        RouteKind::Unreachable | RouteKind::Prohibit | RouteKind::Throw | RouteKind::Other(_) => {
            false
        }
    }
}

#[cfg(test)]
mod config_tests;
#[cfg(test)]
mod tests;
