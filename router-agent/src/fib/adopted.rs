//! Routes adopted from the previous run's datapath (a restart or an upgrade), kept
//! forwarding until the peers they were learned from have sent their End-of-RIB.
//!
//! The daemon reads the previous run's BGP routes back from the pinned maps
//! (`datapath/adopt.rs`) and hands each to [`Fib::adopt_route`] with its group's nexthops and
//! bucket layout. An adopted route is `Source::Adopted` (below `Source::Bgp`: a fresh route
//! for the prefix takes over at once), its nexthops are `Owner::Adopted(peer address)`, and
//! its group is recreated with the previous bucket layout: with the same flow hash seed,
//! every flow keeps its nexthop across the restart. Adopted routes are never mirrored into
//! the kernel: the previous run's kernel routes are still there.
//!
//! A peer's End-of-RIB sweeps its adopted nexthops ([`Fib::sweep_adopted`]): a route's set
//! shrinks through its group's successor (resilient: only that peer's buckets move), and a
//! route left with no nexthop leaves.

use std::{collections::BTreeSet, net::IpAddr};

use ipnet::IpNet;
use router_common::{NEXTHOP_BUCKETS, NexthopOwner, OWNER_BGP, OWNER_F_PEER_IPV6};

use super::{
    Batch, Candidate, Fib, FibError, NexthopKey, NexthopSet, Owner, RouteTarget, Source,
    ecmp::Buckets, is_reserved, routes::RouteEntry,
};

/// An address family, for what is swept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of(prefix: &IpNet) -> Self {
        match prefix {
            IpNet::V4(_) => Family::Ipv4,
            IpNet::V6(_) => Family::Ipv6,
        }
    }
}

/// A previous run's nexthop group, as read back from its maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdoptedGroup {
    /// The group's nexthops, each `Owner::Adopted`. At most `NEXTHOP_BUCKETS`, no duplicate.
    pub members: Vec<NexthopKey>,
    /// Per bucket, the index in `members` of the nexthop it pointed at (None: none).
    pub buckets: [Option<u8>; NEXTHOP_BUCKETS],
}

impl Fib {
    /// Names the peer address behind a BGP session's owner id, so that its nexthops are
    /// recorded with it in the datapath (what the next run adopts is swept per peer address).
    /// Nexthops written before the naming keep an unnamed owner record (the next run sweeps
    /// them with everything left at the selection deferral).
    pub fn name_owner(&mut self, owner: Owner, address: IpAddr) {
        if let Owner::Bgp(id) = owner {
            self.owner_names.insert(id, address);
        }
    }

    /// The datapath's owner record of a nexthop.
    pub(super) fn owner_record(&self, owner: Owner) -> NexthopOwner {
        let peer = match owner {
            Owner::Host => return NexthopOwner::default(),
            Owner::Bgp(id) => self.owner_names.get(&id).copied(),
            Owner::Adopted(address) => Some(address).filter(|a| !a.is_unspecified()),
        };
        let mut record = NexthopOwner {
            kind: OWNER_BGP,
            ..NexthopOwner::default()
        };
        match peer {
            Some(IpAddr::V4(address)) => record.peer[..4].copy_from_slice(&address.octets()),
            Some(IpAddr::V6(address)) => {
                record.peer = address.octets();
                record.flags |= OWNER_F_PEER_IPV6;
            }
            None => record.flags |= router_common::OWNER_F_PEER_UNKNOWN,
        }
        record
    }

    /// Adds the previous run's route for `prefix` over `group`, its buckets laid out as they
    /// were. See [`Fib::adopt_routes`].
    pub fn adopt_route(
        &mut self,
        batch: &mut Batch,
        prefix: IpNet,
        group: &AdoptedGroup,
    ) -> Result<(), FibError> {
        self.adopt_routes(batch, group, &[prefix])
    }

    /// Adds the previous run's routes of one group (a full table is a million routes over a
    /// few groups: the group is made once). Routes of one previous group share one new group,
    /// laid out as the previous one. A prefix some source already holds keeps it if that
    /// source is preferred (the adopted route waits behind it); a prefix already adopted keeps
    /// its first route. On an error (no group id, slot or nexthop id free), the routes not
    /// adopted yet are left to the kernel, which still holds them.
    pub fn adopt_routes(
        &mut self,
        batch: &mut Batch,
        group: &AdoptedGroup,
        prefixes: &[IpNet],
    ) -> Result<(), FibError> {
        if group.members.is_empty() || group.members.len() > NEXTHOP_BUCKETS {
            let prefix = prefixes.first().copied().unwrap_or_default();
            return Err(match group.members.len() {
                0 => FibError::NoNexthops { prefix },
                count => FibError::TooManyNexthops { prefix, count },
            });
        }
        let keys: BTreeSet<NexthopKey> = group.members.iter().copied().collect();
        let set = self.intern(keys);
        // The new group, once a route needs it; every route after the first adds a reference.
        let mut acquired: Option<u32> = None;
        for prefix in prefixes {
            let prefix = prefix.trunc();
            let installed = self.routes.get(&prefix);
            match installed {
                Some(installed) if installed.source() == Source::Adopted => continue,
                Some(installed) if installed.source() < Source::Adopted => {
                    if self.routes.alternate(&prefix, Source::Adopted).is_none() {
                        self.routes.set_alternate(
                            prefix,
                            Source::Adopted,
                            Candidate::Via(set.clone()),
                        );
                        self.adopted_routes += 1;
                    }
                    continue;
                }
                _ => {}
            }
            let id = match acquired {
                Some(id) => {
                    self.groups.get_mut(&id).expect("held").routes += 1;
                    id
                }
                None => {
                    let id = self.acquire_adopted_group(batch, &set, group)?;
                    acquired = Some(id);
                    id
                }
            };
            batch.routes.push(self.route_op(prefix, id));
            if let Some(installed) = installed {
                // A kernel route we use only without one of our own: it waits now.
                let demoted = self.candidate_of(installed, &prefix);
                if !self.unplaced.is_empty() {
                    self.unplaced.remove(&prefix);
                }
                if !is_reserved(installed.group()) {
                    self.release_group(batch, installed.group());
                }
                self.routes
                    .set_alternate(prefix, installed.source(), demoted);
            }
            self.routes
                .set(prefix, RouteEntry::new(id, Source::Adopted));
            self.adopted_routes += 1;
        }
        Ok(())
    }

    /// A group for `set` laid out as `adopted`, taking one reference: one created for an
    /// earlier route of the same previous group if it is still laid out so, else a new one.
    fn acquire_adopted_group(
        &mut self,
        batch: &mut Batch,
        set: &NexthopSet,
        adopted: &AdoptedGroup,
    ) -> Result<u32, FibError> {
        // Our own references while the layout is translated to nexthop ids.
        let mut ids = Vec::with_capacity(adopted.members.len());
        for key in &adopted.members {
            match self.acquire_nexthop(batch, *key) {
                Ok(id) => ids.push(id),
                Err(err) => {
                    for id in ids {
                        self.release_nexthop(batch.serial, id);
                    }
                    return Err(err);
                }
            }
        }
        let mut layout = Buckets::default();
        for (bucket, member) in layout.0.iter_mut().zip(adopted.buckets) {
            *bucket = member.and_then(|index| ids.get(usize::from(index)).copied());
        }
        let mut members = ids.clone();
        members.sort_unstable();
        let expected = self.balanced(&members, &layout);
        let existing = self.groups_by_set.get(set).and_then(|groups| {
            groups
                .iter()
                .copied()
                .find(|g| self.groups[g].buckets == expected)
        });
        let result = match existing {
            Some(id) => {
                self.groups.get_mut(&id).expect("indexed").routes += 1;
                Ok(id)
            }
            None => self.create_group(batch, set, layout),
        };
        for id in ids {
            self.release_nexthop(batch.serial, id);
        }
        result
    }

    /// Sweeps the adopted routes learned from `peer` (None: from every peer) in `family`
    /// (None: both): their nexthops through that peer leave, and a route left with none
    /// leaves. Returns how many adopted routes changed or left.
    pub fn sweep_adopted(
        &mut self,
        batch: &mut Batch,
        peer: Option<IpAddr>,
        family: Option<Family>,
    ) -> usize {
        if self.adopted_routes == 0 {
            return 0;
        }
        let swept = |key: &NexthopKey| match key.owner {
            Owner::Adopted(address) => peer.is_none_or(|peer| peer == address),
            _ => false,
        };
        let in_family = |prefix: &IpNet| family.is_none_or(|family| family == Family::of(prefix));
        let remaining = |set: &NexthopSet| -> Option<BTreeSet<NexthopKey>> {
            set.iter()
                .any(swept)
                .then(|| set.iter().filter(|key| !swept(key)).copied().collect())
        };
        let mut changes: Vec<(IpNet, BTreeSet<NexthopKey>)> = Vec::new();
        for (prefix, entry) in self.routes.iter() {
            if entry.source() != Source::Adopted || !in_family(&prefix) {
                continue;
            }
            if let Candidate::Via(set) = self.candidate_of(entry, &prefix)
                && let Some(left) = remaining(&set)
            {
                changes.push((prefix, left));
            }
        }
        for (prefix, candidate) in self.routes.alternates_of(Source::Adopted) {
            if let Candidate::Via(set) = candidate
                && in_family(&prefix)
                && let Some(left) = remaining(set)
            {
                changes.push((prefix, left));
            }
        }
        let count = changes.len();
        for (prefix, left) in changes {
            if left.is_empty() {
                self.remove_route(batch, Source::Adopted, prefix);
                self.adopted_routes -= 1;
            } else {
                // Only empty sets are refused.
                let _ = self.set_route(batch, Source::Adopted, prefix, RouteTarget::Via(left));
            }
        }
        count
    }

    /// Adopted routes still in the FIB.
    pub fn adopted_route_count(&self) -> usize {
        self.adopted_routes
    }
}
