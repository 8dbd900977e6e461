//! Stand-in for `bgp/drain.rs`'s types until the origins core lands (same shape).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainState {
    pub all: Option<DrainEntry>,
    pub services: BTreeMap<String, DrainEntry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainEntry {
    pub since_unix: u64,
    pub prepend: u8,
    pub withdraw_at_unix: Option<u64>,
}
