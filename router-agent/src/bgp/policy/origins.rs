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
    redistributed: BTreeMap<Arc<str>, Vec<OriginatedRoute>>,
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
        self.services.insert(
            Arc::from(name),
            ServiceOrigins {
                configured,
                announced,
            },
        );
    }

    pub fn remove_service(&mut self, name: &str) {
        self.services.remove(name);
    }

    /// A redistribution rule's full current set.
    pub fn set_redistributed(&mut self, rule: &str, routes: Vec<OriginatedRoute>) {
        if routes.is_empty() {
            self.redistributed.remove(rule);
        } else {
            self.redistributed.insert(Arc::from(rule), routes);
        }
    }

    pub fn remove_redistributed(&mut self, rule: &str) {
        self.redistributed.remove(rule);
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
            for route in routes {
                if !taken.contains(&route.prefix()) {
                    add(route, &mut effective);
                }
            }
        }
        effective
    }
}
