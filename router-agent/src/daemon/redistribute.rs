//! `[[redistribute]]` into the speaker: once per kernel-event burst (and after a reload), the
//! rules whose announced set changed are handed over whole.
//!
//! Pacing: a rule is evaluated and handed over whole (the speaker then re-exports only the
//! prefixes that changed), so a call costs in proportion to the rule's size, and a flood of
//! kernel events in small bursts (10,000 routes from `ip -batch`) would cost that once per
//! burst. A call therefore waits until twice the previous call's cost has passed since it
//! ended (at most [`MAX_PACING`]): an isolated change goes at once, and a flood keeps the
//! agent at most about a third of its time here.

use std::time::{Duration, Instant};

use super::Agent;
use crate::{
    bgp::policy::{OriginExport, OriginatedRoute},
    redistribute::RuleChange,
};

/// The longest a change waits behind the previous call.
const MAX_PACING: Duration = Duration::from_millis(250);

/// When the previous call ended and what it cost; when a deferred one is due.
#[derive(Debug, Default)]
pub(super) struct Pacing {
    last_end: Option<Instant>,
    last_cost: Duration,
    /// A deferred call (the event loop sleeps until then).
    pub(super) due: Option<Instant>,
}

impl Pacing {
    fn ready_at(&self) -> Option<Instant> {
        self.last_end
            .map(|end| end + (self.last_cost * 2).min(MAX_PACING))
    }
}

impl Agent {
    /// After a kernel-event burst: hands changes over now, or defers them (see the pacing
    /// note above).
    pub(super) fn redistribute_paced(&mut self) {
        if !self.redistributor.pending() {
            return;
        }
        match self.redistribute_pacing.ready_at() {
            Some(at) if at > Instant::now() => {
                self.redistribute_pacing.due.get_or_insert(at);
            }
            _ => self.redistribute(),
        }
    }

    /// Passes the rules whose announced set changed to the speaker.
    pub(super) fn redistribute(&mut self) {
        let start = Instant::now();
        self.redistribute_changes();
        let end = Instant::now();
        self.redistribute_pacing = Pacing {
            last_end: Some(end),
            last_cost: end - start,
            due: None,
        };
    }

    fn redistribute_changes(&mut self) {
        let changes = self.redistributor.take_changes();
        let Some(speaker) = self.speaker.as_mut() else {
            return; // [[redistribute]] needs [bgp] (its prefix list): nothing to announce to
        };
        for change in changes {
            match change {
                RuleChange::Removed { rule } => speaker.remove_redistributed(&rule),
                RuleChange::Set { rule, prefixes } => {
                    let Some(config) = self.redistributor.rules().iter().find(|r| r.name == rule)
                    else {
                        continue;
                    };
                    let export = OriginExport {
                        communities: config.communities.clone(),
                        large_communities: config.large_communities.clone(),
                        med: config.med,
                    };
                    let mut routes = Vec::with_capacity(prefixes.len());
                    for prefix in prefixes {
                        match OriginatedRoute::redistributed(&rule, prefix, &export) {
                            Ok(route) => routes.push(route),
                            // HostPrefix is never /0 nor has host bits: not expected; said
                            // once per rule evaluation, never per prefix.
                            Err(reason) => {
                                tracing::error!("{} {:?}: {reason}", config.key, rule.as_ref());
                            }
                        }
                    }
                    speaker.set_redistributed(&rule, routes);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_waits_twice_the_last_cost_at_most_max() {
        assert_eq!(
            Pacing::default().ready_at(),
            None,
            "the first call goes at once"
        );
        let end = Instant::now();
        let pacing = |cost_ms| Pacing {
            last_end: Some(end),
            last_cost: Duration::from_millis(cost_ms),
            due: None,
        };
        assert_eq!(pacing(0).ready_at(), Some(end));
        assert_eq!(pacing(30).ready_at(), Some(end + Duration::from_millis(60)));
        assert_eq!(pacing(400).ready_at(), Some(end + MAX_PACING));
    }
}
