//! BGP graceful restart (RFC 4724, with the RFC 8538 NOTIFICATION semantics), both roles.
//!
//! - `capability.rs`: the capability's wire format.
//! - `session.rs`: what a session negotiates, which ends keep the peer's routes, which
//!   NOTIFICATION ends a session the graceful or the hard way.
//! - `helper.rs`: the receiving speaker's timers per peer (restart time, stale routes time),
//!   sans-IO; the speaker carries its verdicts out on the RIB (`rib/stale.rs`) and the FIB
//!   (`speaker/graceful.rs`).
//!
//! As the restarting speaker we only send originated routes, so our End-of-RIB follows them at
//! once; what the previous run left in the FIB is swept per peer and family on the peer's
//! End-of-RIB (`southbound::end_of_rib`).

mod capability;
pub mod helper;
pub mod session;

use std::time::Duration;

pub use capability::{
    GracefulRestartCapability, GracefulRestartFamily, MAX_RESTART_TIME, MalformedGracefulRestart,
};
pub use session::NegotiatedGracefulRestart;

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

impl GracefulRestartConfig {
    /// Checks what the wire can carry; the error names the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.restart_time > Duration::from_secs(u64::from(MAX_RESTART_TIME)) {
            return Err((
                "bgp.graceful_restart.restart_time".to_owned(),
                format!(
                    "{} is more than the capability's 12-bit restart time holds (at most \
                     4095 s, RFC 4724)",
                    humantime_serde::re::humantime::format_duration(self.restart_time)
                ),
            ));
        }
        Ok(())
    }

    /// The capability's Restart Time, in whole seconds.
    pub fn restart_time_seconds(&self) -> u16 {
        u16::try_from(self.restart_time.as_secs())
            .unwrap_or(MAX_RESTART_TIME)
            .min(MAX_RESTART_TIME)
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

#[cfg(test)]
mod tests {
    use crate::bgp::config::BgpConfig;

    fn compile(graceful_restart: &str) -> Result<super::GracefulRestartConfig, String> {
        let text = format!(
            "asn = 65101\nrouter_id = \"10.255.0.1\"\n[graceful_restart]\n{graceful_restart}\n"
        );
        let config: BgpConfig = toml::from_str(&text).map_err(|err| err.to_string())?;
        config
            .compile()
            .map(|setup| setup.graceful_restart)
            .map_err(|err| err.to_string())
    }

    #[test]
    fn defaults_and_humantime_values() {
        let defaults = compile("").unwrap();
        assert!(defaults.enabled && defaults.notification);
        assert_eq!(defaults.restart_time_seconds(), 120);
        assert_eq!(defaults.stale_routes_time.as_secs(), 360);
        let set = compile("restart_time = \"1h 8m 15s\"\nstale_routes_time = \"90s\"").unwrap();
        assert_eq!(set.restart_time_seconds(), 4095);
        assert_eq!(set.stale_routes_time.as_secs(), 90);
    }

    #[test]
    fn a_restart_time_over_12_bits_names_the_key() {
        let err = compile("restart_time = \"4096s\"").unwrap_err();
        assert!(err.contains("bgp.graceful_restart.restart_time"), "{err}");
        assert!(err.contains("4095"), "{err}");
        assert!(
            compile("restart_tme = \"10s\"").is_err(),
            "unknown keys refused"
        );
    }
}
