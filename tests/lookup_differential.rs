//! Differential lookup test: for a random table of 100k prefixes (all lengths, IPv4 and IPv6)
//! and 1M random addresses per family, each engine's XDP program must pick exactly the route a
//! reference longest-prefix match picks, before and after 100k random inserts, deletes and
//! changes. Runs the real
//! program (`BPF_PROG_TEST_RUN`) so the eBPF side of DIR-24-8 and DXR and the kernel's LPM
//! trie are under test, not a userspace copy. Needs root.
//!
//! Each prefix routes to one of 512 nexthops whose MAC encodes its number, so the output frame
//! says which route was used. Seed: `DIFF_SEED=<n>` replays a failure.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::*;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rand::{Rng, SeedableRng, rngs::SmallRng, seq::IndexedRandom};
use router_agent::datapath::dxr::{Directory, DxrStorage};
use router_agent::fib::{
    reference::ReferenceLpm,
    synthetic::{PrefixShape, v4_host, v4_is_link_scope, v6_host, v6_is_link_scope},
};
use router_common::{
    DXR_SHORT_BLOCK_LINES, DXR4_DIRECT_ENTRIES, DXR4_LINE, LookupEngine, dxr_desc_count,
};

const NEXTHOPS: u32 = 512;

fn scale(n: usize) -> usize {
    // Debug builds run the same test on a tenth of the data; CI runs release.
    if cfg!(debug_assertions) { n / 10 } else { n }
}

struct Table {
    v4: ReferenceLpm<Ipv4Net>,
    v6: ReferenceLpm<Ipv6Net>,
}

fn nexthop_addr(n: u32) -> String {
    format!("192.0.{}.{}", 128 + n / 250, 1 + n % 250)
}

/// Every prefix length, default routes included: the corner cases of longest-prefix match.
const SHAPE: PrefixShape = PrefixShape::ALL_LENGTHS;

fn set(h: &mut Harness, table: &mut Table, prefix: IpNet, nexthop: u32) {
    h.route(&prefix.to_string(), &[&nexthop_addr(nexthop)]);
    match prefix {
        IpNet::V4(p) => table.v4.insert(p, nexthop),
        IpNet::V6(p) => table.v6.insert(p, nexthop),
    };
}

fn unset(h: &mut Harness, table: &mut Table, prefix: IpNet) {
    h.remove(&prefix.to_string());
    match prefix {
        IpNet::V4(p) => table.v4.remove(p),
        IpNet::V6(p) => table.v6.remove(p),
    };
}

/// An address of the family inside a random prefix of the table half of the time, anywhere
/// otherwise.
fn probe(rng: &mut SmallRng, prefixes: &[IpNet], v4_family: bool) -> IpAddr {
    if rng.random_bool(0.5) {
        for _ in 0..16 {
            match prefixes.choose(rng) {
                Some(IpNet::V4(p)) if v4_family => return IpAddr::V4(v4_host(rng, *p)),
                Some(IpNet::V6(p)) if !v4_family => return IpAddr::V6(v6_host(rng, *p)),
                _ => {}
            }
        }
    }
    if v4_family {
        IpAddr::V4(Ipv4Addr::from(rng.random::<u32>()))
    } else {
        IpAddr::V6(Ipv6Addr::from((rng.random::<u128>() >> 3) | (1u128 << 125)))
    }
}

fn check(
    h: &mut Harness,
    table: &Table,
    rng: &mut SmallRng,
    prefixes: &[IpNet],
    n_per_family: usize,
    seed: u64,
) {
    let n = n_per_family;
    let mut mismatches = Vec::new();
    for i in 0..2 * n {
        let addr = probe(rng, prefixes, i % 2 == 0);
        let (expected, frame) = match addr {
            IpAddr::V4(a) => {
                if v4_is_link_scope(a) {
                    continue;
                }
                let frame = ipv4_udp(v4("10.255.0.1"), a.octets(), 64, (1, 2), 0, 0);
                (table.v4.lookup(a).copied(), frame)
            }
            IpAddr::V6(a) => {
                if v6_is_link_scope(a) {
                    continue;
                }
                let frame = ipv6_udp(v6("2001:db8::1"), a.octets(), 64, (1, 2), 0);
                (table.v6.lookup(a).copied(), frame)
            }
        };
        let (action, out) = h.run(&frame);
        let got = match action {
            XDP_REDIRECT => Some(mac_number(&out[0..6])),
            XDP_PASS => None,
            other => panic!("unexpected action {other} for {addr}"),
        };
        if got != expected {
            mismatches.push(format!("{addr}: expected {expected:?}, XDP chose {got:?}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches (seed {seed}), first: {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(10)]
    );
}

/// IPv6 regions where `Table::Dense` packs most of its IPv6 prefixes: thousands per /18, so
/// that DXR splits those chunks, and their children again (`datapath::dxr::split`).
const DENSE_V6: [&str; 2] = ["2001:db8::/32", "2a00:1450::/29"];

/// Where `Shape::DenseV4` packs most of its IPv4 prefixes: 4,096 /16s, DXR's IPv4 chunks.
const DENSE_V4: &str = "64.0.0.0/4";

#[derive(Clone, Copy)]
enum Shape {
    /// Prefixes anywhere.
    Spread,
    /// Four IPv6 prefixes in five in `DENSE_V6`, mostly /33-/64.
    DenseV6,
    /// Four IPv4 prefixes in five in `DENSE_V4`, /17-/32, its chunks from thousands of
    /// prefixes down to a few: DXR blocks of one line, of a few, and of many.
    DenseV4,
}

/// One prefix in five is IPv6.
fn new_prefix(rng: &mut SmallRng, i: usize, shape: Shape) -> IpNet {
    if i % 5 != 4 {
        if let Shape::DenseV4 = shape
            && rng.random_bool(0.8)
        {
            let region: Ipv4Net = DENSE_V4.parse().unwrap();
            // Chunk k of the region with density falling as 1/sqrt(k).
            let chunk = (4096.0 * rng.random::<f64>().powi(2)) as u32;
            let chunk = Ipv4Net::new((u32::from(region.network()) + (chunk << 16)).into(), 16);
            let host = v4_host(rng, chunk.unwrap());
            let len = rng.random_range(17..=32);
            return IpNet::V4(Ipv4Net::new(host, len).unwrap().trunc());
        }
        return IpNet::V4(SHAPE.v4(rng));
    }
    match shape {
        Shape::DenseV6 if rng.random_bool(0.8) => {
            let region: Ipv6Net = DENSE_V6.choose(rng).unwrap().parse().unwrap();
            let len = if rng.random_bool(0.9) {
                rng.random_range(region.prefix_len() + 1..=64)
            } else {
                rng.random_range(19..=128)
            };
            let host = v6_host(rng, region);
            IpNet::V6(Ipv6Net::new(host, len).unwrap().trunc())
        }
        _ => IpNet::V6(SHAPE.v6(rng)),
    }
}

fn differential(engine: LookupEngine) {
    differential_with(engine, Shape::Spread);
}

fn differential_with(engine: LookupEngine, shape: Shape) {
    let seed = std::env::var("DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("{engine:?}: seed {seed}");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut h = Harness::new(engine);
    for n in 0..NEXTHOPS {
        h.neighbor(&nexthop_addr(n), Some(mac(n)));
    }
    let mut table = Table {
        v4: ReferenceLpm::new(),
        v6: ReferenceLpm::new(),
    };
    let mut prefixes = Vec::new();
    for i in 0..scale(100_000) {
        let prefix = new_prefix(&mut rng, i, shape);
        set(&mut h, &mut table, prefix, rng.random_range(0..NEXTHOPS));
        prefixes.push(prefix);
    }
    if let Shape::DenseV6 = shape {
        let splits = h.datapath.dxr().map(|dxr| dxr.split_groups());
        assert!(splits > Some(2), "split IPv6 nodes: {splits:?}");
        eprintln!("split IPv6 nodes: {splits:?}");
    }
    if let Shape::DenseV4 = shape {
        let blocks = ipv4_blocks_by_lines(&h);
        eprintln!("IPv4 blocks of 1, 2-4 and more lines: {blocks:?}");
        assert!(blocks.iter().all(|&n| n > 100), "{blocks:?}");
    }
    check(&mut h, &table, &mut rng, &prefixes, scale(1_000_000), seed);

    // Churn: 100k random inserts (40%), deletes (40%) and changes of nexthop (20%).
    for _ in 0..scale(100_000) {
        let roll = rng.random_range(0..10);
        if roll < 4 && !prefixes.is_empty() {
            let index = rng.random_range(0..prefixes.len());
            let prefix = prefixes.swap_remove(index);
            unset(&mut h, &mut table, prefix);
        } else if roll < 8 {
            let prefix = new_prefix(&mut rng, prefixes.len(), shape);
            set(&mut h, &mut table, prefix, rng.random_range(0..NEXTHOPS));
            prefixes.push(prefix);
        } else if let Some(&prefix) = prefixes.choose(&mut rng) {
            set(&mut h, &mut table, prefix, rng.random_range(0..NEXTHOPS));
        }
    }
    check(&mut h, &table, &mut rng, &prefixes, scale(1_000_000), seed);
}

/// DXR's IPv4 blocks: how many take one line, 2 to `DXR_SHORT_BLOCK_LINES` (searched line
/// by line), and more (searched whole).
fn ipv4_blocks_by_lines(h: &Harness) -> [usize; 3] {
    let dxr = h.datapath.dxr().expect("the DXR engine");
    let mut blocks = [0; 3];
    for chunk in 0..DXR4_DIRECT_ENTRIES {
        let desc = dxr.storage().descriptor(Directory::Direct4, chunk);
        let lines = dxr_desc_count(desc.unwrap_or_default()).div_ceil(DXR4_LINE as u32);
        match lines {
            0 => {}
            1 => blocks[0] += 1,
            2..=DXR_SHORT_BLOCK_LINES => blocks[1] += 1,
            _ => blocks[2] += 1,
        }
    }
    blocks
}

#[test]
fn lpm_trie_matches_reference() {
    differential(LookupEngine::LpmTrie);
}

#[test]
fn dir24_matches_reference() {
    differential(LookupEngine::Dir24);
}

#[test]
fn dxr_matches_reference() {
    differential(LookupEngine::Dxr);
}

/// DXR with dense IPv4 chunks: blocks of every size, each search path of the program.
#[test]
fn dxr_ipv4_blocks_of_every_size_match_reference() {
    differential_with(LookupEngine::Dxr, Shape::DenseV4);
}

/// DXR with dense IPv6 regions: its lookup goes down split nodes (three levels here).
#[test]
fn dxr_split_nodes_match_reference() {
    differential_with(LookupEngine::Dxr, Shape::DenseV6);
}
