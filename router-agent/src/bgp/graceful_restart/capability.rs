//! The Graceful Restart capability (RFC 4724 3, with the N bit of RFC 8538 2), code 64.
//!
//! ```text
//! +--------------------------------------------------+
//! | Restart Flags (4 bits) | Restart Time (12 bits)   |   R = 0x8, N = 0x4
//! +--------------------------------------------------+
//! | AFI (2 octets)                                   |  \
//! | SAFI (1 octet)                                   |   > repeated per family
//! | Flags for Address Family (1 octet)               |  /  F = 0x80
//! +--------------------------------------------------+
//! ```

use crate::bgp::packet::types::{Afi, Safi};

/// Restart State (R): the sender has restarted (RFC 4724 3).
const RESTART_STATE: u16 = 0x8000;
/// Graceful Notification (N): GR also applies after a NOTIFICATION other than a Hard Reset
/// (RFC 8538 2).
const NOTIFICATION: u16 = 0x4000;
const RESTART_TIME_MASK: u16 = 0x0fff;
/// Forwarding State (F) in the per-family flags.
const FORWARDING: u8 = 0x80;

/// The largest Restart Time the 12-bit field holds, in seconds.
pub const MAX_RESTART_TIME: u16 = 0x0fff;

/// One family of the capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GracefulRestartFamily {
    pub afi: Afi,
    pub safi: Safi,
    /// F: the forwarding state for this family was preserved across the restart.
    pub forwarding: bool,
}

/// A decoded (or to-be-sent) Graceful Restart capability.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GracefulRestartCapability {
    /// R.
    pub restarted: bool,
    /// N (RFC 8538).
    pub notification: bool,
    /// Seconds, at most [`MAX_RESTART_TIME`].
    pub restart_time: u16,
    /// The families the sender preserves state for, in the order sent. Families we do not
    /// implement are left out when decoding.
    pub families: Vec<GracefulRestartFamily>,
}

/// Why a received value is not a Graceful Restart capability (it is then ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MalformedGracefulRestart {
    #[error(
        "graceful restart capability of {0} octets: shorter than the 2-octet restart flags and time"
    )]
    TooShort(usize),
    #[error(
        "graceful restart capability of {0} octets: the families part is not a multiple of 4 octets"
    )]
    TruncatedFamily(usize),
}

impl GracefulRestartCapability {
    /// Decodes a capability value. Families we do not implement are skipped; a family sent
    /// twice keeps its first flags.
    pub fn decode(value: &[u8]) -> Result<Self, MalformedGracefulRestart> {
        let Some((head, families)) = value.split_first_chunk::<2>() else {
            return Err(MalformedGracefulRestart::TooShort(value.len()));
        };
        if !families.len().is_multiple_of(4) {
            return Err(MalformedGracefulRestart::TruncatedFamily(value.len()));
        }
        let flags_and_time = u16::from_be_bytes(*head);
        let mut decoded = GracefulRestartCapability {
            restarted: flags_and_time & RESTART_STATE != 0,
            notification: flags_and_time & NOTIFICATION != 0,
            restart_time: flags_and_time & RESTART_TIME_MASK,
            families: Vec::new(),
        };
        for family in families.chunks_exact(4) {
            let afi = match u16::from_be_bytes([family[0], family[1]]) {
                1 => Afi::Ipv4,
                2 => Afi::Ipv6,
                _ => continue,
            };
            let safi = match family[2] {
                1 => Safi::Unicast,
                _ => continue,
            };
            if decoded
                .families
                .iter()
                .any(|f| (f.afi, f.safi) == (afi, safi))
            {
                continue;
            }
            decoded.families.push(GracefulRestartFamily {
                afi,
                safi,
                forwarding: family[3] & FORWARDING != 0,
            });
        }
        Ok(decoded)
    }

    /// The capability value. A restart time over 12 bits is clamped (the configuration
    /// rejects it before).
    pub fn encode(&self) -> Vec<u8> {
        let mut flags_and_time = self.restart_time.min(MAX_RESTART_TIME);
        if self.restarted {
            flags_and_time |= RESTART_STATE;
        }
        if self.notification {
            flags_and_time |= NOTIFICATION;
        }
        let mut out = flags_and_time.to_be_bytes().to_vec();
        for family in &self.families {
            out.extend_from_slice(&(family.afi as u16).to_be_bytes());
            out.push(family.safi as u8);
            out.push(if family.forwarding { FORWARDING } else { 0 });
        }
        out
    }

    /// The entry for a family, if the sender listed it.
    pub fn family(&self, afi: Afi, safi: Safi) -> Option<&GracefulRestartFamily> {
        self.families
            .iter()
            .find(|family| (family.afi, family.safi) == (afi, safi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(afi: Afi, forwarding: bool) -> GracefulRestartFamily {
        GracefulRestartFamily {
            afi,
            safi: Safi::Unicast,
            forwarding,
        }
    }

    #[test]
    fn golden_values_of_other_speakers() {
        // FRR: R and N, 120 s, IPv4 and IPv6 unicast without F.
        let frr = GracefulRestartCapability::decode(&[0xc0, 0x78, 0, 1, 1, 0, 0, 2, 1, 0]);
        assert_eq!(
            frr,
            Ok(GracefulRestartCapability {
                restarted: true,
                notification: true,
                restart_time: 120,
                families: vec![family(Afi::Ipv4, false), family(Afi::Ipv6, false)],
            })
        );
        // BIRD, helper only: 120 s, no family.
        let bird = GracefulRestartCapability::decode(&[0x00, 0x78]).unwrap();
        assert_eq!((bird.restart_time, bird.families.len()), (120, 0));
        assert!(!bird.restarted && !bird.notification);
        // GoBGP: 90 s, IPv4 unicast, F clear.
        let gobgp = GracefulRestartCapability::decode(&[0, 90, 0, 1, 1, 0]).unwrap();
        assert_eq!(gobgp.restart_time, 90);
        assert_eq!(gobgp.families, vec![family(Afi::Ipv4, false)]);
        // ExaBGP after a restart: R, 120 s, IPv4 forwarding preserved.
        let exabgp = GracefulRestartCapability::decode(&[0x80, 0x78, 0, 1, 1, 0x80]).unwrap();
        assert!(exabgp.restarted && !exabgp.notification);
        assert_eq!(exabgp.families, vec![family(Afi::Ipv4, true)]);
    }

    #[test]
    fn encodes_what_it_decodes() {
        let ours = GracefulRestartCapability {
            restarted: true,
            notification: true,
            restart_time: 4095,
            families: vec![family(Afi::Ipv4, true), family(Afi::Ipv6, false)],
        };
        let bytes = ours.encode();
        assert_eq!(bytes, [0xcf, 0xff, 0, 1, 1, 0x80, 0, 2, 1, 0]);
        assert_eq!(GracefulRestartCapability::decode(&bytes), Ok(ours));
        let helper = GracefulRestartCapability {
            restarted: false,
            notification: false,
            restart_time: 120,
            families: vec![],
        };
        assert_eq!(helper.encode(), [0x00, 0x78]);
    }

    #[test]
    fn restart_time_is_clamped_to_12_bits() {
        let capability = GracefulRestartCapability {
            restarted: false,
            notification: false,
            restart_time: 5000,
            families: vec![],
        };
        assert_eq!(capability.encode(), [0x0f, 0xff]);
    }

    #[test]
    fn reserved_bits_are_ignored() {
        // Reserved restart flags (0x3000) and reserved family flags (0x7f) set.
        let decoded = GracefulRestartCapability::decode(&[0x30, 0x10, 0, 1, 1, 0x7f]).unwrap();
        assert!(!decoded.restarted && !decoded.notification);
        assert_eq!(decoded.restart_time, 16);
        assert_eq!(decoded.families, vec![family(Afi::Ipv4, false)]);
    }

    #[test]
    fn malformed_values_are_errors() {
        assert_eq!(
            GracefulRestartCapability::decode(&[]),
            Err(MalformedGracefulRestart::TooShort(0))
        );
        assert_eq!(
            GracefulRestartCapability::decode(&[0x40]),
            Err(MalformedGracefulRestart::TooShort(1))
        );
        assert_eq!(
            GracefulRestartCapability::decode(&[0x40, 0x78, 0, 1, 1]),
            Err(MalformedGracefulRestart::TruncatedFamily(5))
        );
    }

    #[test]
    fn unknown_and_repeated_families_are_skipped() {
        // L2VPN EVPN (25/70), IPv4 unicast with F, IPv4 unicast again without, IPv4 VPN (128).
        let value = [
            0, 0x78, 0, 25, 70, 0x80, 0, 1, 1, 0x80, 0, 1, 1, 0, 0, 1, 128, 0x80,
        ];
        let decoded = GracefulRestartCapability::decode(&value).unwrap();
        assert_eq!(decoded.families, vec![family(Afi::Ipv4, true)]);
        assert!(decoded.family(Afi::Ipv4, Safi::Unicast).unwrap().forwarding);
        assert!(decoded.family(Afi::Ipv6, Safi::Unicast).is_none());
    }
}
