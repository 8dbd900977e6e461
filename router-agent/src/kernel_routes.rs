//! The kernel's own routes in the XDP FIB: connected subnets, `ip route add`, a CNI's
//! `/32 dev cali*`, a DHCP default, anything another program put in the kernel.
//!
//! ```toml
//! [datapath.follow_kernel_routes]
//! tables = ["main"]        # names main / default, or numbers
//! protocols = "all"        # or a list: "kernel", "boot", "static", "dhcp", "ra", numbers
//! interfaces = "all"       # or names: the route's output interface
//! ```
//!
//! A followed route ranks against ours as the kernel ranks it, by metric: lower than the metric
//! of our kernel copy ([`KERNEL_ROUTE_METRIC`]) -> [`Source::KernelPreferred`], else
//! [`Source::KernelFallback`]. It forwards in XDP only when it is a plain unicast route whose
//! every nexthop is on an attached interface; anything else (blackhole, nexthop objects, a
//! nexthop elsewhere, what cannot be parsed) becomes [`RouteTarget::Pass`]: the kernel
//! forwards those packets, never a less specific route in XDP.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ipnet::IpNet;

use crate::{
    fib::{Batch, Fib, NexthopKey, RouteTarget, Source},
    netlink::{FollowedRoute, FollowedRouteKey, KERNEL_ROUTE_METRIC, LocalRoute, RouteKind},
};

/// The followed kernel routes and what the FIB holds for them.
#[derive(Debug, Default)]
pub struct KernelRoutes {
    /// Every followed route, by prefix (several tables, metrics, TOS may share one).
    by_prefix: HashMap<IpNet, BTreeMap<FollowedRouteKey, FollowedRoute>>,
    /// The source each prefix is set with in the FIB.
    installed: HashMap<IpNet, Source>,
    /// Causes already logged (once each, not once per prefix).
    logged: HashSet<String>,
}

impl KernelRoutes {
    /// A route appeared or changed. `attached`: the interfaces XDP runs on.
    pub fn on_route(
        &mut self,
        fib: &mut Fib,
        batch: &mut Batch,
        route: FollowedRoute,
        attached: &BTreeMap<u32, String>,
    ) {
        let prefix = route.key.prefix;
        self.by_prefix
            .entry(prefix)
            .or_default()
            .insert(route.key, route);
        self.refresh(fib, batch, prefix, attached);
    }

    /// A route netlink observed: a followed one is ranked and installed; one no longer
    /// followed (moved off the followed interfaces) goes as if removed; the others (observed
    /// for `[[redistribute]]` only) are not the FIB's business.
    pub fn on_observed_route(
        &mut self,
        fib: &mut Fib,
        batch: &mut Batch,
        route: FollowedRoute,
        attached: &BTreeMap<u32, String>,
    ) {
        if route.followed {
            self.on_route(fib, batch, route, attached);
        } else {
            self.on_route_removed(fib, batch, route.key, attached);
        }
    }

    /// A route is gone; nothing happens unless it was followed.
    pub fn on_route_removed(
        &mut self,
        fib: &mut Fib,
        batch: &mut Batch,
        key: FollowedRouteKey,
        attached: &BTreeMap<u32, String>,
    ) {
        let Some(routes) = self.by_prefix.get_mut(&key.prefix) else {
            return;
        };
        if routes.remove(&key).is_none() {
            return; // observed only (or already gone): the FIB never had it
        }
        if routes.is_empty() {
            self.by_prefix.remove(&key.prefix);
        }
        self.refresh(fib, batch, key.prefix, attached);
    }

    /// Sets the FIB's kernel route for `prefix` to what the kernel would use now.
    fn refresh(
        &mut self,
        fib: &mut Fib,
        batch: &mut Batch,
        prefix: IpNet,
        attached: &BTreeMap<u32, String>,
    ) {
        let wanted = self
            .by_prefix
            .get(&prefix)
            .map(|routes| self.decide(prefix, routes, attached));
        let wanted = match wanted {
            Some((source, target, cause)) => {
                if let Some(cause) = cause {
                    self.log_once(cause, prefix);
                }
                Some((source, target))
            }
            None => None,
        };
        let old = self.installed.get(&prefix).copied();
        match wanted {
            None => {
                if let Some(old) = old {
                    fib.remove_route(batch, old, prefix);
                    self.installed.remove(&prefix);
                }
            }
            Some((source, target)) => {
                if let Err(err) = fib.set_route(batch, source, prefix, target) {
                    // Never keep forwarding the old way: the kernel has it.
                    self.log_once(format!("not installed in the FIB ({err})"), prefix);
                    let _ = fib.set_route(batch, source, prefix, RouteTarget::Pass);
                }
                if let Some(old) = old.filter(|old| *old != source) {
                    fib.remove_route(batch, old, prefix);
                }
                self.installed.insert(prefix, source);
            }
        }
    }

    /// The source and target for a prefix's kernel routes, and a cause to log when XDP
    /// cannot forward them as the kernel does.
    fn decide(
        &self,
        prefix: IpNet,
        routes: &BTreeMap<FollowedRouteKey, FollowedRoute>,
        attached: &BTreeMap<u32, String>,
    ) -> (Source, RouteTarget, Option<String>) {
        // The kernel picks the lowest metric within a table.
        let best = routes
            .values()
            .min_by_key(|r| (r.key.metric, r.key.table))
            .expect("never empty");
        let source = match best.key.metric.cmp(&KERNEL_ROUTE_METRIC) {
            std::cmp::Ordering::Less => Source::KernelPreferred,
            std::cmp::Ordering::Equal => {
                let cause = format!(
                    "kernel route with our own metric {KERNEL_ROUTE_METRIC}: ranked below ours \
                     (the kernel's choice between the two is by insertion order)"
                );
                return (
                    Source::KernelFallback,
                    target(best, prefix, attached).0,
                    Some(cause),
                );
            }
            std::cmp::Ordering::Greater => Source::KernelFallback,
        };
        if routes.values().any(|r| r.key.selector != 0) {
            let cause = "TOS or source-specific route: passed to the kernel".to_owned();
            return (source, RouteTarget::Pass, Some(cause));
        }
        let tables: BTreeSet<u32> = routes.keys().map(|k| k.table).collect();
        if tables.len() > 1 {
            let cause = "prefix in several followed tables: passed to the kernel (its rules \
                         choose)"
                .to_owned();
            return (source, RouteTarget::Pass, Some(cause));
        }
        let (target, cause) = target(best, prefix, attached);
        (source, target, cause)
    }

    fn log_once(&mut self, cause: String, prefix: IpNet) {
        if self.logged.insert(cause.clone()) {
            tracing::warn!(%prefix, "kernel route: {cause} (logged once; other prefixes alike)");
        } else {
            tracing::debug!(%prefix, "kernel route: {cause}");
        }
    }
}

/// Where XDP sends a route's packets, and why not to a nexthop when it cannot.
fn target(
    route: &FollowedRoute,
    prefix: IpNet,
    attached: &BTreeMap<u32, String>,
) -> (RouteTarget, Option<String>) {
    let pass = |cause: String| (RouteTarget::Pass, Some(cause));
    match &route.kind {
        RouteKind::Unicast(hops) => {
            // A nexthop elsewhere (a CNI's cali*, a tunnel...): the kernel forwards it.
            if hops.iter().any(|hop| !attached.contains_key(&hop.ifindex)) {
                return (RouteTarget::Pass, None);
            }
            if hops.iter().any(|hop| hop.weight != hops[0].weight) {
                return pass("weighted multipath: passed to the kernel".into());
            }
            let keys = hops
                .iter()
                .map(|hop| match hop.gateway {
                    Some(gateway) => NexthopKey::host(gateway, hop.ifindex),
                    None => NexthopKey::on_link(hop.ifindex, prefix.addr().is_ipv6()),
                })
                .collect();
            (RouteTarget::Via(keys), None)
        }
        RouteKind::Blackhole | RouteKind::Unreachable | RouteKind::Prohibit | RouteKind::Throw => {
            (RouteTarget::Pass, None)
        }
        RouteKind::NexthopObject(_) => {
            pass("route through a nexthop object (nhid): passed to the kernel".into())
        }
        RouteKind::Unsupported(why) => pass(format!("{why}: passed to the kernel")),
        RouteKind::Other(kind) => pass(format!("route type {kind}: passed to the kernel")),
    }
}

/// The kernel's local table in the FIB, the only producer of [`Source::Local`] routes: each
/// prefix it holds (the host's addresses, broadcasts, anycast) goes to the host, until the last
/// of its routes (the same address on two interfaces...) is gone.
#[derive(Debug, Default)]
pub struct LocalRoutes {
    holders: HashMap<IpNet, BTreeSet<LocalRoute>>,
}

impl LocalRoutes {
    pub fn on_route(&mut self, fib: &mut Fib, batch: &mut Batch, route: LocalRoute) {
        let held = self.holders.entry(route.prefix).or_default();
        if held.insert(route)
            && held.len() == 1
            && let Err(err) = fib.set_route(batch, Source::Local, route.prefix, RouteTarget::Local)
        {
            tracing::error!(prefix = %route.prefix, "local route not installed: {err}");
        }
    }

    pub fn on_route_removed(&mut self, fib: &mut Fib, batch: &mut Batch, route: LocalRoute) {
        let Some(held) = self.holders.get_mut(&route.prefix) else {
            return;
        };
        if held.remove(&route) && held.is_empty() {
            self.holders.remove(&route.prefix);
            fib.remove_route(batch, Source::Local, route.prefix);
        }
    }
}

#[cfg(test)]
#[path = "kernel_routes_tests.rs"]
mod tests;
