//! The integration tests' view of the netns-lab library (`netns-lab/`, shared with xtask),
//! plus the one thing only this package knows: where cargo built the agent.
#![allow(dead_code, unused_imports)]

pub use netns_lab::*;

pub const AGENT: &str = env!("CARGO_BIN_EXE_router-agent");
