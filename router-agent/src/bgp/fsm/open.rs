//! The OPEN message as the FSM sees it (RFC 4271 4.2 with the capabilities of RFC 5492), its
//! validation (RFC 4271 6.2, RFC 6286, RFC 6793, RFC 7607) and the negotiated session
//! parameters.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::bgp::graceful_restart::{GracefulRestartCapability, NegotiatedGracefulRestart};
use crate::bgp::packet::types::{Afi, Safi};

use super::SessionConfig;
use super::notification::{NotificationInfo, open_error};

/// The BGP version spoken: the only one.
pub const BGP_VERSION: u8 = 4;

/// The 2-octet "My Autonomous System" of a speaker whose AS does not fit in 16 bits
/// (RFC 6793).
pub const AS_TRANS: u32 = 23456;

/// The capabilities the FSM negotiates. Others (enhanced route refresh, ...) are the codec's
/// and the driver's business.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Multiprotocol Extensions (RFC 4760). Empty: the capability is not sent, and the speaker
    /// handles IPv4 unicast only (see [`Capabilities::families`]).
    pub multiprotocol: BTreeSet<(Afi, Safi)>,
    /// Route Refresh (RFC 2918).
    pub route_refresh: bool,
    /// Support for 4-octet AS numbers (RFC 6793), with the speaker's AS.
    pub four_octet_as: Option<u32>,
    /// Extended Next Hop Encoding (RFC 8950): (NLRI AFI, NLRI SAFI, next hop AFI).
    pub extended_next_hop: BTreeSet<(Afi, Safi, Afi)>,
    /// Graceful Restart (RFC 4724, RFC 8538).
    pub graceful_restart: Option<GracefulRestartCapability>,
}

impl Capabilities {
    /// The address families the speaker handles: those it announced, or IPv4 unicast if it sent
    /// no Multiprotocol capability (RFC 4760 and RFC 5492: a speaker without the capability
    /// is a plain RFC 4271 IPv4 unicast speaker).
    pub fn families(&self) -> BTreeSet<(Afi, Safi)> {
        if self.multiprotocol.is_empty() {
            BTreeSet::from([(Afi::Ipv4, Safi::Unicast)])
        } else {
            self.multiprotocol.clone()
        }
    }
}

/// An OPEN message, sent or received. The codec converts it from and to the wire message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenInfo {
    pub version: u8,
    /// The 2-octet My Autonomous System field: [`AS_TRANS`] from a speaker with a 4-octet AS.
    pub my_as: u32,
    /// Proposed hold time in seconds: 0 (no keepalives) or at least 3.
    pub hold_time: u16,
    /// BGP Identifier.
    pub router_id: Ipv4Addr,
    pub capabilities: Capabilities,
}

impl OpenInfo {
    /// The OPEN this speaker sends. The 4-octet AS capability is always announced (RFC 6793
    /// makes it mandatory for a speaker that supports it), with the local AS whatever
    /// `config.capabilities.four_octet_as` holds; My Autonomous System is the local AS or
    /// [`AS_TRANS`] when it does not fit in 16 bits.
    pub fn local(config: &SessionConfig) -> Self {
        let mut capabilities = config.capabilities.clone();
        capabilities.four_octet_as = Some(config.local_as);
        OpenInfo {
            version: BGP_VERSION,
            my_as: if config.local_as > u32::from(u16::MAX) {
                AS_TRANS
            } else {
                config.local_as
            },
            hold_time: config.hold_time,
            router_id: config.router_id,
            capabilities,
        }
    }

    /// The sender's AS: the 4-octet AS capability if present, else My Autonomous System.
    /// `None` when the two disagree (My Autonomous System must be the 4-octet AS itself or
    /// AS_TRANS) or the AS is 0 (RFC 7607).
    pub fn asn(&self) -> Option<u32> {
        let asn = match self.capabilities.four_octet_as {
            Some(asn) if self.my_as == asn || self.my_as == AS_TRANS => asn,
            Some(_) => return None,
            None => self.my_as,
        };
        (asn != 0).then_some(asn)
    }
}

/// What both sides agreed on: the session parameters from OpenConfirm on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's AS (4-octet AS capability value when it sent one).
    pub peer_as: u32,
    pub peer_router_id: Ipv4Addr,
    /// Seconds, the smaller of both proposals; 0: neither hold timer nor keepalives.
    pub hold_time: u16,
    /// Interval between our KEEPALIVEs: a third of the hold time (RFC 4271 4.4), 0 when the
    /// hold time is 0.
    pub keepalive: Duration,
    /// Both sides support 4-octet AS numbers: AS_PATH carries 4-octet ASNs, no AS4_PATH.
    pub four_octet_as: bool,
    /// The address families both handle (see [`Capabilities::families`]); may be empty.
    pub families: BTreeSet<(Afi, Safi)>,
    /// Both sides announced Route Refresh.
    pub route_refresh: bool,
    /// Extended next hop encodings both announced, for negotiated families only.
    pub extended_next_hop: BTreeSet<(Afi, Safi, Afi)>,
    /// Both sides sent Graceful Restart: the peer's capability and what follows from it.
    pub graceful_restart: Option<NegotiatedGracefulRestart>,
}

impl Negotiated {
    /// The negotiated hold time as a timer duration, `None` when it is 0.
    pub fn hold_timer(&self) -> Option<Duration> {
        (self.hold_time != 0).then(|| Duration::from_secs(u64::from(self.hold_time)))
    }
}

/// Checks a received OPEN against the configuration (RFC 4271 6.2 in that order: version,
/// peer AS, hold time, BGP Identifier) and returns the peer's AS, or the NOTIFICATION to send.
pub(super) fn validate(config: &SessionConfig, open: &OpenInfo) -> Result<u32, NotificationInfo> {
    if open.version != BGP_VERSION {
        // Data: the largest version we support below the peer's bid, or our smallest if the
        // bid is below it; with one supported version, that is always 4.
        return Err(NotificationInfo::open_error(
            open_error::UNSUPPORTED_VERSION_NUMBER,
            u16::from(BGP_VERSION).to_be_bytes().to_vec(),
        ));
    }
    let bad_peer_as = || NotificationInfo::open_error(open_error::BAD_PEER_AS, Vec::new());
    let peer_as = open.asn().ok_or_else(bad_peer_as)?;
    if !config.remote_as.accepts(peer_as, config.local_as) {
        return Err(bad_peer_as());
    }
    // RFC 4271 4.2: the hold time is 0 or at least 3 seconds; 6.2: 1 and 2 MUST be rejected.
    if matches!(open.hold_time, 1 | 2) {
        return Err(NotificationInfo::open_error(
            open_error::UNACCEPTABLE_HOLD_TIME,
            Vec::new(),
        ));
    }
    // Hold time 0 turns off keepalives and the hold timer: a dead peer would never be
    // noticed. Only when we propose 0 ourselves (configured explicitly) is it acceptable.
    if open.hold_time == 0 && config.hold_time != 0 {
        return Err(NotificationInfo::open_error(
            open_error::UNACCEPTABLE_HOLD_TIME,
            Vec::new(),
        ));
    }
    // RFC 6286 2.2: the identifier is any non-zero 4-octet value, unique within an AS: only an
    // internal peer may not share ours. (Equal identifiers across ASes are legal; collision
    // resolution then compares AS numbers, see `collision_winner`.)
    let internal = peer_as == config.local_as;
    if open.router_id.is_unspecified() || (internal && open.router_id == config.router_id) {
        return Err(NotificationInfo::open_error(
            open_error::BAD_BGP_IDENTIFIER,
            Vec::new(),
        ));
    }
    Ok(peer_as)
}

/// The session parameters from our configuration and a validated OPEN.
pub(super) fn negotiate(config: &SessionConfig, open: &OpenInfo, peer_as: u32) -> Negotiated {
    let hold_time = config.hold_time.min(open.hold_time);
    let ours = &config.capabilities;
    let theirs = &open.capabilities;
    let families: BTreeSet<(Afi, Safi)> = ours
        .families()
        .intersection(&theirs.families())
        .copied()
        .collect();
    let extended_next_hop = ours
        .extended_next_hop
        .intersection(&theirs.extended_next_hop)
        .filter(|(afi, safi, _)| families.contains(&(*afi, *safi)))
        .copied()
        .collect();
    let graceful_restart = NegotiatedGracefulRestart::negotiate(
        ours.graceful_restart.as_ref(),
        theirs.graceful_restart.as_ref(),
        &families,
    );
    Negotiated {
        peer_as,
        peer_router_id: open.router_id,
        hold_time,
        keepalive: Duration::from_secs(u64::from(hold_time)) / 3,
        // We always announce it (`OpenInfo::local`).
        four_octet_as: theirs.four_octet_as.is_some(),
        families,
        route_refresh: ours.route_refresh && theirs.route_refresh,
        extended_next_hop,
        graceful_restart,
    }
}
