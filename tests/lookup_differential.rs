//! Differential lookup test: for a random table of 100k prefixes (all lengths, IPv4 and IPv6)
//! and 1M random addresses, each engine's XDP program must pick exactly the route a reference
//! longest-prefix match picks, before and after random inserts and deletes. Runs the real
//! program (`BPF_PROG_TEST_RUN`) so the eBPF side of DIR-24-8 and the kernel's LPM trie are
//! both under test, not a userspace copy. Needs root.
//!
//! Each prefix routes to one of 512 nexthops whose MAC encodes its number, so the output frame
//! says which route was used. Seed: `DIFF_SEED=<n>` replays a failure.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::*;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rand::{Rng, SeedableRng, rngs::SmallRng, seq::IndexedRandom};
use router_agent::fib::{
    reference::ReferenceLpm,
    synthetic::{PrefixShape, v4_host, v4_is_link_scope, v6_host, v6_is_link_scope},
};
use router_common::LookupEngine;

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

/// An address inside a random prefix of the table half of the time, anywhere otherwise.
fn probe(rng: &mut SmallRng, prefixes: &[IpNet]) -> IpAddr {
    let inside = rng.random_bool(0.5);
    let family_v4 = rng.random_bool(0.7);
    if inside && let Some(prefix) = prefixes.choose(rng) {
        return match prefix {
            IpNet::V4(p) => IpAddr::V4(v4_host(rng, *p)),
            IpNet::V6(p) => IpAddr::V6(v6_host(rng, *p)),
        };
    }
    if family_v4 {
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
    n: usize,
    seed: u64,
) {
    let mut mismatches = Vec::new();
    for _ in 0..n {
        let addr = probe(rng, prefixes);
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

fn differential(engine: LookupEngine) {
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
        let prefix = if i % 5 == 4 {
            IpNet::V6(SHAPE.v6(&mut rng))
        } else {
            IpNet::V4(SHAPE.v4(&mut rng))
        };
        set(&mut h, &mut table, prefix, rng.random_range(0..NEXTHOPS));
        prefixes.push(prefix);
    }
    check(&mut h, &table, &mut rng, &prefixes, scale(1_000_000), seed);

    // Churn: delete half of a random sample, add new prefixes, move some to new nexthops.
    for _ in 0..scale(25_000) {
        let index = rng.random_range(0..prefixes.len());
        let prefix = prefixes.swap_remove(index);
        unset(&mut h, &mut table, prefix);
    }
    for i in 0..scale(25_000) {
        let prefix = if i % 5 == 4 {
            IpNet::V6(SHAPE.v6(&mut rng))
        } else {
            IpNet::V4(SHAPE.v4(&mut rng))
        };
        set(&mut h, &mut table, prefix, rng.random_range(0..NEXTHOPS));
        prefixes.push(prefix);
    }
    for _ in 0..scale(10_000) {
        let prefix = *prefixes.choose(&mut rng).unwrap();
        set(&mut h, &mut table, prefix, rng.random_range(0..NEXTHOPS));
    }
    check(&mut h, &table, &mut rng, &prefixes, scale(1_000_000), seed);
}

#[test]
fn lpm_trie_matches_reference() {
    differential(LookupEngine::LpmTrie);
}

#[test]
fn dir24_matches_reference() {
    differential(LookupEngine::Dir24);
}
