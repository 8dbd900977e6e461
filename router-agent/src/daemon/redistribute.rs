//! `[[redistribute]]` into the speaker: once per kernel-event burst (and after a reload), the
//! rules whose announced set changed are handed over whole.

use super::Agent;
use crate::{
    bgp::policy::{OriginExport, OriginatedRoute},
    redistribute::RuleChange,
};

impl Agent {
    /// Passes the rules whose announced set changed to the speaker (one re-export per rule
    /// changed, not per route).
    pub(super) fn redistribute(&mut self) {
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
