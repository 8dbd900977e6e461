//! A start that fails once the datapath is loaded (an interface missing, the BGP port
//! taken, ...) leaves no half-started datapath behind. Which way depends on what was there:
//!
//! - a cold start detaches from the interfaces it attached to, removes the pins it made and
//!   the kernel routes it wrote: the host is as before the start;
//! - a start adopting a previous run's datapath (traffic flowing through it) leaves it
//!   forwarding, as a planned restart would: the kernel routes stay, the pinned maps are the
//!   previous run's (or this run's, complete, if it got that far), and the next start adopts
//!   them. Detaching would drop what could be kept.

use super::Agent;
use crate::kernel_mirror;

impl Agent {
    pub(super) async fn abandon_start(mut self, adopting: bool) {
        if let Some(speaker) = &self.speaker {
            speaker.stop("router-agent failed to start");
        }
        if adopting {
            self.leave_for_restart().await;
            tracing::error!(
                "start failed while adopting the previous datapath: it is left forwarding, \
                 for the next start to adopt"
            );
            return;
        }
        let mut unapplied = Vec::new();
        if let Some(mirror) = self.kernel_mirror.take() {
            unapplied = tokio::task::spawn_blocking(move || mirror.finish(false))
                .await
                .unwrap_or_default();
        }
        let names: Vec<String> = self.interfaces.values().cloned().collect();
        match self.datapath.abandon_start(&names) {
            Ok(()) => tracing::info!("start failed: detached and removed the pins it made"),
            Err(err) => tracing::error!("start failed, and undoing it failed too: {err:#}"),
        }
        if self.config.datapath.kernel_routes {
            let protocol = self.config.datapath.route_protocol;
            let mut prefixes: Vec<ipnet::IpNet> = self.fib.mirrored_prefixes().collect();
            prefixes.extend(unapplied);
            let removed =
                tokio::task::spawn_blocking(move || kernel_mirror::remove(protocol, &prefixes))
                    .await;
            match removed {
                Ok(Ok(removed)) => tracing::info!(removed, "start failed: kernel routes removed"),
                Ok(Err(err)) => tracing::error!("start failed: kernel routes not removed: {err:#}"),
                Err(err) => tracing::error!("start failed: kernel routes not removed: {err}"),
            }
        }
    }
}
