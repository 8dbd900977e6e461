//! The cases of `bgp_neighbors.rs`, one module each, and what they share: the agent's
//! configuration and its view of its neighbors.

mod collisions;
mod dynamic;
mod peers;
mod unnumbered;

use std::{
    fs,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use crate::interop::{HOST_ASN, HOST_LOOPBACK, HOST_PREFIX, Lab};
use crate::netns::wait_for;
use crate::{interop, netns};
use serde_json::Value;

pub(crate) const SESSION: Duration = Duration::from_secs(40);
pub(crate) const ROUTE: Duration = Duration::from_secs(15);
pub(crate) const ROUNDS: usize = 3;

pub(crate) fn agent_config(neighbors: &str) -> String {
    format!(
        r#"[bgp]
asn = {HOST_ASN}
router_id = "{HOST_LOOPBACK}"
originate = [{{ prefix = "{HOST_PREFIX}" }}]

{neighbors}
"#
    )
}

/// The agent's view of its neighbors (`show neighbors --json`).
pub(crate) fn agent_neighbors(lab: &Lab) -> Vec<Value> {
    lab.show("neighbors")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn agent_state(lab: &Lab, address: &str) -> String {
    agent_neighbors(lab)
        .iter()
        .find(|n| n["address"] == address)
        .and_then(|n| n["state"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

use peers::{FRR_ASN, FRR_ROUTER_ID, Frr, GOBGP_ASN, GoBgp};
