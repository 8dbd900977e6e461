//! The event loop's side of drain: `router-agent drain` / `undrain` (state saved, then
//! applied to the speaker, then answered, after `--wait` once the UPDATEs are written), the
//! state loaded at start, and `[drain] on_stop`.

use std::collections::BTreeSet;

use tokio::sync::oneshot;

use super::Agent;
use crate::{
    bgp::speaker::Speaker,
    config::Config,
    drain::{
        DrainEntry, DrainRequest, DrainState, UndrainRequest, now_unix, persist,
        request::{DEFAULT_IDLE_BELOW, DEFAULT_MAX_WAIT},
        traffic,
    },
};

/// The drain to start with, before the speaker sends anything (see `persist.rs`).
pub(super) fn load_at_start(config: &Config) -> DrainState {
    // A drained service no longer configured is reported and kept (it may come back).
    let services: BTreeSet<String> = config.service.iter().map(|s| s.name.clone()).collect();
    persist::load_at_start(
        &config.drain.state_file,
        config.drain.prepend,
        &services,
        now_unix(),
    )
}

/// `state` with `request`'s drain added (replacing the same scope's, whose start it keeps).
fn drained(config: &Config, state: &DrainState, request: &DrainRequest, now: u64) -> DrainState {
    let mut state = state.clone();
    let slot = match &request.service {
        Some(service) => state.services.get(service).cloned(),
        None => state.all.clone(),
    };
    let withdraw_after = request.withdraw_after.or(config.drain.withdraw_after.0);
    let entry = DrainEntry {
        since_unix: slot.map_or(now, |entry| entry.since_unix),
        prepend: request.prepend.unwrap_or(config.drain.prepend),
        withdraw_at_unix: withdraw_after.map(|after| now + after.as_secs().max(1)),
    };
    match &request.service {
        Some(service) => {
            state.services.insert(service.clone(), entry);
        }
        None => state.all = Some(entry),
    }
    state
}

/// `state` without `request`'s drain; None: it was not drained.
fn undrained(state: &DrainState, request: &UndrainRequest) -> Option<DrainState> {
    let mut state = state.clone();
    let removed = match &request.service {
        Some(service) => state.services.remove(service).is_some(),
        None => state.all.take().is_some(),
    };
    removed.then_some(state)
}

fn error(message: String) -> String {
    serde_json::json!({ "error": message }).to_string()
}

impl Agent {
    /// Saves `state`, then applies it: the file is never behind what peers were sent, so a
    /// restart right after the answer is still drained. A save that fails applies nothing.
    fn save_and_apply(
        speaker: &mut Speaker,
        config: &Config,
        state: DrainState,
    ) -> Result<(), String> {
        persist::save(&config.drain.state_file, &state)
            .map_err(|err| format!("drain state not saved, nothing changed: {err}"))?;
        speaker.set_drain(state);
        Ok(())
    }

    /// `router-agent drain`: answered at once, or with `--wait` from a task once every
    /// Established session has written the drained routes (or max-wait passed).
    pub(super) fn drain(&mut self, request: DrainRequest, reply: oneshot::Sender<String>) {
        let Some(speaker) = self.speaker.as_mut() else {
            let _ = reply.send(error("BGP is not configured".into()));
            return;
        };
        if let Some(service) = &request.service
            && !self.config.service.iter().any(|s| &s.name == service)
        {
            let _ = reply.send(error(format!(
                "no service {service:?} in the configuration: nothing drained"
            )));
            return;
        }
        let state = drained(&self.config, speaker.drain_state(), &request, now_unix());
        if let Err(err) = Self::save_and_apply(speaker, &self.config, state) {
            tracing::error!("{err}");
            let _ = reply.send(error(err));
            return;
        }
        let scope = request.service.as_deref().unwrap_or("all");
        tracing::warn!(scope, "drained (RFC 8326 GRACEFUL_SHUTDOWN)");
        let drained = serde_json::json!(speaker.drain_state());
        if !request.wait {
            let _ = reply.send(serde_json::json!({ "drained": drained }).to_string());
            return;
        }
        let pending = speaker.flush();
        let max_wait = request.max_wait.unwrap_or(DEFAULT_MAX_WAIT);
        let deadline = tokio::time::Instant::now() + max_wait;
        let traffic = request.wait_traffic.then(|| self.drained_nexthops());
        let pin_dir = self.config.datapath.pin_dir.clone();
        let idle_below = request.idle_below.unwrap_or(DEFAULT_IDLE_BELOW);
        tokio::spawn(async move {
            let flushed = pending.wait(max_wait).await;
            let mut answer = serde_json::json!({
                "drained": drained,
                "peers_flushed": flushed.peers_flushed,
                "peers_timed_out": flushed.peers_timed_out,
            });
            if let Some(nexthops) = traffic {
                let moved = traffic::wait_idle(pin_dir, nexthops, idle_below, deadline).await;
                answer["traffic"] = serde_json::json!(moved);
            }
            let _ = reply.send(answer.to_string());
        });
    }

    /// The datapath nexthops the drained prefixes are forwarded to now (for
    /// `--wait-traffic`): those of each drained prefix's own FIB route.
    fn drained_nexthops(&self) -> BTreeSet<u32> {
        let Some(speaker) = &self.speaker else {
            return BTreeSet::new();
        };
        speaker
            .originated()
            .iter()
            .filter(|route| route.modifiers().graceful_shutdown)
            .filter_map(|route| self.fib.installed_group(&route.prefix()))
            .flat_map(|group| self.fib.group_nexthop_slots(group))
            .collect()
    }

    /// `router-agent undrain`.
    pub(super) fn undrain(&mut self, request: UndrainRequest) -> String {
        let Some(speaker) = self.speaker.as_mut() else {
            return error("BGP is not configured".into());
        };
        let scope = request.service.as_deref().unwrap_or("all");
        let Some(state) = undrained(speaker.drain_state(), &request) else {
            return error(format!("not drained: {scope}"));
        };
        if let Err(err) = Self::save_and_apply(speaker, &self.config, state) {
            tracing::error!("{err}");
            return error(err);
        }
        tracing::warn!(scope, "undrained");
        serde_json::json!({ "undrained": scope, "drained": speaker.drain_state() }).to_string()
    }

    /// A reload that moves `[drain] state_file` first writes the current drain to the new
    /// file: a restart reads only that one, and must come back as drained as we are. If it
    /// cannot be written, the reload is refused.
    pub(super) fn move_drain_state(&self, new: &Config) -> Result<(), String> {
        let Some(speaker) = &self.speaker else {
            return Ok(());
        };
        if new.drain.state_file == self.config.drain.state_file {
            return Ok(());
        }
        persist::save(&new.drain.state_file, speaker.drain_state())
            .map_err(|err| format!("drain.state_file: {err}; nothing applied"))
    }

    /// `[drain] on_stop` on a full stop: everything drained (not saved: the next start is not
    /// drained for it), the UPDATEs written, then the network given `on_stop` to move the
    /// traffic before the sessions close.
    pub(super) async fn drain_on_stop(&mut self) {
        let (Some(wait), Some(speaker)) = (self.config.drain.on_stop.0, self.speaker.as_mut())
        else {
            return;
        };
        let started = tokio::time::Instant::now();
        let mut state = speaker.drain_state().clone();
        if state.all.is_none() {
            state.all = Some(DrainEntry {
                since_unix: now_unix(),
                prepend: self.config.drain.prepend,
                withdraw_at_unix: None,
            });
        }
        speaker.set_drain(state);
        let flushed = speaker.flush().wait(wait).await;
        tracing::info!(
            peers_flushed = flushed.peers_flushed,
            peers_timed_out = flushed.peers_timed_out,
            wait = ?wait,
            "drained for the stop; waiting before closing the sessions"
        );
        tokio::time::sleep_until(started + wait).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(text, std::path::Path::new("test.toml")).unwrap()
    }

    #[test]
    fn a_drain_takes_the_config_defaults_and_keeps_its_start() {
        let config = config("[drain]\nprepend = 2\nwithdraw_after = \"60s\"\n");
        let all = DrainRequest::default();
        let state = drained(&config, &DrainState::default(), &all, 1000);
        let entry = state.all.clone().unwrap();
        assert_eq!(
            (entry.since_unix, entry.prepend, entry.withdraw_at_unix),
            (1000, 2, Some(1060))
        );
        // Drained again later with other settings: still drained since 1000.
        let again = DrainRequest {
            prepend: Some(0),
            withdraw_after: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        let entry = drained(&config, &state, &again, 2000).all.unwrap();
        assert_eq!(
            (entry.since_unix, entry.prepend, entry.withdraw_at_unix),
            (1000, 0, Some(2005))
        );
        let dns = DrainRequest {
            service: Some("dns".into()),
            ..Default::default()
        };
        let both = drained(&config, &state, &dns, 3000);
        assert!(both.all.is_some() && both.services["dns"].since_unix == 3000);
    }

    #[test]
    fn undrain_removes_only_its_scope() {
        let state = DrainState {
            all: Some(DrainEntry::default()),
            services: [("dns".to_owned(), DrainEntry::default())].into(),
        };
        let all = undrained(&state, &UndrainRequest::default()).unwrap();
        assert!(all.all.is_none() && all.services.contains_key("dns"));
        let dns = UndrainRequest {
            service: Some("dns".into()),
        };
        let only_all = undrained(&state, &dns).unwrap();
        assert!(only_all.all.is_some() && only_all.services.is_empty());
        assert_eq!(undrained(&only_all, &dns), None);
        assert_eq!(
            undrained(&DrainState::default(), &UndrainRequest::default()),
            None
        );
    }
}
