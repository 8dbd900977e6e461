//! The forwarding information base: what the datapath should hold, and the ordered operations
//! that take it there.
//!
//! ```text
//!   sources (local addresses, static config, BGP) ── set_route / remove_route ──┐
//!   kernel (links, neighbors)                     ── update_link / _neighbor ──┤
//!                                                                              v
//!   prefix ──> group (shared by every route with the same nexthop set) ──> nexthops
//! ```
//!
//! The FIB is pure bookkeeping: it never touches a map. Every change produces a [`Batch`] of
//! [`FibOp`]s in make-before-break order (nexthops, then groups, then routes, then cleanup), so
//! the datapath can apply them one by one and a packet never follows a route to a group or a
//! group to a slot that is not written yet. A nexthop that fails or recovers changes only the
//! groups holding it: one bucket rewrite per group, whatever the number of routes.

pub mod ecmp;
pub mod reference;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    net::IpAddr,
    time::{Duration, Instant},
};

use ipnet::IpNet;
use router_common::{
    GROUP_LOCAL, NEXTHOP_BUCKETS, NEXTHOP_F_RESOLVED, NEXTHOP_F_VIA_IPV6, NO_NEXTHOP, Nexthop,
};

use ecmp::{Buckets, NexthopId};

/// Who asked for a route. Order is preference: for one prefix the first source wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The host's own addresses: always delivered to the kernel.
    Local,
    /// Routes from the configuration file.
    Static,
    /// Best paths (and their ECMP set) from the BGP speaker.
    Bgp,
}

/// A nexthop as routes name it: the gateway and the interface it is reached on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NexthopKey {
    pub via: IpAddr,
    pub ifindex: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTarget {
    /// Deliver to this host.
    Local,
    /// Forward over these nexthops (ECMP when more than one). Never empty.
    Via(BTreeSet<NexthopKey>),
}

/// What the FIB needs to know of an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkState {
    pub mac: [u8; 6],
    pub mtu: u32,
    pub up: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FibOp {
    /// Fill a slot nothing points at yet.
    WriteNexthop {
        slot: u32,
        nexthop: Nexthop,
    },
    /// Point a group's buckets at these slots.
    WriteGroup {
        id: u32,
        slots: Box<[u32; NEXTHOP_BUCKETS]>,
    },
    SetRoute {
        prefix: IpNet,
        group: u32,
    },
    DeleteRoute {
        prefix: IpNet,
    },
    /// No route uses the group any more.
    ClearGroup {
        id: u32,
    },
    /// A fresh nexthop id: zero its traffic counters.
    ResetNexthopStats {
        id: u32,
    },
}

/// What the kernel's FIB should hold for routes we mirror there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelChange {
    Replace {
        prefix: IpNet,
        nexthops: Vec<NexthopKey>,
    },
    Delete {
        prefix: IpNet,
    },
}

/// The result of one or more FIB changes. Apply `ops()` in order.
#[derive(Debug, Default)]
pub struct Batch {
    nexthops: Vec<FibOp>,
    groups: Vec<FibOp>,
    routes: Vec<FibOp>,
    cleanup: Vec<FibOp>,
    /// Changes to mirror into the kernel's routing table.
    pub kernel: Vec<KernelChange>,
    /// Nexthops that have no neighbor entry yet: ask the kernel to resolve them.
    pub resolve: Vec<NexthopKey>,
}

impl Batch {
    pub fn ops(&self) -> impl Iterator<Item = &FibOp> {
        self.nexthops
            .iter()
            .chain(&self.groups)
            .chain(&self.routes)
            .chain(&self.cleanup)
    }

    pub fn is_empty(&self) -> bool {
        self.ops().next().is_none() && self.kernel.is_empty() && self.resolve.is_empty()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FibError {
    #[error("no free {what}: all {capacity} are in use")]
    Full { what: &'static str, capacity: u32 },
    #[error("route {prefix} has no nexthops")]
    NoNexthops { prefix: IpNet },
}

/// Table sizes, matching the BPF maps the datapath created.
#[derive(Clone, Copy, Debug)]
pub struct FibLimits {
    pub groups: u32,
    pub nexthop_slots: u32,
    pub nexthop_ids: u32,
    /// How long a released slot stays untouched: XDP programs that read it before the release
    /// may still be using it.
    pub slot_quarantine: Duration,
}

impl Default for FibLimits {
    fn default() -> Self {
        Self {
            groups: router_common::MAX_NEXTHOP_GROUPS,
            nexthop_slots: router_common::MAX_NEXTHOP_SLOTS,
            nexthop_ids: router_common::MAX_NEXTHOP_IDS,
            slot_quarantine: Duration::from_millis(100),
        }
    }
}

struct NexthopEntry {
    key: NexthopKey,
    /// Slot holding `record`, once written.
    slot: u32,
    record: Nexthop,
    /// Groups holding this nexthop.
    groups: usize,
}

struct GroupEntry {
    members: Vec<NexthopId>,
    buckets: Buckets,
    slots: [u32; NEXTHOP_BUCKETS],
    routes: usize,
}

#[derive(Default)]
struct RouteEntry {
    candidates: BTreeMap<Source, RouteTarget>,
    /// Group the datapath points this prefix at, and the source it came from.
    installed: Option<(u32, Source)>,
}

/// Lowest-free id allocator.
struct Ids {
    free: BTreeSet<u32>,
    next: u32,
    capacity: u32,
}

impl Ids {
    fn new(first: u32, capacity: u32) -> Self {
        Self {
            free: BTreeSet::new(),
            next: first,
            capacity,
        }
    }

    fn allocate(&mut self, what: &'static str) -> Result<u32, FibError> {
        if let Some(id) = self.free.pop_first() {
            return Ok(id);
        }
        if self.next >= self.capacity {
            return Err(FibError::Full {
                what,
                capacity: self.capacity,
            });
        }
        self.next += 1;
        Ok(self.next - 1)
    }

    fn release(&mut self, id: u32) {
        self.free.insert(id);
    }
}

pub struct Fib {
    limits: FibLimits,
    routes: HashMap<IpNet, RouteEntry>,
    groups: HashMap<u32, GroupEntry>,
    group_by_members: HashMap<Vec<NexthopId>, u32>,
    nexthops: HashMap<NexthopId, NexthopEntry>,
    nexthop_by_key: HashMap<NexthopKey, NexthopId>,
    links: HashMap<u32, LinkState>,
    neighbors: HashMap<(u32, IpAddr), [u8; 6]>,
    group_ids: Ids,
    nexthop_ids: Ids,
    slots: Ids,
    quarantine: VecDeque<(Instant, u32)>,
}

impl Fib {
    pub fn new(limits: FibLimits) -> Self {
        Self {
            limits,
            routes: HashMap::new(),
            groups: HashMap::new(),
            group_by_members: HashMap::new(),
            nexthops: HashMap::new(),
            nexthop_by_key: HashMap::new(),
            links: HashMap::new(),
            neighbors: HashMap::new(),
            // Group 0 is GROUP_LOCAL.
            group_ids: Ids::new(GROUP_LOCAL + 1, limits.groups),
            nexthop_ids: Ids::new(0, limits.nexthop_ids),
            slots: Ids::new(0, limits.nexthop_slots),
            quarantine: VecDeque::new(),
        }
    }

    /// Adds or replaces `source`'s route for `prefix`.
    pub fn set_route(
        &mut self,
        batch: &mut Batch,
        source: Source,
        prefix: IpNet,
        target: RouteTarget,
    ) -> Result<(), FibError> {
        let prefix = prefix.trunc();
        if matches!(&target, RouteTarget::Via(set) if set.is_empty()) {
            return Err(FibError::NoNexthops { prefix });
        }
        let entry = self.routes.entry(prefix).or_default();
        let previous = entry.candidates.insert(source, target);
        if let Err(err) = self.reconcile_route(batch, prefix) {
            // Leave the FIB as it was: the caller reports the error, nothing is half-applied.
            let entry = self.routes.get_mut(&prefix).expect("inserted above");
            match previous {
                Some(previous) => entry.candidates.insert(source, previous),
                None => entry.candidates.remove(&source),
            };
            if entry.candidates.is_empty() && entry.installed.is_none() {
                self.routes.remove(&prefix);
            }
            return Err(err);
        }
        Ok(())
    }

    /// Withdraws `source`'s route for `prefix`; another source's route may take over.
    pub fn remove_route(&mut self, batch: &mut Batch, source: Source, prefix: IpNet) {
        let prefix = prefix.trunc();
        let Some(entry) = self.routes.get_mut(&prefix) else {
            return;
        };
        if entry.candidates.remove(&source).is_none() {
            return;
        }
        // Falling back to another candidate can need a new group; if the tables are full the
        // prefix is withdrawn instead, which is never worse than keeping a stale route.
        if self.reconcile_route(batch, prefix).is_err() {
            self.uninstall(batch, prefix);
        }
    }

    /// Applies a link's new state (None: the link is gone).
    pub fn update_link(&mut self, batch: &mut Batch, ifindex: u32, state: Option<LinkState>) {
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

    /// Applies a neighbor's new link-layer address (None: unknown or failed).
    pub fn update_neighbor(
        &mut self,
        batch: &mut Batch,
        ifindex: u32,
        addr: IpAddr,
        mac: Option<[u8; 6]>,
    ) {
        let changed = match mac {
            Some(mac) => self.neighbors.insert((ifindex, addr), mac) != Some(mac),
            None => self.neighbors.remove(&(ifindex, addr)).is_some(),
        };
        if !changed {
            return;
        }
        let key = NexthopKey { via: addr, ifindex };
        if let Some(&id) = self.nexthop_by_key.get(&key) {
            self.refresh_nexthops(batch, &[id]);
            if mac.is_none() {
                batch.resolve.push(key);
            }
        }
    }

    /// Lets quarantined slots be reused once their grace period has passed.
    pub fn release_quarantined(&mut self, now: Instant) {
        while let Some(&(released, slot)) = self.quarantine.front() {
            if now.duration_since(released) < self.limits.slot_quarantine {
                break;
            }
            self.quarantine.pop_front();
            self.slots.release(slot);
        }
    }

    pub fn route_count(&self) -> usize {
        self.routes
            .values()
            .filter(|r| r.installed.is_some())
            .count()
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn nexthop_count(&self) -> usize {
        self.nexthops.len()
    }

    /// The nexthop keys and whether each is usable, for status output.
    pub fn nexthops(&self) -> impl Iterator<Item = (NexthopKey, bool)> + '_ {
        self.nexthops
            .values()
            .map(|entry| (entry.key, entry.record.is_resolved()))
    }

    /// Prefixes whose route is mirrored into the kernel (every installed non-local route).
    pub fn mirrored_prefixes(&self) -> std::collections::HashSet<IpNet> {
        self.routes
            .iter()
            .filter(|(_, route)| matches!(route.installed, Some((_, source)) if source != Source::Local))
            .map(|(prefix, _)| *prefix)
            .collect()
    }

    /// The group a prefix is installed with, if any.
    pub fn installed_group(&self, prefix: &IpNet) -> Option<u32> {
        self.routes.get(&prefix.trunc())?.installed.map(|(g, _)| g)
    }

    /// Makes the datapath match the best candidate of `prefix`.
    fn reconcile_route(&mut self, batch: &mut Batch, prefix: IpNet) -> Result<(), FibError> {
        let entry = &self.routes[&prefix];
        let Some((&source, target)) = entry.candidates.iter().next() else {
            self.uninstall(batch, prefix);
            return Ok(());
        };
        let target = target.clone();
        let old = entry.installed;
        let group = match &target {
            RouteTarget::Local => GROUP_LOCAL,
            RouteTarget::Via(keys) => self.acquire_group(batch, keys)?,
        };
        if old.map(|(g, _)| g) == Some(group) {
            // Same group: already referenced once by this route.
            if group != GROUP_LOCAL {
                self.release_group(batch, group);
            }
        } else {
            batch.routes.push(FibOp::SetRoute { prefix, group });
            if let Some((old_group, _)) = old
                && old_group != GROUP_LOCAL
            {
                self.release_group(batch, old_group);
            }
        }
        self.routes.get_mut(&prefix).expect("present").installed = Some((group, source));
        match (&target, old) {
            (RouteTarget::Via(keys), _) if source != Source::Local => {
                batch.kernel.push(KernelChange::Replace {
                    prefix,
                    nexthops: keys.iter().copied().collect(),
                });
            }
            // The route the kernel held came from a mirrored source and is gone now.
            (_, Some((_, old_source))) if old_source != Source::Local => {
                batch.kernel.push(KernelChange::Delete { prefix });
            }
            _ => {}
        }
        Ok(())
    }

    fn uninstall(&mut self, batch: &mut Batch, prefix: IpNet) {
        let Some(entry) = self.routes.remove(&prefix) else {
            return;
        };
        let Some((group, source)) = entry.installed else {
            return;
        };
        batch.routes.push(FibOp::DeleteRoute { prefix });
        if source != Source::Local {
            batch.kernel.push(KernelChange::Delete { prefix });
        }
        if group != GROUP_LOCAL {
            self.release_group(batch, group);
        }
    }

    /// The group for this nexthop set, created (and written) if needed; takes one reference.
    fn acquire_group(
        &mut self,
        batch: &mut Batch,
        keys: &BTreeSet<NexthopKey>,
    ) -> Result<u32, FibError> {
        let mut members = Vec::with_capacity(keys.len());
        for key in keys {
            match self.acquire_nexthop(batch, *key) {
                Ok(id) => members.push(id),
                Err(err) => {
                    for id in members {
                        self.release_nexthop(batch, id);
                    }
                    return Err(err);
                }
            }
        }
        members.sort_unstable();
        if let Some(&group) = self.group_by_members.get(&members) {
            // The group holds its own reference to each member already.
            for id in &members {
                self.release_nexthop(batch, *id);
            }
            self.groups.get_mut(&group).expect("indexed").routes += 1;
            return Ok(group);
        }
        let id = match self.group_ids.allocate("nexthop groups") {
            Ok(id) => id,
            Err(err) => {
                for id in members {
                    self.release_nexthop(batch, id);
                }
                return Err(err);
            }
        };
        let mut group = GroupEntry {
            members: members.clone(),
            buckets: Buckets::default(),
            slots: [NO_NEXTHOP; NEXTHOP_BUCKETS],
            routes: 1,
        };
        self.assign_buckets(&mut group);
        batch.groups.push(FibOp::WriteGroup {
            id,
            slots: Box::new(group.slots),
        });
        self.groups.insert(id, group);
        self.group_by_members.insert(members, id);
        Ok(id)
    }

    fn release_group(&mut self, batch: &mut Batch, id: u32) {
        let group = self.groups.get_mut(&id).expect("released group exists");
        group.routes -= 1;
        if group.routes > 0 {
            return;
        }
        let group = self.groups.remove(&id).expect("present");
        self.group_by_members.remove(&group.members);
        batch.cleanup.push(FibOp::ClearGroup { id });
        self.group_ids.release(id);
        for member in group.members {
            self.release_nexthop(batch, member);
        }
    }

    /// The nexthop for `key`, created (and written to a slot) if needed; takes one reference.
    fn acquire_nexthop(&mut self, batch: &mut Batch, key: NexthopKey) -> Result<u32, FibError> {
        if let Some(&id) = self.nexthop_by_key.get(&key) {
            self.nexthops.get_mut(&id).expect("indexed").groups += 1;
            return Ok(id);
        }
        let id = self.nexthop_ids.allocate("nexthop ids")?;
        let slot = match self.allocate_slot() {
            Ok(slot) => slot,
            Err(err) => {
                self.nexthop_ids.release(id);
                return Err(err);
            }
        };
        let record = self.record(id, key);
        if !record.is_resolved() {
            batch.resolve.push(key);
        }
        batch.nexthops.push(FibOp::ResetNexthopStats { id });
        batch.nexthops.push(FibOp::WriteNexthop {
            slot,
            nexthop: record,
        });
        self.nexthops.insert(
            id,
            NexthopEntry {
                key,
                slot,
                record,
                groups: 1,
            },
        );
        self.nexthop_by_key.insert(key, id);
        Ok(id)
    }

    fn release_nexthop(&mut self, _batch: &mut Batch, id: NexthopId) {
        let entry = self.nexthops.get_mut(&id).expect("released nexthop exists");
        entry.groups -= 1;
        if entry.groups > 0 {
            return;
        }
        let entry = self.nexthops.remove(&id).expect("present");
        self.nexthop_by_key.remove(&entry.key);
        self.nexthop_ids.release(id);
        self.quarantine.push_back((Instant::now(), entry.slot));
    }

    fn allocate_slot(&mut self) -> Result<u32, FibError> {
        self.release_quarantined(Instant::now());
        self.slots.allocate("nexthop slots")
    }

    /// The datapath record for a nexthop from what we know of its link and neighbor.
    fn record(&self, id: NexthopId, key: NexthopKey) -> Nexthop {
        let link = self.links.get(&key.ifindex);
        let neighbor = self.neighbors.get(&(key.ifindex, key.via));
        let mut flags = 0;
        let mut via = [0u8; 16];
        match key.via {
            IpAddr::V4(addr) => via[..4].copy_from_slice(&addr.octets()),
            IpAddr::V6(addr) => {
                via = addr.octets();
                flags |= NEXTHOP_F_VIA_IPV6;
            }
        }
        if link.is_some_and(|link| link.up) && neighbor.is_some() {
            flags |= NEXTHOP_F_RESOLVED;
        }
        Nexthop {
            id,
            ifindex: key.ifindex,
            mtu: link.map_or(0, |link| link.mtu.min(u32::from(u16::MAX)) as u16),
            flags,
            dst_mac: neighbor.copied().unwrap_or_default(),
            src_mac: link.map_or([0; 6], |link| link.mac),
            via,
        }
    }

    /// Rewrites changed nexthop records into fresh slots and repoints the groups using them.
    fn refresh_nexthops(&mut self, batch: &mut Batch, ids: &[NexthopId]) {
        let mut changed = false;
        for &id in ids {
            let key = self.nexthops[&id].key;
            let record = self.record(id, key);
            if record == self.nexthops[&id].record {
                continue;
            }
            // Copy-on-write: never modify a slot a bucket may point at.
            let Ok(slot) = self.allocate_slot() else {
                tracing::error!(?key, "no free nexthop slot; nexthop update deferred");
                continue;
            };
            batch.nexthops.push(FibOp::WriteNexthop {
                slot,
                nexthop: record,
            });
            let entry = self.nexthops.get_mut(&id).expect("present");
            let old_slot = std::mem::replace(&mut entry.slot, slot);
            entry.record = record;
            self.quarantine.push_back((Instant::now(), old_slot));
            changed = true;
        }
        if !changed {
            return;
        }
        let group_ids: Vec<u32> = self
            .groups
            .iter()
            .filter(|(_, group)| group.members.iter().any(|m| ids.contains(m)))
            .map(|(id, _)| *id)
            .collect();
        for id in group_ids {
            let mut group = self.groups.remove(&id).expect("present");
            let before = group.slots;
            self.assign_buckets(&mut group);
            if group.slots != before {
                batch.groups.push(FibOp::WriteGroup {
                    id,
                    slots: Box::new(group.slots),
                });
            }
            self.groups.insert(id, group);
        }
    }

    /// Spreads a group's buckets over its usable members, or over all of them when none is
    /// usable (packets then reach the kernel, which resolves the neighbor).
    fn assign_buckets(&self, group: &mut GroupEntry) {
        let usable: Vec<NexthopId> = group
            .members
            .iter()
            .copied()
            .filter(|id| self.nexthops[id].record.is_resolved())
            .collect();
        let members = if usable.is_empty() {
            &group.members
        } else {
            &usable
        };
        group.buckets.rebalance(members);
        for (slot, bucket) in group.slots.iter_mut().zip(group.buckets.0.iter()) {
            *slot = bucket.map_or(NO_NEXTHOP, |id| self.nexthops[&id].slot);
        }
    }
}

#[cfg(test)]
mod tests;
