//! Drain (RFC 8326 graceful shutdown for the host's own routes): the operator's `drain` and
//! `undrain`, their `[drain]` configuration and the state file that carries a drain across
//! restarts and reboots. The speaker applies a `DrainState` to what it exports
//! (`bgp/speaker/origins.rs`); the event loop's side is `daemon/drain.rs`.

pub mod config;
pub mod persist;
pub mod request;
pub mod traffic;

pub use crate::bgp::drain::{DrainEntry, DrainState};
pub use config::DrainConfig;
pub use request::{DrainRequest, UndrainRequest};

/// Seconds since the Unix epoch (what the state file holds: it outlives the process).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
