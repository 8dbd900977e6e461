//! Inserts, removals, replacements, limits, and what a reader sees during an update.

use super::*;

#[test]
fn overlapping_prefixes() {
    let mut dir = table();
    assert_eq!(dir.lookup(ip("10.1.2.3")), None);
    // Longest first, so that the shorter ones must not overwrite it.
    assert_eq!(dir.insert(net("10.1.2.0/24"), 3).unwrap(), None);
    assert_eq!(dir.insert(net("10.1.0.0/16"), 2).unwrap(), None);
    assert_eq!(dir.insert(net("10.0.0.0/8"), 1).unwrap(), None);
    assert_eq!(dir.insert(net("10.1.128.0/17"), 4).unwrap(), None);
    assert_eq!(dir.len(), 4);
    assert_eq!(dir.lookup(ip("10.1.2.3")), Some(3));
    assert_eq!(dir.lookup(ip("10.1.3.3")), Some(2));
    assert_eq!(dir.lookup(ip("10.1.200.1")), Some(4));
    assert_eq!(dir.lookup(ip("10.2.0.0")), Some(1));
    assert_eq!(dir.lookup(ip("10.255.255.255")), Some(1));
    assert_eq!(dir.lookup(ip("11.0.0.0")), None);
    assert_eq!(dir.lookup(ip("9.255.255.255")), None);

    // The /16's entries fall back to the /8; the /24's and /17's stay.
    assert_eq!(dir.remove(net("10.1.0.0/16")), Some(2));
    assert_eq!(dir.lookup(ip("10.1.3.3")), Some(1));
    assert_eq!(dir.lookup(ip("10.1.2.3")), Some(3));
    assert_eq!(dir.lookup(ip("10.1.200.1")), Some(4));
    // The /8 goes: only the /24 and /17 remain.
    assert_eq!(dir.remove(net("10.0.0.0/8")), Some(1));
    assert_eq!(dir.lookup(ip("10.2.0.0")), None);
    assert_eq!(dir.lookup(ip("10.1.2.3")), Some(3));
    assert_eq!(dir.remove(net("10.1.2.0/24")), Some(3));
    assert_eq!(dir.remove(net("10.1.128.0/17")), Some(4));
    assert!(dir.is_empty());
    assert!(dir.storage().is_zero());
}

#[test]
fn long_prefixes_and_group_collapse() {
    let mut dir = table();
    dir.insert(net("192.0.2.0/24"), 24).unwrap();
    for len in 25..=32u8 {
        // Nested: 192.0.2.0/25 contains /26 contains ... /32 (all at .0).
        dir.insert(Ipv4Net::new(ip("192.0.2.0"), len).unwrap(), u32::from(len))
            .unwrap();
    }
    assert_eq!(dir.tbl8_in_use(), 1, "one group for the /24");
    let index = u32::from(ip("192.0.2.0")) >> 8;
    // Group 0, and the depth of the /24 covering the group's other entries.
    assert_eq!(
        dir.storage().tbl24(index),
        DIR24_VALID | DIR24_EXTENDED | 24 << DIR24_DEPTH_SHIFT
    );
    assert_eq!(dir.storage().tbl8(0, 0), route_entry(32, 32));
    assert_eq!(dir.storage().tbl8(0, 128), route_entry(24, 24));
    assert_eq!(dir.lookup(ip("192.0.2.0")), Some(32));
    assert_eq!(dir.lookup(ip("192.0.2.1")), Some(31));
    assert_eq!(dir.lookup(ip("192.0.2.2")), Some(30));
    assert_eq!(dir.lookup(ip("192.0.2.127")), Some(25));
    assert_eq!(dir.lookup(ip("192.0.2.128")), Some(24));
    assert_eq!(dir.lookup(ip("192.0.3.0")), None);

    // Remove the middle: its entries fall to the next shorter one.
    assert_eq!(dir.remove(net("192.0.2.0/28")), Some(28));
    assert_eq!(dir.lookup(ip("192.0.2.8")), Some(27));
    assert_eq!(dir.lookup(ip("192.0.2.0")), Some(32));

    // A /24 change reaches the group entries it owns, not the longer prefixes'.
    assert_eq!(dir.insert(net("192.0.2.0/24"), 124).unwrap(), Some(24));
    assert_eq!(dir.lookup(ip("192.0.2.200")), Some(124));
    assert_eq!(dir.lookup(ip("192.0.2.100")), Some(25));

    for len in [25u8, 26, 27, 29, 30, 31] {
        dir.remove(Ipv4Net::new(ip("192.0.2.0"), len).unwrap())
            .unwrap();
        assert_eq!(dir.tbl8_in_use(), 1, "the /32 still needs the group");
    }
    assert_eq!(dir.lookup(ip("192.0.2.1")), Some(124));
    assert_eq!(dir.remove(net("192.0.2.0/32")), Some(32));
    // Folded back: the TBL24 entry is plain again, the group waits out its quarantine.
    assert_eq!(dir.tbl8_in_use(), 0);
    assert_eq!(dir.tbl8_quarantined(), 1);
    assert_eq!(dir.storage().tbl24(index), route_entry(124, 24));
    assert_eq!(dir.lookup(ip("192.0.2.0")), Some(124));
    dir.release_quarantined(Instant::now());
    assert_eq!(dir.tbl8_quarantined(), 1, "too early");
    dir.release_quarantined(after_quarantine());
    assert_eq!(dir.tbl8_quarantined(), 0);
    assert!(dir.storage().tbl8_entries().iter().all(|&entry| entry == 0));

    // A long prefix in a /24 without a shorter route: the rest of the group is invalid.
    dir.remove(net("192.0.2.0/24")).unwrap();
    dir.insert(net("192.0.2.64/26"), 26).unwrap();
    assert_eq!(dir.lookup(ip("192.0.2.64")), Some(26));
    assert_eq!(dir.lookup(ip("192.0.2.0")), None);
    dir.remove(net("192.0.2.64/26")).unwrap();
    dir.release_quarantined(after_quarantine());
    assert!(dir.storage().is_zero());
    assert!(dir.is_empty());
}

#[test]
fn default_route() {
    let mut dir = table();
    assert_eq!(dir.insert(net("0.0.0.0/0"), 7).unwrap(), None);
    // Only the default entry is written.
    assert_eq!(dir.storage().default_entry(), DIR24_VALID | 7);
    assert!(
        dir.storage()
            .tbl24_entries()
            .iter()
            .all(|&entry| entry == 0)
    );
    assert_eq!(dir.lookup(ip("203.0.113.9")), Some(7));

    dir.insert(net("203.0.113.0/24"), 1).unwrap();
    dir.insert(net("198.51.100.7/32"), 2).unwrap();
    assert_eq!(dir.lookup(ip("203.0.113.9")), Some(1));
    assert_eq!(dir.lookup(ip("198.51.100.7")), Some(2));
    // The rest of the /32's group has no route of its own: the default applies.
    assert_eq!(dir.lookup(ip("198.51.100.8")), Some(7));
    // Removing a prefix whose only cover is the default leaves invalid entries.
    assert_eq!(dir.remove(net("203.0.113.0/24")), Some(1));
    assert_eq!(dir.storage().tbl24(u32::from(ip("203.0.113.0")) >> 8), 0);
    assert_eq!(dir.lookup(ip("203.0.113.9")), Some(7));

    // Changing the default is one write.
    assert_eq!(dir.insert(net("0.0.0.0/0"), 8).unwrap(), Some(7));
    assert_eq!(dir.lookup(ip("1.2.3.4")), Some(8));
    assert_eq!(dir.get(net("0.0.0.0/0")), Some(8));
    assert_eq!(dir.remove(net("0.0.0.0/0")), Some(8));
    assert_eq!(dir.lookup(ip("1.2.3.4")), None);
    assert_eq!(dir.lookup(ip("198.51.100.7")), Some(2));
    assert_eq!(dir.lookup(ip("198.51.100.8")), None);
    assert_eq!(dir.len(), 1);
}

#[test]
fn replace_in_place() {
    let mut dir = table();
    dir.insert(net("172.16.0.0/12"), 1).unwrap();
    dir.insert(net("172.17.1.0/24"), 2).unwrap();
    dir.insert(net("172.17.2.4/30"), 3).unwrap();
    assert_eq!(dir.insert(net("172.16.0.0/12"), 10).unwrap(), Some(1));
    assert_eq!(dir.len(), 3);
    assert_eq!(dir.lookup(ip("172.20.0.1")), Some(10));
    assert_eq!(dir.lookup(ip("172.17.1.1")), Some(2));
    assert_eq!(dir.lookup(ip("172.17.2.5")), Some(3));
    // The /12's entries inside the /30's group were updated too.
    assert_eq!(dir.lookup(ip("172.17.2.9")), Some(10));
    assert_eq!(dir.insert(net("172.17.2.4/30"), 30).unwrap(), Some(3));
    assert_eq!(dir.lookup(ip("172.17.2.5")), Some(30));
    // Same group again: nothing to do, still reported.
    assert_eq!(dir.insert(net("172.17.1.0/24"), 2).unwrap(), Some(2));
    // Depths survived the replacements: removals fall back correctly.
    assert_eq!(dir.remove(net("172.17.1.0/24")), Some(2));
    assert_eq!(dir.lookup(ip("172.17.1.1")), Some(10));
    assert_eq!(dir.remove(net("172.17.2.4/30")), Some(30));
    assert_eq!(dir.lookup(ip("172.17.2.5")), Some(10));
    assert_eq!(dir.tbl8_in_use(), 0);
    // Group 0 (GROUP_LOCAL) is a valid route, not "no route".
    dir.insert(net("172.16.0.0/12"), 0).unwrap();
    assert_eq!(dir.lookup(ip("172.20.0.1")), Some(0));
}

#[test]
fn batch_apply_keeps_the_order_of_each_prefix() {
    let mut dir = table();
    dir.insert(net("10.9.0.0/16"), 7).unwrap();
    // Given in reverse address order; one prefix set, replaced and removed; one set after
    // its removal; a removal of a prefix that is not there.
    let mut changes = vec![
        (net("10.200.0.0/24"), Some(1)),
        (net("10.9.0.0/16"), None),
        (net("10.9.0.0/16"), Some(8)),
        (net("10.1.2.0/25"), Some(2)),
        (net("10.1.2.0/25"), Some(3)),
        (net("10.1.2.0/25"), None),
        (net("10.1.0.0/16"), None),
        (net("10.0.0.0/8"), Some(4)),
    ];
    assert!(dir.apply(&mut changes).is_empty());
    assert_eq!(dir.lookup(ip("10.200.0.1")), Some(1));
    assert_eq!(
        dir.lookup(ip("10.9.1.1")),
        Some(8),
        "removed, then set again"
    );
    assert_eq!(
        dir.lookup(ip("10.1.2.1")),
        Some(4),
        "set twice, then removed"
    );
    assert_eq!(dir.len(), 3);
    assert_eq!(dir.tbl8_in_use(), 0);
    // Failures are returned, the other changes still applied.
    let mut changes = vec![
        (net("10.3.0.0/16"), Some(DIR24_ID_MASK + 1)),
        (net("10.4.0.0/16"), Some(5)),
    ];
    let errors = dir.apply(&mut changes);
    assert!(matches!(errors[..], [Dir24Error::InvalidGroup(_)]));
    assert_eq!(dir.lookup(ip("10.4.0.1")), Some(5));
}

#[test]
fn remove_absent() {
    let mut dir = table();
    assert_eq!(dir.remove(net("10.0.0.0/8")), None);
    assert_eq!(dir.remove(net("0.0.0.0/0")), None);
    dir.insert(net("10.1.2.0/24"), 1).unwrap();
    dir.insert(net("10.1.2.128/25"), 2).unwrap();
    // Covering, covered and sibling prefixes that are not there.
    assert_eq!(dir.remove(net("10.1.0.0/16")), None);
    assert_eq!(dir.remove(net("10.1.2.0/25")), None);
    assert_eq!(dir.remove(net("10.1.2.128/26")), None);
    assert_eq!(dir.remove(net("10.1.3.0/24")), None);
    assert_eq!(dir.get(net("10.1.0.0/16")), None);
    assert_eq!(dir.len(), 2);
    assert_eq!(dir.lookup(ip("10.1.2.1")), Some(1));
    assert_eq!(dir.lookup(ip("10.1.2.129")), Some(2));
    assert_eq!(dir.tbl8_in_use(), 1);
}

#[test]
fn table_full() {
    let mut dir = Dir24::new(VecStorage::new(2));
    dir.insert(net("10.0.0.1/32"), 1).unwrap();
    dir.insert(net("10.0.1.1/32"), 2).unwrap();
    // Same /24s: no new group needed.
    dir.insert(net("10.0.1.128/25"), 3).unwrap();
    let err = dir.insert(net("10.0.2.1/32"), 4).unwrap_err();
    assert!(
        matches!(err, Dir24Error::TableFull { capacity: 2, prefix } if prefix == net("10.0.2.1/32")),
        "{err:?}"
    );
    assert!(err.to_string().contains("10.0.2.1/32"), "{err}");
    // Nothing changed.
    assert_eq!(dir.len(), 3);
    assert_eq!(dir.get(net("10.0.2.1/32")), None);
    assert_eq!(dir.lookup(ip("10.0.2.1")), None);
    assert_eq!(dir.storage().tbl24(u32::from(ip("10.0.2.0")) >> 8), 0);
    // Shorter prefixes still go in.
    dir.insert(net("10.0.2.0/24"), 5).unwrap();

    // A freed group is quarantined; the next insert waits it out instead of failing.
    dir.remove(net("10.0.0.1/32")).unwrap();
    assert_eq!(dir.tbl8_quarantined(), 1);
    let start = Instant::now();
    dir.insert(net("10.0.2.1/32"), 4).unwrap();
    assert!(start.elapsed() < TBL8_QUARANTINE * 3);
    assert_eq!(dir.lookup(ip("10.0.2.1")), Some(4));
    assert_eq!(dir.lookup(ip("10.0.2.2")), Some(5));
    assert_eq!(dir.tbl8_in_use(), 2);
}

#[test]
fn invalid_group() {
    let mut dir = table();
    assert!(matches!(
        dir.insert(net("10.0.0.0/8"), DIR24_ID_MASK + 1),
        Err(Dir24Error::InvalidGroup(group)) if group == DIR24_ID_MASK + 1
    ));
    assert!(dir.is_empty());
    dir.insert(net("10.0.0.0/8"), DIR24_ID_MASK).unwrap();
    assert_eq!(dir.lookup(ip("10.0.0.1")), Some(DIR24_ID_MASK));
}

/// The depth shares the entry with the id: a lookup must return the id alone, for the
/// largest id, from a TBL24 entry and from a TBL8 entry alike.
#[test]
fn depth_bits_never_leak_into_group_ids() {
    let mut dir = table();
    for group in [DIR24_ID_MASK, MAX_NEXTHOP_GROUPS - 1] {
        dir.insert(net("10.0.0.0/8"), group).unwrap();
        dir.insert(net("10.1.2.3/32"), group).unwrap();
        dir.insert(net("10.1.2.128/25"), group).unwrap();
        // The depths are really there, next to the id...
        let tbl24 = dir.storage().tbl24(u32::from(ip("10.9.0.0")) >> 8);
        assert_eq!(tbl24, route_entry(group, 8));
        assert_eq!(entry_depth(tbl24), 8);
        let extended = dir.storage().tbl24(u32::from(ip("10.1.2.0")) >> 8);
        assert_eq!(entry_depth(extended), 8);
        let tbl8 = extended & DIR24_ID_MASK;
        assert_eq!(entry_depth(dir.storage().tbl8(tbl8, 3)), 32);
        assert_eq!(entry_depth(dir.storage().tbl8(tbl8, 200)), 25);
        assert_eq!(entry_depth(dir.storage().tbl8(tbl8, 4)), 8);
        // ...and never in what a lookup returns.
        for addr in ["10.9.8.7", "10.1.2.3", "10.1.2.200", "10.1.2.4"] {
            assert_eq!(dir.lookup(ip(addr)), Some(group), "{addr} -> {group:#x}");
        }
    }
}

#[test]
fn host_bits_are_ignored() {
    let mut dir = table();
    assert_eq!(dir.insert(net("10.1.2.3/16"), 1).unwrap(), None);
    assert_eq!(dir.get(net("10.1.0.0/16")), Some(1));
    assert_eq!(dir.get(net("10.1.99.99/16")), Some(1));
    assert_eq!(dir.insert(net("10.1.255.255/16"), 2).unwrap(), Some(1));
    assert_eq!(dir.lookup(ip("10.1.0.0")), Some(2));
    assert_eq!(dir.lookup(ip("10.2.0.0")), None);
    dir.insert(net("10.1.2.77/30"), 3).unwrap();
    assert_eq!(dir.lookup(ip("10.1.2.76")), Some(3));
    assert_eq!(dir.remove(net("10.1.2.79/30")), Some(3));
    assert_eq!(dir.remove(net("10.1.200.1/16")), Some(2));
    assert!(dir.is_empty());
}

/// Storage that, after every store, looks up a set of probe addresses and checks that each
/// resolves to its route before or after the operation in progress: what a concurrent
/// reader may see. Catches a group published before it is filled, an entry passing through
/// "no route", a group zeroed while still in use.
struct CheckedStorage {
    inner: VecStorage,
    probes: Vec<u32>,
    /// Per probe: its route before and after the operation in progress.
    allowed: Vec<[Option<u32>; 2]>,
    context: String,
}

impl CheckedStorage {
    fn check(&self) {
        for (&addr, allowed) in self.probes.iter().zip(&self.allowed) {
            let got = lookup_in(&self.inner, addr);
            assert!(
                allowed.contains(&got),
                "{}: {} resolved to {got:?} mid-operation, expected one of {allowed:?}",
                self.context,
                Ipv4Addr::from(addr)
            );
        }
    }
}

impl Dir24Storage for CheckedStorage {
    fn tbl24(&self, index: u32) -> u32 {
        self.inner.tbl24(index)
    }
    fn set_tbl24(&mut self, index: u32, entry: u32) {
        self.inner.set_tbl24(index, entry);
        self.check();
    }
    fn tbl8(&self, group: u32, index: u8) -> u32 {
        self.inner.tbl8(group, index)
    }
    fn set_tbl8(&mut self, group: u32, index: u8, entry: u32) {
        self.inner.set_tbl8(group, index, entry);
        self.check();
    }
    fn default_entry(&self) -> u32 {
        self.inner.default_entry()
    }
    fn set_default_entry(&mut self, entry: u32) {
        self.inner.set_default_entry(entry);
        self.check();
    }
    fn tbl8_groups(&self) -> u32 {
        self.inner.tbl8_groups()
    }
}

/// Random inserts, replacements and removes in a small region (10.0.0.0/20, so that
/// prefixes pile up and probes hit them), checking every intermediate state.
#[test]
fn readers_never_see_a_half_done_update() {
    let seed = test_seed();
    let mut rng = SmallRng::seed_from_u64(seed);
    let region = u32::from(ip("10.0.0.0"));
    let probes: Vec<u32> = (0..256)
        .map(|_| region | rng.random_range(0..1 << 12))
        .collect();
    let storage = CheckedStorage {
        inner: VecStorage::new(1024),
        allowed: vec![[None, None]; probes.len()],
        probes,
        context: String::new(),
    };
    let mut dir = Dir24::new(storage);
    let mut reference = ReferenceLpm::<Ipv4Net>::new();
    let ops = if cfg!(debug_assertions) { 300 } else { 3000 };
    for op in 0..ops {
        let len = if rng.random_bool(0.02) {
            0
        } else {
            rng.random_range(14..=32)
        };
        let addr = Ipv4Addr::from(region | rng.random_range(0..1 << 12));
        let prefix = Ipv4Net::new(addr, len).unwrap().trunc();
        let group = rng.random_range(0..8);
        let remove = rng.random_bool(0.4);

        let routes = |reference: &ReferenceLpm<Ipv4Net>, probes: &[u32]| -> Vec<_> {
            probes
                .iter()
                .map(|&addr| reference.lookup(Ipv4Addr::from(addr)).copied())
                .collect()
        };
        let before = routes(&reference, &dir.storage.probes);
        if remove {
            reference.remove(prefix);
        } else {
            reference.insert(prefix, group);
        }
        let after = routes(&reference, &dir.storage.probes);
        dir.storage.allowed = before.into_iter().zip(after).map(|(b, a)| [b, a]).collect();
        dir.storage.context = format!(
            "seed {seed}, op {op}: {} {prefix} -> {group}",
            if remove { "remove" } else { "insert" }
        );
        if remove {
            dir.remove(prefix);
        } else {
            dir.insert(prefix, group).unwrap();
        }
        // Groups leave quarantine at once here (readers are simulated, synchronous).
        dir.release_quarantined(after_quarantine());
    }
}
