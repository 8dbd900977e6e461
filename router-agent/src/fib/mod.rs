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
mod routes;
pub mod synthetic;

use std::{
    collections::{BTreeSet, VecDeque},
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use ipnet::IpNet;
use router_common::{
    FIRST_GROUP, GROUP_LOCAL, GROUP_PASS, NEXTHOP_BUCKETS, NEXTHOP_F_RESOLVED, NEXTHOP_F_VIA_IPV6,
    NO_NEXTHOP, Nexthop, NexthopGroup,
};

use ecmp::{Buckets, NexthopId};
use routes::{RouteEntry, RouteTable};

/// Hash maps keyed by prefixes and nexthop sets, which peers influence: a fast hasher with a
/// per-process random key (SipHash costs a large share of route programming time).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A route's nexthops. Shared: every route with the same set holds the same `Arc` (the FIB
/// interns them), so a million routes over two ToRs cost two sets, not a million.
pub type NexthopSet = Arc<BTreeSet<NexthopKey>>;

/// Who asked for a route. Order is preference: for one prefix the first source wins, as the
/// kernel would choose between the same routes (local table first, then the lowest metric).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The host's own addresses: always delivered to the kernel.
    Local,
    /// A route another program put in the kernel with a lower metric than ours (connected
    /// IPv4 subnets have metric 0): the kernel prefers it over our route for the same prefix.
    KernelPreferred,
    /// Routes from the configuration file.
    Static,
    /// Best paths (and their ECMP set) from the BGP speaker.
    Bgp,
    /// A route another program put in the kernel with a higher metric than ours (connected
    /// IPv6 subnets have metric 256): used only when we have none for the prefix.
    KernelFallback,
}

impl Source {
    /// Routes read from the kernel: never mirrored back into it.
    pub fn is_kernel(self) -> bool {
        matches!(self, Source::KernelPreferred | Source::KernelFallback)
    }
}

/// Whose view of a gateway a nexthop carries. Failure is scoped to the owner: a BGP session
/// going down fails its own next hops for its own routes, never a static route's or another
/// session's through the same address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    /// Static routes and the kernel's own routes: state from links and neighbors only.
    #[default]
    Host,
    /// A BGP session (the speaker's peer id).
    Bgp(u32),
}

/// A nexthop as routes name it: the gateway, the interface it is reached on, and whose it is.
/// A gateway of `0.0.0.0` or `::` means "on link": the destination itself is the neighbor (a
/// connected subnet, a device route).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NexthopKey {
    pub via: IpAddr,
    pub ifindex: u32,
    pub owner: Owner,
}

impl NexthopKey {
    /// A gateway on `ifindex`, with link and neighbor state only.
    pub fn host(via: IpAddr, ifindex: u32) -> Self {
        Self {
            via,
            ifindex,
            owner: Owner::Host,
        }
    }

    /// The destination itself, on `ifindex` (connected subnets, device routes).
    pub fn on_link(ifindex: u32, ipv6: bool) -> Self {
        let via = if ipv6 {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        };
        Self::host(via, ifindex)
    }

    pub fn is_on_link(&self) -> bool {
        self.via.is_unspecified()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTarget {
    /// Deliver to this host.
    Local,
    /// The kernel forwards it: the fast path passes the packets up (`GROUP_PASS`).
    Pass,
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
    /// Point a group's buckets at these slots (and record its members).
    WriteGroup {
        id: u32,
        group: Box<NexthopGroup>,
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
    /// A host on a connected subnet is usable at this link-layer address (on-link nexthops
    /// read it per destination). The datapath keeps those of attached interfaces only.
    SetNeighbor {
        ifindex: u32,
        addr: IpAddr,
        mac: [u8; 6],
    },
    /// The host's address is unknown or failed: its packets go to the kernel, which resolves it.
    DeleteNeighbor {
        ifindex: u32,
        addr: IpAddr,
    },
}

/// What the kernel's FIB should hold for routes we mirror there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelChange {
    Replace { prefix: IpNet, nexthops: NexthopSet },
    Delete { prefix: IpNet },
}

/// The result of one or more FIB changes. Apply `ops()` in order.
#[derive(Debug)]
pub struct Batch {
    /// Tells batches apart (see [`GroupIds`]).
    serial: u64,
    nexthops: Vec<FibOp>,
    groups: Vec<FibOp>,
    routes: Vec<FibOp>,
    cleanup: Vec<FibOp>,
    /// Changes to mirror into the kernel's routing table.
    pub kernel: Vec<KernelChange>,
    /// Nexthops that have no neighbor entry yet: ask the kernel to resolve them.
    pub resolve: Vec<NexthopKey>,
}

impl Default for Batch {
    fn default() -> Self {
        static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self {
            serial: SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            nexthops: Vec::new(),
            groups: Vec::new(),
            routes: Vec::new(),
            cleanup: Vec::new(),
            kernel: Vec::new(),
            resolve: Vec::new(),
        }
    }
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

    /// Datapath operations in the batch.
    pub fn len(&self) -> usize {
        self.nexthops.len() + self.groups.len() + self.routes.len() + self.cleanup.len()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FibError {
    #[error("no free {what}: all {capacity} are in use")]
    Full { what: &'static str, capacity: u32 },
    #[error("route {prefix} has no nexthops")]
    NoNexthops { prefix: IpNet },
    #[error("route {prefix} has {count} nexthops; a group holds at most {NEXTHOP_BUCKETS}")]
    TooManyNexthops { prefix: IpNet, count: usize },
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

const _: () = assert!(router_common::MAX_NEXTHOP_GROUPS <= RouteEntry::MAX_GROUPS);

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
    set: NexthopSet,
    members: Vec<NexthopId>,
    buckets: Buckets,
    slots: [u32; NEXTHOP_BUCKETS],
    routes: usize,
}

/// What a source asked for, with its nexthop set interned.
#[derive(Clone)]
enum Candidate {
    Local,
    Pass,
    Via(NexthopSet),
}

/// Groups that are not allocated: no entry, no reference count.
fn is_reserved(group: u32) -> bool {
    group < FIRST_GROUP
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

/// Group ids, which must not be reused in the batch that released them: the release queues a
/// `ClearGroup` at the end of the batch, which would wipe the group a route of the same batch
/// was just pointed at. Ids released by a batch are held until another batch asks for one.
struct GroupIds {
    ids: Ids,
    held: Vec<u32>,
    held_by: u64,
}

impl GroupIds {
    fn new(first: u32, capacity: u32) -> Self {
        Self {
            ids: Ids::new(first, capacity),
            held: Vec::new(),
            held_by: u64::MAX,
        }
    }

    fn allocate(&mut self, batch: &Batch) -> Result<u32, FibError> {
        self.free_held_unless(batch.serial);
        self.ids.allocate("nexthop groups")
    }

    fn release(&mut self, batch: &Batch, id: u32) {
        self.free_held_unless(batch.serial);
        self.held_by = batch.serial;
        self.held.push(id);
    }

    fn free_held_unless(&mut self, serial: u64) {
        if self.held_by != serial {
            for id in self.held.drain(..) {
                self.ids.release(id);
            }
        }
    }
}

/// Which of a source's routes are mirrored into the kernel's routing table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelMirror {
    #[default]
    All,
    /// Only 0.0.0.0/0 and ::/0: enough for the host's own traffic, cheap with a full table.
    DefaultOnly,
    None,
}

pub struct Fib {
    limits: FibLimits,
    /// Kernel mirroring of BGP routes (local routes never, static routes always).
    bgp_mirror: KernelMirror,
    routes: RouteTable,
    groups: HashMap<u32, GroupEntry>,
    /// Interned nexthop sets and the group each one is installed as.
    group_by_set: HashMap<NexthopSet, u32>,
    nexthops: HashMap<NexthopId, NexthopEntry>,
    nexthop_by_key: HashMap<NexthopKey, NexthopId>,
    links: HashMap<u32, LinkState>,
    neighbors: HashMap<(u32, IpAddr), [u8; 6]>,
    /// Gateways a routing protocol declared dead (a BGP session went down), per owner: their
    /// nexthops leave every group at once, before the routes through them are withdrawn one
    /// by one.
    failed_gateways: std::collections::HashSet<(Owner, IpAddr), foldhash::fast::RandomState>,
    group_ids: GroupIds,
    nexthop_ids: Ids,
    slots: Ids,
    quarantine: VecDeque<(Instant, u32)>,
}

impl Fib {
    /// `limits.groups` is at most 2^16 (a route entry holds a group id in 16 bits).
    pub fn new(limits: FibLimits) -> Self {
        assert!(
            limits.groups <= RouteEntry::MAX_GROUPS,
            "at most {} nexthop groups",
            RouteEntry::MAX_GROUPS
        );
        Self {
            limits,
            bgp_mirror: KernelMirror::All,
            routes: RouteTable::default(),
            groups: HashMap::default(),
            group_by_set: HashMap::default(),
            nexthops: HashMap::default(),
            nexthop_by_key: HashMap::default(),
            links: HashMap::default(),
            neighbors: HashMap::default(),
            failed_gateways: Default::default(),
            group_ids: GroupIds::new(FIRST_GROUP, limits.groups),
            nexthop_ids: Ids::new(0, limits.nexthop_ids),
            slots: Ids::new(0, limits.nexthop_slots),
            quarantine: VecDeque::new(),
        }
    }

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

    fn mirrored(&self, source: Source, prefix: &IpNet) -> bool {
        match source {
            Source::Local | Source::KernelPreferred | Source::KernelFallback => false,
            Source::Static => true,
            Source::Bgp => match self.bgp_mirror {
                KernelMirror::All => true,
                KernelMirror::DefaultOnly => prefix.prefix_len() == 0,
                KernelMirror::None => false,
            },
        }
    }

    /// Adds or replaces `source`'s route for `prefix`. On error the FIB is as it was.
    pub fn set_route(
        &mut self,
        batch: &mut Batch,
        source: Source,
        prefix: IpNet,
        target: RouteTarget,
    ) -> Result<(), FibError> {
        let prefix = prefix.trunc();
        // Fast path, most of a table load: a new prefix over a nexthop set that already has a
        // group. Two hash lookups in all.
        let mirrored = self.mirrored(source, &prefix);
        if let RouteTarget::Via(keys) = &target
            && let Some((set, &group)) = self.group_by_set.get_key_value(keys)
            && self.routes.insert_new(prefix, || {
                self.groups.get_mut(&group).expect("indexed").routes += 1;
                batch.routes.push(FibOp::SetRoute { prefix, group });
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
            RouteTarget::Via(keys) if keys.len() > NEXTHOP_BUCKETS => {
                return Err(FibError::TooManyNexthops {
                    prefix,
                    count: keys.len(),
                });
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
                let demoted = self.candidate_of(installed);
                self.install(batch, prefix, source, &candidate, Some(installed))?;
                self.routes
                    .set_alternate(prefix, installed.source(), demoted);
                Ok(())
            }
            // A less preferred source waits: nothing changes in the datapath.
            Some(_) => {
                self.routes.set_alternate(prefix, source, candidate);
                Ok(())
            }
        }
    }

    /// Withdraws `source`'s route for `prefix`; the next source's route, if any, takes over.
    pub fn remove_route(&mut self, batch: &mut Batch, source: Source, prefix: IpNet) {
        let prefix = prefix.trunc();
        let Some(installed) = self.routes.get(&prefix) else {
            return;
        };
        if source != installed.source() {
            self.routes.remove_alternate(&prefix, source);
            return;
        }
        let Some((next_source, next)) = self.routes.next_alternate(&prefix).cloned() else {
            self.uninstall(batch, prefix);
            return;
        };
        // Falling back to another source's candidate can need a new group; if the tables are
        // full the prefix is withdrawn instead, never worse than keeping a stale route.
        match self.install(batch, prefix, next_source, &next, Some(installed)) {
            Ok(()) => {
                self.routes.remove_alternate(&prefix, next_source);
            }
            Err(_) => self.uninstall(batch, prefix),
        }
    }

    /// The shared instance of a nexthop set.
    fn intern(&mut self, keys: BTreeSet<NexthopKey>) -> NexthopSet {
        match self.group_by_set.get_key_value(&keys) {
            Some((set, _)) => set.clone(),
            None => Arc::new(keys),
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
        batch.nexthops.push(match mac {
            Some(mac) => FibOp::SetNeighbor { ifindex, addr, mac },
            None => FibOp::DeleteNeighbor { ifindex, addr },
        });
        // Every owner's nexthop through this neighbor.
        let affected: Vec<(NexthopId, NexthopKey)> = self
            .nexthops
            .iter()
            .filter(|(_, entry)| entry.key.ifindex == ifindex && entry.key.via == addr)
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
        self.routes.len()
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
    pub fn mirrored_prefixes(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.routes
            .iter()
            .filter(|(prefix, route)| self.mirrored(route.source(), prefix))
            .map(|(prefix, _)| prefix)
    }

    /// The group a prefix is installed with, if any.
    pub fn installed_group(&self, prefix: &IpNet) -> Option<u32> {
        self.routes.get(&prefix.trunc()).map(RouteEntry::group)
    }

    /// What an installed prefix forwards to: its group's nexthop set, or the host.
    fn candidate_of(&self, installed: RouteEntry) -> Candidate {
        if installed.group() == GROUP_LOCAL {
            Candidate::Local
        } else if installed.group() == GROUP_PASS {
            Candidate::Pass
        } else {
            Candidate::Via(self.groups[&installed.group()].set.clone())
        }
    }

    /// Points `prefix` at `source`'s `candidate`, in place of what it was installed as
    /// (`old`): the group first (make before break), then the route, then the old group's
    /// release. On error (no group could be had) nothing changed.
    fn install(
        &mut self,
        batch: &mut Batch,
        prefix: IpNet,
        source: Source,
        candidate: &Candidate,
        old: Option<RouteEntry>,
    ) -> Result<(), FibError> {
        let group = match candidate {
            Candidate::Local => GROUP_LOCAL,
            Candidate::Pass => GROUP_PASS,
            Candidate::Via(set) => self.acquire_group(batch, set)?,
        };
        match old.map(RouteEntry::group) {
            // Same group: it already counted this route once.
            Some(old_group) if old_group == group => {
                if !is_reserved(group) {
                    self.release_group(batch, group);
                }
            }
            old_group => {
                batch.routes.push(FibOp::SetRoute { prefix, group });
                if let Some(old_group) = old_group
                    && !is_reserved(old_group)
                {
                    self.release_group(batch, old_group);
                }
            }
        }
        self.routes.set(prefix, RouteEntry::new(group, source));
        match (candidate, old) {
            (Candidate::Via(set), _) if self.mirrored(source, &prefix) => {
                batch.kernel.push(KernelChange::Replace {
                    prefix,
                    nexthops: set.clone(),
                });
            }
            // The route the kernel held came from a mirrored source and is gone now.
            (_, Some(old)) if self.mirrored(old.source(), &prefix) => {
                batch.kernel.push(KernelChange::Delete { prefix });
            }
            _ => {}
        }
        Ok(())
    }

    fn uninstall(&mut self, batch: &mut Batch, prefix: IpNet) {
        let Some(installed) = self.routes.remove(&prefix) else {
            return;
        };
        batch.routes.push(FibOp::DeleteRoute { prefix });
        if self.mirrored(installed.source(), &prefix) {
            batch.kernel.push(KernelChange::Delete { prefix });
        }
        if !is_reserved(installed.group()) {
            self.release_group(batch, installed.group());
        }
    }

    /// The group for this nexthop set, created (and written) if needed; takes one reference.
    fn acquire_group(&mut self, batch: &mut Batch, set: &NexthopSet) -> Result<u32, FibError> {
        if let Some(&group) = self.group_by_set.get(set) {
            self.groups.get_mut(&group).expect("indexed").routes += 1;
            return Ok(group);
        }
        let mut members = Vec::with_capacity(set.len());
        for key in set.iter() {
            match self.acquire_nexthop(batch, *key) {
                Ok(id) => members.push(id),
                Err(err) => {
                    for id in members {
                        self.release_nexthop(id);
                    }
                    return Err(err);
                }
            }
        }
        members.sort_unstable();
        let id = match self.group_ids.allocate(batch) {
            Ok(id) => id,
            Err(err) => {
                for id in members {
                    self.release_nexthop(id);
                }
                return Err(err);
            }
        };
        let mut group = GroupEntry {
            set: set.clone(),
            members,
            buckets: Buckets::default(),
            slots: [NO_NEXTHOP; NEXTHOP_BUCKETS],
            routes: 1,
        };
        self.assign_buckets(&mut group);
        batch.groups.push(FibOp::WriteGroup {
            id,
            group: Box::new(self.group_record(&group)),
        });
        self.group_by_set.insert(set.clone(), id);
        self.groups.insert(id, group);
        Ok(id)
    }

    fn release_group(&mut self, batch: &mut Batch, id: u32) {
        let group = self.groups.get_mut(&id).expect("released group exists");
        group.routes -= 1;
        if group.routes > 0 {
            return;
        }
        let group = self.groups.remove(&id).expect("present");
        self.group_by_set.remove(&group.set);
        batch.cleanup.push(FibOp::ClearGroup { id });
        self.group_ids.release(batch, id);
        for member in group.members {
            self.release_nexthop(member);
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

    fn release_nexthop(&mut self, id: NexthopId) {
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
        let usable = link.is_some_and(|link| link.up)
            && neighbor.is_some()
            && !self.failed_gateways.contains(&(key.owner, key.via));
        if usable {
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
            self.assign_buckets(&mut group);
            // Always written: a member moved to a fresh slot, and the record lists members.
            batch.groups.push(FibOp::WriteGroup {
                id,
                group: Box::new(self.group_record(&group)),
            });
            self.groups.insert(id, group);
        }
    }

    /// The datapath's record of a group: its buckets and its members' current slots.
    fn group_record(&self, group: &GroupEntry) -> NexthopGroup {
        let mut record = NexthopGroup {
            buckets: group.slots,
            ..NexthopGroup::EMPTY
        };
        for (member, id) in record.members.iter_mut().zip(&group.members) {
            *member = self.nexthops[id].slot;
        }
        record
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

    /// Placeholder so that the kernel-route branch compiles on its own: the FIB engineer's
    /// implementation replaces it at merge (same signature).
    pub fn set_pass_to_kernel(&mut self, _batch: &mut Batch, _prefixes: &[IpNet]) {}
}

#[cfg(test)]
mod tests;
