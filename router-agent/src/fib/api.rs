//! The FIB's public operations: routes from sources, link / neighbor / gateway state, the
//! `pass_to_kernel` list, and status.

use std::{collections::BTreeSet, net::IpAddr, sync::Arc, time::Instant};

use ipnet::IpNet;
use router_common::GROUP_PASS;

use super::{
    Batch, Candidate, Fib, FibError, FibOp, KernelChange, KernelMirror, LinkState, NexthopKey,
    NexthopSet, Owner, RouteTarget, Source, ecmp::NexthopId, routes::RouteEntry,
};

impl Fib {
    /// Makes room for this many more IPv4 and IPv6 routes at once. A table load that grows the
    /// route map from empty rehashes every route several times on the way (a fifth of the load
    /// time at a million routes, and the old and new tables coexist while it does); the daemon
    /// calls this with `datapath.expected_ipv4_routes`.
    pub fn reserve_routes(&mut self, ipv4: usize, ipv6: usize) {
        self.routes.reserve(ipv4, ipv6);
    }

    /// Sets which BGP routes go to the kernel too. Applies to routes installed from now on.
    pub fn set_bgp_mirror(&mut self, mirror: KernelMirror) {
        self.bgp_mirror = mirror;
    }

    /// Adds or replaces `source`'s route for `prefix`. Only an empty nexthop set is an error
    /// (and then the FIB is as it was); a route that does not fit the tables is left to the
    /// kernel (`GROUP_PASS` here, the real route in the kernel mirror) and retried later.
    pub fn set_route(
        &mut self,
        batch: &mut Batch,
        source: Source,
        prefix: IpNet,
        target: RouteTarget,
    ) -> Result<(), FibError> {
        self.retry_if_due(batch);
        let prefix = prefix.trunc();
        // Fast path, most of a table load: a new prefix over a nexthop set that already has a
        // group. Two hash lookups in all.
        let mirrored = self.mirrored(source, &prefix);
        let passed = self.passed(&prefix);
        if let RouteTarget::Via(keys) = &target
            && let Some((set, groups)) = self.groups_by_set.get_key_value(keys)
            && self.routes.insert_new(prefix, || {
                let group = groups[0];
                self.groups.get_mut(&group).expect("indexed").routes += 1;
                let written = if passed { GROUP_PASS } else { group };
                batch.routes.push(FibOp::SetRoute {
                    prefix,
                    group: written,
                });
                if mirrored {
                    batch.kernel.push(KernelChange::Replace {
                        prefix,
                        nexthops: set.clone(),
                    });
                }
                RouteEntry::new(group, source)
            })
        {
            return Ok(());
        }
        let candidate = match target {
            RouteTarget::Local => Candidate::Local,
            RouteTarget::Pass => Candidate::Pass,
            RouteTarget::Via(keys) if keys.is_empty() => {
                return Err(FibError::NoNexthops { prefix });
            }
            RouteTarget::Via(keys) => Candidate::Via(self.intern(keys)),
        };
        match self.routes.get(&prefix) {
            None => self.install(batch, prefix, source, &candidate, None),
            Some(installed) if source == installed.source() => {
                self.install(batch, prefix, source, &candidate, Some(installed))
            }
            // A more preferred source takes over; the installed one waits.
            Some(installed) if source < installed.source() => {
                let demoted = self.candidate_of(installed, &prefix);
                self.install(batch, prefix, source, &candidate, Some(installed));
                self.routes
                    .set_alternate(prefix, installed.source(), demoted);
            }
            // A less preferred source waits: nothing changes in the datapath.
            Some(_) => {
                self.routes.set_alternate(prefix, source, candidate);
            }
        }
        Ok(())
    }

    /// Withdraws `source`'s route for `prefix`; the next source's route, if any, takes over.
    pub fn remove_route(&mut self, batch: &mut Batch, source: Source, prefix: IpNet) {
        self.retry_if_due(batch);
        let prefix = prefix.trunc();
        let Some(installed) = self.routes.get(&prefix) else {
            return;
        };
        if source != installed.source() {
            self.routes.remove_alternate(&prefix, source);
            return;
        }
        match self.routes.next_alternate(&prefix).cloned() {
            Some((next_source, next)) => {
                self.install(batch, prefix, next_source, &next, Some(installed));
                self.routes.remove_alternate(&prefix, next_source);
            }
            None => self.uninstall(batch, prefix),
        }
    }

    /// Sets the `pass_to_kernel` prefixes: every destination inside one goes to the kernel.
    /// Each prefix is in the datapath as `GROUP_PASS`, and so is every installed route equal
    /// to or inside one (the FIB keeps its real group, the kernel mirror its real route).
    /// Only the prefixes whose datapath route changes are rewritten.
    pub fn set_pass_to_kernel(&mut self, batch: &mut Batch, prefixes: &[IpNet]) {
        self.retry_if_due(batch);
        self.change_pass(batch, prefixes);
    }

    /// The shared instance of a nexthop set.
    pub(super) fn intern(&mut self, keys: BTreeSet<NexthopKey>) -> NexthopSet {
        match self.groups_by_set.get_key_value(&keys) {
            Some((set, _)) => set.clone(),
            None => Arc::new(keys),
        }
    }

    /// Applies a link's new state (None: the link is gone).
    pub fn update_link(&mut self, batch: &mut Batch, ifindex: u32, state: Option<LinkState>) {
        self.retry_if_due(batch);
        let changed = match state {
            Some(state) => self.links.insert(ifindex, state) != Some(state),
            None => self.links.remove(&ifindex).is_some(),
        };
        if changed {
            let affected: Vec<NexthopId> = self
                .nexthops
                .iter()
                .filter(|(_, entry)| entry.key.ifindex == ifindex)
                .map(|(id, _)| *id)
                .collect();
            self.refresh_nexthops(batch, &affected);
        }
    }

    /// Applies a neighbor's new link-layer address (None: unknown or failed). On-link
    /// nexthops do not depend on neighbors (the datapath reads `NEIGHBORS` per destination).
    pub fn update_neighbor(
        &mut self,
        batch: &mut Batch,
        ifindex: u32,
        addr: IpAddr,
        mac: Option<[u8; 6]>,
    ) {
        self.retry_if_due(batch);
        let changed = match mac {
            Some(mac) => self.neighbors.insert((ifindex, addr), mac) != Some(mac),
            None => self.neighbors.remove(&(ifindex, addr)).is_some(),
        };
        if !changed {
            return;
        }
        batch.nexthops.push(match mac {
            Some(mac) => FibOp::SetNeighbor { ifindex, addr, mac },
            None => FibOp::DeleteNeighbor { ifindex, addr },
        });
        // Every owner's nexthop through this neighbor.
        let affected: Vec<(NexthopId, NexthopKey)> = self
            .nexthops
            .iter()
            .filter(|(_, entry)| {
                entry.key.ifindex == ifindex && entry.key.via == addr && !entry.key.is_on_link()
            })
            .map(|(id, entry)| (*id, entry.key))
            .collect();
        let ids: Vec<NexthopId> = affected.iter().map(|(id, _)| *id).collect();
        self.refresh_nexthops(batch, &ids);
        if mac.is_none() {
            batch.resolve.extend(affected.iter().map(|(_, key)| *key));
        }
    }

    /// Marks `owner`'s gateways dead (`failed`) or alive again. Every group holding one of
    /// `owner`'s nexthops through them is rebalanced in this batch: one bucket rewrite per group,
    /// whatever the number of routes, so traffic leaves a failed BGP neighbor before its routes
    /// are withdrawn one by one. Other owners' nexthops through the same addresses are untouched.
    pub fn set_gateways_failed(
        &mut self,
        batch: &mut Batch,
        owner: Owner,
        gateways: &[IpAddr],
        failed: bool,
    ) {
        self.retry_if_due(batch);
        let mut changed = false;
        for gateway in gateways {
            changed |= if failed {
                self.failed_gateways.insert((owner, *gateway))
            } else {
                self.failed_gateways.remove(&(owner, *gateway))
            };
        }
        if !changed {
            return;
        }
        let affected: Vec<NexthopId> = self
            .nexthops
            .iter()
            .filter(|(_, entry)| entry.key.owner == owner && gateways.contains(&entry.key.via))
            .map(|(id, _)| *id)
            .collect();
        self.refresh_nexthops(batch, &affected);
    }

    /// Lets quarantined slots and group ids be reused once their grace period has passed.
    /// Deferred work (see [`Fib::retry_deferred`]) is retried by the next operation.
    pub fn release_quarantined(&mut self, now: Instant) {
        let slots = self.slots.release_due(now, None);
        let groups = self.group_ids.release_due(now, None);
        if slots || groups {
            self.note_freed();
        }
    }

    /// Retries what waits for free ids or slots: stale nexthop records, routes left to the
    /// kernel. Call it after [`Fib::release_quarantined`] (any other operation also does it
    /// first when something was freed), and apply the batch.
    pub fn retry_deferred(&mut self, batch: &mut Batch) {
        self.refresh_stale_nexthops(batch);
        if !self.unplaced.is_empty() {
            self.retry_unplaced(batch);
        }
        // What the retries freed and took again is no reason for another round.
        self.retry_due = false;
        self.report_shortages();
    }

    fn retry_if_due(&mut self, batch: &mut Batch) {
        if self.retry_due {
            self.retry_deferred(batch);
        }
    }

    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn nexthop_count(&self) -> usize {
        self.nexthops.len()
    }

    /// Routes left to the kernel because they did not fit the tables.
    pub fn unplaced_count(&self) -> usize {
        self.unplaced.len()
    }

    /// The nexthop keys and whether each is usable, for status output.
    pub fn nexthops(&self) -> impl Iterator<Item = (NexthopKey, bool)> + '_ {
        self.nexthops
            .values()
            .map(|entry| (entry.key, !entry.stale && entry.record.is_resolved()))
    }

    /// Prefixes whose route is in the kernel's table from us: those mirrored by policy, and
    /// those left to the kernel because they did not fit.
    pub fn mirrored_prefixes(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.routes
            .iter()
            .filter(|(prefix, route)| self.in_kernel(route.source(), prefix))
            .map(|(prefix, _)| prefix)
    }

    /// Whether the kernel holds (or is about to hold: the mirror is queued) our route for
    /// `prefix`, as [`Fib::mirrored_prefixes`] lists them.
    pub fn holds_in_kernel(&self, prefix: &IpNet) -> bool {
        let prefix = prefix.trunc();
        self.routes
            .get(&prefix)
            .is_some_and(|route| self.in_kernel(route.source(), &prefix))
    }

    /// The datapath nexthops a group's buckets point at (none for the special groups).
    pub fn group_nexthop_slots(&self, group: u32) -> BTreeSet<u32> {
        self.groups
            .get(&group)
            .map(|entry| {
                entry
                    .slots
                    .iter()
                    .copied()
                    .filter(|slot| *slot != router_common::NO_NEXTHOP)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The group a prefix is installed with, if any (its real group for a `pass_to_kernel`
    /// route, `GROUP_PASS` for one that did not fit).
    pub fn installed_group(&self, prefix: &IpNet) -> Option<u32> {
        self.routes.get(&prefix.trunc()).map(RouteEntry::group)
    }
}
