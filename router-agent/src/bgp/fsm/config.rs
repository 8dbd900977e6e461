//! A peering's configuration as the FSM sees it, and the FSM's fixed times.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::open::Capabilities;
use crate::bgp::packet::types::{Afi, Safi};

/// HoldTimer while waiting for the peer's OPEN: "a large value", 4 minutes suggested
/// (RFC 4271 8.2.2).
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// Ceiling of the IdleHold backoff (the RFC 4271 8.1.1 example value), unless
/// [`SessionConfig::idle_hold_time`] is larger.
pub const MAX_IDLE_HOLD_TIME: Duration = Duration::from_secs(120);

/// The AS numbers the peer may open with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RemoteAs {
    Exact(u32),
    /// Any AS but ours (eBGP).
    External,
    /// Ours (iBGP).
    Internal,
}

impl RemoteAs {
    pub fn accepts(self, peer_as: u32, local_as: u32) -> bool {
        match self {
            RemoteAs::Exact(asn) => peer_as == asn,
            RemoteAs::External => peer_as != local_as,
            RemoteAs::Internal => peer_as == local_as,
        }
    }
}

/// One peering's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_as: u32,
    pub remote_as: RemoteAs,
    /// Our BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Proposed hold time in seconds: 0 (no keepalives) or at least 3.
    pub hold_time: u16,
    /// ConnectRetryTime: delay between connection attempts.
    pub connect_retry: Duration,
    /// IdleHoldTime: the delay before an `AutomaticStart` after one failure, doubled for each
    /// further consecutive failure up to [`MAX_IDLE_HOLD_TIME`]. Zero: no damping.
    pub idle_hold_time: Duration,
    /// Never initiate a connection: wait for the peer's.
    pub passive: bool,
    /// What we offer. `four_octet_as` is ignored: the local AS is always announced.
    pub capabilities: Capabilities,
}

impl SessionConfig {
    pub const DEFAULT_HOLD_TIME: u16 = 90;
    /// Short: a host wants its uplinks back quickly (RFC 4271 suggests 120 s).
    pub const DEFAULT_CONNECT_RETRY: Duration = Duration::from_secs(5);
    pub const DEFAULT_IDLE_HOLD_TIME: Duration = Duration::from_secs(5);

    /// Defaults: hold time 90 s, ConnectRetry 5 s, IdleHold 5 s, active, offering IPv4 unicast
    /// and Route Refresh.
    pub fn new(local_as: u32, remote_as: RemoteAs, router_id: Ipv4Addr) -> Self {
        SessionConfig {
            local_as,
            remote_as,
            router_id,
            hold_time: Self::DEFAULT_HOLD_TIME,
            connect_retry: Self::DEFAULT_CONNECT_RETRY,
            idle_hold_time: Self::DEFAULT_IDLE_HOLD_TIME,
            passive: false,
            capabilities: Capabilities {
                multiprotocol: [(Afi::Ipv4, Safi::Unicast)].into(),
                route_refresh: true,
                ..Capabilities::default()
            },
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if matches!(self.hold_time, 1 | 2) {
            return Err(ConfigError::HoldTime(self.hold_time));
        }
        if self.local_as == 0 || self.remote_as == RemoteAs::Exact(0) {
            return Err(ConfigError::ZeroAs);
        }
        if self.router_id.is_unspecified() {
            return Err(ConfigError::ZeroRouterId);
        }
        if self.connect_retry.is_zero() {
            return Err(ConfigError::ZeroConnectRetry);
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("hold time {0} s: must be 0 or at least 3 s (RFC 4271 4.2)")]
    HoldTime(u16),
    #[error("AS 0 is reserved and cannot be peered with (RFC 7607)")]
    ZeroAs,
    #[error("the BGP Identifier must be non-zero (RFC 6286)")]
    ZeroRouterId,
    #[error("the ConnectRetry time must be non-zero")]
    ZeroConnectRetry,
}
