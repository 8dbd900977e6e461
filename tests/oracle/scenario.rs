//! The random configuration of one oracle run, as plain data derived from the seed: links and
//! their subnets, neighbors (resolved and not), static routes for the agent's config, BGP
//! routes for the scripted peer, routes "other software" adds with `ip route`, and the
//! addresses packets are sent to. Nothing here touches the system (see `lab.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rand::{Rng, rngs::SmallRng, seq::IndexedRandom};

/// One router interface (a veth to a peer namespace of its own).
pub struct Link {
    /// `a0`.. (attached) or `x0` (not attached).
    pub name: String,
    pub attached: bool,
    /// Router side `.1`, the peer holds `.2 .3 .4`.
    pub net4: Ipv4Net,
    pub net6: Ipv6Net,
    pub mac: [u8; 6],
    pub peer_mac: [u8; 6],
}

impl Link {
    pub fn host4(&self, host: u8) -> IpAddr {
        let [a, b, c, _] = self.net4.network().octets();
        IpAddr::V4(Ipv4Addr::new(a, b, c, host))
    }

    pub fn host6(&self, host: u8) -> IpAddr {
        let mut segments = self.net6.network().segments();
        segments[7] = u16::from(host);
        IpAddr::V6(Ipv6Addr::from(segments))
    }

    pub fn host(&self, v6: bool, host: u8) -> IpAddr {
        if v6 {
            self.host6(host)
        } else {
            self.host4(host)
        }
    }
}

/// Host numbers on every link: the peer's real addresses (answer ARP/ND, entered as
/// `nud reachable`), fake hosts with `nud permanent` entries, hosts nobody answers for.
pub const REAL_HOSTS: [u8; 3] = [2, 3, 4];
pub const PERMANENT_HOSTS: std::ops::RangeInclusive<u8> = 10..=19;
pub const UNRESOLVED_HOSTS: std::ops::RangeInclusive<u8> = 20..=29;

/// A neighbor entry the test writes in the router namespace.
pub struct NeighborEntry {
    pub link: usize,
    pub addr: IpAddr,
    pub mac: [u8; 6],
    /// `permanent` or `reachable`.
    pub nud: &'static str,
}

/// A nexthop of a static or BGP route: a gateway address on an attached link.
#[derive(Clone, Copy)]
pub struct Gateway {
    pub link: usize,
    pub addr: IpAddr,
}

pub struct StaticRoute {
    pub prefix: IpNet,
    pub gateways: Vec<Gateway>,
}

pub struct BgpRoute {
    pub prefix: IpNet,
    pub next_hop: IpAddr,
}

/// A route "other software" adds: the `ip route add` arguments after `add`.
pub struct KernelRoute {
    pub prefix: IpNet,
    pub args: Vec<String>,
}

pub struct Scenario {
    pub links: Vec<Link>,
    /// Router loopback addresses (`lo`).
    pub loopbacks: Vec<IpAddr>,
    pub neighbors: Vec<NeighborEntry>,
    /// Hosts on attached links with no neighbor entry and nobody answering.
    pub unresolved: Vec<IpAddr>,
    pub statics: Vec<StaticRoute>,
    pub bgp: Vec<BgpRoute>,
    pub kernel: Vec<KernelRoute>,
}

pub const BGP_PEER_LINK: usize = 0;
pub const ROUTER_ASN: u32 = 65101;
pub const PEER_ASN: u32 = 65010;

impl Scenario {
    pub fn random(rng: &mut SmallRng) -> Self {
        let attached = rng.random_range(3..=4);
        let mut octets: Vec<u8> = (1..=199).collect();
        let mut links = Vec::new();
        for i in 0..=attached {
            let octet = octets.remove(rng.random_range(0..octets.len()));
            let is_attached = i < attached;
            let index = i as u8;
            links.push(Link {
                name: if is_attached {
                    format!("a{i}")
                } else {
                    "x0".into()
                },
                attached: is_attached,
                net4: Ipv4Net::new(Ipv4Addr::new(10, octet, 0, 0), 24).unwrap(),
                net6: Ipv6Net::new(
                    Ipv6Addr::new(0x2001, 0xdb8, octet.into(), 0, 0, 0, 0, 0),
                    64,
                )
                .unwrap(),
                mac: [0x02, 0x0a, 0, 0, 0, index + 1],
                peer_mac: [0x02, 0x0b, 0, 0, 0, index + 1],
            });
        }
        let loopbacks = vec![
            IpAddr::V4(Ipv4Addr::new(10, 255, rng.random(), 1)),
            IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0xffff,
                0,
                0,
                0,
                0,
                rng.random(),
            )),
        ];

        let mut neighbors = Vec::new();
        let mut unresolved = Vec::new();
        let mut resolved_gateways = Vec::new();
        let mut unresolved_gateways = Vec::new();
        for (index, link) in links.iter().enumerate() {
            for v6 in [false, true] {
                for host in REAL_HOSTS {
                    let addr = link.host(v6, host);
                    neighbors.push(NeighborEntry {
                        link: index,
                        addr,
                        mac: link.peer_mac,
                        nud: "reachable",
                    });
                    if link.attached {
                        resolved_gateways.push(Gateway { link: index, addr });
                    }
                }
                if !link.attached {
                    continue;
                }
                for host in PERMANENT_HOSTS {
                    if rng.random_bool(0.6) {
                        let addr = link.host(v6, host);
                        neighbors.push(NeighborEntry {
                            link: index,
                            addr,
                            mac: [0x02, 0x0c, index as u8, v6 as u8, 0, host],
                            nud: "permanent",
                        });
                        resolved_gateways.push(Gateway { link: index, addr });
                    }
                }
                for host in UNRESOLVED_HOSTS {
                    let addr = link.host(v6, host);
                    unresolved.push(addr);
                    unresolved_gateways.push(Gateway { link: index, addr });
                }
            }
        }
        let mut pick_gateway = |rng: &mut SmallRng, v6: bool, link: Option<usize>| -> Gateway {
            let pool = if rng.random_bool(0.8) {
                &resolved_gateways
            } else {
                &unresolved_gateways
            };
            let fits: Vec<&Gateway> = pool
                .iter()
                .filter(|g| g.addr.is_ipv6() == v6 && link.is_none_or(|l| g.link == l))
                .collect();
            **fits.choose(rng).unwrap()
        };

        let mut statics = Vec::new();
        for k in 0..rng.random_range(2..=4u8) {
            for v6 in [false, true] {
                let prefix = if v6 {
                    IpNet::V6(
                        Ipv6Net::new(
                            Ipv6Addr::new(0x2001, 0xdb8, 0xa000 + u16::from(k), 0, 0, 0, 0, 0),
                            48,
                        )
                        .unwrap(),
                    )
                } else {
                    IpNet::V4(Ipv4Net::new(Ipv4Addr::new(198, 18, k, 0), 24).unwrap())
                };
                let members = if rng.random_bool(0.4) {
                    rng.random_range(2..=3)
                } else {
                    1
                };
                let mut gateways: Vec<Gateway> = Vec::new();
                for _ in 0..members {
                    let gateway = pick_gateway(rng, v6, None);
                    if gateways.iter().all(|g| g.addr != gateway.addr) {
                        gateways.push(gateway);
                    }
                }
                statics.push(StaticRoute { prefix, gateways });
            }
        }
        // A shorter route covering a connected subnet, via another link: the connected route
        // must win for the subnet's hosts.
        let covered = rng.random_range(1..attached);
        for v6 in [false, true] {
            let prefix = if v6 {
                IpNet::V6(Ipv6Net::new(links[covered].net6.network(), 48).unwrap())
            } else {
                IpNet::V4(Ipv4Net::new(links[covered].net4.network(), 16).unwrap())
            };
            let via = pick_gateway(rng, v6, Some(0));
            statics.push(StaticRoute {
                prefix,
                gateways: vec![via],
            });
        }
        if rng.random_bool(0.7) {
            let via = pick_gateway(rng, true, None);
            statics.push(StaticRoute {
                prefix: "::/0".parse().unwrap(),
                gateways: vec![via],
            });
        }

        let peer = &links[BGP_PEER_LINK];
        let mut bgp = Vec::new();
        if rng.random_bool(0.8) {
            bgp.push(BgpRoute {
                prefix: "0.0.0.0/0".parse().unwrap(),
                next_hop: peer.host4(2),
            });
        }
        for k in 0..rng.random_range(2..=4u8) {
            // The peer itself, a third party on its link, or a host nobody answers for.
            let host = *[2u8, 3, 4, 21].choose(rng).unwrap();
            bgp.push(BgpRoute {
                prefix: IpNet::V4(Ipv4Net::new(Ipv4Addr::new(100, 64, k, 0), 24).unwrap()),
                next_hop: peer.host4(host),
            });
            bgp.push(BgpRoute {
                prefix: IpNet::V6(
                    Ipv6Net::new(
                        Ipv6Addr::new(0x2001, 0xdb8, 0xb000 + u16::from(k), 0, 0, 0, 0, 0),
                        48,
                    )
                    .unwrap(),
                ),
                next_hop: peer.host6(host),
            });
        }

        let kernel = kernel_routes(rng, &links, &statics, &mut pick_gateway);
        Self {
            links,
            loopbacks,
            neighbors,
            unresolved,
            statics,
            bgp,
            kernel,
        }
    }

    pub fn attached(&self) -> impl Iterator<Item = (usize, &Link)> {
        self.links.iter().enumerate().filter(|(_, l)| l.attached)
    }

    /// Every address the router namespace holds.
    pub fn local_addresses(&self) -> Vec<IpAddr> {
        let mut locals = self.loopbacks.clone();
        for link in &self.links {
            locals.push(link.host4(1));
            locals.push(link.host6(1));
        }
        locals.push("127.0.0.1".parse().unwrap());
        locals.push("::1".parse().unwrap());
        locals
    }

    /// Every route prefix of the configuration, connected subnets included.
    pub fn prefixes(&self) -> Vec<IpNet> {
        let mut prefixes: Vec<IpNet> = self
            .links
            .iter()
            .flat_map(|l| [IpNet::V4(l.net4), IpNet::V6(l.net6)])
            .collect();
        prefixes.extend(self.statics.iter().map(|r| r.prefix));
        prefixes.extend(self.bgp.iter().map(|r| r.prefix));
        prefixes.extend(self.kernel.iter().map(|r| r.prefix));
        prefixes
    }
}

fn kernel_routes(
    rng: &mut SmallRng,
    links: &[Link],
    statics: &[StaticRoute],
    pick_gateway: &mut impl FnMut(&mut SmallRng, bool, Option<usize>) -> Gateway,
) -> Vec<KernelRoute> {
    let attached = links.iter().filter(|l| l.attached).count();
    let outside = links.iter().position(|l| !l.attached).unwrap();
    let mut routes = Vec::new();
    let mut add = |prefix: IpNet, args: Vec<String>| routes.push(KernelRoute { prefix, args });
    let words = |text: String| {
        text.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for v6 in [false, true] {
        let net = |n: u8| -> IpNet {
            if v6 {
                IpNet::V6(
                    Ipv6Net::new(
                        Ipv6Addr::new(0x2001, 0xdb8, 0xc000 + u16::from(n), 0, 0, 0, 0, 0),
                        64,
                    )
                    .unwrap(),
                )
            } else {
                IpNet::V4(Ipv4Net::new(Ipv4Addr::new(10, 200, n, 0), 24).unwrap())
            }
        };
        // A device route: the destination itself is the neighbor.
        let device_link = rng.random_range(0..attached);
        add(
            net(77),
            words(format!("{} dev {}", net(77), links[device_link].name)),
        );
        // A gateway route.
        let gateway = pick_gateway(rng, v6, None);
        add(
            net(78),
            words(format!(
                "{} via {} dev {}",
                net(78),
                gateway.addr,
                links[gateway.link].name
            )),
        );
        add(net(79), words(format!("blackhole {}", net(79))));
        add(
            net(80),
            words(format!(
                "{} via {} dev {}",
                net(80),
                links[outside].host(v6, 2),
                links[outside].name
            )),
        );
        add(net(81), words(format!("unreachable {}", net(81))));
        add(net(82), words(format!("prohibit {}", net(82))));
        // Multipath, two members on different links.
        let (a, b) = (
            pick_gateway(rng, v6, Some(0)),
            pick_gateway(rng, v6, Some(attached - 1)),
        );
        add(
            net(83),
            words(format!(
                "{} nexthop via {} dev {} nexthop via {} dev {}",
                net(83),
                a.addr,
                links[a.link].name,
                b.addr,
                links[b.link].name
            )),
        );
        // A more specific route inside a static route, and one replacing a static route's
        // prefix with a better metric than the agent's (20).
        let family: Vec<&StaticRoute> = statics
            .iter()
            .filter(|r| r.prefix.addr().is_ipv6() == v6 && r.prefix.prefix_len() > 0)
            .collect();
        let inner = family[0].prefix;
        let half = IpNet::new(inner.addr(), inner.prefix_len() + 1).unwrap();
        let gateway = pick_gateway(rng, v6, None);
        add(
            half,
            words(format!(
                "{half} via {} dev {}",
                gateway.addr, links[gateway.link].name
            )),
        );
        if rng.random_bool(0.5) {
            let shadowed = family[1].prefix;
            let gateway = pick_gateway(rng, v6, None);
            add(
                shadowed,
                words(format!(
                    "{shadowed} via {} dev {} metric 5",
                    gateway.addr, links[gateway.link].name
                )),
            );
        }
        // Another default route, better or worse than the agent's.
        if rng.random_bool(0.5) {
            let default: IpNet = if v6 { "::/0" } else { "0.0.0.0/0" }.parse().unwrap();
            let gateway = pick_gateway(rng, v6, None);
            let metric = *[10u32, 100].choose(rng).unwrap();
            add(
                default,
                words(format!(
                    "{default} via {} dev {} metric {metric}",
                    gateway.addr, links[gateway.link].name
                )),
            );
        }
    }
    routes
}
