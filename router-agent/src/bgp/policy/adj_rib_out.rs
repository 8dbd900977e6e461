//! The Adj-RIB-Out of a neighbor: what was advertised, so a change sends only the
//! difference and a route refresh re-sends everything.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use super::*;

/// The changes to send a neighbor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportDiff {
    /// New or changed routes, in prefix order.
    pub announce: Vec<(IpNet, Advertisement)>,
    pub withdraw: Vec<IpNet>,
}

impl ExportDiff {
    pub fn is_empty(&self) -> bool {
        self.announce.is_empty() && self.withdraw.is_empty()
    }
}

/// What this host advertised to one neighbor, so a change sends only the difference and a
/// route refresh (RFC 2918) re-sends everything.
#[derive(Debug, Default)]
pub struct AdjRibOut {
    advertised: BTreeMap<IpNet, Advertisement>,
    warned_unconfigured: bool,
}

impl AdjRibOut {
    pub fn new() -> Self {
        Self::default()
    }

    /// Recomputes the neighbor's routes from the originated ones and returns what to send.
    pub fn update(
        &mut self,
        originated: &Originated,
        session: &ExportSession,
        policy: &ExportPolicy,
    ) -> ExportDiff {
        if policy.filter == Filter::NotConfigured && session.ebgp && !self.warned_unconfigured {
            self.warned_unconfigured = true;
            tracing::warn!(
                neighbor = %session.peer_address,
                "no export policy configured for eBGP neighbor: exporting nothing (RFC 8212); \
                 set export = \"all\" or a prefix list"
            );
        }
        self.sync(build_adj_rib_out(originated, session, policy))
    }

    /// Makes the Adj-RIB-Out `target`; returns the announcements and withdrawals needed.
    pub fn sync(&mut self, target: ExportTarget) -> ExportDiff {
        let mut diff = ExportDiff::default();
        for prefix in self.advertised.keys() {
            if !target.routes.contains_key(prefix) {
                diff.withdraw.push(*prefix);
            }
        }
        for (prefix, advertisement) in &target.routes {
            if self.advertised.get(prefix) != Some(advertisement) {
                diff.announce.push((*prefix, advertisement.clone()));
            }
        }
        self.advertised = target.routes;
        diff
    }

    /// [`sync`](Self::sync) for `prefixes` only: `target` holds what they should be (from
    /// `build_adj_rib_out_for`); the other prefixes stay as they are.
    pub fn sync_prefixes(
        &mut self,
        prefixes: &BTreeSet<IpNet>,
        mut target: ExportTarget,
    ) -> ExportDiff {
        let mut diff = ExportDiff::default();
        for prefix in prefixes {
            match target.routes.remove(prefix) {
                Some(advertisement) => {
                    if self.advertised.get(prefix) != Some(&advertisement) {
                        diff.announce.push((*prefix, advertisement.clone()));
                        self.advertised.insert(*prefix, advertisement);
                    }
                }
                None => {
                    if self.advertised.remove(prefix).is_some() {
                        diff.withdraw.push(*prefix);
                    }
                }
            }
        }
        diff
    }

    /// Everything advertised, to answer a ROUTE-REFRESH.
    pub fn refresh(&self) -> ExportDiff {
        ExportDiff {
            announce: self
                .advertised
                .iter()
                .map(|(prefix, advertisement)| (*prefix, advertisement.clone()))
                .collect(),
            withdraw: Vec::new(),
        }
    }

    /// The session went down: the neighbor holds nothing from us any more.
    pub fn clear(&mut self) {
        self.advertised.clear();
    }

    pub fn advertised(&self) -> impl Iterator<Item = (&IpNet, &Advertisement)> {
        self.advertised.iter()
    }

    pub fn len(&self) -> usize {
        self.advertised.len()
    }

    pub fn is_empty(&self) -> bool {
        self.advertised.is_empty()
    }
}
