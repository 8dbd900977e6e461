//! Next hops nobody may forward to, whoever names them (a BGP NEXT_HOP, a static route's
//! `via`). RFC 4271 9.1.2.1: a route whose next hop is one of these is unusable. Pure
//! classification: the caller supplies what the host knows (its addresses, its subnets).

use std::net::IpAddr;

use ipnet::IpNet;

/// Why a next hop cannot be used. Copy and small: the BGP RIB keeps one per tracked address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unusable {
    /// One of the host's own addresses: the kernel would route to itself.
    OwnAddress(IpAddr),
    /// The network address of a connected IPv4 subnet (shorter than /31).
    SubnetNetwork(IpAddr, IpNet),
    /// The broadcast address of a connected IPv4 subnet (shorter than /31).
    SubnetBroadcast(IpAddr, IpNet),
    /// 0.0.0.0/8 ("this network") or `::`.
    Unspecified(IpAddr),
    /// 127.0.0.0/8 or `::1`.
    Loopback(IpAddr),
    /// 224.0.0.0/4 or ff00::/8.
    Multicast(IpAddr),
    /// 240.0.0.0/4 (class E), 255.255.255.255 included.
    Reserved(IpAddr),
    /// A dynamic BGP neighbor named a next hop other than itself (third party), and its
    /// `dynamic_neighbor` range does not allow that.
    NotNeighborAddress,
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("next hop unusable: ")?;
        match self {
            Unusable::OwnAddress(ip) => write!(f, "host's own address {ip}"),
            Unusable::SubnetNetwork(ip, subnet) => {
                write!(f, "{ip} is the network address of {subnet}")
            }
            Unusable::SubnetBroadcast(ip, subnet) => {
                write!(f, "{ip} is the broadcast address of {subnet}")
            }
            Unusable::Unspecified(ip) => write!(f, "{ip} is an unspecified address"),
            Unusable::Loopback(ip) => write!(f, "{ip} is a loopback address"),
            Unusable::Multicast(ip) => write!(f, "{ip} is a multicast address"),
            Unusable::Reserved(ip) => write!(f, "{ip} is reserved (240.0.0.0/4)"),
            Unusable::NotNeighborAddress => f.write_str("not the neighbor's own address"),
        }
    }
}

/// Why a next hop cannot be resolved to an egress interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// Never usable (see [`Unusable`]).
    Unusable(Unusable),
    /// Not in a connected subnet of a configured interface (yet).
    NotConnected,
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unresolved::Unusable(why) => why.fmt(f),
            Unresolved::NotConnected => {
                f.write_str("not directly connected on a configured interface")
            }
        }
    }
}

/// What the address alone says, whatever the host: the special ranges. IPv4-mapped IPv6
/// addresses (::ffff:a.b.c.d) are judged as their IPv4 address.
pub fn martian(address: IpAddr) -> Option<Unusable> {
    match address.to_canonical() {
        IpAddr::V4(v4) => {
            let first = v4.octets()[0];
            if first == 0 {
                Some(Unusable::Unspecified(address))
            } else if v4.is_loopback() {
                Some(Unusable::Loopback(address))
            } else if v4.is_multicast() {
                Some(Unusable::Multicast(address))
            } else if first >= 240 {
                Some(Unusable::Reserved(address))
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_unspecified() {
                Some(Unusable::Unspecified(address))
            } else if v6.is_loopback() {
                Some(Unusable::Loopback(address))
            } else if v6.is_multicast() {
                Some(Unusable::Multicast(address))
            } else {
                None
            }
        }
    }
}

/// Whether `address` is the network or broadcast address of `subnet` (IPv4 subnets shorter
/// than /31 only: a /31 has neither, RFC 3021).
pub fn subnet_edge(address: IpAddr, subnet: IpNet) -> Option<Unusable> {
    let (IpAddr::V4(v4), IpNet::V4(net)) = (address.to_canonical(), subnet) else {
        return None;
    };
    if net.prefix_len() >= 31 || !net.contains(&v4) {
        return None;
    }
    let net = net.trunc();
    if v4 == net.network() {
        Some(Unusable::SubnetNetwork(address, subnet.trunc()))
    } else if v4 == net.broadcast() {
        Some(Unusable::SubnetBroadcast(address, subnet.trunc()))
    } else {
        None
    }
}

/// The full check against what the host knows: the special ranges, then the network and
/// broadcast addresses of its connected `subnets`, then its own addresses (`is_own`).
pub fn classify(
    address: IpAddr,
    is_own: impl Fn(IpAddr) -> bool,
    subnets: impl IntoIterator<Item = IpNet>,
) -> Option<Unusable> {
    martian(address)
        .or_else(|| {
            subnets
                .into_iter()
                .find_map(|subnet| subnet_edge(address, subnet))
        })
        .or_else(|| is_own(address.to_canonical()).then_some(Unusable::OwnAddress(address)))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    #[test]
    fn special_ranges_are_martian() {
        for (address, expected) in [
            ("0.0.0.0", Unusable::Unspecified(ip("0.0.0.0"))),
            ("0.1.2.3", Unusable::Unspecified(ip("0.1.2.3"))),
            ("127.0.0.1", Unusable::Loopback(ip("127.0.0.1"))),
            ("127.255.0.9", Unusable::Loopback(ip("127.255.0.9"))),
            ("224.0.0.1", Unusable::Multicast(ip("224.0.0.1"))),
            ("239.1.1.1", Unusable::Multicast(ip("239.1.1.1"))),
            ("240.0.0.1", Unusable::Reserved(ip("240.0.0.1"))),
            ("255.255.255.255", Unusable::Reserved(ip("255.255.255.255"))),
            ("::", Unusable::Unspecified(ip("::"))),
            ("::1", Unusable::Loopback(ip("::1"))),
            ("ff02::1", Unusable::Multicast(ip("ff02::1"))),
            (
                "::ffff:127.0.0.1",
                Unusable::Loopback(ip("::ffff:127.0.0.1")),
            ),
            (
                "::ffff:224.0.0.5",
                Unusable::Multicast(ip("::ffff:224.0.0.5")),
            ),
            (
                "::ffff:0.0.0.0",
                Unusable::Unspecified(ip("::ffff:0.0.0.0")),
            ),
        ] {
            assert_eq!(martian(ip(address)), Some(expected), "{address}");
        }
        for address in [
            "10.0.0.1",
            "1.0.0.0",
            "223.255.255.254",
            "2001:db8::1",
            "fe80::1",
        ] {
            assert_eq!(martian(ip(address)), None, "{address}");
        }
    }

    #[test]
    fn network_and_broadcast_of_subnets_shorter_than_31() {
        let subnet = net("10.99.2.2/24");
        assert_eq!(
            subnet_edge(ip("10.99.2.255"), subnet),
            Some(Unusable::SubnetBroadcast(
                ip("10.99.2.255"),
                net("10.99.2.0/24")
            ))
        );
        assert_eq!(
            subnet_edge(ip("10.99.2.0"), subnet),
            Some(Unusable::SubnetNetwork(
                ip("10.99.2.0"),
                net("10.99.2.0/24")
            ))
        );
        assert_eq!(subnet_edge(ip("10.99.2.1"), subnet), None);
        assert_eq!(subnet_edge(ip("10.99.3.255"), subnet), None);
        // A /31 and a /32 have no network or broadcast address.
        assert_eq!(subnet_edge(ip("10.0.0.0"), net("10.0.0.0/31")), None);
        assert_eq!(subnet_edge(ip("10.0.0.1"), net("10.0.0.0/31")), None);
        assert_eq!(subnet_edge(ip("10.0.0.1"), net("10.0.0.1/32")), None);
        // IPv6 has no broadcast; its subnet-router anycast address is usable.
        assert_eq!(subnet_edge(ip("2001:db8::"), net("2001:db8::/64")), None);
        // The mapped form of a broadcast address.
        assert!(matches!(
            subnet_edge(ip("::ffff:10.99.2.255"), subnet),
            Some(Unusable::SubnetBroadcast(..))
        ));
    }

    #[test]
    fn classify_checks_ranges_subnets_then_own_addresses() {
        let own = [ip("10.99.2.2"), ip("2001:db8::2")];
        let is_own = |address: IpAddr| own.contains(&address);
        let subnets = [net("10.99.2.0/24"), net("2001:db8::/64")];
        let check = |address: &str| classify(ip(address), is_own, subnets);
        assert_eq!(
            check("10.99.2.2"),
            Some(Unusable::OwnAddress(ip("10.99.2.2")))
        );
        assert_eq!(
            check("::ffff:10.99.2.2"),
            Some(Unusable::OwnAddress(ip("::ffff:10.99.2.2")))
        );
        assert_eq!(
            check("2001:db8::2"),
            Some(Unusable::OwnAddress(ip("2001:db8::2")))
        );
        assert!(matches!(
            check("10.99.2.255"),
            Some(Unusable::SubnetBroadcast(..))
        ));
        assert!(matches!(check("127.0.0.1"), Some(Unusable::Loopback(_))));
        assert_eq!(check("10.99.2.1"), None);
        assert_eq!(check("2001:db8::1"), None);
        // Not connected is not unusable: that is for the resolver to say.
        assert_eq!(check("192.0.2.1"), None);
    }

    #[test]
    fn reasons_read_as_sentences() {
        assert_eq!(
            Unusable::OwnAddress(ip("10.99.2.2")).to_string(),
            "next hop unusable: host's own address 10.99.2.2"
        );
        assert_eq!(
            Unusable::SubnetBroadcast(ip("10.99.2.255"), net("10.99.2.0/24")).to_string(),
            "next hop unusable: 10.99.2.255 is the broadcast address of 10.99.2.0/24"
        );
        assert_eq!(
            Unusable::NotNeighborAddress.to_string(),
            "next hop unusable: not the neighbor's own address"
        );
        assert_eq!(
            Unresolved::Unusable(Unusable::Loopback(ip("127.0.0.1"))).to_string(),
            "next hop unusable: 127.0.0.1 is a loopback address"
        );
        assert_eq!(
            martian(IpAddr::V4(Ipv4Addr::BROADCAST)),
            Some(Unusable::Reserved(ip("255.255.255.255")))
        );
    }
}
