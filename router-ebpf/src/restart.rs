//! Maps the XDP program never reads, kept in its object so that they are created and pinned
//! with the others: what the next agent run needs to adopt this datapath (see
//! `router_common::DatapathStamp` and `NexthopOwner`).

use aya_ebpf::{bindings::BPF_F_MMAPABLE, btf_maps::Array, macros::btf_map};
use router_common::{DatapathStamp, MAX_NEXTHOP_SLOTS, NexthopOwner};

const MMAPABLE: usize = BPF_F_MMAPABLE as usize;

/// Who wrote the pin directory, its layout version, the flow hash seed.
#[btf_map]
static STAMP: Array<DatapathStamp, 1> = Array::new();

/// Whose nexthop each `NEXTHOPS` slot holds.
#[btf_map]
static NEXTHOP_OWNERS: Array<NexthopOwner, { MAX_NEXTHOP_SLOTS as usize }, MMAPABLE> = Array::new();
