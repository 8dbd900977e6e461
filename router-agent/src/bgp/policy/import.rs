//! Import: what a neighbor's routes must pass to reach the decision process, and the
//! max-prefix bound on what it can make the host store.

use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::bgp::packet::types::PathAttributes;
use crate::bgp::route_source::PeerInfo;

use super::*;

/// Why import policy turned a route away (kept in the Adj-RIB-In; shown by `show`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImportRejection {
    #[error("AS_PATH contains our AS {0} (loop)")]
    AsPathLoop(u32),
    #[error("no import policy configured for this eBGP neighbor (RFC 8212)")]
    NotConfigured,
    #[error("denied by import policy")]
    Denied,
}

/// What a neighbor's routes must pass to reach the decision process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportPolicy {
    pub filter: Filter,
    pub max_prefix: Option<MaxPrefix>,
}

impl ImportPolicy {
    /// What to apply when the neighbor's configuration has no `import` (RFC 8212).
    pub fn not_configured() -> Self {
        Self::default()
    }

    pub fn default_only() -> Self {
        Self {
            filter: Filter::PrefixList(Arc::new(PrefixList::default_only())),
            max_prefix: None,
        }
    }

    /// Compiles a neighbor's `import` and `max_prefix` settings; `key` names the neighbor in
    /// errors (e.g. `bgp.neighbor[0].import`).
    pub fn from_config(
        import: Option<&ImportConfig>,
        max_prefix: Option<MaxPrefix>,
        lists: &PrefixLists,
        key: &str,
    ) -> Result<Self, PolicyError> {
        let filter = Filter::from_ref(
            import,
            |preset| match preset {
                ImportPreset::DefaultOnly => {
                    Filter::PrefixList(Arc::new(PrefixList::default_only()))
                }
                ImportPreset::All => Filter::All,
                ImportPreset::None => Filter::None,
            },
            lists,
            key,
        )?;
        Ok(Self { filter, max_prefix })
    }

    /// Whether `prefix` with `attrs`, received from `peer`, may enter the decision process.
    pub fn evaluate(
        &self,
        prefix: &IpNet,
        attrs: &PathAttributes,
        peer: &PeerInfo,
    ) -> Result<(), ImportRejection> {
        // RFC 4271 9.1.2: a route whose AS_PATH holds our own AS has looped. Always on: a host
        // accepting one would forward into the loop.
        if attrs.as_path.contains(peer.local_as) {
            return Err(ImportRejection::AsPathLoop(peer.local_as));
        }
        match self.filter.passes(prefix, peer.ebgp) {
            Ok(true) => Ok(()),
            Ok(false) => Err(ImportRejection::Denied),
            Err(()) => Err(ImportRejection::NotConfigured),
        }
    }

    /// Logs the RFC 8212 consequence of a missing import policy, once per session start.
    pub fn log_if_unconfigured(&self, peer: &PeerInfo) {
        if self.filter == Filter::NotConfigured && peer.ebgp {
            tracing::warn!(
                neighbor = %peer.address,
                remote_as = peer.remote_as,
                "no import policy configured for eBGP neighbor: importing nothing (RFC 8212); \
                 set import = \"default-only\" or a prefix list"
            );
        }
    }
}

/// `max_prefix = { limit = 100, action = "teardown", restart_after = "60s" }`: bounds the
/// routes a neighbor can make this host store. It counts the routes received (Adj-RIB-In,
/// before import policy, like Junos `prefix-limit` or BIRD `receive limit`): those are what
/// take memory here, even when policy rejects them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "MaxPrefixConfig")]
pub struct MaxPrefix {
    pub limit: u32,
    pub action: MaxPrefixAction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxPrefixAction {
    /// Log, keep the session.
    Warn,
    /// Close the session (NOTIFICATION Cease, subcode 1, RFC 4486); reconnect after
    /// `restart_after`, or only on operator action when None.
    Teardown { restart_after: Option<Duration> },
}

/// The signal [`crate::bgp::rib::Rib::take_max_prefix_exceeded`] gives the speaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPrefixExceeded {
    pub limit: u32,
    pub received: usize,
    pub action: MaxPrefixAction,
}
