//! `reload` (SIGHUP, `router-agent reload`): what of a changed configuration applies at run
//! time.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Agent, resolve_next_hop};
use crate::{
    config::{
        Config,
        kernel_routes::{datapath_restart_keys, pass_to_kernel_prefixes},
    },
    fib::{Batch, Source},
};

impl Agent {
    /// Re-reads the configuration file and applies what can change at run time: static routes,
    /// `datapath.pass_to_kernel` and BGP ([`Speaker::reload`]). Any other change (datapath, interfaces, control socket,
    /// adding or removing `[bgp]`, its kernel_routes) needs a restart: then, as for an invalid
    /// file, nothing is applied and the error says why.
    pub(super) async fn reload(
        &mut self,
        path: &std::path::Path,
    ) -> Result<serde_json::Value, String> {
        crate::systemd::reloading(&format!("reloading {}", path.display()));
        let result = self.try_reload(path).await;
        match &result {
            Ok(summary) => tracing::info!(%summary, "configuration reloaded"),
            Err(error) => tracing::error!("reload refused: {error}"),
        }
        // Refused or not, the agent runs on (with the old configuration if refused).
        crate::systemd::ready(&self.ready_status());
        result
    }

    async fn try_reload(&mut self, path: &std::path::Path) -> Result<serde_json::Value, String> {
        let new = Config::load(path).map_err(|err| format!("{err:#}"))?;
        let mut needs_restart = datapath_restart_keys(&self.config.datapath, &new.datapath);
        if new.interfaces != self.config.interfaces {
            needs_restart.push("[[interface]]");
        }
        if new.control != self.config.control {
            needs_restart.push("[control]");
        }
        match (&self.config.bgp, &new.bgp) {
            (Some(old), Some(new)) if old.kernel_routes != new.kernel_routes => {
                needs_restart.push("bgp.kernel_routes")
            }
            (None, Some(_)) | (Some(_), None) => needs_restart.push("adding or removing [bgp]"),
            _ => {}
        }
        if !needs_restart.is_empty() {
            return Err(format!(
                "{}: changes to {} need a restart; nothing applied",
                path.display(),
                needs_restart.join(", ")
            ));
        }
        let redistribute_rules = new
            .redistribute_rules()
            .map_err(|(key, reason)| format!("{}: {key}: {reason}", path.display()))?;
        if let Some((key, reason)) = crate::redistribute::config::unobserved_table(
            &redistribute_rules,
            &self.observed_tables,
        ) {
            return Err(format!(
                "{}: {key}: {reason}; nothing applied",
                path.display()
            ));
        }
        // Before anything is applied: a refusal leaves all as it was.
        self.move_drain_state(&new)?;
        let setup = match &new.bgp {
            Some(bgp) => Some(
                bgp.compile_with_bfd(&new.bfd)
                    .map_err(|err| format!("{}: {}: {}", path.display(), err.key, err.reason))?,
            ),
            None => None,
        };

        let mut batch = Batch::default();
        // BGP first: it may still refuse (changes that need a restart), and then nothing is
        // applied.
        let bgp = match (self.speaker.take(), setup) {
            (Some(mut speaker), Some(setup)) => {
                let (local, connected, interfaces) =
                    (&self.local_addresses, &self.connected, &self.interfaces);
                let resolve = |ip: IpAddr| resolve_next_hop(local, connected, interfaces, ip);
                let result = speaker.reload(setup, &mut self.fib, &mut batch, &resolve);
                self.speaker = Some(speaker);
                Some(result?)
            }
            (speaker, _) => {
                self.speaker = speaker;
                None
            }
        };
        let removed: Vec<IpNet> = self
            .config
            .routes
            .iter()
            .map(|route| route.prefix)
            .filter(|prefix| !new.routes.iter().any(|route| route.prefix == *prefix))
            .collect();
        for prefix in &removed {
            self.fib.remove_route(&mut batch, Source::Static, *prefix);
        }
        // Unchanged routes map to the same group again: nothing to write for them. A route
        // whose new version cannot be installed must not keep forwarding the old way.
        let not_installed = self.install_static_routes(&mut batch, &new.routes).await;
        for prefix in &not_installed {
            self.fib.remove_route(&mut batch, Source::Static, *prefix);
        }
        // Rules added, changed or removed are evaluated against what netlink reported.
        self.redistributor.set_rules(redistribute_rules);
        self.redistribute();
        let pass = pass_to_kernel_prefixes(&new.datapath);
        self.fib.set_pass_to_kernel(&mut batch, &pass);
        self.config = new;
        self.commit(batch).await;
        let services = self.config.service.clone();
        self.apply_services(&services).await;
        Ok(serde_json::json!({
            "config": path,
            "static_routes": self.config.routes.len(),
            "static_routes_removed": removed.len(),
            "static_routes_not_installed": not_installed,
            "bgp": bgp,
            "services": self.config.service.len(),
        }))
    }
}
