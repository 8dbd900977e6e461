use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use router_common::{FIRST_GROUP, MAX_NEXTHOP_GROUPS, dxr_desc, dxr_desc_base, dxr_desc_count};

use super::*;
use crate::fib::reference::ReferenceLpm;
use crate::fib::synthetic::PrefixShape;

mod concurrent;
mod measure;
mod split;

/// A random seed, or `DXR_SEED` to replay one (failures print it).
pub(super) fn test_seed() -> u64 {
    let seed = std::env::var("DXR_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("seed {seed} (rerun with DXR_SEED={seed})");
    seed
}

/// Full size in release builds, a tenth in debug ones.
fn scale(n: usize) -> usize {
    if cfg!(debug_assertions) { n / 10 } else { n }
}

fn table() -> Dxr<VecStorage> {
    Dxr::new(VecStorage::new(1 << 18, 1 << 16, 1 << 14, 1 << 14))
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn after_quarantine() -> Instant {
    Instant::now() + DXR_QUARANTINE + Duration::from_millis(1)
}

const LEAF_NONE: u64 = dxr_desc(DXR_VALUE_NONE, 0, 0);

/// The reference longest-prefix match, both families.
#[derive(Default)]
struct Model {
    v4: ReferenceLpm<Ipv4Net>,
    v6: ReferenceLpm<Ipv6Net>,
}

impl Model {
    fn set(&mut self, prefix: IpNet, group: Option<u32>) {
        match (prefix, group) {
            (IpNet::V4(p), Some(g)) => drop(self.v4.insert(p, g)),
            (IpNet::V4(p), None) => drop(self.v4.remove(p)),
            (IpNet::V6(p), Some(g)) => drop(self.v6.insert(p, g)),
            (IpNet::V6(p), None) => drop(self.v6.remove(p)),
        }
    }

    fn lookup(&self, addr: IpAddr) -> Option<u32> {
        match addr {
            IpAddr::V4(a) => self.v4.lookup(a).copied(),
            IpAddr::V6(a) => self.v6.lookup(a).copied(),
        }
    }

    fn prefixes(&self) -> Vec<(IpNet, u32)> {
        let v4 = self.v4.iter().map(|(p, &g)| (IpNet::V4(p), g));
        v4.chain(self.v6.iter().map(|(p, &g)| (IpNet::V6(p), g)))
            .collect()
    }
}

/// Applies `changes` to both, expecting no error.
fn apply(dxr: &mut Dxr<VecStorage>, model: &mut Model, changes: &[(IpNet, Option<u32>)]) {
    let errors = dxr.apply(&mut changes.to_vec());
    assert_eq!(errors, vec![], "changes {changes:?}");
    for &(prefix, group) in changes {
        model.set(prefix.trunc(), group);
    }
}

/// `size` random changes (fewer if the table empties): a new prefix from `new_prefix` with
/// probability `adds`, else an existing prefix changed or removed (even odds), each at most
/// once.
fn random_batch(
    rng: &mut SmallRng,
    model: &Model,
    size: usize,
    adds: f64,
    mut new_prefix: impl FnMut(&mut SmallRng) -> IpNet,
) -> Vec<(IpNet, Option<u32>)> {
    let group = |rng: &mut SmallRng| rng.random_range(FIRST_GROUP..MAX_NEXTHOP_GROUPS);
    let mut existing = model.prefixes();
    let mut batch = Vec::new();
    for _ in 0..size {
        if rng.random_bool(adds) {
            batch.push((new_prefix(rng), Some(group(rng))));
        } else if !existing.is_empty() {
            let (prefix, _) = existing.swap_remove(rng.random_range(0..existing.len()));
            let group = rng.random_bool(0.5).then(|| group(rng));
            batch.push((prefix, group));
        }
    }
    batch
}

/// The first and last address of a prefix, the ones just outside it, and one inside.
fn edges(prefix: IpNet, rng: &mut impl Rng) -> Vec<IpAddr> {
    match prefix.trunc() {
        IpNet::V4(p) => {
            let (first, last) = (u32::from(p.network()), u32::from(p.broadcast()));
            let inside = rng.random_range(first..=last);
            [
                first.wrapping_sub(1),
                first,
                inside,
                last,
                last.wrapping_add(1),
            ]
            .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            .to_vec()
        }
        IpNet::V6(p) => {
            let (first, last) = (u128::from(p.network()), u128::from(p.broadcast()));
            let inside = rng.random_range(first..=last);
            [
                first.wrapping_sub(1),
                first,
                inside,
                last,
                last.wrapping_add(1),
            ]
            .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
            .to_vec()
        }
    }
}

fn check(dxr: &Dxr<VecStorage>, model: &Model, addrs: impl IntoIterator<Item = IpAddr>) {
    for addr in addrs {
        assert_eq!(dxr.lookup(addr), model.lookup(addr), "lookup {addr}");
    }
}

fn check_edges(dxr: &Dxr<VecStorage>, model: &Model, prefixes: &[IpNet], rng: &mut impl Rng) {
    for &prefix in prefixes {
        check(dxr, model, edges(prefix, rng));
    }
}

/// Every table empty again: no route, no block, every extension id free.
fn assert_empty(dxr: &mut Dxr<VecStorage>) {
    dxr.release_quarantined(after_quarantine());
    assert!(dxr.is_empty());
    assert_eq!(dxr.memory_bytes(), 0, "leaked range blocks");
    assert_eq!(dxr.split_groups(), 0, "leaked split groups");
    assert_eq!(
        dxr.ext_ids.free_len(),
        dxr.storage().ext_capacity() as usize
    );
    for index in 0..1 << DXR4_DIRECT_BITS {
        assert_eq!(
            dxr.storage().descriptor(Directory::Direct4, index),
            Some(LEAF_NONE)
        );
    }
    for index in 0..1 << DXR6_DIRECT_BITS {
        assert_eq!(
            dxr.storage().descriptor(Directory::Direct6, index),
            Some(LEAF_NONE)
        );
    }
    assert_eq!(dxr.storage().default_entry(DXR_DEFAULT_V4), 0);
    assert_eq!(dxr.storage().default_entry(DXR_DEFAULT_V6), 0);
}

/// Nested prefixes of every length through one address, inserted and removed in random
/// orders: /0, the direct-bits boundaries, IPv6 /64-/65 all among them.
#[test]
fn every_length_nested_and_apart() {
    let mut rng = SmallRng::seed_from_u64(test_seed());
    for (addr, max) in [(ip("10.1.2.3"), 32u8), (ip("2001:db8:1:2::3:4"), 128)] {
        let mut dxr = table();
        let mut model = Model::default();
        let mut prefixes: Vec<IpNet> = (0..=max)
            .map(|len| IpNet::new(addr, len).unwrap().trunc())
            .collect();
        // And one prefix of every length somewhere else.
        for len in 0..=max {
            let other = match addr {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(rng.random::<u32>())),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(rng.random::<u128>())),
            };
            prefixes.push(IpNet::new(other, len).unwrap().trunc());
        }
        prefixes.sort();
        prefixes.dedup();
        let mut order = prefixes.clone();
        order.shuffle(&mut rng);
        for (i, &prefix) in order.iter().enumerate() {
            apply(
                &mut dxr,
                &mut model,
                &[(prefix, Some(FIRST_GROUP + i as u32))],
            );
            check_edges(&dxr, &model, &prefixes, &mut rng);
        }
        for &prefix in &prefixes {
            assert!(dxr.get(prefix).is_some(), "{prefix}");
        }
        order.shuffle(&mut rng);
        for &prefix in &order {
            apply(&mut dxr, &mut model, &[(prefix, None)]);
            check_edges(&dxr, &model, &prefixes, &mut rng);
        }
        assert_empty(&mut dxr);
    }
}

#[test]
fn direct_bits_and_extension_boundaries() {
    let mut rng = SmallRng::seed_from_u64(test_seed());
    let mut dxr = table();
    let mut model = Model::default();
    let prefixes: Vec<IpNet> = [
        "10.0.0.0/15",
        "10.0.0.0/16",
        "10.1.0.0/16",
        "10.0.0.0/17",
        "10.1.128.0/17",
        "10.1.255.255/32",
        "2001:db8::/17",
        "2001:c000::/18",
        "2001:db8::/19",
        "2001:db8::/64",
        "2001:db8::/65",
        "2001:db8:0:0:8000::/65",
        "2001:db8:0:1::/64",
        "2001:db8:0:2::1/128",
        "2001:db8:0:2::/63",
    ]
    .iter()
    .map(|s| net(s))
    .collect();
    for (i, &prefix) in prefixes.iter().enumerate() {
        apply(&mut dxr, &mut model, &[(prefix, Some(10 + i as u32))]);
        check_edges(&dxr, &model, &prefixes, &mut rng);
    }
    // /16 and shorter are defaults: 10.0/16's chunk is a leaf but for the /17 inside it.
    let d4 = |s: &str| {
        let chunk = u32::from(s.parse::<Ipv4Addr>().unwrap()) >> 16;
        dxr.storage().descriptor(Directory::Direct4, chunk).unwrap()
    };
    assert_eq!(dxr_desc_default(d4("10.0.0.0")), 11);
    assert_eq!(dxr_desc_count(d4("10.0.0.0")), 2, "[0: /17, 0x8000: NONE]");
    assert_eq!(d4("10.2.0.0"), LEAF_NONE);
    assert_eq!(dxr.lookup(ip("2001:db8::8000:0:0:1")), Some(21));
    assert_eq!(dxr.lookup(ip("2001:db8::1")), Some(20));
    assert_eq!(dxr.lookup(ip("2001:db8:0:1::1")), Some(22));
    assert_eq!(dxr.lookup(ip("2001:db8:0:2::2")), Some(24));
    // The /64 goes, then the lower /65: its addresses fall through the extension to the /19.
    apply(&mut dxr, &mut model, &[(net("2001:db8::/64"), None)]);
    check_edges(&dxr, &model, &prefixes, &mut rng);
    assert_eq!(dxr.lookup(ip("2001:db8::1")), Some(20));
    apply(&mut dxr, &mut model, &[(net("2001:db8::/65"), None)]);
    check_edges(&dxr, &model, &prefixes, &mut rng);
    assert_eq!(dxr.lookup(ip("2001:db8::1")), Some(18));
    assert_eq!(dxr.lookup(ip("2001:db8::8000:0:0:1")), Some(21));
    for &prefix in &prefixes {
        apply(&mut dxr, &mut model, &[(prefix, None)]);
        check_edges(&dxr, &model, &prefixes, &mut rng);
    }
    assert_empty(&mut dxr);
}

/// A chunk goes leaf -> block -> another block -> leaf; extensions come and go with it.
#[test]
fn leaf_block_transitions_and_quarantine() {
    let mut dxr = table();
    let chunk = u32::from(Ipv4Addr::new(10, 1, 0, 0)) >> 16;
    let desc = |dxr: &Dxr<VecStorage>| dxr.storage().descriptor(Directory::Direct4, chunk).unwrap();
    assert_eq!(desc(&dxr), LEAF_NONE);
    assert!(dxr.apply(&mut [(net("10.1.2.0/24"), Some(5))]).is_empty());
    let first = desc(&dxr);
    assert_eq!(dxr_desc_count(first), 3, "[NONE, /24, NONE]");
    assert_eq!(dxr.memory_bytes(), 64);
    // Another group, the same range keys: the block's values are rewritten in place.
    assert!(dxr.apply(&mut [(net("10.1.2.0/24"), Some(6))]).is_empty());
    assert_eq!(desc(&dxr), first, "the same block");
    assert_eq!(dxr.memory_bytes(), 64);
    assert_eq!(dxr.lookup(ip("10.1.2.9")), Some(6));
    // New keys: a new block, never in place.
    assert!(dxr.apply(&mut [(net("10.1.4.0/24"), Some(6))]).is_empty());
    let second = desc(&dxr);
    assert_ne!(dxr_desc_base(first), dxr_desc_base(second));
    assert_eq!(dxr_desc_count(second), 5, "[NONE, /24, NONE, /24, NONE]");
    assert_eq!(
        dxr.memory_bytes(),
        128,
        "the old block waits out its quarantine"
    );
    assert_eq!(dxr.lookup(ip("10.1.4.9")), Some(6));
    let mut removals = [(net("10.1.2.0/24"), None), (net("10.1.4.0/24"), None)];
    assert!(dxr.apply(&mut removals).is_empty());
    assert_eq!(desc(&dxr), LEAF_NONE);
    assert_eq!(dxr.lookup(ip("10.1.2.9")), None);
    dxr.release_quarantined(Instant::now());
    assert_eq!(dxr.memory_bytes(), 128, "too early");
    dxr.release_quarantined(after_quarantine());
    assert_eq!(dxr.memory_bytes(), 0);

    let ids = dxr.ext_ids.free_len();
    assert!(dxr.apply(&mut [(net("2001:db8::/96"), Some(7))]).is_empty());
    assert_eq!(dxr.ext_ids.free_len(), ids - 1);
    assert_eq!(dxr.lookup(ip("2001:db8::1")), Some(7));
    assert_eq!(dxr.lookup(ip("2001:db8::1:0:0")), None);
    // Another prefix of the chunk changes: the extension is kept, not copied.
    assert!(
        dxr.apply(&mut [(net("2001:db8:1::/48"), Some(4))])
            .is_empty()
    );
    assert_eq!(dxr.ext_ids.free_len(), ids - 1);
    assert_eq!(dxr.ext_ids.quarantined().count(), 0);
    // The prefix covering the /64 changes: the extension's default must follow.
    assert!(dxr.apply(&mut [(net("2001:db8::/48"), Some(5))]).is_empty());
    assert_eq!(dxr.lookup(ip("2001:db8::1:0:0")), Some(5));
    assert!(dxr.apply(&mut [(net("2001:db8::/48"), Some(6))]).is_empty());
    assert_eq!(dxr.lookup(ip("2001:db8::1:0:0")), Some(6));
    assert_eq!(dxr.lookup(ip("2001:db8::1")), Some(7));
    assert_eq!(dxr.ext_ids.quarantined().count(), 2);
    for prefix in ["2001:db8::/96", "2001:db8::/48", "2001:db8:1::/48"] {
        assert!(dxr.apply(&mut [(net(prefix), None)]).is_empty());
    }
    assert_eq!(dxr.ext_ids.quarantined().count(), 3);
    assert_empty(&mut dxr);
}

/// Removing a covering short prefix hands its chunks to the next shorter one, then to /0.
#[test]
fn defaults_inherit_after_removing_a_covering_prefix() {
    let mut rng = SmallRng::seed_from_u64(test_seed());
    let mut dxr = table();
    let mut model = Model::default();
    let prefixes: Vec<IpNet> = [
        "0.0.0.0/0",
        "10.0.0.0/8",
        "10.16.0.0/12",
        "10.16.1.0/24",
        "::/0",
        "2001::/16",
        "2001:d00::/20",
        "2001:db8:1::/48",
    ]
    .iter()
    .map(|s| net(s))
    .collect();
    let groups: Vec<_> = prefixes
        .iter()
        .zip(2..)
        .map(|(&p, g)| (p, Some(g)))
        .collect();
    apply(&mut dxr, &mut model, &groups);
    assert_eq!(dxr.lookup(ip("10.16.2.1")), Some(4));
    for removed in [
        "10.16.0.0/12",
        "10.0.0.0/8",
        "0.0.0.0/0",
        "2001:d00::/20",
        "2001::/16",
        "::/0",
    ] {
        apply(&mut dxr, &mut model, &[(net(removed), None)]);
        check_edges(&dxr, &model, &prefixes, &mut rng);
    }
    assert_eq!(dxr.lookup(ip("10.16.1.1")), Some(5));
    assert_eq!(dxr.lookup(ip("10.16.2.1")), None);
    // Re-adding the /8 under the remaining /24 fills the chunk default again.
    apply(&mut dxr, &mut model, &[(net("10.0.0.0/8"), Some(9))]);
    check_edges(&dxr, &model, &prefixes, &mut rng);
}

/// A random table over every length, then random inserts, changes and removes in batches,
/// lookups checked against the reference throughout.
#[test]
fn random_churn_matches_reference() {
    let seed = test_seed();
    let mut rng = SmallRng::seed_from_u64(seed);
    let shape = PrefixShape::ALL_LENGTHS;
    let mut dxr = table();
    let mut model = Model::default();
    let random_prefix = |rng: &mut SmallRng| -> IpNet {
        if rng.random_bool(0.7) {
            IpNet::V4(shape.v4(rng))
        } else {
            IpNet::V6(shape.v6(rng))
        }
    };
    let group = |rng: &mut SmallRng| rng.random_range(FIRST_GROUP..MAX_NEXTHOP_GROUPS);
    let initial: Vec<_> = (0..scale(30_000))
        .map(|_| (random_prefix(&mut rng), Some(group(&mut rng))))
        .collect();
    apply(&mut dxr, &mut model, &initial);

    let probe = |rng: &mut SmallRng, model: &Model, count: usize| -> Vec<IpAddr> {
        let prefixes = model.prefixes();
        (0..count)
            .map(|_| match rng.random_range(0..3) {
                0 => IpAddr::V4(Ipv4Addr::from(rng.random::<u32>())),
                1 => IpAddr::V6(Ipv6Addr::from(rng.random::<u128>())),
                _ => {
                    let (prefix, _) = prefixes[rng.random_range(0..prefixes.len())];
                    let edges = edges(prefix, rng);
                    edges[rng.random_range(0..edges.len())]
                }
            })
            .collect()
    };
    let addrs = probe(&mut rng, &model, scale(1_000_000));
    check(&dxr, &model, addrs);

    let mut ops = 0;
    while ops < scale(100_000) {
        let size = rng.random_range(1..=2_000);
        let batch = random_batch(&mut rng, &model, size, 0.5, random_prefix);
        ops += batch.len();
        apply(&mut dxr, &mut model, &batch);
        let addrs = probe(&mut rng, &model, 500);
        check(&dxr, &model, addrs);
        dxr.release_quarantined(Instant::now());
    }
    let addrs = probe(&mut rng, &model, scale(1_000_000));
    check(&dxr, &model, addrs);
    for (prefix, group) in model.prefixes() {
        assert_eq!(dxr.get(prefix), Some(group), "{prefix}");
    }
    assert_eq!(dxr.len(), model.v4.len() + model.v6.len());
    // Rebuilds skip reading old blocks for extensions where the marker count says none.
    for chunk in 0..1 << DXR6_DIRECT_BITS {
        let mut marked = false;
        dxr.v6
            .for_each_in_chunk(chunk, |e| marked |= e.len == rules::EXT_MARKER);
        assert_eq!(dxr.v6.has_ext_marker(chunk), marked, "chunk {chunk}");
    }

    // Everything out again: nothing leaks.
    let removals: Vec<_> = model
        .prefixes()
        .into_iter()
        .map(|(p, _)| (p, None))
        .collect();
    apply(&mut dxr, &mut model, &removals);
    assert_empty(&mut dxr);
}

/// I1: no quarantined block or extension is written before its quarantine ends, however
/// much the tables churn meanwhile.
#[test]
fn quarantined_space_is_never_written() {
    let mut rng = SmallRng::seed_from_u64(test_seed());
    let shape = PrefixShape::ALL_LENGTHS;
    let mut dxr = table();
    let mut model = Model::default();
    let mut prefixes: Vec<IpNet> = Vec::new();
    for _ in 0..scale(2_000) {
        prefixes.push(IpNet::V4(shape.v4(&mut rng)));
        let v6 = shape.v6(&mut rng);
        // Long IPv6 prefixes, so extensions churn too.
        let v6 = Ipv6Net::new(v6.addr(), rng.random_range(65..=128))
            .unwrap()
            .trunc();
        prefixes.push(IpNet::V6(v6));
    }
    let all: Vec<_> = prefixes.iter().map(|&p| (p, Some(2))).collect();
    apply(&mut dxr, &mut model, &all);
    // (arena, first range, its ranges) of every block seen in quarantine.
    type Snapshot = (Arena, u32, Vec<(u64, u16)>);
    let mut snapshots: Vec<Snapshot> = Vec::new();
    let mut ext_snapshots: Vec<(u32, Option<u64>)> = Vec::new();
    for round in 0..20 {
        let batch: Vec<_> = (0..200)
            .map(|_| {
                (
                    prefixes[rng.random_range(0..prefixes.len())],
                    Some(3 + round),
                )
            })
            .collect();
        apply(&mut dxr, &mut model, &batch);
        for (arena, start, words) in &snapshots {
            let now = dxr
                .storage()
                .range_words(*arena, *start, words.len() as u32);
            assert_eq!(
                &now, words,
                "quarantined {arena:?} block at {start} was written"
            );
        }
        for &(id, desc) in &ext_snapshots {
            assert_eq!(dxr.storage().descriptor(Directory::Ext6, id), desc);
        }
        for (arena, allocator) in [
            (Arena::Ranges4, &dxr.ranges4),
            (Arena::Ranges6, &dxr.ranges6),
            (Arena::XRanges6, &dxr.xranges),
        ] {
            for (line, lines) in allocator.quarantined() {
                let (start, len) = (line * arena.per_line(), lines * arena.per_line());
                snapshots.push((arena, start, dxr.storage().range_words(arena, start, len)));
            }
        }
        for id in dxr.ext_ids.quarantined() {
            ext_snapshots.push((id, dxr.storage().descriptor(Directory::Ext6, id)));
        }
        check_edges(&dxr, &model, &prefixes, &mut rng);
    }
    assert!(!snapshots.is_empty() && !ext_snapshots.is_empty());
}

/// A batch that does not fit degrades the chunks that found no room to `GROUP_PASS` leaves:
/// their addresses go to the kernel, never to a route the batch changed or removed. Once space
/// is free, `release_quarantined` rebuilds them; a short prefix changed meanwhile is their
/// default then. An allocation waits for a quarantine to end rather than fail.
#[test]
fn full_arena_degrades_chunks_to_the_kernel_until_there_is_room() {
    let pass = Some(router_common::GROUP_PASS);
    let mut dxr = Dxr::new(VecStorage::new(4, 2, 1, 2));
    // A /24 makes a 3-range block: one line each; four fit.
    let prefixes: Vec<IpNet> = (0..10).map(|i| net(&format!("10.{i}.0.0/24"))).collect();
    let mut changes: Vec<_> = prefixes.iter().map(|&p| (p, Some(2))).collect();
    let errors = dxr.apply(&mut changes);
    assert_eq!(errors.len(), 6);
    for (i, &prefix) in prefixes.iter().enumerate() {
        let fits = i < 4;
        let full = DxrError::Full {
            prefix,
            what: "IPv4 range arena",
        };
        assert_eq!(errors.contains(&full), !fits, "{prefix}");
        assert_eq!(dxr.get(prefix), Some(2), "the rule is kept: {prefix}");
        let inside = ip(&format!("10.{i}.0.1"));
        assert_eq!(dxr.lookup(inside), if fits { Some(2) } else { pass });
        // Outside the /24, the degraded chunk goes to the kernel too.
        let outside = ip(&format!("10.{i}.9.1"));
        assert_eq!(dxr.lookup(outside), if fits { None } else { pass });
    }
    assert_eq!(dxr.degraded_chunks(), 6);

    // A short prefix covering a degraded chunk changes its real default, not the leaf.
    assert_eq!(dxr.apply(&mut [(net("10.8.0.0/16"), Some(5))]), vec![]);
    assert_eq!(dxr.lookup(ip("10.8.9.1")), pass);
    // A removal in a degraded chunk needs no block: the chunk is rebuilt as a leaf.
    assert_eq!(dxr.apply(&mut [(prefixes[9], None)]), vec![]);
    assert_eq!(dxr.lookup(ip("10.9.0.1")), None);

    // Freeing four blocks (quarantined) and releasing them rebuilds four of the five
    // degraded chunks, in address order.
    let mut removals: Vec<_> = prefixes[..4].iter().map(|&p| (p, None)).collect();
    assert_eq!(dxr.apply(&mut removals), vec![]);
    assert_eq!(
        dxr.degraded_chunks(),
        5,
        "nothing rebuilt while in quarantine"
    );
    dxr.release_quarantined(after_quarantine());
    assert_eq!(dxr.degraded_chunks(), 1);
    for i in 4..8 {
        assert_eq!(dxr.lookup(ip(&format!("10.{i}.0.1"))), Some(2));
    }
    assert_eq!(dxr.lookup(ip("10.8.0.1")), pass);
    // One more block freed: the last chunk comes back, with the default set while degraded.
    assert_eq!(dxr.apply(&mut [(prefixes[4], None)]), vec![]);
    dxr.release_quarantined(after_quarantine());
    assert_eq!(dxr.degraded_chunks(), 0);
    assert_eq!(dxr.lookup(ip("10.8.0.1")), Some(2));
    assert_eq!(dxr.lookup(ip("10.8.9.1")), Some(5));
    assert_eq!(dxr.lookup(ip("10.4.0.1")), None);

    // A change of group is made in place, with no block; one that moves range keys needs a
    // new block while the only free one is quarantined: it waits.
    assert_eq!(dxr.apply(&mut [(prefixes[5], Some(3))]), vec![]);
    assert_eq!(dxr.quarantine_waits(), 0);
    assert_eq!(dxr.apply(&mut [(prefixes[6], None)]), vec![]);
    assert_eq!(dxr.apply(&mut [(net("10.5.1.0/24"), Some(4))]), vec![]);
    assert_eq!(dxr.quarantine_waits(), 1);
    assert_eq!(dxr.lookup(ip("10.5.0.1")), Some(3));
    assert_eq!(dxr.lookup(ip("10.5.1.1")), Some(4));

    let errors = dxr.apply(&mut [(net("10.0.0.0/24"), Some(MAX_NEXTHOP_GROUPS))]);
    assert!(matches!(errors[..], [DxrError::InvalidGroup { .. }]));
}

/// Unpublished (bulk load), freed space is reused at once.
#[test]
fn unpublished_tables_skip_the_quarantine() {
    let mut dxr = Dxr::new(VecStorage::new(2, 2, 2, 2));
    dxr.set_published(false);
    for group in 2..50 {
        let errors = dxr.apply(&mut [
            (net("10.0.0.0/24"), Some(group)),
            (net("2001:db8::/96"), Some(group)),
        ]);
        assert_eq!(errors, vec![]);
    }
    assert_eq!(dxr.quarantine_waits(), 0);
    assert_eq!(dxr.lookup(ip("10.0.0.1")), Some(49));
    assert_eq!(dxr.lookup(ip("2001:db8::1")), Some(49));
}
