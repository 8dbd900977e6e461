//! The FIB's prefix table: per prefix, the best source's candidate and the group the datapath
//! points the prefix at.
//!
//! This is the FIB's largest structure (one entry per route: a million and more with a full
//! table), so it is laid out for size:
//!
//! ```text
//!   v4: HashMap<Ipv4Net, RouteEntry>   5 B key  + 16 B entry  -> 24 B per slot
//!   v6: HashMap<Ipv6Net, RouteEntry>  17 B key  + 16 B entry  -> 40 B per slot
//!   alternates: HashMap<IpNet, Vec<(Source, Candidate)>>   prefixes with more than one source
//! ```
//!
//! One map per family, because an `IpNet` key (18 bytes, padded to 24 beside an 8-byte aligned
//! value) would make every IPv4 slot as large as an IPv6 one. Most prefixes have exactly one
//! source (BGP, or a static route, or a local address); the few with more (a static route over
//! a BGP one, a local address inside a learned prefix) keep the other sources' candidates in
//! `alternates`, so the common entry carries no `Vec`.

use std::collections::hash_map::Entry;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{Candidate, HashMap, Source};

/// `RouteEntry::group` of a prefix the datapath does not hold.
const NOT_INSTALLED: u32 = u32::MAX;

/// One prefix: 16 bytes.
pub(super) struct RouteEntry {
    /// The preferred source's candidate.
    best: Candidate,
    /// Group the datapath points this prefix at, or [`NOT_INSTALLED`].
    group: u32,
    best_source: Source,
    /// The source whose candidate `group` was installed for (meaningful when installed).
    installed_source: Source,
}

const _: () = assert!(std::mem::size_of::<RouteEntry>() == 16);

impl RouteEntry {
    pub(super) fn new(source: Source, candidate: Candidate) -> Self {
        Self {
            best: candidate,
            group: NOT_INSTALLED,
            best_source: source,
            installed_source: source,
        }
    }

    /// A new prefix already installed with `group`.
    pub(super) fn installed_with(source: Source, candidate: Candidate, group: u32) -> Self {
        let mut entry = Self::new(source, candidate);
        entry.set_installed(group, source);
        entry
    }

    pub(super) fn best(&self) -> (Source, &Candidate) {
        (self.best_source, &self.best)
    }

    /// The group the datapath points the prefix at, and the source it was installed for.
    pub(super) fn installed(&self) -> Option<(u32, Source)> {
        (self.group != NOT_INSTALLED).then_some((self.group, self.installed_source))
    }

    pub(super) fn set_installed(&mut self, group: u32, source: Source) {
        debug_assert_ne!(group, NOT_INSTALLED);
        self.group = group;
        self.installed_source = source;
    }
}

#[derive(Default)]
pub(super) struct RouteTable {
    v4: HashMap<Ipv4Net, RouteEntry>,
    v6: HashMap<Ipv6Net, RouteEntry>,
    /// Candidates of the sources other than the best one, preferred first. Present only for
    /// prefixes that have some.
    alternates: HashMap<IpNet, Vec<(Source, Candidate)>>,
}

impl RouteTable {
    pub(super) fn reserve(&mut self, v4: usize, v6: usize) {
        self.v4.reserve(v4);
        self.v6.reserve(v6);
    }

    pub(super) fn get(&self, prefix: &IpNet) -> Option<&RouteEntry> {
        match prefix {
            IpNet::V4(prefix) => self.v4.get(prefix),
            IpNet::V6(prefix) => self.v6.get(prefix),
        }
    }

    pub(super) fn get_mut(&mut self, prefix: &IpNet) -> Option<&mut RouteEntry> {
        match prefix {
            IpNet::V4(prefix) => self.v4.get_mut(prefix),
            IpNet::V6(prefix) => self.v6.get_mut(prefix),
        }
    }

    pub(super) fn contains(&self, prefix: &IpNet) -> bool {
        self.get(prefix).is_some()
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

    /// Removes the prefix with every source's candidate.
    pub(super) fn remove(&mut self, prefix: &IpNet) -> Option<RouteEntry> {
        self.alternates.remove(prefix);
        match prefix {
            IpNet::V4(prefix) => self.v4.remove(prefix),
            IpNet::V6(prefix) => self.v6.remove(prefix),
        }
    }

    /// Sets `source`'s candidate for `prefix`, creating the entry if needed; returns the
    /// candidate it replaces. The best source is the lowest (`Source` order is preference).
    pub(super) fn set_candidate(
        &mut self,
        prefix: IpNet,
        source: Source,
        candidate: Candidate,
    ) -> Option<Candidate> {
        let Some(entry) = self.get_mut(&prefix) else {
            let entry = RouteEntry::new(source, candidate);
            match prefix {
                IpNet::V4(prefix) => self.v4.insert(prefix, entry),
                IpNet::V6(prefix) => self.v6.insert(prefix, entry),
            };
            return None;
        };
        if entry.best_source == source {
            return Some(std::mem::replace(&mut entry.best, candidate));
        }
        let (demoted_source, demoted) = if source < entry.best_source {
            let demoted = std::mem::replace(&mut entry.best, candidate);
            (std::mem::replace(&mut entry.best_source, source), demoted)
        } else {
            (source, candidate)
        };
        let others = self.alternates.entry(prefix).or_default();
        match others.binary_search_by_key(&demoted_source, |(s, _)| *s) {
            Ok(index) => Some(std::mem::replace(&mut others[index].1, demoted)),
            Err(index) => {
                others.insert(index, (demoted_source, demoted));
                None
            }
        }
    }

    /// Removes `source`'s candidate for `prefix`; the next source, if any, becomes the best.
    /// Returns (the removed candidate, whether the prefix has none left). The entry stays
    /// even when empty: the caller uninstalls it with [`RouteTable::remove`].
    pub(super) fn remove_candidate(
        &mut self,
        prefix: &IpNet,
        source: Source,
    ) -> (Option<Candidate>, bool) {
        let Self { v4, v6, alternates } = self;
        let entry = match prefix {
            IpNet::V4(prefix) => v4.get_mut(prefix),
            IpNet::V6(prefix) => v6.get_mut(prefix),
        };
        let Some(entry) = entry else {
            return (None, false);
        };
        let Some(others) = alternates.get_mut(prefix) else {
            return if entry.best_source == source {
                (Some(entry.best.clone()), true)
            } else {
                (None, false)
            };
        };
        let removed = if entry.best_source == source {
            let (next_source, next) = others.remove(0);
            entry.best_source = next_source;
            Some(std::mem::replace(&mut entry.best, next))
        } else {
            others
                .binary_search_by_key(&source, |(s, _)| *s)
                .ok()
                .map(|index| others.remove(index).1)
        };
        if others.is_empty() {
            alternates.remove(prefix);
        }
        (removed, false)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (IpNet, &RouteEntry)> {
        let v4 = self.v4.iter().map(|(p, e)| (IpNet::V4(*p), e));
        let v6 = self.v6.iter().map(|(p, e)| (IpNet::V6(*p), e));
        v4.chain(v6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{collections::BTreeSet, sync::Arc};

    fn via(n: u8) -> Candidate {
        Candidate::Via(Arc::new(BTreeSet::from([super::super::NexthopKey {
            via: std::net::IpAddr::from([192, 0, 2, n]),
            ifindex: 1,
        }])))
    }

    fn is(candidate: &Candidate, n: u8) -> bool {
        matches!(candidate, Candidate::Via(set) if set.first().unwrap().via == std::net::IpAddr::from([192, 0, 2, n]))
    }

    #[test]
    fn the_most_preferred_source_is_best_and_the_others_wait() {
        let mut table = RouteTable::default();
        let prefix: IpNet = "198.51.100.0/24".parse().unwrap();
        assert!(table.set_candidate(prefix, Source::Bgp, via(1)).is_none());
        assert!(
            table
                .set_candidate(prefix, Source::Static, via(2))
                .is_none()
        );
        assert!(
            table
                .set_candidate(prefix, Source::Local, Candidate::Local)
                .is_none()
        );
        assert!(matches!(
            table.get(&prefix).unwrap().best(),
            (Source::Local, Candidate::Local)
        ));

        // Replacing a waiting source's candidate returns the old one.
        assert!(is(
            &table.set_candidate(prefix, Source::Bgp, via(3)).unwrap(),
            1
        ));

        let (removed, empty) = table.remove_candidate(&prefix, Source::Local);
        assert!(matches!(removed, Some(Candidate::Local)) && !empty);
        let (source, best) = table.get(&prefix).unwrap().best();
        assert!(source == Source::Static && is(best, 2));

        let (removed, empty) = table.remove_candidate(&prefix, Source::Static);
        assert!(is(&removed.unwrap(), 2) && !empty);
        let (source, best) = table.get(&prefix).unwrap().best();
        assert!(source == Source::Bgp && is(best, 3));
        assert!(table.alternates.is_empty(), "no alternates left");

        // Removing a source the prefix does not have changes nothing.
        assert!(matches!(
            table.remove_candidate(&prefix, Source::Static),
            (None, false)
        ));
        let (removed, empty) = table.remove_candidate(&prefix, Source::Bgp);
        assert!(is(&removed.unwrap(), 3) && empty);
        assert!(table.remove(&prefix).is_some() && table.get(&prefix).is_none());
    }

    #[test]
    fn families_are_kept_apart_and_removal_drops_alternates() {
        let mut table = RouteTable::default();
        let v4: IpNet = "0.0.0.0/0".parse().unwrap();
        let v6: IpNet = "::/0".parse().unwrap();
        assert!(table.insert_new(v4, || RouteEntry::installed_with(Source::Bgp, via(1), 7)));
        assert!(!table.insert_new(v4, || unreachable!("occupied")));
        assert!(table.insert_new(v6, || RouteEntry::new(Source::Bgp, via(2))));
        table.set_candidate(v4, Source::Static, via(3));
        assert_eq!(table.get(&v4).unwrap().installed(), Some((7, Source::Bgp)));
        assert_eq!(table.get(&v6).unwrap().installed(), None);
        assert_eq!(table.iter().count(), 2);
        table.remove(&v4);
        assert!(table.alternates.is_empty());
        assert_eq!(table.iter().map(|(p, _)| p).collect::<Vec<_>>(), [v6]);
    }
}
