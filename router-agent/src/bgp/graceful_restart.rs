//! BGP graceful restart (RFC 4724, with the RFC 8538 NOTIFICATION semantics), both roles.
//!
//! CONTRACT STUB (session 5): the types the daemon uses; the implementation lands with it.

use std::time::Duration;

use serde::Deserialize;

/// `[bgp.graceful_restart]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GracefulRestartConfig {
    /// Advertise the capability (and act as a helper for peers that do).
    pub enabled: bool,
    /// How long peers keep our routes while we restart (the capability's Restart Time,
    /// at most 4095 s).
    #[serde(with = "humantime_serde")]
    pub restart_time: Duration,
    /// After a restart, how long adopted (previous run's) routes wait for the End-of-RIB of
    /// the peers they were learned from before they are swept anyway.
    #[serde(with = "humantime_serde")]
    pub selection_deferral: Duration,
    /// Helper: how long a restarted peer's stale routes wait for its End-of-RIB once its
    /// session is back.
    #[serde(with = "humantime_serde")]
    pub stale_routes_time: Duration,
    /// RFC 8538: advertise the N bit (graceful restart also after a NOTIFICATION that is not a
    /// Hard Reset).
    pub notification: bool,
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            restart_time: Duration::from_secs(120),
            selection_deferral: Duration::from_secs(120),
            stale_routes_time: Duration::from_secs(360),
            notification: true,
        }
    }
}

/// What this run of the agent knows about its own restart, for the capability it sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestartState {
    /// The agent adopted a previous run's datapath: the Restart State (R) bit.
    pub restarted: bool,
    /// The forwarding state was kept across the restart: the F bit for every family.
    pub forwarding_preserved: bool,
}
