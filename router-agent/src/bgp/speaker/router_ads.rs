//! Router Advertisements on the interfaces that need them (`BgpSetup::ra_interfaces`): one
//! `discovery` task per interface, started and stopped as reloads add and remove
//! `interface =` dynamic ranges, so that those need no restart.
//!
//! On an unnumbered neighbor's interface the RAs we hear name the neighbor
//! (`PeerEvent::Discovered`). On a dynamic range's interface we only advertise: those peers
//! are passive from our side and are found by their incoming connections.

use std::collections::{BTreeMap, BTreeSet};

use tokio::task::AbortHandle;

use super::Speaker;
use crate::bgp::{config::BgpSetup, discovery, peer::PeerEvent};

/// The running RA tasks, by interface.
pub(in crate::bgp) type RaTasks = BTreeMap<String, AbortHandle>;

impl Speaker {
    /// Starts the RA tasks `setup` needs that are not running, and stops those it no longer
    /// needs. A task keeps running when its interface stays (no RA gap on reload).
    pub(in crate::bgp) fn sync_router_advertisements(&mut self, setup: &BgpSetup) {
        let Some(tasks) = self.ra_tasks.as_mut() else {
            return; // unit tests: no sockets
        };
        let wanted = setup.ra_interfaces();
        let unnumbered = setup.unnumbered_interfaces();
        let (kept, stopped) = partition(std::mem::take(tasks), &wanted);
        for (interface, task) in stopped {
            tracing::info!(interface, "router advertisements stopped");
            task.abort();
        }
        *tasks = kept;
        for interface in wanted {
            if tasks.contains_key(&interface) {
                continue;
            }
            let task = if unnumbered.contains(&interface) {
                let events = self.events.clone();
                let name = interface.clone();
                discovery::spawn(interface.clone(), move |address| {
                    let _ = events.send(PeerEvent::Discovered {
                        interface: name.clone(),
                        address,
                    });
                })
            } else {
                discovery::spawn(interface.clone(), |_| {})
            };
            tasks.insert(interface, task);
        }
    }
}

/// Splits the running tasks into those whose interface is still wanted and the rest.
fn partition(tasks: RaTasks, wanted: &BTreeSet<String>) -> (RaTasks, RaTasks) {
    tasks
        .into_iter()
        .partition(|(interface, _)| wanted.contains(interface))
}

#[cfg(test)]
mod tests {
    use crate::bgp::config::BgpConfig;

    #[test]
    fn ra_interfaces_are_unnumbered_neighbors_and_interface_ranges() {
        let config: BgpConfig = toml::from_str(
            r#"asn = 65000
router_id = "192.0.2.1"
[[neighbor]]
interface = "eth1"
remote_as = "external"
[[neighbor]]
address = "10.0.0.1"
remote_as = 65001
[[dynamic_neighbor]]
interface = "veth-vms"
remote_as = "external"
[[dynamic_neighbor]]
range = "10.1.0.0/24"
remote_as = 65100
"#,
        )
        .unwrap();
        let setup = config.compile().unwrap();
        assert_eq!(
            setup.ra_interfaces().into_iter().collect::<Vec<_>>(),
            ["eth1", "veth-vms"]
        );
        assert_eq!(
            setup
                .unnumbered_interfaces()
                .into_iter()
                .collect::<Vec<_>>(),
            ["eth1"]
        );
    }
}
