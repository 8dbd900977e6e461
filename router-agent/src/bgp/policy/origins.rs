//! Everything the host originates, by source: `[[bgp.originate]]`, services, redistribution
//! rules. [`Origins::effective`] merges them into the one [`Originated`] table export reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ipnet::IpNet;

use super::{ExportModifiers, OriginSource, Originated, OriginatedRoute};

/// A service's prefixes: all it is configured with, and those announced now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ServiceOrigins {
    configured: Vec<IpNet>,
    announced: Vec<OriginatedRoute>,
}

/// The originated routes of every source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origins {
    config: Originated,
    services: BTreeMap<Arc<str>, ServiceOrigins>,
    /// How many services are configured with each prefix (see [`Origins::effective`]).
    service_claims: BTreeMap<IpNet, usize>,
    redistributed: BTreeMap<Arc<str>, BTreeMap<IpNet, OriginatedRoute>>,
}

impl Origins {
    pub fn new(config: Originated) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    pub fn config(&self) -> &Originated {
        &self.config
    }

    pub fn set_config(&mut self, config: Originated) {
        self.config = config;
    }

    /// A service's configured prefixes and the routes it announces now (none while down).
    pub fn set_service(
        &mut self,
        name: &str,
        configured: Vec<IpNet>,
        announced: Vec<OriginatedRoute>,
    ) {
        self.remove_service(name);
        for prefix in &configured {
            *self.service_claims.entry(*prefix).or_default() += 1;
        }
        self.services.insert(
            Arc::from(name),
            ServiceOrigins {
                configured,
                announced,
            },
        );
    }

    pub fn remove_service(&mut self, name: &str) {
        let Some(service) = self.services.remove(name) else {
            return;
        };
        for prefix in &service.configured {
            if let Some(claims) = self.service_claims.get_mut(prefix) {
                *claims -= 1;
                if *claims == 0 {
                    self.service_claims.remove(prefix);
                }
            }
        }
    }

    /// A redistribution rule's full current set; returns the prefixes whose route changed.
    pub fn set_redistributed(
        &mut self,
        rule: &str,
        routes: Vec<OriginatedRoute>,
    ) -> BTreeSet<IpNet> {
        let new: BTreeMap<IpNet, OriginatedRoute> =
            routes.into_iter().map(|r| (r.prefix(), r)).collect();
        let old = self.redistributed.remove(rule).unwrap_or_default();
        let mut changed: BTreeSet<IpNet> = old
            .iter()
            .filter(|(prefix, route)| new.get(prefix) != Some(route))
            .map(|(prefix, _)| *prefix)
            .collect();
        changed.extend(new.keys().filter(|prefix| !old.contains_key(prefix)));
        if !new.is_empty() {
            self.redistributed.insert(Arc::from(rule), new);
        }
        changed
    }

    /// A rule removed; returns its prefixes.
    pub fn remove_redistributed(&mut self, rule: &str) -> BTreeSet<IpNet> {
        self.redistributed
            .remove(rule)
            .map(|routes| routes.into_keys().collect())
            .unwrap_or_default()
    }

    /// What [`effective`](Self::effective) holds for `prefix` alone: the same precedence, at
    /// the cost of one prefix (redistribution changes thousands of routes one burst at a time).
    pub fn effective_of(
        &self,
        prefix: &IpNet,
        adjust: impl Fn(&OriginSource) -> Option<ExportModifiers>,
    ) -> Option<OriginatedRoute> {
        let adjusted = |route: &OriginatedRoute| {
            adjust(route.source()).map(|modifiers| route.clone().with_modifiers(modifiers))
        };
        if let Some(route) = self.config.get(prefix) {
            return adjusted(route);
        }
        if self.service_claims.contains_key(prefix) {
            let route = self
                .services
                .values()
                .flat_map(|service| &service.announced)
                .find(|route| route.prefix() == *prefix)?;
            return adjusted(route);
        }
        let route = self
            .redistributed
            .values()
            .find_map(|routes| routes.get(prefix))?;
        adjusted(route)
    }

    /// The routes to export. `adjust` says, per source, what to add to a route's modifiers
    /// (a drain), or None to leave it out (a drain whose withdrawal time has passed).
    ///
    /// One prefix, one origin: configuration first, then services, then redistribution. A
    /// redistributed prefix that is any service's configured prefix is never announced by
    /// redistribution, whatever the service's state: a VIP assigned to `dummy0` would
    /// otherwise bypass its health check through an `addresses` rule.
    pub fn effective(
        &self,
        adjust: impl Fn(&OriginSource) -> Option<ExportModifiers>,
    ) -> Originated {
        let mut effective = Originated::new();
        let add = |route: &OriginatedRoute, effective: &mut Originated| {
            if effective.contains(&route.prefix()) {
                return;
            }
            if let Some(modifiers) = adjust(route.source()) {
                effective.insert(route.clone().with_modifiers(modifiers));
            }
        };
        let mut taken: BTreeSet<IpNet> = self.config.iter().map(|r| r.prefix()).collect();
        for route in self.config.iter() {
            add(route, &mut effective);
        }
        for service in self.services.values() {
            taken.extend(service.configured.iter().copied());
            for route in &service.announced {
                add(route, &mut effective);
            }
        }
        for routes in self.redistributed.values() {
            for route in routes.values() {
                if !taken.contains(&route.prefix()) {
                    add(route, &mut effective);
                }
            }
        }
        effective
    }
}
