//! Nexthop groups: which group a route goes to, and each group's bucket layout.
//!
//! Resilient ECMP across every cause of change. A nexthop that fails or recovers rebalances
//! the groups holding it in place ([`Buckets::rebalance`]: only its buckets move). A route
//! whose nexthop *set* changes (a path withdrawn, a policy change) cannot stay in its group,
//! which other routes share; it goes to its group's **successor** for the new set: a group
//! created from the old group's current layout, then rebalanced to the new members, so only
//! the flows of nexthops that left move and a joining nexthop takes buckets from the others.
//! The link (old group, new set) -> successor makes the old group's other routes that follow
//! (per-prefix withdrawals after a session went down) share that successor.
//!
//! ```text
//!   A {a,b,c} ──(route's set becomes {a,b})──> successor (A, {a,b}) = B, made from A's layout
//!   groups_by_set[{a,b}] = [G, B]   a set can have several groups; the first takes new routes
//! ```
//!
//! A link is dropped when either group dies or changes layout in place (the successor would
//! no longer be "A's layout, rebalanced").

use router_common::{
    GROUP_EGRESS_IFINDEXES, GROUP_F_EGRESS_OVERFLOW, NEXTHOP_BUCKETS, NO_NEXTHOP, NexthopGroup,
};

use super::{
    Batch, Fib, FibError, FibOp, NexthopSet,
    ecmp::{Buckets, NexthopId},
};

pub(super) struct GroupEntry {
    pub(super) set: NexthopSet,
    /// Sorted.
    pub(super) members: Vec<NexthopId>,
    pub(super) buckets: Buckets,
    /// `buckets` in slots, as written.
    pub(super) slots: [u32; NEXTHOP_BUCKETS],
    pub(super) routes: usize,
    /// The successor links this group is part of, as origin or successor: (origin, set).
    links: Vec<(u32, NexthopSet)>,
}

impl Fib {
    /// A group for `set`, taking one reference: `from`'s own if its set is `set`, else
    /// `from`'s successor for `set` (created if needed), else any group of `set` (created if
    /// there is none). `from` is the group the route leaves, if any.
    pub(super) fn acquire_group(
        &mut self,
        batch: &mut Batch,
        set: &NexthopSet,
        from: Option<u32>,
    ) -> Result<u32, FibError> {
        let group = match from {
            Some(from) if self.groups[&from].set == *set => from,
            Some(from) => match self.successors.get(&(from, set.clone())) {
                Some(&successor) => successor,
                None => {
                    let layout = self.groups[&from].buckets.clone();
                    match self.create_group(batch, set, layout) {
                        Ok(successor) => {
                            self.link(from, set, successor);
                            return Ok(successor);
                        }
                        // Out of group ids: any group of the set beats none.
                        Err(err) => match self.groups_by_set.get(set) {
                            Some(groups) => groups[0],
                            None => return Err(err),
                        },
                    }
                }
            },
            None => match self.groups_by_set.get(set) {
                Some(groups) => groups[0],
                None => return self.create_group(batch, set, Buckets::default()),
            },
        };
        self.groups.get_mut(&group).expect("indexed").routes += 1;
        Ok(group)
    }

    /// A new group for `set` with one reference, its buckets rebalanced from `layout`.
    pub(super) fn create_group(
        &mut self,
        batch: &mut Batch,
        set: &NexthopSet,
        layout: Buckets,
    ) -> Result<u32, FibError> {
        // Rolling back frees nothing that was free before: no reason to retry deferred work.
        let retry_due = self.retry_due;
        let result = self.try_create_group(batch, set, layout);
        if result.is_err() {
            self.retry_due = retry_due;
        }
        result
    }

    fn try_create_group(
        &mut self,
        batch: &mut Batch,
        set: &NexthopSet,
        layout: Buckets,
    ) -> Result<u32, FibError> {
        let mut members = Vec::with_capacity(set.len());
        for key in set.iter() {
            match self.acquire_nexthop(batch, *key) {
                Ok(id) => members.push(id),
                Err(err) => {
                    for id in members {
                        self.release_nexthop(batch.serial, id);
                    }
                    return Err(err);
                }
            }
        }
        members.sort_unstable();
        let id = match self.group_ids.allocate(batch.serial) {
            Ok(id) => id,
            Err(err) => {
                for id in members {
                    self.release_nexthop(batch.serial, id);
                }
                return Err(err);
            }
        };
        let mut group = GroupEntry {
            set: set.clone(),
            members,
            buckets: layout,
            slots: [NO_NEXTHOP; NEXTHOP_BUCKETS],
            routes: 1,
            links: Vec::new(),
        };
        self.assign_buckets(&mut group);
        batch.groups.push(FibOp::WriteGroup {
            id,
            group: Box::new(self.group_record(&group)),
        });
        self.groups_by_set.entry(set.clone()).or_default().push(id);
        self.groups.insert(id, group);
        Ok(id)
    }

    fn link(&mut self, from: u32, set: &NexthopSet, successor: u32) {
        self.successors.insert((from, set.clone()), successor);
        for id in [from, successor] {
            let group = self.groups.get_mut(&id).expect("linked groups exist");
            group.links.push((from, set.clone()));
        }
    }

    /// Forgets every successor link `id` is part of.
    fn unlink(&mut self, id: u32) {
        let links = std::mem::take(&mut self.groups.get_mut(&id).expect("exists").links);
        for key in links {
            let Some(successor) = self.successors.remove(&key) else {
                continue;
            };
            let other = if key.0 == id { successor } else { key.0 };
            if let Some(other) = self.groups.get_mut(&other) {
                other.links.retain(|link| *link != key);
            }
        }
    }

    /// Drops one reference; the last one clears the group (at the end of the batch, after the
    /// routes left it) and quarantines its id.
    pub(super) fn release_group(&mut self, batch: &mut Batch, id: u32) {
        let group = self.groups.get_mut(&id).expect("released group exists");
        group.routes -= 1;
        if group.routes > 0 {
            return;
        }
        self.unlink(id);
        let group = self.groups.remove(&id).expect("present");
        if let Some(groups) = self.groups_by_set.get_mut(&group.set) {
            groups.retain(|g| *g != id);
            if groups.is_empty() {
                self.groups_by_set.remove(&group.set);
            }
        }
        batch.cleanup.push(FibOp::ClearGroup { id });
        self.group_ids.release(batch.serial, id);
        for member in group.members {
            self.release_nexthop(batch.serial, member);
        }
    }

    /// Rebalances and rewrites every group holding one of `nexthops` (their records or slots
    /// changed). A group whose layout changed leaves its successor links.
    pub(super) fn rewrite_groups_holding(&mut self, batch: &mut Batch, nexthops: &[NexthopId]) {
        let ids: Vec<u32> = self
            .groups
            .iter()
            .filter(|(_, group)| group.members.iter().any(|m| nexthops.contains(m)))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let mut group = self.groups.remove(&id).expect("present");
            let moved = self.assign_buckets(&mut group);
            // Always written: a member moved to a fresh slot, and the record lists members.
            batch.groups.push(FibOp::WriteGroup {
                id,
                group: Box::new(self.group_record(&group)),
            });
            self.groups.insert(id, group);
            if moved {
                self.unlink(id);
            }
        }
    }

    /// The datapath's record of a group: its buckets, its members' current slots and their
    /// egress interfaces (every member's: the kernel's rp_filter looks at all of a route's
    /// nexthop devices).
    pub(super) fn group_record(&self, group: &GroupEntry) -> NexthopGroup {
        let mut record = NexthopGroup {
            buckets: group.slots,
            ..NexthopGroup::EMPTY
        };
        for (member, id) in record.members.iter_mut().zip(&group.members) {
            *member = self.nexthops[id].slot;
        }
        let mut egress = 0;
        for id in &group.members {
            let ifindex = self.nexthops[id].key.ifindex;
            if record.egress[..egress].contains(&ifindex) {
                continue;
            }
            if egress == GROUP_EGRESS_IFINDEXES {
                record.flags |= GROUP_F_EGRESS_OVERFLOW;
                break;
            }
            record.egress[egress] = ifindex;
            egress += 1;
        }
        record
    }

    /// Spreads a group's buckets over its usable members; when none is usable, over those
    /// whose record is current (unresolved: packets reach the kernel, which resolves the
    /// neighbor); never over a stale record. Returns whether a bucket changed nexthop.
    pub(super) fn assign_buckets(&self, group: &mut GroupEntry) -> bool {
        let before = group.buckets.clone();
        group.buckets = self.balanced(&group.members, &before);
        for (slot, bucket) in group.slots.iter_mut().zip(group.buckets.0.iter()) {
            *slot = bucket.map_or(NO_NEXTHOP, |id| self.nexthops[&id].slot);
        }
        group.buckets != before
    }

    /// `layout` rebalanced over the members buckets may point at (see `assign_buckets`).
    pub(super) fn balanced(&self, members: &[NexthopId], layout: &Buckets) -> Buckets {
        let current: Vec<NexthopId> = members
            .iter()
            .copied()
            .filter(|id| !self.nexthops[id].stale)
            .collect();
        let usable: Vec<NexthopId> = current
            .iter()
            .copied()
            .filter(|id| self.nexthops[id].record.is_resolved())
            .collect();
        let mut buckets = layout.clone();
        buckets.rebalance(if usable.is_empty() { &current } else { &usable });
        buckets
    }
}
