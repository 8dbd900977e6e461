//! The event task: initial dump, then live notifications, as [`KernelEvent`]s.
//!
//! Why "subscribe, dump, then replay the queued notifications" loses nothing and ends right:
//! every notification carries the object's *complete* state (not a delta), so for each object
//! the last message applied wins. Notifications queued while the dump ran are applied after
//! it; for any object changed during or after the dump, the last of them is the newest state;
//! for an object not changed, the dump is. Replaying an older notification after the dump only
//! causes a transient flap, immediately corrected by the newer ones that follow it.
//!
//! The task keeps a mirror of what it has reported. It serves three purposes:
//! * suppress notifications that change nothing the agent sees (NUD churn REACHABLE -> DELAY ->
//!   PROBE with the same MAC, link statistics or flag changes, IPv6 address lifetime updates);
//! * report a link's neighbors and addresses as removed when the link goes away, whether or not
//!   the kernel sends its own notifications for them;
//! * resynchronise after the event socket overflowed (ENOBUFS: notifications were lost): a
//!   fresh dump is compared with the mirror and only the differences are reported, removals
//!   included, so the consumer's state converges without any special handling on its side;
//! * re-dump the routes (followed and local table) when a link goes down or away or an address
//!   is removed: the kernel flushes the IPv4 routes through it *without* notifications.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use futures::{StreamExt as _, channel::mpsc::UnboundedReceiver};
use rtnetlink::{
    packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload},
    packet_route::{
        AddressFamily, RouteNetlinkMessage, address::AddressMessage, link::LinkMessage,
        neighbour::NeighbourMessage,
    },
    sys::SocketAddr,
};
use tokio::sync::mpsc::UnboundedSender;

use super::{
    AddressInfo, KernelEvent, LinkInfo, Mac, NeighborInfo, Netlink, NetlinkError, addresses,
    kernel_routes::{self, FollowedRoute, FollowedRouteKey, RouteFilter, RouteKind},
    links,
    local_table::{self, LocalRoute},
    neighbors,
};

/// One kernel notification, reduced to what the agent cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Update {
    Link(LinkInfo),
    LinkGone(u32),
    /// With whether the kernel will not confirm it by itself (see `NeighborStale`).
    Neighbor(NeighborInfo, bool),
    NeighborGone(u32, IpAddr),
    Address(AddressInfo),
    AddressGone(AddressInfo),
    Route(FollowedRoute),
    RouteGone(FollowedRoute),
    LocalRoute(LocalRoute),
    LocalRouteGone(LocalRoute),
}

/// Reduces a notification to an [`Update`]; `None` for what the agent does not track.
pub(super) fn parse_update(msg: &RouteNetlinkMessage, filter: &RouteFilter) -> Option<Update> {
    match msg {
        RouteNetlinkMessage::NewLink(m) if links::is_interface_message(m) => {
            links::parse_link(m).map(Update::Link)
        }
        RouteNetlinkMessage::DelLink(m) if links::is_interface_message(m) => {
            Some(Update::LinkGone(m.header.index))
        }
        RouteNetlinkMessage::NewNeighbour(m) => neighbors::parse_neighbor(m)
            .map(|info| Update::Neighbor(info, neighbors::needs_confirmation(m))),
        RouteNetlinkMessage::DelNeighbour(m) => {
            neighbors::neighbor_key(m).map(|(i, a)| Update::NeighborGone(i, a))
        }
        RouteNetlinkMessage::NewAddress(m) => addresses::parse_address(m).map(Update::Address),
        RouteNetlinkMessage::DelAddress(m) => addresses::parse_address(m).map(Update::AddressGone),
        RouteNetlinkMessage::NewRoute(m) if local_table::is_local_table(m) => {
            local_table::parse_local_route(m).map(Update::LocalRoute)
        }
        RouteNetlinkMessage::DelRoute(m) if local_table::is_local_table(m) => {
            local_table::parse_local_route(m).map(Update::LocalRouteGone)
        }
        RouteNetlinkMessage::NewRoute(m) => {
            kernel_routes::parse_route(m, filter).map(Update::Route)
        }
        RouteNetlinkMessage::DelRoute(m) => {
            kernel_routes::parse_route(m, filter).map(Update::RouteGone)
        }
        _ => None,
    }
}

/// What has been reported to the consumer (or, for a fresh dump, what the kernel has).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Mirror {
    links: BTreeMap<u32, LinkInfo>,
    neighbors: BTreeMap<(u32, IpAddr), Option<Mac>>,
    /// Neighbors last seen STALE and unmanaged: a resync (the initial dump) asks for their
    /// confirmation too.
    stale_neighbors: BTreeSet<(u32, IpAddr)>,
    /// Keyed like the kernel keys addresses (interface, address, prefix length).
    addresses: BTreeMap<(u32, IpAddr, u8), Option<Ipv4Addr>>,
    routes: BTreeMap<FollowedRouteKey, FollowedRoute>,
    local_routes: BTreeSet<LocalRoute>,
    pub(super) filter: RouteFilter,
    /// The kernel may have flushed routes without telling (link down or gone, address
    /// removed): the event task re-dumps them.
    routes_stale: bool,
}

fn address_info(
    (ifindex, addr, prefix_len): (u32, IpAddr, u8),
    broadcast: Option<Ipv4Addr>,
) -> AddressInfo {
    AddressInfo {
        ifindex,
        addr,
        prefix_len,
        broadcast,
    }
}

impl Mirror {
    pub(super) fn new(filter: RouteFilter) -> Self {
        Self {
            filter,
            ..Self::default()
        }
    }

    /// Whether routes must be re-dumped; resets the flag.
    pub(super) fn take_routes_stale(&mut self) -> bool {
        std::mem::take(&mut self.routes_stale)
    }

    /// Applies one update, pushing the events it implies (none if nothing visible changed).
    pub(super) fn apply(&mut self, update: Update, out: &mut Vec<KernelEvent>) {
        match update {
            Update::Link(info) => {
                if self.links.get(&info.ifindex) != Some(&info) {
                    let was_up = self.links.get(&info.ifindex).map(|l| l.up);
                    self.routes_stale |= was_up == Some(true) && !info.up;
                    self.links.insert(info.ifindex, info.clone());
                    out.push(KernelEvent::Link(info));
                }
            }
            Update::LinkGone(ifindex) => {
                // Its neighbors and addresses go with it (the kernel flushes them).
                let gone: Vec<_> = self
                    .neighbors
                    .range((ifindex, ip_min())..)
                    .take_while(|(k, _)| k.0 == ifindex)
                    .map(|(k, _)| *k)
                    .collect();
                for key in gone {
                    self.apply(Update::NeighborGone(key.0, key.1), out);
                }
                let gone: Vec<_> = self
                    .addresses
                    .iter()
                    .filter(|(k, _)| k.0 == ifindex)
                    .map(|(k, b)| address_info(*k, *b))
                    .collect();
                for info in gone {
                    self.apply(Update::AddressGone(info), out);
                }
                // Its routes too (IPv4 ones silently): any route through it.
                let gone: Vec<_> = self
                    .routes
                    .values()
                    .filter(|r| r.ifindexes().any(|i| i == ifindex))
                    .cloned()
                    .collect();
                for route in gone {
                    self.remove_route(route.key, out);
                }
                let gone: Vec<_> = self
                    .local_routes
                    .iter()
                    .filter(|r| r.ifindex == ifindex)
                    .copied()
                    .collect();
                for route in gone {
                    self.apply(Update::LocalRouteGone(route), out);
                }
                self.routes_stale = true;
                if self.links.remove(&ifindex).is_some() {
                    out.push(KernelEvent::LinkRemoved { ifindex });
                }
            }
            Update::Neighbor(info, stale) => {
                let (ifindex, addr, usable) = (info.ifindex, info.addr, info.mac.is_some());
                if stale {
                    self.stale_neighbors.insert((ifindex, addr));
                } else {
                    self.stale_neighbors.remove(&(ifindex, addr));
                }
                if self.neighbors.get(&(ifindex, addr)) != Some(&info.mac) {
                    self.neighbors.insert((ifindex, addr), info.mac);
                    out.push(KernelEvent::Neighbor(info));
                }
                if stale && usable {
                    out.push(KernelEvent::NeighborStale { ifindex, addr });
                }
            }
            Update::NeighborGone(ifindex, addr) => {
                self.stale_neighbors.remove(&(ifindex, addr));
                if self.neighbors.remove(&(ifindex, addr)).is_some() {
                    out.push(KernelEvent::NeighborRemoved { ifindex, addr });
                }
            }
            Update::Address(info) => {
                let key = (info.ifindex, info.addr, info.prefix_len);
                match self.addresses.insert(key, info.broadcast) {
                    Some(old) if old == info.broadcast => {}
                    Some(old) => {
                        // Same address, other broadcast: report it as a replacement so that a
                        // consumer keyed on the whole AddressInfo forgets the old one.
                        out.push(KernelEvent::AddressRemoved(address_info(key, old)));
                        out.push(KernelEvent::Address(info));
                    }
                    None => out.push(KernelEvent::Address(info)),
                }
            }
            Update::AddressGone(info) => {
                let key = (info.ifindex, info.addr, info.prefix_len);
                if let Some(broadcast) = self.addresses.remove(&key) {
                    self.routes_stale = true;
                    out.push(KernelEvent::AddressRemoved(address_info(key, broadcast)));
                }
            }
            Update::Route(mut route) => {
                // Moving on or off the followed interfaces is a change of `followed`.
                route.followed = self.follows(&route);
                if self.routes.get(&route.key) != Some(&route) {
                    self.routes.insert(route.key, route.clone());
                    out.push(KernelEvent::Route(route));
                }
            }
            Update::RouteGone(route) => self.route_gone(route, out),
            Update::LocalRoute(route) => {
                if self.local_routes.insert(route) {
                    out.push(KernelEvent::LocalRoute(route));
                }
            }
            Update::LocalRouteGone(route) => {
                if self.local_routes.remove(&route) {
                    out.push(KernelEvent::LocalRouteRemoved(route));
                }
            }
        }
    }

    /// Whether the XDP FIB follows `route`, by the interface names known now.
    fn follows(&self, route: &FollowedRoute) -> bool {
        let links = &self.links;
        self.filter
            .follows(route, |i| links.get(&i).map(|l| l.name.clone()))
    }

    fn remove_route(&mut self, key: FollowedRouteKey, out: &mut Vec<KernelEvent>) {
        if self.routes.remove(&key).is_some() {
            out.push(KernelEvent::RouteRemoved(key));
        }
    }

    /// RTM_DELROUTE. An IPv6 multipath route is a set of sibling routes: deleting one sibling
    /// (`ip -6 route del P via G`) names only that nexthop, and the others stay.
    fn route_gone(&mut self, gone: FollowedRoute, out: &mut Vec<KernelEvent>) {
        let Some(known) = self.routes.get(&gone.key) else {
            return;
        };
        if let (true, RouteKind::Unicast(known_hops), RouteKind::Unicast(gone_hops)) =
            (gone.key.prefix.addr().is_ipv6(), &known.kind, &gone.kind)
        {
            let same = |a: &kernel_routes::RouteHop, b: &kernel_routes::RouteHop| {
                (a.gateway, a.ifindex) == (b.gateway, b.ifindex)
            };
            let left: Vec<_> = known_hops
                .iter()
                .filter(|k| !gone_hops.iter().any(|g| same(k, g)))
                .copied()
                .collect();
            if !left.is_empty() && left.len() < known_hops.len() {
                let mut route = FollowedRoute {
                    kind: RouteKind::Unicast(left),
                    ..known.clone()
                };
                route.followed = self.follows(&route);
                self.routes.insert(route.key, route.clone());
                out.push(KernelEvent::Route(route));
                return;
            }
        }
        self.remove_route(gone.key, out);
    }

    /// Brings the routes, followed and local, to those of `fresh` (a complete route dump),
    /// pushing the differences.
    pub(super) fn resync_routes(&mut self, fresh: Mirror, out: &mut Vec<KernelEvent>) {
        let gone: Vec<_> = self
            .routes
            .keys()
            .filter(|k| !fresh.routes.contains_key(k))
            .copied()
            .collect();
        for key in gone {
            self.remove_route(key, out);
        }
        let gone: Vec<_> = self
            .local_routes
            .difference(&fresh.local_routes)
            .copied()
            .collect();
        for route in gone {
            self.apply(Update::LocalRouteGone(route), out);
        }
        for route in fresh.local_routes {
            self.apply(Update::LocalRoute(route), out);
        }
        for route in fresh.routes.into_values() {
            if self.routes.get(&route.key) != Some(&route) {
                self.routes.insert(route.key, route.clone());
                out.push(KernelEvent::Route(route));
            }
        }
    }

    /// Brings `self` to `fresh` (a complete dump), pushing the differences: removals first
    /// (routes, neighbors and addresses before their links), then links, addresses, neighbors,
    /// routes.
    pub(super) fn resync(&mut self, fresh: Mirror, out: &mut Vec<KernelEvent>) {
        let gone_routes: Vec<_> = self
            .routes
            .keys()
            .filter(|k| !fresh.routes.contains_key(k))
            .copied()
            .collect();
        for key in gone_routes {
            self.remove_route(key, out);
        }
        let gone_local: Vec<_> = self
            .local_routes
            .difference(&fresh.local_routes)
            .copied()
            .collect();
        for route in gone_local {
            self.apply(Update::LocalRouteGone(route), out);
        }
        let gone_neighbors: Vec<_> = self
            .neighbors
            .keys()
            .filter(|k| !fresh.neighbors.contains_key(k))
            .copied()
            .collect();
        for (ifindex, addr) in gone_neighbors {
            self.apply(Update::NeighborGone(ifindex, addr), out);
        }
        let gone_addresses: Vec<_> = self
            .addresses
            .iter()
            .filter(|(k, _)| !fresh.addresses.contains_key(k))
            .map(|(k, b)| address_info(*k, *b))
            .collect();
        for info in gone_addresses {
            self.apply(Update::AddressGone(info), out);
        }
        let gone_links: BTreeSet<u32> = self
            .links
            .keys()
            .filter(|k| !fresh.links.contains_key(k))
            .copied()
            .collect();
        for ifindex in gone_links {
            self.apply(Update::LinkGone(ifindex), out);
        }
        for info in fresh.links.into_values() {
            self.apply(Update::Link(info), out);
        }
        for (key, broadcast) in fresh.addresses {
            self.apply(Update::Address(address_info(key, broadcast)), out);
        }
        for ((ifindex, addr), mac) in fresh.neighbors {
            let stale = fresh.stale_neighbors.contains(&(ifindex, addr));
            self.apply(
                Update::Neighbor(NeighborInfo { ifindex, addr, mac }, stale),
                out,
            );
        }
        let routes = Mirror {
            routes: fresh.routes,
            local_routes: fresh.local_routes,
            ..Mirror::default()
        };
        self.resync_routes(routes, out);
    }
}

/// The smallest IpAddr (for range scans keyed by (ifindex, IpAddr)).
fn ip_min() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

impl Netlink {
    /// Dumps links, addresses, IPv4/IPv6 neighbors and the followed routes into a [`Mirror`].
    async fn dump_state(&self, filter: &RouteFilter) -> Result<Mirror, NetlinkError> {
        let mut mirror = Mirror::new(filter.clone());
        let mut discard = Vec::new();
        let flags = NLM_F_REQUEST | NLM_F_DUMP;
        let links = self
            .request(RouteNetlinkMessage::GetLink(LinkMessage::default()), flags)
            .await?;
        let addresses = self
            .request(
                RouteNetlinkMessage::GetAddress(AddressMessage::default()),
                flags,
            )
            .await?;
        let mut neighbors = Vec::new();
        // One dump per family: an AF_UNSPEC dump would also list the bridge FDBs.
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut msg = NeighbourMessage::default();
            msg.header.family = family;
            neighbors.extend(
                self.request(RouteNetlinkMessage::GetNeighbour(msg), flags)
                    .await?,
            );
        }
        let routes = self.dump_routes().await?;
        // Links first: the route filter names interfaces.
        for msg in links
            .iter()
            .chain(&addresses)
            .chain(&neighbors)
            .chain(&routes)
        {
            if let Some(update) = parse_update(msg, filter) {
                mirror.apply(update, &mut discard);
            }
        }
        mirror.routes_stale = false;
        Ok(mirror)
    }

    /// The followed and local routes as they are now, for a [`Mirror::resync_routes`].
    async fn dump_followed_routes(&self, mirror: &Mirror) -> Result<Mirror, NetlinkError> {
        let mut fresh = Mirror::new(mirror.filter.clone());
        fresh.links = mirror.links.clone();
        let mut discard = Vec::new();
        for msg in self.dump_routes().await? {
            if let Some(update @ (Update::Route(_) | Update::LocalRoute(_))) =
                parse_update(&msg, &mirror.filter)
            {
                fresh.apply(update, &mut discard);
            }
        }
        Ok(fresh)
    }
}

type RawMessages = UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>;

/// Takes the initial dump, queues it followed by `DumpDone`, then spawns the task that turns
/// notifications into events. An error here means the initial dump failed.
pub(super) async fn start(
    netlink: Netlink,
    messages: RawMessages,
    tx: UnboundedSender<KernelEvent>,
    filter: RouteFilter,
) -> Result<(), NetlinkError> {
    let mut mirror = Mirror::new(filter.clone());
    let mut out = Vec::new();
    mirror.resync(netlink.dump_state(&filter).await?, &mut out);
    mirror.routes_stale = false;
    out.push(KernelEvent::DumpDone);
    for event in out {
        // The receiver is still in our hands: cannot fail.
        let _ = tx.send(event);
    }
    tokio::spawn(run(netlink, mirror, messages, tx));
    Ok(())
}

async fn run(
    netlink: Netlink,
    mut mirror: Mirror,
    mut messages: RawMessages,
    tx: UnboundedSender<KernelEvent>,
) {
    let mut out = Vec::new();
    loop {
        let message = tokio::select! {
            _ = tx.closed() => return, // nobody listens any more
            m = messages.next() => m,
        };
        let Some((message, _)) = message else {
            tracing::error!("the netlink event socket closed: no more kernel events");
            return;
        };
        match message.payload {
            NetlinkPayload::InnerMessage(msg) => match parse_update(&msg, &mirror.filter) {
                Some(update) => mirror.apply(update, &mut out),
                None => tracing::trace!("ignoring kernel notification {msg:?}"),
            },
            NetlinkPayload::Overrun(_) => {
                tracing::warn!("netlink event socket overflowed: resynchronising with a dump");
                #[cfg(test)]
                super::TEST_RESYNCS.set(super::TEST_RESYNCS.get() + 1);
                let Some(fresh) = dump_until_ok(&netlink, &mirror.filter.clone(), &tx).await else {
                    return;
                };
                mirror.resync(fresh, &mut out);
                mirror.take_routes_stale(); // just dumped
            }
            other => tracing::debug!("ignoring netlink message {other:?}"),
        }
        if mirror.take_routes_stale() {
            // Queued notifications are applied after this; as for the initial dump, each
            // route's last message wins.
            match netlink.dump_followed_routes(&mirror).await {
                Ok(fresh) => mirror.resync_routes(fresh, &mut out),
                Err(e) => {
                    tracing::warn!("route dump after a link or address change failed: {e}");
                }
            }
        }
        for event in out.drain(..) {
            if tx.send(event).is_err() {
                return;
            }
        }
    }
}

/// Dumps, retrying every second on failure; `None` if the consumer went away meanwhile.
async fn dump_until_ok(
    netlink: &Netlink,
    filter: &RouteFilter,
    tx: &UnboundedSender<KernelEvent>,
) -> Option<Mirror> {
    loop {
        match netlink.dump_state(filter).await {
            Ok(fresh) => return Some(fresh),
            Err(e) => tracing::warn!("netlink resynchronisation dump failed: {e}; retrying"),
        }
        tokio::select! {
            _ = tx.closed() => return None,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod unit_tests;
