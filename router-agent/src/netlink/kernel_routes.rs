//! The kernel's own routing table, followed: RTM_NEWROUTE / RTM_DELROUTE -> [`FollowedRoute`].
//!
//! Everything the kernel would forward by (connected subnets, `ip route add`, a CNI's
//! `/32 dev cali*`, a DHCP default) comes in here, reduced to what the FIB needs: prefix,
//! metric, type and nexthops. What the XDP program cannot reproduce exactly (blackholes, nexthop
//! objects, encapsulation, route MTUs, unknown attributes) is still reported, as
//! [`RouteKind::Unsupported`] or a non-unicast kind, so that the FIB hands its packets to the
//! kernel instead of forwarding them by a less specific route.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use ipnet::IpNet;
use rtnetlink::{
    packet_core::{NLM_F_DUMP, NLM_F_REQUEST, Nla as _},
    packet_route::{
        AddressFamily, RouteNetlinkMessage,
        route::{
            RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric,
            RouteType, RouteVia,
        },
    },
};

use super::{Netlink, NetlinkError, RTPROT_HOSTROUTER};

/// RT_TABLE_MAIN, RT_TABLE_DEFAULT, RT_TABLE_LOCAL.
pub const TABLE_MAIN: u32 = RouteHeader::RT_TABLE_MAIN as u32;
pub const TABLE_DEFAULT: u32 = 253;
pub const TABLE_LOCAL: u32 = 255;

/// Route protocols of routing daemons (zebra, bird, babel, bgp, isis, ospf, rip, eigrp): what
/// they install they learned from peers. Never redistributed, so observed only when followed:
/// a full table another daemon puts in the kernel costs nothing more than before.
pub const ROUTING_DAEMON_PROTOCOLS: &[(u8, &str)] = &[
    (11, "zebra"),
    (12, "bird"),
    (42, "babel"),
    (186, "bgp"),
    (187, "isis"),
    (188, "ospf"),
    (189, "rip"),
    (192, "eigrp"),
];

/// Which kernel routes to follow (`[datapath.follow_kernel_routes]`), and which to observe.
///
/// Observed routes are reported whatever their protocol (except our own and, unless followed,
/// routing daemons') and interface, with
/// [`FollowedRoute::followed`] telling whether the XDP FIB follows them: `[[redistribute]]`
/// reads the others (a rule changed by a reload finds them without a re-dump).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteFilter {
    /// Routing tables followed. The local table is not one of them: it is always followed, on
    /// its own (see `local_table.rs`).
    pub tables: BTreeSet<u32>,
    /// Tables observed besides `tables` (those `[[redistribute]]` reads at start). Set at
    /// start: a table added later needs a restart.
    pub observe_tables: BTreeSet<u32>,
    /// Route protocols followed; `None`: all.
    pub protocols: Option<BTreeSet<u8>>,
    /// Output interfaces (by name) a route must use at least one of; `None`: all.
    pub interfaces: Option<BTreeSet<String>>,
    /// Our own protocol: the kernel copy of our FIB, never read back.
    pub own_protocol: u8,
}

impl Default for RouteFilter {
    /// Everything in the main table except our own routes.
    fn default() -> Self {
        Self {
            tables: BTreeSet::from([TABLE_MAIN]),
            observe_tables: BTreeSet::new(),
            protocols: None,
            interfaces: None,
            own_protocol: RTPROT_HOSTROUTER,
        }
    }
}

impl RouteFilter {
    /// Whether a route is reported at all, by its header: cheap, so that the kernel copy of a
    /// full BGP table costs one header look per route and nothing more.
    fn observes_header(&self, table: u32, protocol: u8) -> bool {
        let routing_daemon = ROUTING_DAEMON_PROTOCOLS.iter().any(|(p, _)| *p == protocol);
        table != TABLE_LOCAL
            && protocol != self.own_protocol
            && (self.follows_header(table, protocol)
                || (!routing_daemon
                    && (self.tables.contains(&table) || self.observe_tables.contains(&table))))
    }

    /// The header-level part of the follow filter (table, protocol).
    fn follows_header(&self, table: u32, protocol: u8) -> bool {
        self.tables.contains(&table)
            && self
                .protocols
                .as_ref()
                .is_none_or(|p| p.contains(&protocol))
    }

    /// Whether the XDP FIB follows `route` (table, protocol and interfaces), given a way to
    /// name interfaces.
    pub(super) fn follows(
        &self,
        route: &FollowedRoute,
        name_of: impl Fn(u32) -> Option<String>,
    ) -> bool {
        self.follows_header(route.key.table, route.protocol)
            && self.wants_interfaces(route, name_of)
    }

    /// The interface part, given a way to name interfaces. Routes without an interface
    /// (blackhole, unreachable...) are followed only when every interface is.
    pub(super) fn wants_interfaces(
        &self,
        route: &FollowedRoute,
        name_of: impl Fn(u32) -> Option<String>,
    ) -> bool {
        let Some(names) = &self.interfaces else {
            return true;
        };
        route
            .ifindexes()
            .any(|ifindex| name_of(ifindex).is_some_and(|name| names.contains(&name)))
    }
}

/// What identifies a kernel route: the kernel keys IPv4 routes by (table, prefix, TOS,
/// metric) and IPv6 routes by (table, prefix, source prefix, metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FollowedRouteKey {
    pub table: u32,
    pub prefix: IpNet,
    /// IPv4 TOS, or the IPv6 source prefix length (source-specific routing): not 0 means the
    /// route applies to some packets only.
    pub selector: u8,
    pub metric: u32,
}

/// One nexthop of a unicast route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteHop {
    /// `None` for a device route (connected subnet, `ip route add ... dev X`): the destination
    /// itself is the neighbor. An IPv4 route may have an IPv6 gateway (RTA_VIA).
    pub gateway: Option<IpAddr>,
    pub ifindex: u32,
    /// RTNH weight minus one (`hops`), as the kernel reports it.
    pub weight: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteKind {
    Unicast(Vec<RouteHop>),
    Blackhole,
    Unreachable,
    Prohibit,
    /// Lookup continues in the next table (policy routing).
    Throw,
    /// Route through a nexthop object (RTA_NH_ID, `ip route add ... nhid N`).
    NexthopObject(u32),
    /// Unicast, but with something XDP cannot reproduce; the reason, for the log.
    Unsupported(String),
    /// Any other route type (local, NAT, anycast, multicast... outside the local table).
    Other(u8),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FollowedRoute {
    pub key: FollowedRouteKey,
    pub protocol: u8,
    pub kind: RouteKind,
    /// The XDP FIB follows it (`[datapath.follow_kernel_routes]`: table, protocol,
    /// interfaces). Otherwise the route is only observed, for `[[redistribute]]`.
    pub followed: bool,
}

impl FollowedRoute {
    /// The interfaces the route sends through.
    pub fn ifindexes(&self) -> impl Iterator<Item = u32> + '_ {
        let hops = match &self.kind {
            RouteKind::Unicast(hops) => hops.as_slice(),
            _ => &[],
        };
        hops.iter().map(|hop| hop.ifindex)
    }
}

/// What a route message says: a route observed (followed or not, see
/// [`FollowedRoute::followed`]; the interface part of the filter is applied by the caller, who
/// knows the names), or nothing the agent observes.
pub(super) fn parse_route(msg: &RouteMessage, filter: &RouteFilter) -> Option<FollowedRoute> {
    let header = &msg.header;
    if !matches!(
        header.address_family,
        AddressFamily::Inet | AddressFamily::Inet6
    ) || header.flags.contains(RouteFlags::Cloned)
    {
        return None; // MPLS / multicast families; IPv6 exception (cache) entries
    }
    let table = route_table(msg);
    let protocol = u8::from(header.protocol);
    if !filter.observes_header(table, protocol) {
        return None;
    }
    let prefix = route_prefix(msg)?;
    if is_link_local_or_multicast(&prefix) {
        return None;
    }
    let metric = msg
        .attributes
        .iter()
        .find_map(|attr| match attr {
            RouteAttribute::Priority(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(0);
    let selector = match header.address_family {
        AddressFamily::Inet => header.tos,
        _ => header.source_prefix_length,
    };
    Some(FollowedRoute {
        key: FollowedRouteKey {
            table,
            prefix,
            selector,
            metric,
        },
        protocol,
        kind: route_kind(msg, prefix),
        followed: filter.follows_header(table, protocol),
    })
}

fn route_kind(msg: &RouteMessage, prefix: IpNet) -> RouteKind {
    match msg.header.kind {
        RouteType::Unicast => {}
        RouteType::BlackHole => return RouteKind::Blackhole,
        RouteType::Unreachable => return RouteKind::Unreachable,
        RouteType::Prohibit => return RouteKind::Prohibit,
        RouteType::Throw => return RouteKind::Throw,
        other => return RouteKind::Other(u8::from(other)),
    }
    let mut gateway = None;
    let mut oif = None;
    let mut multipath = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::NhId(id) => return RouteKind::NexthopObject(*id),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::MultiPath(hops) => multipath = Some(hops),
            RouteAttribute::Gateway(_) | RouteAttribute::Via(_) => {
                match hop_gateway(attr, prefix) {
                    Ok(g) => gateway = g,
                    Err(why) => return RouteKind::Unsupported(why),
                }
            }
            RouteAttribute::Metrics(metrics) => {
                // A route MTU below the link's makes the kernel fragment or send "too big"
                // where XDP would forward; other metrics (TCP tuning) do not change forwarding.
                if metrics.iter().any(|m| matches!(m, RouteMetric::Mtu(_))) {
                    return RouteKind::Unsupported("route MTU (mtu ... on the route)".into());
                }
            }
            RouteAttribute::Encap(_) | RouteAttribute::EncapType(_) => {
                return RouteKind::Unsupported("encapsulation (lwtunnel)".into());
            }
            RouteAttribute::NewDestination(_) | RouteAttribute::NewDestinationAddress(_) => {
                return RouteKind::Unsupported("MPLS label push (newdst)".into());
            }
            RouteAttribute::Other(nla) => {
                return RouteKind::Unsupported(format!("unknown route attribute {}", nla.kind()));
            }
            // Identity and information only: they do not change where packets go.
            RouteAttribute::Destination(_)
            | RouteAttribute::Source(_)
            | RouteAttribute::PrefSource(_)
            | RouteAttribute::Table(_)
            | RouteAttribute::Priority(_)
            | RouteAttribute::CacheInfo(_)
            | RouteAttribute::Preference(_)
            | RouteAttribute::Expires(_)
            | RouteAttribute::Realm(_) => {}
            other => {
                return RouteKind::Unsupported(format!(
                    "route attribute {}",
                    attribute_name(other)
                ));
            }
        }
    }
    let hops = match multipath {
        Some(hops) => {
            let mut out = Vec::with_capacity(hops.len());
            for hop in hops {
                let mut gateway = None;
                for attr in &hop.attributes {
                    match attr {
                        RouteAttribute::Gateway(_) | RouteAttribute::Via(_) => {
                            match hop_gateway(attr, prefix) {
                                Ok(g) => gateway = g,
                                Err(why) => return RouteKind::Unsupported(why),
                            }
                        }
                        RouteAttribute::Realm(_) => {}
                        RouteAttribute::Encap(_) | RouteAttribute::EncapType(_) => {
                            return RouteKind::Unsupported("encapsulation (lwtunnel)".into());
                        }
                        other => {
                            return RouteKind::Unsupported(format!(
                                "nexthop attribute {}",
                                attribute_name(other)
                            ));
                        }
                    }
                }
                out.push(RouteHop {
                    gateway,
                    ifindex: hop.interface_index,
                    weight: hop.hops,
                });
            }
            out
        }
        None => match oif {
            Some(ifindex) => vec![RouteHop {
                gateway,
                ifindex,
                weight: 0,
            }],
            None => return RouteKind::Unsupported("unicast route without interface".into()),
        },
    };
    if hops.is_empty() {
        return RouteKind::Unsupported("empty multipath route".into());
    }
    RouteKind::Unicast(hops)
}

/// RTA_GATEWAY or RTA_VIA -> the gateway (`None` for an all-zero gateway: on link).
fn hop_gateway(attr: &RouteAttribute, prefix: IpNet) -> Result<Option<IpAddr>, String> {
    let gateway = match attr {
        RouteAttribute::Gateway(RouteAddress::Inet(a)) | RouteAttribute::Via(RouteVia::Inet(a)) => {
            IpAddr::V4(*a)
        }
        RouteAttribute::Gateway(RouteAddress::Inet6(a))
        | RouteAttribute::Via(RouteVia::Inet6(a)) => IpAddr::V6(*a),
        other => return Err(format!("gateway of unknown family ({other:?})")),
    };
    if gateway.is_ipv4() && prefix.addr().is_ipv6() {
        return Err("IPv4 gateway for an IPv6 prefix".into());
    }
    Ok((!gateway.is_unspecified()).then_some(gateway))
}

fn attribute_name(attr: &RouteAttribute) -> String {
    let debug = format!("{attr:?}");
    debug.split('(').next().unwrap_or(&debug).to_owned()
}

/// Link-local and multicast destinations never reach the XDP lookup (the program passes
/// them first): routes inside those ranges are not followed.
pub(super) fn is_link_local_or_multicast(prefix: &IpNet) -> bool {
    let ranges: [IpNet; 4] = [
        IpNet::new(IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)), 16).expect("valid"),
        IpNet::new(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 0)), 4).expect("valid"),
        IpNet::new(IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10).expect("valid"),
        IpNet::new(IpAddr::V6(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0)), 8).expect("valid"),
    ];
    ranges.iter().any(|range| range.contains(prefix))
}

/// A route's destination prefix (0.0.0.0/0 or ::/0 when it has no RTA_DST).
pub(super) fn route_prefix(route: &RouteMessage) -> Option<IpNet> {
    let len = route.header.destination_prefix_length;
    let addr = route.attributes.iter().find_map(|attr| match attr {
        RouteAttribute::Destination(RouteAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
        RouteAttribute::Destination(RouteAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        _ => None,
    });
    let addr = match (addr, route.header.address_family) {
        (Some(addr), _) => addr,
        (None, AddressFamily::Inet) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (None, AddressFamily::Inet6) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        (None, _) => return None,
    };
    IpNet::new(addr, len).ok().map(|p| p.trunc())
}

/// A route's table: RTA_TABLE when present (tables above 255), else the header's.
pub(super) fn route_table(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|attr| match attr {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}

impl Netlink {
    /// Dumps the IPv4 and IPv6 routes (all tables: the filter picks).
    pub(super) async fn dump_routes(&self) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut msg = RouteMessage::default();
            msg.header.address_family = family;
            out.extend(
                self.request(
                    RouteNetlinkMessage::GetRoute(msg),
                    NLM_F_REQUEST | NLM_F_DUMP,
                )
                .await?,
            );
        }
        Ok(out)
    }
}

/// Makes the kernel drop, before they are queued, the route notifications of `own_protocol`
/// on the event socket `fd` (a classic BPF socket filter). The kernel copy of a full BGP table
/// is a million RTM_NEWROUTEs: without this each would be queued, parsed and discarded here,
/// and the burst would overflow the socket (then a full re-dump). Failure is logged: the
/// notifications are then filtered in user space as well, only more slowly.
pub(super) fn drop_own_route_notifications(fd: i32, own_protocol: u8) {
    // Classic BPF loads are big-endian; nlmsg_type is host-endian, so on little-endian hosts
    // RTM_NEWROUTE (24) reads as 0x1800.
    let as_loaded = |v: u16| {
        u32::from(if cfg!(target_endian = "little") {
            v.swap_bytes()
        } else {
            v
        })
    };
    let (newroute, delroute) = (as_loaded(libc::RTM_NEWROUTE), as_loaded(libc::RTM_DELROUTE));
    // nlmsghdr (16 bytes), then rtmsg: family, dst_len, src_len, tos, table, protocol.
    const NLMSG_TYPE: u32 = 4;
    const RTM_PROTOCOL: u32 = 16 + 5;
    let code = |code: u32| u16::try_from(code).expect("BPF opcode");
    let filter = [
        // 0: A = nlmsg_type
        bpf(
            code(libc::BPF_LD | libc::BPF_H | libc::BPF_ABS),
            0,
            0,
            NLMSG_TYPE,
        ),
        // 1: route message? on to the protocol check : accept
        bpf(
            code(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K),
            1,
            0,
            newroute,
        ),
        bpf(
            code(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K),
            0,
            2,
            delroute,
        ),
        // 3: A = rtm_protocol; ours? drop : accept
        bpf(
            code(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS),
            0,
            0,
            RTM_PROTOCOL,
        ),
        bpf(
            code(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K),
            1,
            0,
            own_protocol.into(),
        ),
        // 5: accept the whole message
        bpf(code(libc::BPF_RET | libc::BPF_K), 0, 0, u32::MAX),
        // 6: drop
        bpf(code(libc::BPF_RET | libc::BPF_K), 0, 0, 0),
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: SO_ATTACH_FILTER copies the program; `filter` outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&program as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::warn!(
            "cannot filter our own route notifications in the kernel: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn bpf(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}
