//! The host's own IPv4 addresses as packet sources: `fib_validate_source` refuses to forward
//! (or deliver) a packet whose source is a local address, unless the ingress interface sets
//! `accept_local`. IPv6 has no such check (`ip6_forward`).
//!
//! A per-packet route lookup of the source would cost as much as the destination's, so a bit
//! filter answers first: one inlined array read proves most sources foreign, and only a set
//! bit (a local address, or a collision with one) costs the exact hash lookup.

use aya_ebpf::{
    btf_maps::{Array, HashMap},
    macros::btf_map,
};
use router_common::{LOCAL_FILTER_WORDS, MAX_LOCAL_V4, local_filter_bit};

/// Bit `local_filter_bit(addr)` is set for every address in `LOCAL_V4`.
#[btf_map]
static LOCAL_V4_FILTER: Array<u64, { LOCAL_FILTER_WORDS as usize }> = Array::new();

/// The host's IPv4 addresses (network-order octets); the value is unused.
#[btf_map]
static LOCAL_V4: HashMap<[u8; 4], u32, { MAX_LOCAL_V4 as usize }> = HashMap::new();

/// Whether `src` is one of the host's IPv4 addresses.
#[inline(always)]
pub fn is_local_v4(src: [u8; 4]) -> bool {
    let bit = local_filter_bit(src);
    let Some(word) = LOCAL_V4_FILTER.get(bit / 64) else {
        return false;
    };
    if *word & (1u64 << (bit % 64)) == 0 {
        return false;
    }
    LOCAL_V4.get_ptr(src).is_some()
}
