//! The event loop's side of `[[service]]`: a service's change of state becomes its
//! originated routes (`Speaker::set_service`) and, with `assign = true`, its VIPs on a dummy
//! interface. One log line per change of state; a repeating failure is only in `show`.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    sync::Arc,
    time::Duration,
};

use anyhow::Result;
use tokio::sync::mpsc::{self, UnboundedReceiver};

use super::{Agent, Exit};
use crate::{
    bgp::policy::{ExportModifiers, OriginExport, OriginatedRoute},
    services::{Announce, Applied, Phase, ServiceConfig, ServiceEvent, ServiceSet},
};

/// The running services and the addresses this agent put on their interfaces.
pub(super) struct Services {
    set: ServiceSet,
    /// Their changes of state, until the event loop takes the receiver.
    events: Option<UnboundedReceiver<ServiceEvent>>,
    /// By service: the interface and the VIPs assigned there now.
    assigned: BTreeMap<Arc<str>, (String, Vec<IpAddr>)>,
    /// After a planned restart: services without a first verdict yet. End-of-RIB waits for
    /// them (`Speaker::hold_end_of_rib`), so the ToRs keep the routes of the previous run
    /// until each is confirmed or withdrawn.
    settling: BTreeSet<Arc<str>>,
}

/// The longest End-of-RIB waits for the services' first verdicts, beyond their timeout.
const SETTLING_SLACK: Duration = Duration::from_secs(2);

impl Agent {
    /// Starts the "checks" thread with the configured services (all in Init: nothing is
    /// announced until a service's checks pass).
    pub(super) async fn start_services(&mut self) -> Result<()> {
        let (events, receiver) = mpsc::unbounded_channel();
        let set = ServiceSet::start(events)?;
        for (index, service) in self.config.service.iter().enumerate() {
            for warning in service.warnings(index) {
                tracing::warn!("{warning}");
            }
        }
        let mut set = set;
        let resuming = self.adoption.is_some() && !self.config.service.is_empty();
        let mut settling = BTreeSet::new();
        if resuming && let Some(speaker) = self.speaker.as_mut() {
            set.resume_next();
            settling = self
                .config
                .service
                .iter()
                .map(|s| Arc::from(s.name.as_str()))
                .collect();
            let longest = self.config.service.iter().map(|s| s.timeout).max();
            speaker.hold_end_of_rib(longest.unwrap_or_default() + SETTLING_SLACK);
        }
        self.services = Some(Services {
            set,
            events: Some(receiver),
            assigned: BTreeMap::new(),
            settling,
        });
        let configs = self.config.service.clone();
        self.apply_services(&configs).await;
        Ok(())
    }

    /// The services' changes of state, for the event loop (once; later: a closed channel).
    pub(super) fn take_service_events(&mut self) -> UnboundedReceiver<ServiceEvent> {
        self.services
            .as_mut()
            .and_then(|services| services.events.take())
            .unwrap_or_else(|| mpsc::unbounded_channel().1)
    }

    /// Reload: services diffed by name (see [`ServiceSet::apply`]).
    pub(super) async fn apply_services(&mut self, configs: &[ServiceConfig]) {
        let Some(services) = self.services.as_mut() else {
            return;
        };
        for applied in services.set.apply(configs) {
            match applied {
                Applied::Added(name) => {
                    tracing::info!(service = %name, "service added: announced once its checks pass");
                    self.announce_service(&name).await;
                }
                Applied::Changed(name) => {
                    tracing::info!(service = %name, "service changed: checks restarted in the current state");
                    self.announce_service(&name).await;
                }
                Applied::Removed(name, config) => {
                    tracing::info!(service = %name, prefixes = ?config.prefixes, "service removed: withdrawn");
                    if let Some(speaker) = self.speaker.as_mut() {
                        speaker.remove_service(&name);
                    }
                    self.assign(&name, &config, false).await;
                }
            }
        }
    }

    pub(super) async fn on_service_event(&mut self, event: ServiceEvent) {
        let ServiceEvent::Transition {
            name,
            generation,
            from,
            to,
            announce,
            cause,
        } = event;
        let Some(services) = self.services.as_mut() else {
            return;
        };
        if !services.set.is_current(&name, generation) {
            // From a task a reload replaced: the new one carries on from its state.
            tracing::debug!(service = %name, generation, "stale service event dropped");
            return;
        }
        let settled =
            from == Phase::Init && services.settling.remove(&name) && services.settling.is_empty();
        let hold_down = services.set.config(&name).map(|c| c.hold_down);
        match (to, &cause) {
            (Phase::Up, _) => tracing::info!(
                service = %name,
                from = from.name(),
                "service up: announced"
            ),
            (Phase::HoldDown { .. }, _) => tracing::info!(
                service = %name,
                hold_down = ?hold_down.unwrap_or_default(),
                "service checks pass again: announced after the hold-down"
            ),
            (Phase::Down | Phase::Init, Some(cause)) => tracing::warn!(
                service = %name,
                from = from.name(),
                check = format!("check[{}] {}", cause.index, cause.check),
                error = %cause.error,
                "service down: {}",
                describe(announce)
            ),
            (Phase::Down | Phase::Init, None) => tracing::warn!(
                service = %name,
                from = from.name(),
                "service down: {}",
                describe(announce)
            ),
        }
        self.announce_service(&name).await;
        if settled && let Some(speaker) = self.speaker.as_mut() {
            tracing::info!("every service checked since the restart: End-of-RIB sent");
            speaker.release_end_of_rib();
        }
    }

    /// Makes `name`'s routes and VIPs what its current state says.
    async fn announce_service(&mut self, name: &Arc<str>) {
        let Some(services) = &self.services else {
            return;
        };
        let (Some(config), Some(announce), Some(phase)) = (
            services.set.config(name),
            services.set.announce(name),
            services.set.phase(name),
        ) else {
            return;
        };
        let config = config.clone();
        let routes = service_routes(name, &config, announce);
        // In Init the VIPs are left as found: a previous process (planned restart) may have
        // put them there, and nothing says yet whether they should go.
        let init = phase == Phase::Init;
        // Announcing: the VIP is on the host before traffic is drawn to it. Withdrawing:
        // the routes go first, then the VIP.
        if announce != Announce::Withdraw {
            self.assign(name, &config, true).await;
        }
        if let Some(speaker) = self.speaker.as_mut() {
            speaker.set_service(name, config.prefixes.clone(), routes);
        }
        if announce == Announce::Withdraw && !init {
            self.assign(name, &config, false).await;
        }
    }

    /// With `on`, puts `config`'s VIPs on its interface (`assign = true`); either way removes
    /// the ones no longer wanted: those this agent put elsewhere before (a reload changed
    /// them) and, when off, the configured ones whoever put them there (a previous process).
    async fn assign(&mut self, name: &Arc<str>, config: &ServiceConfig, on: bool) {
        let Some(services) = self.services.as_mut() else {
            return;
        };
        let configured: Vec<(String, IpAddr)> = if config.assign {
            config
                .prefixes
                .iter()
                .map(|p| (config.assign_interface.clone(), p.addr()))
                .collect()
        } else {
            Vec::new()
        };
        let wanted: Vec<(String, IpAddr)> = if on { configured.clone() } else { Vec::new() };
        let mut stale: Vec<(String, IpAddr)> = services
            .assigned
            .remove(name)
            .map(|(interface, addresses)| {
                addresses
                    .into_iter()
                    .map(|a| (interface.clone(), a))
                    .collect()
            })
            .unwrap_or_default();
        if !on {
            stale.extend(configured);
        }
        stale.sort();
        stale.dedup();
        for (interface, address) in stale.into_iter().filter(|s| !wanted.contains(s)) {
            // No such interface: no address to remove.
            let Ok(ifindex) = crate::netlink::ifindex_by_name(&interface) else {
                continue;
            };
            if let Err(err) = self.netlink.remove_host_address(ifindex, address).await {
                tracing::error!(service = %name, %address, %interface, "VIP not removed: {err}");
            }
        }
        let Some((interface, _)) = wanted.first() else {
            return;
        };
        let interface = interface.clone();
        let ifindex = match self.netlink.ensure_dummy(&interface).await {
            Ok(ifindex) => ifindex,
            Err(err) => {
                tracing::error!(service = %name, %interface, "VIPs not assigned: {err:#}");
                return;
            }
        };
        let addresses: Vec<IpAddr> = wanted.iter().map(|(_, a)| *a).collect();
        for address in &addresses {
            if let Err(err) = self.netlink.add_host_address(ifindex, *address).await {
                tracing::error!(service = %name, %address, %interface, "VIP not assigned: {err}");
            }
        }
        if let Some(services) = self.services.as_mut() {
            services
                .assigned
                .insert(name.clone(), (interface, addresses));
        }
    }

    /// Ends the checks. A full stop removes the VIPs this agent assigned; a planned restart
    /// leaves them for the next process (its services start where traffic still arrives).
    pub(super) async fn stop_services(&mut self, exit: Exit) {
        let Some(services) = self.services.take() else {
            return;
        };
        let Services { set, assigned, .. } = services;
        drop(set);
        if exit != Exit::Stop {
            return;
        }
        for (name, (interface, addresses)) in assigned {
            let Ok(ifindex) = crate::netlink::ifindex_by_name(&interface) else {
                continue;
            };
            for address in addresses {
                if let Err(err) = self.netlink.remove_host_address(ifindex, address).await {
                    tracing::error!(service = %name, %address, %interface, "VIP not removed: {err}");
                }
            }
        }
    }

    /// `show services`.
    pub(super) fn services_json(services: &Option<Services>) -> serde_json::Value {
        let Some(services) = services else {
            return serde_json::json!([]);
        };
        serde_json::json!(crate::services::show::view(&services.set.statuses()))
    }

    /// `show services`' view, for the metrics.
    pub(super) fn service_views(&self) -> Vec<crate::services::show::ServiceView> {
        self.services
            .as_ref()
            .map(|services| crate::services::show::view(&services.set.statuses()))
            .unwrap_or_default()
    }
}

fn describe(announce: Announce) -> &'static str {
    match announce {
        Announce::Withdraw => "withdrawn",
        Announce::Degraded => "announced degraded",
        Announce::Announce => "announced",
    }
}

/// The routes of `config` in state `announce`.
fn service_routes(
    name: &Arc<str>,
    config: &ServiceConfig,
    announce: Announce,
) -> Vec<OriginatedRoute> {
    let export = OriginExport {
        communities: config.communities.clone(),
        large_communities: config.large_communities.clone(),
        med: config.med,
    };
    let degrade = config.degrade.unwrap_or_default();
    let modifiers = ExportModifiers {
        med: None,
        prepend: degrade.prepend,
        graceful_shutdown: degrade.graceful_shutdown,
    };
    if announce == Announce::Withdraw {
        return Vec::new();
    }
    config
        .prefixes
        .iter()
        .filter_map(|prefix| {
            // Validated at load: a refusal here is a bug, logged rather than a panic.
            let route = OriginatedRoute::for_service(name, *prefix, &export)
                .inspect_err(|err| tracing::error!(service = %name, "{prefix}: {err}"))
                .ok()?;
            Some(match announce {
                Announce::Degraded => route.with_modifiers(modifiers),
                _ => route,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::policy::OriginSource;

    fn config(text: &str) -> ServiceConfig {
        let text = format!(
            "[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n[[bgp.neighbor]]\naddress = \"10.0.0.2\"\n\
             remote_as = 65002\nexport = \"all\"\n[[service]]\nname = \"dns\"\n\
             prefixes = [\"192.0.2.53/32\", \"2001:db8::53/128\"]\nmed = 7\n{text}\
             [[service.check]]\ntcp = \"127.0.0.1:53\"\n"
        );
        crate::config::Config::parse(&text, std::path::Path::new("t.toml"))
            .unwrap()
            .service
            .remove(0)
    }

    #[test]
    fn routes_follow_the_state() {
        let name: Arc<str> = Arc::from("dns");
        let plain = config("");
        assert!(service_routes(&name, &plain, Announce::Withdraw).is_empty());
        let up = service_routes(&name, &plain, Announce::Announce);
        assert_eq!(up.len(), 2);
        assert_eq!(up[0].source(), &OriginSource::Service(name.clone()));
        assert_eq!(
            up[0].modifiers(),
            ExportModifiers {
                med: Some(7),
                ..Default::default()
            }
        );
        let degrading = config(
            "on_failure = \"degrade\"\ndegrade = { prepend = 3, graceful_shutdown = true }\n",
        );
        let degraded = service_routes(&name, &degrading, Announce::Degraded);
        assert_eq!(
            degraded[1].modifiers(),
            ExportModifiers {
                med: Some(7),
                prepend: 3,
                graceful_shutdown: true
            }
        );
        assert_eq!(
            service_routes(&name, &degrading, Announce::Announce)[1].modifiers(),
            up[1].modifiers(),
            "degrade modifiers only while degraded"
        );
    }
}
