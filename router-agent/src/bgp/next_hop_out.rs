//! Which next hop we put in what we send, per address family and session.
//!
//! - IPv4 session: IPv4 routes carry the session's local address (RFC 4271 5.1.3). IPv6
//!   routes are not sent: there is no IPv6 address of ours to give (configure an IPv6
//!   session for them).
//! - IPv6 session over global addresses: IPv6 routes carry the local global address, plus
//!   our link-local address on the interface the neighbor is directly connected on, when
//!   there is one (RFC 2545 3: "if and only if" the speaker and the peer share the link).
//!   IPv4 routes carry the same next hop when RFC 8950 extended next hop was negotiated for
//!   IPv4 unicast, and are not sent otherwise.
//! - IPv6 session over link-local addresses (unnumbered, no global address to give): global
//!   `::` plus the session's local link-local address, 32 octets. Captured between FRR 8.4
//!   and BIRD 2.0.12 on such a session: BIRD sends `:: fe80::b`, FRR sends `fe80::a fe80::a`
//!   (the link-local address in both fields), for IPv6 and for IPv4 (RFC 8950) routes; each
//!   accepts the other's form and forwards via the link-local address. We send BIRD's form:
//!   a link-local address in the global field is not what RFC 2545 3 asks for.

use std::net::{IpAddr, Ipv6Addr};

use super::rib::NextHop;

/// What decides the next hops of one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionEnds {
    /// Our end of the TCP connection (IPv4-mapped addresses already made IPv4).
    pub local: IpAddr,
    /// Our link-local address on the interface the neighbor is directly connected on; None
    /// when it is not on a shared link (multihop) or the interface has none.
    pub shared_link_local: Option<Ipv6Addr>,
    /// RFC 8950 extended next hop negotiated for IPv4 unicast with IPv6 next hops.
    pub ipv4_over_ipv6: bool,
}

/// The next hop of each family on a session; None: that family's routes are not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportNextHops {
    pub ipv4: Option<NextHop>,
    pub ipv6: Option<NextHop>,
}

/// Why a family gets no next hop on a session (for the one log line that says so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsent {
    /// IPv4 routes over an IPv6 session without RFC 8950 extended next hop.
    Ipv4WithoutExtendedNextHop,
    /// IPv6 routes over an IPv4 session.
    Ipv6OverIpv4Session,
}

impl Unsent {
    /// Whether `prefix` is of the family left out.
    pub fn covers(&self, prefix: &ipnet::IpNet) -> bool {
        match self {
            Self::Ipv4WithoutExtendedNextHop => prefix.addr().is_ipv4(),
            Self::Ipv6OverIpv4Session => prefix.addr().is_ipv6(),
        }
    }
}

impl std::fmt::Display for Unsent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ipv4WithoutExtendedNextHop => {
                "IPv4 routes are not sent on this IPv6 session: the neighbor did not negotiate \
                 extended next hop (RFC 8950) for IPv4 unicast"
            }
            Self::Ipv6OverIpv4Session => {
                "IPv6 routes are not sent on this IPv4 session: no IPv6 next hop to give \
                 (configure an IPv6 session for them)"
            }
        })
    }
}

impl ExportNextHops {
    pub fn choose(session: &SessionEnds) -> Self {
        match session.local {
            IpAddr::V4(_) => Self {
                ipv4: Some(NextHop::new(session.local)),
                ipv6: None,
            },
            IpAddr::V6(local) => {
                let next_hop = if local.is_unicast_link_local() {
                    NextHop {
                        address: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                        link_local: Some(local),
                    }
                } else {
                    NextHop {
                        address: session.local,
                        link_local: session.shared_link_local,
                    }
                };
                Self {
                    ipv4: session.ipv4_over_ipv6.then_some(next_hop),
                    ipv6: Some(next_hop),
                }
            }
        }
    }

    /// The family this session cannot carry, if any.
    pub fn unsent(&self) -> Option<Unsent> {
        match (self.ipv4, self.ipv6) {
            (None, Some(_)) => Some(Unsent::Ipv4WithoutExtendedNextHop),
            (Some(_), None) => Some(Unsent::Ipv6OverIpv4Session),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    fn ends(local: &str, shared_link_local: Option<&str>, ipv4_over_ipv6: bool) -> SessionEnds {
        SessionEnds {
            local: ip(local),
            shared_link_local: shared_link_local.map(v6),
            ipv4_over_ipv6,
        }
    }

    #[test]
    fn ipv4_session_sends_ipv4_routes_with_the_local_address_and_no_ipv6_routes() {
        // Extended next hop and a link-local address change nothing on an IPv4 session.
        for session in [
            ends("10.0.1.2", None, false),
            ends("10.0.1.2", Some("fe80::2"), true),
        ] {
            let chosen = ExportNextHops::choose(&session);
            assert_eq!(chosen.ipv4, Some(NextHop::new(ip("10.0.1.2"))));
            assert_eq!(chosen.ipv6, None);
            assert_eq!(chosen.unsent(), Some(Unsent::Ipv6OverIpv4Session));
        }
    }

    #[test]
    fn ipv6_session_on_a_shared_link_sends_global_plus_link_local() {
        let chosen = ExportNextHops::choose(&ends("2001:db8:1::2", Some("fe80::2"), true));
        let expected = NextHop {
            address: ip("2001:db8:1::2"),
            link_local: Some(v6("fe80::2")),
        };
        assert_eq!(chosen.ipv6, Some(expected));
        assert_eq!(
            chosen.ipv4,
            Some(expected),
            "RFC 8950: the same IPv6 next hop"
        );
        assert_eq!(chosen.unsent(), None);
    }

    #[test]
    fn ipv6_session_to_a_multihop_neighbor_sends_the_global_address_only() {
        let chosen = ExportNextHops::choose(&ends("2001:db8:1::2", None, true));
        let expected = NextHop::new(ip("2001:db8:1::2"));
        assert_eq!(chosen.ipv6, Some(expected));
        assert_eq!(chosen.ipv4, Some(expected));
    }

    #[test]
    fn ipv6_session_without_extended_next_hop_sends_no_ipv4_routes() {
        let chosen = ExportNextHops::choose(&ends("2001:db8:1::2", Some("fe80::2"), false));
        assert_eq!(chosen.ipv4, None);
        assert!(chosen.ipv6.is_some());
        let unsent = chosen.unsent().unwrap();
        assert_eq!(unsent, Unsent::Ipv4WithoutExtendedNextHop);
        assert!(unsent.covers(&"192.0.2.10/32".parse().unwrap()));
        assert!(!unsent.covers(&"2001:db8::/64".parse().unwrap()));
    }

    #[test]
    fn link_local_session_sends_unspecified_global_plus_the_session_address() {
        // The session's own link-local address, not another one the interface may hold: the
        // neighbor has a neighbor entry for it already.
        let chosen = ExportNextHops::choose(&ends("fe80::2", Some("fe80::99"), true));
        let expected = NextHop {
            address: ip("::"),
            link_local: Some(v6("fe80::2")),
        };
        assert_eq!(chosen.ipv6, Some(expected));
        assert_eq!(chosen.ipv4, Some(expected));
        let without = ExportNextHops::choose(&ends("fe80::2", None, false));
        assert_eq!(without.ipv4, None);
        assert_eq!(without.ipv6, Some(expected));
    }
}
