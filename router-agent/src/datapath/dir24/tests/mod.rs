//! DIR-24-8 tests; this module holds the fixtures they share.

mod differential;
mod operations;

use super::*;
use crate::fib::reference::ReferenceLpm;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use router_common::{MAX_DIR24_TBL8_GROUPS, MAX_NEXTHOP_GROUPS};

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn table() -> Dir24<VecStorage> {
    Dir24::new(VecStorage::new(16))
}

/// A random seed for the randomised tests, or `DIR24_SEED` to replay one (failure messages
/// carry the seed).
fn test_seed() -> u64 {
    let seed = std::env::var("DIR24_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("seed {seed} (rerun with DIR24_SEED={seed})");
    seed
}

/// Lets quarantined groups go without waiting.
fn after_quarantine() -> Instant {
    Instant::now() + TBL8_QUARANTINE + Duration::from_millis(1)
}
