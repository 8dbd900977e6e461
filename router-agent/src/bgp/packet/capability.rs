//! Capabilities (RFC 5492), carried in the OPEN's optional parameter of type 2.
//!
//! ```text
//! +------------------------------+
//! | Capability Code (1 octet)    |
//! +------------------------------+
//! | Capability Length (1 octet)  |
//! +------------------------------+
//! | Capability Value (variable)  |
//! ~                              ~
//! +------------------------------+
//! ```
//!
//! RFC 5492 3: a capability the speaker does not understand is ignored, so unknown codes, and
//! known codes whose value does not have the expected layout, are kept as
//! [`Capability::Unknown`] rather than failing the OPEN: the FSM only acts on the ones it
//! recognises.

use bytes::{BufMut, BytesMut};

use super::types::{Afi, Safi};
use super::wire::{Reader, afi_from_wire, safi_from_wire};
use crate::bgp::graceful_restart::GracefulRestartCapability;

/// Capability codes (IANA "Capability Codes").
pub mod code {
    /// RFC 4760 8.
    pub const MULTIPROTOCOL: u8 = 1;
    /// RFC 2918 2.
    pub const ROUTE_REFRESH: u8 = 2;
    /// RFC 8950 3.
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    /// RFC 8654 (not implemented: we stay within 4096 octets).
    pub const EXTENDED_MESSAGE: u8 = 6;
    /// RFC 4724 3.
    pub const GRACEFUL_RESTART: u8 = 64;
    /// RFC 6793 3.
    pub const FOUR_OCTET_AS: u8 = 65;
    /// RFC 7911 4 (not implemented).
    pub const ADD_PATH: u8 = 69;
    /// RFC 7313 3.1.
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    /// RFC 9494 (not implemented).
    pub const LONG_LIVED_GRACEFUL_RESTART: u8 = 71;
    /// draft-walton-bgp-hostname-capability (kept opaque).
    pub const FQDN: u8 = 73;
    /// Pre-standard route refresh that FRR and Cisco still advertise next to code 2.
    pub const ROUTE_REFRESH_CISCO: u8 = 128;
}

/// One capability.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    /// RFC 4760 8: the speaker handles this AFI/SAFI.
    Multiprotocol { afi: Afi, safi: Safi },
    /// RFC 2918.
    RouteRefresh,
    /// RFC 7313. We decode it (and the BoRR/EoRR subtypes) but do not implement it.
    EnhancedRouteRefresh,
    /// RFC 6793: the speaker's four-octet AS number.
    FourOctetAs(u32),
    /// RFC 8950: (NLRI AFI, NLRI SAFI, next hop AFI) tuples the speaker accepts, e.g.
    /// (IPv4, unicast, IPv6) for IPv4 routes with IPv6 next hops. Tuples with families we
    /// do not implement are left out when decoding.
    ExtendedNextHop(Vec<(Afi, Safi, Afi)>),
    /// RFC 4724 (with RFC 8538's N bit): restart flags, restart time and per-family flags.
    /// A malformed value is kept as [`Capability::Unknown`] (and so ignored).
    GracefulRestart(GracefulRestartCapability),
    /// Anything else (FQDN, ADD-PATH, LLGR, ...) or a known code with a malformed value.
    Unknown { code: u8, value: Vec<u8> },
}

impl Capability {
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol { .. } => code::MULTIPROTOCOL,
            Capability::RouteRefresh => code::ROUTE_REFRESH,
            Capability::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Capability::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Capability::ExtendedNextHop(_) => code::EXTENDED_NEXT_HOP,
            Capability::GracefulRestart(_) => code::GRACEFUL_RESTART,
            Capability::Unknown { code, .. } => *code,
        }
    }

    /// Interprets one capability TLV's value.
    pub(crate) fn decode(code: u8, value: &[u8]) -> Capability {
        let unknown = || Capability::Unknown {
            code,
            value: value.to_vec(),
        };
        let mut reader = Reader::new(value);
        match code {
            // RFC 4760 8:
            //  0       7      15      23      31
            // +-------+-------+-------+-------+
            // |      AFI      | Res.  | SAFI  |
            // +-------+-------+-------+-------+
            code::MULTIPROTOCOL => {
                match (reader.u16(), reader.u8(), reader.u8(), reader.is_empty()) {
                    (Some(afi), Some(_reserved), Some(safi), true) => {
                        match (afi_from_wire(afi), safi_from_wire(u16::from(safi))) {
                            (Some(afi), Some(safi)) => Capability::Multiprotocol { afi, safi },
                            _ => unknown(),
                        }
                    }
                    _ => unknown(),
                }
            }
            code::ROUTE_REFRESH if value.is_empty() => Capability::RouteRefresh,
            code::ENHANCED_ROUTE_REFRESH if value.is_empty() => Capability::EnhancedRouteRefresh,
            code::FOUR_OCTET_AS => match (reader.u32(), reader.is_empty()) {
                (Some(asn), true) => Capability::FourOctetAs(asn),
                _ => unknown(),
            },
            // RFC 8950 3, repeated for each tuple:
            // +-----------------------------------------------------+
            // | NLRI AFI - 1 (2 octets)                             |
            // +-----------------------------------------------------+
            // | NLRI SAFI - 1 (2 octets)                            |
            // +-----------------------------------------------------+
            // | Nexthop AFI - 1 (2 octets)                          |
            // +-----------------------------------------------------+
            code::EXTENDED_NEXT_HOP if value.len().is_multiple_of(6) => {
                let mut tuples = Vec::new();
                while let (Some(afi), Some(safi), Some(next_hop_afi)) =
                    (reader.u16(), reader.u16(), reader.u16())
                {
                    if let (Some(afi), Some(safi), Some(next_hop_afi)) = (
                        afi_from_wire(afi),
                        safi_from_wire(safi),
                        afi_from_wire(next_hop_afi),
                    ) {
                        tuples.push((afi, safi, next_hop_afi));
                    }
                }
                Capability::ExtendedNextHop(tuples)
            }
            code::GRACEFUL_RESTART => match GracefulRestartCapability::decode(value) {
                Ok(capability) => Capability::GracefulRestart(capability),
                Err(_) => unknown(),
            },
            _ => unknown(),
        }
    }

    /// The Capability Value octets.
    fn value(&self) -> Vec<u8> {
        match self {
            Capability::Multiprotocol { afi, safi } => {
                let [afi_high, afi_low] = (*afi as u16).to_be_bytes();
                vec![afi_high, afi_low, 0, *safi as u8]
            }
            Capability::RouteRefresh | Capability::EnhancedRouteRefresh => Vec::new(),
            Capability::FourOctetAs(asn) => asn.to_be_bytes().to_vec(),
            Capability::ExtendedNextHop(tuples) => tuples
                .iter()
                .flat_map(|(afi, safi, next_hop_afi)| {
                    [*afi as u16, *safi as u16, *next_hop_afi as u16]
                })
                .flat_map(u16::to_be_bytes)
                .collect(),
            Capability::GracefulRestart(capability) => capability.encode(),
            Capability::Unknown { value, .. } => value.clone(),
        }
    }

    /// Appends the TLV. A value longer than the one-octet Capability Length allows cannot be
    /// sent and is left out (only a locally built `Unknown`, or more than 42
    /// extended next hop tuples, can be that long).
    pub(crate) fn encode(&self, out: &mut BytesMut) {
        let value = self.value();
        match u8::try_from(value.len()) {
            Ok(len) => {
                out.put_u8(self.code());
                out.put_u8(len);
                out.put_slice(&value);
            }
            Err(_) => tracing::warn!(
                code = self.code(),
                len = value.len(),
                "capability value too long for the OPEN, not advertised"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(capability: &Capability) -> Vec<u8> {
        let mut out = BytesMut::new();
        capability.encode(&mut out);
        out.to_vec()
    }

    fn round_trip(capability: &Capability) -> Capability {
        let bytes = encoded(capability);
        assert_eq!(bytes[0], capability.code());
        assert_eq!(usize::from(bytes[1]), bytes.len() - 2);
        Capability::decode(bytes[0], &bytes[2..])
    }

    #[test]
    fn round_trip_every_capability() {
        let capabilities = [
            Capability::Multiprotocol {
                afi: Afi::Ipv4,
                safi: Safi::Unicast,
            },
            Capability::Multiprotocol {
                afi: Afi::Ipv6,
                safi: Safi::Unicast,
            },
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::FourOctetAs(4_200_000_000),
            Capability::ExtendedNextHop(vec![
                (Afi::Ipv4, Safi::Unicast, Afi::Ipv6),
                (Afi::Ipv6, Safi::Unicast, Afi::Ipv6),
            ]),
            Capability::ExtendedNextHop(vec![]),
            Capability::GracefulRestart(
                GracefulRestartCapability::decode(&[0x40, 0x78, 0x00, 0x01, 0x01, 0x80]).unwrap(),
            ),
            Capability::Unknown {
                code: code::FQDN,
                value: vec![2, b'r', b'1', 0],
            },
            Capability::Unknown {
                code: 200,
                value: vec![],
            },
        ];
        for capability in capabilities {
            assert_eq!(round_trip(&capability), capability);
        }
    }

    #[test]
    fn golden_values() {
        assert_eq!(
            encoded(&Capability::Multiprotocol {
                afi: Afi::Ipv6,
                safi: Safi::Unicast
            }),
            [1, 4, 0, 2, 0, 1]
        );
        assert_eq!(encoded(&Capability::RouteRefresh), [2, 0]);
        assert_eq!(
            encoded(&Capability::FourOctetAs(65001)),
            [65, 4, 0, 0, 0xfd, 0xe9]
        );
        assert_eq!(
            encoded(&Capability::ExtendedNextHop(vec![(
                Afi::Ipv4,
                Safi::Unicast,
                Afi::Ipv6
            )])),
            [5, 6, 0, 1, 0, 1, 0, 2]
        );
    }

    #[test]
    fn malformed_known_capabilities_are_kept_as_unknown() {
        let cases: [(u8, &[u8]); 8] = [
            (code::MULTIPROTOCOL, &[0, 1, 0]),
            (code::MULTIPROTOCOL, &[0, 25, 0, 65]), // L2VPN EVPN: a family we do not implement
            (code::ROUTE_REFRESH, &[0]),
            (code::ENHANCED_ROUTE_REFRESH, &[1, 2]),
            (code::FOUR_OCTET_AS, &[0, 0, 1]),
            (code::EXTENDED_NEXT_HOP, &[0, 1, 0, 1, 0]),
            (code::GRACEFUL_RESTART, &[0x40]),
            (code::GRACEFUL_RESTART, &[0x40, 0x78, 0, 1, 1]),
        ];
        for (code, value) in cases {
            assert_eq!(
                Capability::decode(code, value),
                Capability::Unknown {
                    code,
                    value: value.to_vec()
                }
            );
        }
    }

    #[test]
    fn extended_next_hop_skips_families_we_do_not_implement() {
        // (IPv4, VPN (128), IPv6) then (IPv4, unicast, IPv6).
        let value = [0, 1, 0, 128, 0, 2, 0, 1, 0, 1, 0, 2];
        assert_eq!(
            Capability::decode(code::EXTENDED_NEXT_HOP, &value),
            Capability::ExtendedNextHop(vec![(Afi::Ipv4, Safi::Unicast, Afi::Ipv6)])
        );
    }

    #[test]
    fn oversized_value_is_not_encoded() {
        let capability = Capability::Unknown {
            code: 99,
            value: vec![0; 256],
        };
        assert!(encoded(&capability).is_empty());
    }
}
