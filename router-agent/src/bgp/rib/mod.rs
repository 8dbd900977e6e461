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
mod entry;
mod intern;
mod max_prefix;
mod next_hop_marks;
mod nexthop;
mod stale;
#[cfg(test)]
mod tests;
mod view;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::bgp::packet::types::PathAttributes;
use crate::bgp::policy::{ImportPolicy, ImportRejection, MaxPrefixExceeded};

pub use super::route_source::{NextHop, PeerId, PeerInfo};
pub use decision::{DecisionConfig, Step};
pub use intern::AttrInterner;
pub use nexthop::NextHopState;
pub use view::{MemoryEstimate, PathView, RouteView};

use crate::next_hop_check::Unusable;
use entry::{PrefixEntry, StoredPath, apply_order, insert_path, remove_path, snapshot};
use max_prefix::{check_max_prefix, rearm_max_prefix};
use nexthop::NextHopTable;

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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RibError {
    #[error("peer {0:?} is already up: call peer_down first")]
    PeerExists(PeerId),
    #[error("peer {0:?} is not up")]
    UnknownPeer(PeerId),
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

    fn context(&self) -> Context<'_> {
        Context {
            peers: &self.peers,
            next_hops: &self.next_hops,
            config: &self.config,
        }
    }

    /// Drops attribute sets no route uses any more (also done automatically as the interner
    /// grows, and after a peer goes down).
    pub fn prune_attributes(&mut self) -> usize {
        self.interner.prune()
    }
}
