//! The FIB's prefix table: per prefix, the group the datapath points it at and the source that
//! route came from.
//!
//! This is the FIB's largest structure (one entry per route: a million and more with a full
//! table), so it is laid out for size. The FIB keeps one invariant that lets an entry be 3
//! bytes: **a prefix in the table is installed, with its best source's candidate**. The
//! candidate itself is then not stored: it is the group's nexthop set (or "local" for
//! [`router_common::GROUP_LOCAL`]), which the FIB holds once per group.
//!
//! ```text
//!   v4: HashMap<Ipv4Net, RouteEntry>    5 B key + 3 B entry  ->  8 B a slot
//!   v6: HashMap<Ipv6Net, RouteEntry>   17 B key + 3 B entry  -> 20 B a slot
//!   alternates: HashMap<IpNet, Vec<(Source, Candidate)>>   the other sources' candidates
//! ```
//!
//! One map per family, because an `IpNet` key (18 bytes) would make every IPv4 slot as large
//! as an IPv6 one. Most prefixes have one source (BGP, or a static route, or a local address);
//! the few with more (a static route over a BGP one, a local address inside a learned prefix)
//! keep the waiting sources' candidates in `alternates`.

use std::collections::hash_map::Entry;

use super::{Candidate, HashMap, Source};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// An installed prefix: 3 bytes, alignment 1 (an IPv4 slot is 8 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RouteEntry {
    /// The nexthop group, little-endian: group ids are below 2^16 ([`super::Fib::new`] checks
    /// the limit), and a byte array keeps the entry unaligned.
    group: [u8; 2],
    source: Source,
}

const _: () = assert!(std::mem::size_of::<(Ipv4Net, RouteEntry)>() == 8);

impl RouteEntry {
    /// Groups a route entry can hold.
    pub(super) const MAX_GROUPS: u32 = 1 << 16;

    pub(super) fn new(group: u32, source: Source) -> Self {
        let group = u16::try_from(group).expect("group ids fit in 16 bits (Fib::new checks)");
        Self {
            group: group.to_le_bytes(),
            source,
        }
    }

    pub(super) fn group(self) -> u32 {
        u32::from(u16::from_le_bytes(self.group))
    }

    pub(super) fn source(self) -> Source {
        self.source
    }
}

#[derive(Default)]
pub(super) struct RouteTable {
    v4: HashMap<Ipv4Net, RouteEntry>,
    v6: HashMap<Ipv6Net, RouteEntry>,
    /// Candidates of the sources other than the installed one, preferred first. Present only
    /// for prefixes that have some.
    alternates: HashMap<IpNet, Vec<(Source, Candidate)>>,
}

impl RouteTable {
    pub(super) fn reserve(&mut self, v4: usize, v6: usize) {
        self.v4.reserve(v4);
        self.v6.reserve(v6);
    }

    pub(super) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub(super) fn v4_len(&self) -> usize {
        self.v4.len()
    }

    pub(super) fn v6_len(&self) -> usize {
        self.v6.len()
    }

    pub(super) fn get(&self, prefix: &IpNet) -> Option<RouteEntry> {
        match prefix {
            IpNet::V4(prefix) => self.v4.get(prefix).copied(),
            IpNet::V6(prefix) => self.v6.get(prefix).copied(),
        }
    }

    /// Inserts the entry `make` returns if `prefix` has none, hashing the prefix once (the
    /// table-load fast path). `make` runs only then. Returns whether it ran.
    pub(super) fn insert_new(&mut self, prefix: IpNet, make: impl FnOnce() -> RouteEntry) -> bool {
        fn vacant<K: std::hash::Hash + Eq>(
            map: &mut HashMap<K, RouteEntry>,
            key: K,
            make: impl FnOnce() -> RouteEntry,
        ) -> bool {
            match map.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(make());
                    true
                }
                Entry::Occupied(_) => false,
            }
        }
        match prefix {
            IpNet::V4(prefix) => vacant(&mut self.v4, prefix, make),
            IpNet::V6(prefix) => vacant(&mut self.v6, prefix, make),
        }
    }

    /// Inserts or replaces the prefix's entry (its alternates stay).
    pub(super) fn set(&mut self, prefix: IpNet, entry: RouteEntry) {
        match prefix {
            IpNet::V4(prefix) => self.v4.insert(prefix, entry),
            IpNet::V6(prefix) => self.v6.insert(prefix, entry),
        };
    }

    /// Removes the prefix with every source's candidate.
    pub(super) fn remove(&mut self, prefix: &IpNet) -> Option<RouteEntry> {
        self.alternates.remove(prefix);
        match prefix {
            IpNet::V4(prefix) => self.v4.remove(prefix),
            IpNet::V6(prefix) => self.v6.remove(prefix),
        }
    }

    /// Sets a waiting source's candidate; returns the one it replaces.
    pub(super) fn set_alternate(
        &mut self,
        prefix: IpNet,
        source: Source,
        candidate: Candidate,
    ) -> Option<Candidate> {
        let others = self.alternates.entry(prefix).or_default();
        match others.binary_search_by_key(&source, |(s, _)| *s) {
            Ok(index) => Some(std::mem::replace(&mut others[index].1, candidate)),
            Err(index) => {
                others.insert(index, (source, candidate));
                None
            }
        }
    }

    /// Removes a waiting source's candidate.
    pub(super) fn remove_alternate(&mut self, prefix: &IpNet, source: Source) -> Option<Candidate> {
        let others = self.alternates.get_mut(prefix)?;
        let index = others.binary_search_by_key(&source, |(s, _)| *s).ok()?;
        let (_, removed) = others.remove(index);
        if others.is_empty() {
            self.alternates.remove(prefix);
        }
        Some(removed)
    }

    /// The most preferred waiting source and its candidate, if any.
    pub(super) fn next_alternate(&self, prefix: &IpNet) -> Option<&(Source, Candidate)> {
        self.alternates.get(prefix)?.first()
    }

    /// `source`'s waiting candidate for `prefix`, if any.
    pub(super) fn alternate(&self, prefix: &IpNet, source: Source) -> Option<&Candidate> {
        let others = self.alternates.get(prefix)?;
        let index = others.binary_search_by_key(&source, |(s, _)| *s).ok()?;
        Some(&others[index].1)
    }

    /// The prefixes where `source`'s candidate waits behind another source, with it.
    pub(super) fn alternates_of(
        &self,
        source: Source,
    ) -> impl Iterator<Item = (IpNet, &Candidate)> + '_ {
        self.alternates.iter().filter_map(move |(prefix, others)| {
            let index = others.binary_search_by_key(&source, |(s, _)| *s).ok()?;
            Some((*prefix, &others[index].1))
        })
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (IpNet, RouteEntry)> + '_ {
        let v4 = self.v4.iter().map(|(p, e)| (IpNet::V4(*p), *e));
        let v6 = self.v6.iter().map(|(p, e)| (IpNet::V6(*p), *e));
        v4.chain(v6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use router_common::GROUP_LOCAL;
    use std::{collections::BTreeSet, sync::Arc};

    fn via(n: u8) -> Candidate {
        Candidate::Via(Arc::new(BTreeSet::from([super::super::NexthopKey::host(
            std::net::IpAddr::from([192, 0, 2, n]),
            1,
        )])))
    }

    fn is(candidate: &Candidate, n: u8) -> bool {
        matches!(candidate, Candidate::Via(set)
            if set.first().unwrap().via == std::net::IpAddr::from([192, 0, 2, n]))
    }

    #[test]
    fn entries_hold_every_group_id_and_stay_small() {
        for group in [GROUP_LOCAL, 1, 0xff, 0x100, RouteEntry::MAX_GROUPS - 1] {
            let entry = RouteEntry::new(group, Source::Bgp);
            assert_eq!((entry.group(), entry.source()), (group, Source::Bgp));
        }
        assert_eq!(
            RouteEntry::new(GROUP_LOCAL, Source::Local).group(),
            GROUP_LOCAL
        );
        assert_eq!(std::mem::size_of::<(Ipv6Net, RouteEntry)>(), 20);
    }

    #[test]
    fn alternates_wait_in_preference_order() {
        let mut table = RouteTable::default();
        let prefix: IpNet = "198.51.100.0/24".parse().unwrap();
        table.set(prefix, RouteEntry::new(GROUP_LOCAL, Source::Local));
        assert!(table.set_alternate(prefix, Source::Bgp, via(1)).is_none());
        assert!(
            table
                .set_alternate(prefix, Source::Static, via(2))
                .is_none()
        );
        assert!(is(
            &table.set_alternate(prefix, Source::Bgp, via(3)).unwrap(),
            1
        ));

        let (source, candidate) = table.next_alternate(&prefix).unwrap();
        assert!(*source == Source::Static && is(candidate, 2));
        assert!(is(
            &table.remove_alternate(&prefix, Source::Static).unwrap(),
            2
        ));
        assert!(table.remove_alternate(&prefix, Source::Static).is_none());
        let (source, candidate) = table.next_alternate(&prefix).unwrap();
        assert!(*source == Source::Bgp && is(candidate, 3));
        assert!(table.remove_alternate(&prefix, Source::Bgp).is_some());
        assert!(table.alternates.is_empty(), "an empty list is dropped");
        assert!(table.next_alternate(&prefix).is_none());
    }

    #[test]
    fn families_are_kept_apart_and_removal_drops_alternates() {
        let mut table = RouteTable::default();
        let v4: IpNet = "0.0.0.0/0".parse().unwrap();
        let v6: IpNet = "::/0".parse().unwrap();
        assert!(table.insert_new(v4, || RouteEntry::new(7, Source::Bgp)));
        assert!(!table.insert_new(v4, || unreachable!("occupied")));
        assert!(table.insert_new(v6, || RouteEntry::new(8, Source::Bgp)));
        table.set_alternate(v4, Source::Static, via(3));
        assert_eq!(table.get(&v4).map(RouteEntry::group), Some(7));
        assert_eq!(table.get(&v6).map(RouteEntry::group), Some(8));
        assert_eq!(table.len(), 2);
        table.remove(&v4);
        assert!(table.alternates.is_empty());
        assert_eq!(table.iter().map(|(p, _)| p).collect::<Vec<_>>(), [v6]);
    }
}
