//! Adj-RIB-In, the decision process and the Loc-RIB.
//!
//! ```text
//!   UPDATE ─> Rib::update(peer, prefix, PathSpec) ─┬─> Adj-RIB-In (pre-policy, every path kept)
//!                                                  ├─> import policy: accepted / rejected
//!                                                  └─> decision process over accepted paths
//!                                                        └─> LocRibChange ─> FIB
//! ```
//!
//! One table holds everything: per prefix, the paths of every peer, import-accepted ones
//! first, ranked by the decision process, the installed ones (best + multipath) leading. The
//! Adj-RIB-In of a peer is its paths in that table (rejected ones included, so that a policy
//! change is re-applied without a route refresh: "soft reconfiguration inbound"); the Loc-RIB
//! is the leading installed paths. Keeping a single table means one lookup per update and no
//! second copy of each route.
//!
//! Memory: per path, 16 bytes (`StoredPath`: interned attributes, peer, next hop id); per
//! prefix, a 24-byte entry in a B-tree keyed by `Ipv4Net` (5 bytes) or `Ipv6Net` (17). The
//! attributes are shared ([`AttrInterner`]) and next hops are counted references into a
//! small table. A B-tree rather than a hash map: no doubling spike when it grows past a power
//! of two (a hash map of 1M routes transiently needs 3x its size), denser at this scale, and
//! `show` walks it in prefix order.
//!
//! Nothing here can produce an advertisement: exporting is [`super::policy`]'s business and it
//! only ever sees the host's originated routes (see the never-transit notes there).

pub mod decision;
mod intern;
mod nexthop;
mod stale;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::mem::size_of;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::bgp::packet::types::PathAttributes;
use crate::bgp::policy::{ImportPolicy, ImportRejection, MaxPrefixExceeded};

pub use super::route_source::{NextHop, PeerId, PeerInfo};
pub use decision::{DecisionConfig, Step};
pub use intern::AttrInterner;
pub use nexthop::NextHopState;

use crate::next_hop_check::Unusable;
use nexthop::{NextHopId, NextHopTable};

/// A route as an UPDATE carries it, for [`Rib::update`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathSpec {
    /// Interned by the RIB; passing the same `Arc` for every prefix of an UPDATE (or one from
    /// [`Rib::intern`]) skips hashing the attributes per prefix.
    pub attrs: Arc<PathAttributes>,
    pub next_hop: NextHop,
}

/// One path to a prefix, as the RIB reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    pub peer: PeerId,
    pub attrs: Arc<PathAttributes>,
    pub next_hop: NextHop,
    /// The peer's session interface ([`PeerInfo::ifindex`]), for link-local next hops.
    pub ifindex: Option<u32>,
}

/// The Loc-RIB route of a prefix: the paths to install, best first, then the other
/// multipath members. Never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BestRoute {
    pub paths: Vec<Path>,
}

impl BestRoute {
    pub fn best(&self) -> &Path {
        &self.paths[0]
    }
}

/// A change of a prefix's Loc-RIB route; `best: None` removes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocRibChange {
    pub prefix: IpNet,
    pub best: Option<BestRoute>,
}

/// Where a path stands, for `show`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathStatus {
    /// The best path.
    Best,
    /// Installed alongside the best (ECMP).
    Multipath,
    /// Accepted, lost the decision process.
    Candidate,
    /// Accepted, but its next hop is marked unreachable.
    NextHopUnreachable,
    /// Accepted, but its next hop can never be used (RFC 4271 9.1.2.1): kept in the
    /// Adj-RIB-In, never best.
    NextHopUnusable(Unusable),
    /// Kept in the Adj-RIB-In only.
    Rejected(ImportRejection),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathView {
    pub path: Path,
    pub status: PathStatus,
}

/// A prefix and every path to it, best first, for `show routes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteView {
    pub prefix: IpNet,
    pub paths: Vec<PathView>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RibError {
    #[error("peer {0:?} is already up: call peer_down first")]
    PeerExists(PeerId),
    #[error("peer {0:?} is not up")]
    UnknownPeer(PeerId),
}

/// Sizes and approximate heap bytes of the RIB (see [`Rib::memory_estimate`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryEstimate {
    pub prefixes: usize,
    pub paths: usize,
    pub attribute_sets: usize,
    pub next_hops: usize,
    /// Prefix tables (B-tree nodes).
    pub table_bytes: usize,
    /// Per-prefix path arrays.
    pub path_bytes: usize,
    /// Interned attributes and the next hop table.
    pub shared_bytes: usize,
}

impl MemoryEstimate {
    pub fn total_bytes(&self) -> usize {
        self.table_bytes + self.path_bytes + self.shared_bytes
    }
}

/// A path as stored: 16 bytes. Not `Clone`: it holds a counted reference into the next hop
/// table, which only the `Rib` may take and release.
#[derive(Debug)]
struct StoredPath {
    attrs: Arc<PathAttributes>,
    peer: PeerId,
    next_hop: NextHopId,
}

/// All paths to one prefix: `paths()[..accepted()]` passed import policy and are ranked by the
/// decision process, `paths()[..installed()]` form the Loc-RIB route, `paths()[accepted()..]`
/// were rejected by import policy.
///
/// 24 bytes. Most prefixes of a full table have exactly one path (one peer sends them), kept
/// inline with its two counts: no allocation per prefix (a 16-byte block costs 32 with the
/// allocator's header). More paths live in a boxed slice (not a `Vec`: no capacity word; the
/// slice is tiny, one path per peer, and rewritten on a change anyway).
#[derive(Debug)]
enum PrefixEntry {
    One {
        path: StoredPath,
        accepted: bool,
        installed: bool,
    },
    /// Any other number of paths, none included (an empty box does not allocate).
    Many {
        paths: Box<[StoredPath]>,
        accepted: u16,
        installed: u16,
    },
}

impl PrefixEntry {
    fn empty() -> Self {
        PrefixEntry::Many {
            paths: Box::new([]),
            accepted: 0,
            installed: 0,
        }
    }

    fn paths(&self) -> &[StoredPath] {
        match self {
            PrefixEntry::One { path, .. } => std::slice::from_ref(path),
            PrefixEntry::Many { paths, .. } => paths,
        }
    }

    fn paths_mut(&mut self) -> &mut [StoredPath] {
        match self {
            PrefixEntry::One { path, .. } => std::slice::from_mut(path),
            PrefixEntry::Many { paths, .. } => paths,
        }
    }

    fn accepted(&self) -> usize {
        match self {
            PrefixEntry::One { accepted, .. } => usize::from(*accepted),
            PrefixEntry::Many { accepted, .. } => usize::from(*accepted),
        }
    }

    fn installed(&self) -> usize {
        match self {
            PrefixEntry::One { installed, .. } => usize::from(*installed),
            PrefixEntry::Many { installed, .. } => usize::from(*installed),
        }
    }

    /// `count <= accepted()`.
    fn set_installed(&mut self, count: usize) {
        debug_assert!(count <= self.accepted());
        match self {
            PrefixEntry::One { installed, .. } => *installed = count == 1,
            PrefixEntry::Many { installed, .. } => {
                *installed = u16::try_from(count).expect("one path per peer fits in u16");
            }
        }
    }

    /// Takes the paths out for a change, as (paths, accepted, installed), with room for one
    /// more; [`PrefixEntry::from_parts`] puts them back.
    fn take(&mut self) -> (Vec<StoredPath>, usize, usize) {
        let counts = (self.accepted(), self.installed());
        let paths = match std::mem::replace(self, PrefixEntry::empty()) {
            PrefixEntry::One { path, .. } => {
                let mut paths = Vec::with_capacity(2);
                paths.push(path);
                paths
            }
            PrefixEntry::Many { paths, .. } => {
                let mut paths = paths.into_vec();
                // Exact growth: the boxed slice in from_parts then needs no reallocation.
                paths.reserve_exact(1);
                paths
            }
        };
        (paths, counts.0, counts.1)
    }

    fn from_parts(mut paths: Vec<StoredPath>, accepted: usize, installed: usize) -> Self {
        debug_assert!(installed <= accepted && accepted <= paths.len());
        if paths.len() == 1 {
            let path = paths.pop().expect("one path");
            return PrefixEntry::One {
                path,
                accepted: accepted == 1,
                installed: installed == 1,
            };
        }
        PrefixEntry::Many {
            paths: paths.into_boxed_slice(),
            accepted: u16::try_from(accepted).expect("one path per peer fits in u16"),
            installed: u16::try_from(installed).expect("one path per peer fits in u16"),
        }
    }

    /// Heap bytes the entry allocated.
    fn heap_bytes(&self) -> usize {
        match self {
            PrefixEntry::One { .. } => 0,
            PrefixEntry::Many { paths, .. } => size_of_val(&**paths),
        }
    }
}

struct PeerState {
    info: PeerInfo,
    import: ImportPolicy,
    /// Paths in the Adj-RIB-In (pre-policy), per address family: max-prefix counts these, and
    /// peer_down skips a family the peer sent nothing in.
    received_v4: usize,
    received_v6: usize,
    accepted: usize,
    /// The limit was crossed and reported; re-armed when the count falls back under it.
    max_prefix_tripped: bool,
    max_prefix_event: Option<MaxPrefixExceeded>,
}

impl PeerState {
    fn received(&self) -> usize {
        self.received_v4 + self.received_v6
    }
}

/// What the decision process reads: borrowed separately from the table it ranks.
struct Context<'a> {
    peers: &'a HashMap<PeerId, PeerState>,
    next_hops: &'a NextHopTable,
    config: &'a DecisionConfig,
}

impl Context<'_> {
    fn view(&self, stored: &StoredPath) -> Path {
        Path {
            peer: stored.peer,
            attrs: stored.attrs.clone(),
            next_hop: self.next_hops.get(stored.next_hop),
            ifindex: self.peers[&stored.peer].info.ifindex,
        }
    }

    /// What keeps an accepted path's next hop out of the decision process (None: nothing).
    fn next_hop_bar(&self, path: &StoredPath) -> Option<PathStatus> {
        let state = self.next_hops.state(path.next_hop);
        if let Some(why) = state.unusable {
            return Some(PathStatus::NextHopUnusable(why));
        }
        let peer = &self.peers[&path.peer].info;
        if peer.own_next_hops_only && !peer.is_own_next_hop(&self.next_hops.get(path.next_hop)) {
            return Some(PathStatus::NextHopUnusable(Unusable::NotNeighborAddress));
        }
        (!state.reachable).then_some(PathStatus::NextHopUnreachable)
    }

    /// Re-runs the decision process on `entry`'s accepted paths.
    fn rank(&self, entry: &mut PrefixEntry) {
        let accepted = entry.accepted();
        let paths = &mut entry.paths_mut()[..accepted];
        let installed = match paths {
            [] => 0,
            [only] => usize::from(self.next_hop_bar(only).is_none()),
            _ => {
                let candidates: Vec<decision::Candidate> = paths
                    .iter()
                    .map(|path| {
                        let state = self.next_hops.state(path.next_hop);
                        decision::Candidate {
                            attrs: &path.attrs,
                            peer: &self.peers[&path.peer].info,
                            reachable: self.next_hop_bar(path).is_none(),
                            igp_cost: state.igp_cost,
                        }
                    })
                    .collect();
                let selection = decision::select(&candidates, self.config);
                drop(candidates);
                apply_order(paths, &selection.order);
                selection.installed
            }
        };
        entry.set_installed(installed);
    }

    fn best_route(&self, entry: &PrefixEntry) -> Option<BestRoute> {
        let installed = &entry.paths()[..entry.installed()];
        (!installed.is_empty()).then(|| BestRoute {
            paths: installed.iter().map(|path| self.view(path)).collect(),
        })
    }
}

/// The installed paths' identity: what a Loc-RIB change is detected against. Next hops by id
/// are safe to compare: the snapshot is taken and compared while the old paths (and so their
/// ids) are still held.
type InstalledSnapshot = Vec<(PeerId, *const PathAttributes, NextHopId)>;

fn snapshot(entry: &PrefixEntry) -> InstalledSnapshot {
    entry.paths()[..entry.installed()]
        .iter()
        .map(|path| (path.peer, Arc::as_ptr(&path.attrs), path.next_hop))
        .collect()
}

/// Reorders `items` so that `items[i]` is the element that was at `order[i]`.
fn apply_order<T>(items: &mut [T], order: &[usize]) {
    debug_assert_eq!(items.len(), order.len());
    // position[k]: where the element originally at k is now; origin[p]: the reverse.
    let mut position: Vec<usize> = (0..items.len()).collect();
    let mut origin = position.clone();
    for (i, &wanted) in order.iter().enumerate() {
        let at = position[wanted];
        if at != i {
            items.swap(i, at);
            let displaced = origin[i];
            origin[at] = displaced;
            position[displaced] = at;
            origin[i] = wanted;
            position[wanted] = i;
        }
    }
}

/// The RIB of the speaker: every peer's routes, the decision process and its result.
pub struct Rib {
    config: DecisionConfig,
    v4: BTreeMap<Ipv4Net, PrefixEntry>,
    v6: BTreeMap<Ipv6Net, PrefixEntry>,
    peers: HashMap<PeerId, PeerState>,
    next_hops: NextHopTable,
    interner: AttrInterner,
    /// Graceful restart: paths of restarting peers (`stale.rs`).
    stale: stale::StalePaths,
}

/// The table of a prefix's family, borrowed apart from the rest of the RIB.
enum Table<'a> {
    V4(&'a mut BTreeMap<Ipv4Net, PrefixEntry>, Ipv4Net),
    V6(&'a mut BTreeMap<Ipv6Net, PrefixEntry>, Ipv6Net),
}

impl Table<'_> {
    fn get_mut(&mut self) -> Option<&mut PrefixEntry> {
        match self {
            Table::V4(table, key) => table.get_mut(key),
            Table::V6(table, key) => table.get_mut(key),
        }
    }

    fn get_or_insert(&mut self) -> &mut PrefixEntry {
        let empty = PrefixEntry::empty;
        match self {
            Table::V4(table, key) => table.entry(*key).or_insert_with(empty),
            Table::V6(table, key) => table.entry(*key).or_insert_with(empty),
        }
    }

    fn remove(&mut self) {
        match self {
            Table::V4(table, key) => table.remove(key),
            Table::V6(table, key) => table.remove(key),
        };
    }
}

impl Default for Rib {
    fn default() -> Self {
        Self::new(DecisionConfig::default())
    }
}

impl Rib {
    pub fn new(config: DecisionConfig) -> Self {
        Self {
            config,
            v4: BTreeMap::new(),
            v6: BTreeMap::new(),
            peers: HashMap::new(),
            next_hops: NextHopTable::default(),
            interner: AttrInterner::new(),
            stale: stale::StalePaths::default(),
        }
    }

    pub fn config(&self) -> &DecisionConfig {
        &self.config
    }

    /// The shared instance of `attrs`; give it to every [`PathSpec`] of one UPDATE.
    pub fn intern(&mut self, attrs: PathAttributes) -> Arc<PathAttributes> {
        self.interner.intern(attrs)
    }

    /// Registers an established session and its import policy. Logs when RFC 8212 makes an
    /// eBGP session import nothing.
    pub fn peer_up(&mut self, info: PeerInfo, import: ImportPolicy) -> Result<(), RibError> {
        if self.peers.contains_key(&info.id) {
            return Err(RibError::PeerExists(info.id));
        }
        import.log_if_unconfigured(&info);
        self.peers.insert(
            info.id,
            PeerState {
                info,
                import,
                received_v4: 0,
                received_v6: 0,
                accepted: 0,
                max_prefix_tripped: false,
                max_prefix_event: None,
            },
        );
        Ok(())
    }

    pub fn peer(&self, peer: PeerId) -> Option<&PeerInfo> {
        self.peers.get(&peer).map(|state| &state.info)
    }

    /// Paths received from `peer` (its Adj-RIB-In, pre-policy) and how many import accepted.
    pub fn peer_counts(&self, peer: PeerId) -> Option<(usize, usize)> {
        self.peers
            .get(&peer)
            .map(|state| (state.received(), state.accepted))
    }

    /// Announces (`Some`) or withdraws (`None`) `peer`'s path to `prefix`; returns the Loc-RIB
    /// change it causes, if any. A path replaces the peer's previous one (implicit withdraw).
    /// After each UPDATE, check [`Rib::take_max_prefix_exceeded`].
    pub fn update(
        &mut self,
        peer: PeerId,
        prefix: IpNet,
        path: Option<PathSpec>,
    ) -> Option<LocRibChange> {
        let prefix = prefix.trunc();
        self.stale.refreshed(peer, &prefix);
        let Some(state) = self.peers.get(&peer) else {
            tracing::error!(?peer, %prefix, "BGP update from a peer that is not up; ignored");
            debug_assert!(false, "update from unknown peer {peer:?}");
            return None;
        };
        let Some(spec) = path else {
            return self.withdraw(peer, prefix);
        };
        let attrs = self.interner.intern_arc(spec.attrs);
        let accepted = state.import.evaluate(&prefix, &attrs, &state.info).is_ok();
        let next_hop = self.next_hops.acquire(spec.next_hop);
        let new = StoredPath {
            attrs,
            peer,
            next_hop,
        };

        let mut table = match prefix {
            IpNet::V4(net) => Table::V4(&mut self.v4, net),
            IpNet::V6(net) => Table::V6(&mut self.v6, net),
        };
        let entry = table.get_or_insert();
        let existing = entry.paths().iter().position(|path| path.peer == peer);
        if let Some(index) = existing {
            let old = &entry.paths()[index];
            let was_accepted = index < entry.accepted();
            if Arc::ptr_eq(&old.attrs, &new.attrs)
                && old.next_hop == new.next_hop
                && was_accepted == accepted
            {
                // A duplicate (route refresh, or a peer resending): nothing to do.
                self.next_hops.release(next_hop);
                return None;
            }
        }
        let before = snapshot(entry);
        let old = remove_path(entry, existing);
        insert_path(entry, new, accepted);
        let context = Context {
            peers: &self.peers,
            next_hops: &self.next_hops,
            config: &self.config,
        };
        context.rank(entry);
        let change = (snapshot(entry) != before).then(|| LocRibChange {
            prefix,
            best: context.best_route(entry),
        });

        let state = self.peers.get_mut(&peer).expect("checked above");
        match old {
            Some((old, was_accepted)) => {
                self.next_hops.release(old.next_hop);
                if was_accepted {
                    state.accepted -= 1;
                }
            }
            None => {
                match prefix {
                    IpNet::V4(_) => state.received_v4 += 1,
                    IpNet::V6(_) => state.received_v6 += 1,
                }
                check_max_prefix(state);
            }
        }
        if accepted {
            state.accepted += 1;
        }
        change
    }

    fn withdraw(&mut self, peer: PeerId, prefix: IpNet) -> Option<LocRibChange> {
        let mut table = match prefix {
            IpNet::V4(net) => Table::V4(&mut self.v4, net),
            IpNet::V6(net) => Table::V6(&mut self.v6, net),
        };
        let entry = table.get_mut()?;
        let index = entry.paths().iter().position(|path| path.peer == peer)?;
        let before = snapshot(entry);
        let (old, was_accepted) = remove_path(entry, Some(index)).expect("index is valid");
        let change = if entry.paths().is_empty() {
            table.remove();
            (!before.is_empty()).then_some(LocRibChange { prefix, best: None })
        } else {
            let context = Context {
                peers: &self.peers,
                next_hops: &self.next_hops,
                config: &self.config,
            };
            context.rank(entry);
            (snapshot(entry) != before).then(|| LocRibChange {
                prefix,
                best: context.best_route(entry),
            })
        };
        self.next_hops.release(old.next_hop);
        let state = self.peers.get_mut(&peer).expect("caller checked");
        match prefix {
            IpNet::V4(_) => state.received_v4 -= 1,
            IpNet::V6(_) => state.received_v6 -= 1,
        }
        if was_accepted {
            state.accepted -= 1;
        }
        rearm_max_prefix(state);
        change
    }

    /// The session went down: removes every path of `peer` and returns the Loc-RIB changes.
    /// One pass over the table (per address family the peer sent routes in), whatever the
    /// number of routes; nothing per prefix beyond re-ranking the prefixes the peer was in.
    /// The FIB already stopped using the peer's next hop as a whole when the link or session
    /// failed; these changes update its routes at leisure.
    pub fn peer_down(&mut self, peer: PeerId) -> Vec<LocRibChange> {
        let mut changes = Vec::new();
        self.peer_down_each(peer, |change| changes.push(change));
        changes
    }

    /// Like [`Rib::peer_down`], handing each change to `emit` instead of collecting them (a
    /// full table's worth of changes is a lot of memory to hold at once).
    pub fn peer_down_each(&mut self, peer: PeerId, mut emit: impl FnMut(LocRibChange)) {
        let Some(state) = self.peers.get(&peer) else {
            return;
        };
        let (has_v4, has_v6) = (state.received_v4 > 0, state.received_v6 > 0);
        let mut released = Vec::new();
        {
            let context = Context {
                peers: &self.peers,
                next_hops: &self.next_hops,
                config: &self.config,
            };
            let mut remove_from = |prefix: IpNet, entry: &mut PrefixEntry| -> bool {
                let Some(index) = entry.paths().iter().position(|path| path.peer == peer) else {
                    return true;
                };
                // A rejected path never took part in the decision: removing it changes nothing.
                // An accepted one may, even when not installed (MED is not transitive).
                let could_change = index < entry.accepted();
                let before = if could_change {
                    snapshot(entry)
                } else {
                    Vec::new()
                };
                let (old, _) = remove_path(entry, Some(index)).expect("index is valid");
                released.push(old);
                if entry.paths().is_empty() {
                    if !before.is_empty() {
                        emit(LocRibChange { prefix, best: None });
                    }
                    return false;
                }
                if could_change {
                    context.rank(entry);
                    if snapshot(entry) != before {
                        emit(LocRibChange {
                            prefix,
                            best: context.best_route(entry),
                        });
                    }
                }
                // Next hop references are released after the pass (the context borrows the
                // table); dropping the paths in batches also keeps the pass simple.
                true
            };
            if has_v4 {
                self.v4
                    .retain(|net, entry| remove_from(IpNet::V4(*net), entry));
            }
            if has_v6 {
                self.v6
                    .retain(|net, entry| remove_from(IpNet::V6(*net), entry));
            }
        }
        for old in released {
            self.next_hops.release(old.next_hop);
        }
        self.peers.remove(&peer);
        self.stale.forget(peer);
        self.interner.prune();
    }

    /// Replaces `peer`'s import policy and re-applies it to the routes the peer sent (kept
    /// pre-policy, so no route refresh is needed). Returns the Loc-RIB changes.
    pub fn reapply_import(
        &mut self,
        peer: PeerId,
        policy: &ImportPolicy,
    ) -> Result<Vec<LocRibChange>, RibError> {
        let state = self
            .peers
            .get_mut(&peer)
            .ok_or(RibError::UnknownPeer(peer))?;
        state.import = policy.clone();
        state.import.log_if_unconfigured(&state.info);
        // The limit may have changed: judge the current count against the new one.
        state.max_prefix_tripped = false;
        check_max_prefix(state);

        let state = &self.peers[&peer];
        let context = Context {
            peers: &self.peers,
            next_hops: &self.next_hops,
            config: &self.config,
        };
        let mut changes = Vec::new();
        let mut accepted_delta: isize = 0;
        let mut reevaluate = |prefix: IpNet, entry: &mut PrefixEntry| {
            let Some(index) = entry.paths().iter().position(|path| path.peer == peer) else {
                return;
            };
            let was_accepted = index < entry.accepted();
            let accepted = state
                .import
                .evaluate(&prefix, &entry.paths()[index].attrs, &state.info)
                .is_ok();
            if accepted == was_accepted {
                return;
            }
            accepted_delta += if accepted { 1 } else { -1 };
            let before = snapshot(entry);
            let (path, _) = remove_path(entry, Some(index)).expect("index is valid");
            insert_path(entry, path, accepted);
            context.rank(entry);
            if snapshot(entry) != before {
                changes.push(LocRibChange {
                    prefix,
                    best: context.best_route(entry),
                });
            }
        };
        if state.received_v4 > 0 {
            for (net, entry) in self.v4.iter_mut() {
                reevaluate(IpNet::V4(*net), entry);
            }
        }
        if state.received_v6 > 0 {
            for (net, entry) in self.v6.iter_mut() {
                reevaluate(IpNet::V6(*net), entry);
            }
        }
        let state = self.peers.get_mut(&peer).expect("checked above");
        state.accepted = state
            .accepted
            .checked_add_signed(accepted_delta)
            .expect("count");
        Ok(changes)
    }

    /// The hook for next hop tracking (decision step 0 and (e)): the caller tells what it
    /// knows of an address (a link went down, a neighbor failed); every prefix with a path
    /// through it is re-decided. A default state (reachable, cost 0) clears the mark.
    pub fn set_next_hop_state(
        &mut self,
        address: IpAddr,
        state: NextHopState,
    ) -> Vec<LocRibChange> {
        if !self.next_hops.set_state(address, state) {
            return Vec::new();
        }
        let context = Context {
            peers: &self.peers,
            next_hops: &self.next_hops,
            config: &self.config,
        };
        let uses_address = |path: &StoredPath| {
            let hop = context.next_hops.get(path.next_hop);
            hop.address == address || hop.link_local.map(IpAddr::V6) == Some(address)
        };
        let mut changes = Vec::new();
        let mut redecide = |prefix: IpNet, entry: &mut PrefixEntry| {
            let accepted = &entry.paths()[..entry.accepted()];
            if !accepted.iter().any(uses_address) {
                return;
            }
            let before = snapshot(entry);
            context.rank(entry);
            if snapshot(entry) != before {
                changes.push(LocRibChange {
                    prefix,
                    best: context.best_route(entry),
                });
            }
        };
        for (net, entry) in self.v4.iter_mut() {
            redecide(IpNet::V4(*net), entry);
        }
        for (net, entry) in self.v6.iter_mut() {
            redecide(IpNet::V6(*net), entry);
        }
        changes
    }

    /// Marks `address` unusable (`Some(why)`) or usable again, keeping what else is known of
    /// it; every prefix with a path through it is re-decided if that changes anything. Set it
    /// before the routes arrive and they are ranked right away.
    pub fn set_next_hop_unusable(
        &mut self,
        address: IpAddr,
        unusable: Option<Unusable>,
    ) -> Vec<LocRibChange> {
        let state = self.next_hops.address_state(address);
        if state.unusable == unusable {
            return Vec::new();
        }
        self.set_next_hop_state(address, NextHopState { unusable, ..state })
    }

    /// What is recorded of `address` (default: reachable, usable).
    pub fn next_hop_state(&self, address: IpAddr) -> NextHopState {
        self.next_hops.address_state(address)
    }

    /// Every next hop address routes use or a state was recorded for: what to re-check when
    /// the host's addresses change.
    pub fn next_hop_addresses(&self) -> std::collections::BTreeSet<IpAddr> {
        self.next_hops.addresses()
    }

    /// The max-prefix limit of `peer`'s import policy was crossed since the last call: the
    /// speaker warns or tears the session down (Cease, "Maximum Number of Prefixes Reached",
    /// RFC 4486) as the event says. Reported once per crossing; call after each UPDATE.
    pub fn take_max_prefix_exceeded(&mut self, peer: PeerId) -> Option<MaxPrefixExceeded> {
        self.peers.get_mut(&peer)?.max_prefix_event.take()
    }

    fn context(&self) -> Context<'_> {
        Context {
            peers: &self.peers,
            next_hops: &self.next_hops,
            config: &self.config,
        }
    }

    /// The Loc-RIB route of `prefix`.
    pub fn best(&self, prefix: &IpNet) -> Option<BestRoute> {
        let entry = match prefix.trunc() {
            IpNet::V4(net) => self.v4.get(&net),
            IpNet::V6(net) => self.v6.get(&net),
        }?;
        self.context().best_route(entry)
    }

    /// Every prefix (IPv4 then IPv6, in prefix order) with all its paths and their status.
    pub fn routes(&self) -> impl Iterator<Item = RouteView> + '_ {
        let v4 = self.v4.iter().map(|(net, entry)| (IpNet::V4(*net), entry));
        let v6 = self.v6.iter().map(|(net, entry)| (IpNet::V6(*net), entry));
        v4.chain(v6)
            .map(|(prefix, entry)| self.route_view(prefix, entry))
    }

    /// The paths `peer` sent (its Adj-RIB-In, pre-policy), with whether import accepted each.
    pub fn adj_rib_in(&self, peer: PeerId) -> impl Iterator<Item = (IpNet, Path, bool)> + '_ {
        let context = self.context();
        let v4 = self.v4.iter().map(|(net, entry)| (IpNet::V4(*net), entry));
        let v6 = self.v6.iter().map(|(net, entry)| (IpNet::V6(*net), entry));
        v4.chain(v6).filter_map(move |(prefix, entry)| {
            let index = entry.paths().iter().position(|path| path.peer == peer)?;
            let accepted = index < entry.accepted();
            Some((prefix, context.view(&entry.paths()[index]), accepted))
        })
    }

    fn route_view(&self, prefix: IpNet, entry: &PrefixEntry) -> RouteView {
        let context = self.context();
        let paths = entry
            .paths()
            .iter()
            .enumerate()
            .map(|(index, stored)| {
                let path = context.view(stored);
                let status = if index == 0 && entry.installed() > 0 {
                    PathStatus::Best
                } else if index < entry.installed() {
                    PathStatus::Multipath
                } else if index < entry.accepted() {
                    context
                        .next_hop_bar(stored)
                        .unwrap_or(PathStatus::Candidate)
                } else {
                    let peer = &self.peers[&stored.peer];
                    // Re-evaluated rather than stored (that would cost a byte per path); the
                    // policy only changes through reapply_import, which re-sorts the paths.
                    let reason = peer
                        .import
                        .evaluate(&prefix, &stored.attrs, &peer.info)
                        .err()
                        .unwrap_or(ImportRejection::Denied);
                    PathStatus::Rejected(reason)
                };
                PathView { path, status }
            })
            .collect();
        RouteView { prefix, paths }
    }

    /// Prefixes held (with at least one path, accepted or not).
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops attribute sets no route uses any more (also done automatically as the interner
    /// grows, and after a peer goes down).
    pub fn prune_attributes(&mut self) -> usize {
        self.interner.prune()
    }

    /// Approximate heap use. B-tree nodes are counted at the fill ratio random insertion
    /// leaves them with (about 2/3), so this is an estimate, not an allocator measurement.
    pub fn memory_estimate(&self) -> MemoryEstimate {
        // A leaf holds up to 11 entries plus a parent pointer and two u16s.
        const BTREE_CAPACITY: usize = 11;
        const FILL: f64 = 2.0 / 3.0;
        fn table_bytes<K>(len: usize) -> usize {
            let node = size_of::<usize>()
                + 2 * size_of::<u16>()
                + BTREE_CAPACITY * (size_of::<K>() + size_of::<PrefixEntry>());
            (len as f64 / (BTREE_CAPACITY as f64 * FILL)).ceil() as usize * node
        }
        // Allocators round small blocks up and add a header; 16-byte granularity plus 8.
        fn allocation(bytes: usize) -> usize {
            if bytes == 0 {
                0
            } else {
                (bytes + 8).div_ceil(16) * 16
            }
        }
        let entries = self.v4.values().chain(self.v6.values());
        let (mut paths, mut path_bytes) = (0, 0);
        for entry in entries {
            paths += entry.paths().len();
            path_bytes += allocation(entry.heap_bytes());
        }
        MemoryEstimate {
            prefixes: self.len(),
            paths,
            attribute_sets: self.interner.len(),
            next_hops: self.next_hops.len(),
            table_bytes: table_bytes::<Ipv4Net>(self.v4.len())
                + table_bytes::<Ipv6Net>(self.v6.len()),
            path_bytes,
            shared_bytes: self.interner.memory_estimate() + self.next_hops.memory_estimate(),
        }
    }
}

/// Removes `entry.paths[index]`; returns it and whether it was accepted. Keeps the accepted
/// partition; `installed` is only meaningful again after ranking.
fn remove_path(entry: &mut PrefixEntry, index: Option<usize>) -> Option<(StoredPath, bool)> {
    let index = index?;
    let (mut paths, mut accepted, installed) = entry.take();
    let was_accepted = index < accepted;
    let path = paths.remove(index);
    if was_accepted {
        accepted -= 1;
    }
    *entry = PrefixEntry::from_parts(paths, accepted, installed.min(accepted));
    Some((path, was_accepted))
}

/// Adds `path` to the accepted partition (ranked later) or to the rejected tail.
fn insert_path(entry: &mut PrefixEntry, path: StoredPath, accepted: bool) {
    let (mut paths, mut accepted_count, installed) = entry.take();
    if accepted {
        paths.insert(accepted_count, path);
        accepted_count += 1;
    } else {
        paths.push(path);
    }
    *entry = PrefixEntry::from_parts(paths, accepted_count, installed);
}

fn check_max_prefix(state: &mut PeerState) {
    let Some(max_prefix) = &state.import.max_prefix else {
        return;
    };
    let received = state.received();
    if state.max_prefix_tripped || received <= max_prefix.limit as usize {
        return;
    }
    state.max_prefix_tripped = true;
    let event = MaxPrefixExceeded {
        limit: max_prefix.limit,
        received,
        action: max_prefix.action,
    };
    tracing::warn!(
        peer = %state.info.address,
        remote_as = state.info.remote_as,
        received,
        limit = max_prefix.limit,
        action = ?max_prefix.action,
        "BGP neighbor exceeded its maximum prefix count"
    );
    state.max_prefix_event = Some(event);
}

fn rearm_max_prefix(state: &mut PeerState) {
    if let Some(max_prefix) = &state.import.max_prefix
        && state.received() <= max_prefix.limit as usize
    {
        state.max_prefix_tripped = false;
    }
}
