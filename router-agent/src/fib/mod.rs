//! The forwarding information base: what the datapath should hold, and the ordered operations
//! that take it there.
//!
//! ```text
//!   sources (local addresses, static config, BGP) ── set_route / remove_route ──┐
//!   kernel (links, neighbors)                     ── update_link / _neighbor ──┤
//!                                                                              v
//!   prefix ──> group (shared by the routes with the same nexthop set) ──> nexthops
//! ```
//!
//! The FIB is pure bookkeeping: it never touches a map. Every change produces a [`Batch`] of
//! [`FibOp`]s in make-before-break order (nexthops, then groups, then routes, then cleanup), so
//! the datapath can apply them one by one and a packet never follows a route to a group or a
//! group to a slot that is not written yet. A nexthop that fails or recovers changes only the
//! groups holding it: one bucket rewrite per group, whatever the number of routes.
//!
//! A route whose nexthop set changes keeps its flows on the nexthops it keeps (resilient
//! ECMP, see `groups.rs`). A route that cannot be installed in full is left to the kernel
//! (`GROUP_PASS`) with its real route mirrored there, so neither its old version nor a
//! covering route forwards its packets; a nexthop record that cannot be updated leaves its
//! groups. Every route inside a `pass_to_kernel` prefix goes to the kernel too.
//!
//! Files: `api.rs` (the public operations), `install.rs` (a prefix's datapath route and
//! kernel mirror, failures, `pass_to_kernel`), `groups.rs` (groups and their bucket layouts),
//! `nexthops.rs` (nexthop records and slots), `ids.rs` (id allocation and quarantine),
//! `adopted.rs` (the previous run's routes after a restart, and nexthop owner records).

mod adopted;
mod api;
mod census;
pub mod ecmp;
mod groups;
mod ids;
mod install;
mod nexthops;
pub use census::FibCensus;
pub mod reference;
mod routes;
pub mod synthetic;

use std::{collections::BTreeSet, net::IpAddr, sync::Arc, time::Duration};

use ipnet::IpNet;
use router_common::{FIRST_GROUP, NEXTHOP_BUCKETS, Nexthop, NexthopGroup, NexthopOwner};

pub use adopted::{AdoptedGroup, Family};
use ecmp::NexthopId;
use groups::GroupEntry;
use ids::{Ids, QuarantinedIds};
use nexthops::NexthopEntry;
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
    /// BGP routes the previous run of the agent left in the datapath (a restart or an
    /// upgrade), forwarding until the peers they came from have sent their routes again
    /// (`adopted.rs`). Never mirrored: the kernel still holds the previous run's routes.
    Adopted,
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
    /// The previous run's BGP session with this peer address (adopted routes, `adopted.rs`).
    Adopted(IpAddr),
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
        /// Whose nexthop it is, recorded beside the slot for the next run to adopt.
        owner: NexthopOwner,
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
    /// How long a released nexthop slot or group id stays untouched: XDP programs that read it
    /// before the release may still be using it.
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
    /// Kernel mirroring of BGP routes (local routes never, static routes always).
    bgp_mirror: KernelMirror,
    routes: RouteTable,
    groups: HashMap<u32, GroupEntry>,
    /// Interned nexthop sets and the groups installed with each (at least one): the first takes
    /// the routes that come with no group of their own.
    groups_by_set: HashMap<NexthopSet, Vec<u32>>,
    /// Where the routes of a group go when their set changes: (group, new set) -> the group
    /// made from the first one's bucket layout, shared by the routes that follow.
    successors: HashMap<(u32, NexthopSet), u32>,
    nexthops: HashMap<NexthopId, NexthopEntry>,
    nexthop_by_key: HashMap<NexthopKey, NexthopId>,
    links: HashMap<u32, LinkState>,
    neighbors: HashMap<(u32, IpAddr), [u8; 6]>,
    /// Gateways a routing protocol declared dead (a BGP session went down), per owner: their
    /// nexthops leave every group at once, before the routes through them are withdrawn one
    /// by one.
    failed_gateways: std::collections::HashSet<(Owner, IpAddr), foldhash::fast::RandomState>,
    group_ids: QuarantinedIds,
    nexthop_ids: Ids,
    slots: QuarantinedIds,
    /// Nexthops whose slot holds an outdated record (no slot was free for the new one): no
    /// bucket points at them until a slot frees up.
    stale_nexthops: usize,
    /// Routes installed as `GROUP_PASS` because they could not be installed in full (tables
    /// full, too many nexthops), with the nexthops they asked for and why they failed.
    unplaced: HashMap<IpNet, (NexthopSet, &'static str)>,
    /// Something was freed while work was deferred: try it again.
    retry_due: bool,
    /// Why work was deferred (a table full...), and how many times since it was logged.
    shortages: std::collections::BTreeMap<&'static str, usize>,
    /// `pass_to_kernel`: destinations the fast path leaves to the kernel. Sorted.
    pass: Vec<IpNet>,
    /// The peer address of each BGP session owner (`name_owner`), recorded with its nexthops.
    owner_names: HashMap<u32, IpAddr>,
    /// Prefixes holding an adopted route (installed or waiting behind a fresher source).
    adopted_routes: usize,
}

impl Fib {
    /// `limits.groups` is at most 2^16 (a route entry holds a group id in 16 bits).
    pub fn new(limits: FibLimits) -> Self {
        assert!(
            limits.groups <= RouteEntry::MAX_GROUPS,
            "at most {} nexthop groups",
            RouteEntry::MAX_GROUPS
        );
        let quarantine = limits.slot_quarantine;
        Self {
            bgp_mirror: KernelMirror::All,
            routes: RouteTable::default(),
            groups: HashMap::default(),
            groups_by_set: HashMap::default(),
            successors: HashMap::default(),
            nexthops: HashMap::default(),
            nexthop_by_key: HashMap::default(),
            links: HashMap::default(),
            neighbors: HashMap::default(),
            failed_gateways: Default::default(),
            group_ids: QuarantinedIds::new(
                "nexthop groups",
                FIRST_GROUP,
                limits.groups,
                quarantine,
            ),
            nexthop_ids: Ids::new(0, limits.nexthop_ids),
            slots: QuarantinedIds::new("nexthop slots", 0, limits.nexthop_slots, quarantine),
            stale_nexthops: 0,
            unplaced: HashMap::default(),
            retry_due: false,
            shortages: Default::default(),
            pass: Vec::new(),
            owner_names: HashMap::default(),
            adopted_routes: 0,
        }
    }
}

#[cfg(test)]
mod tests;
