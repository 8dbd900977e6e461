//! Drain (RFC 8326 graceful shutdown, as the originating side): what is drained, since when,
//! and whether it is to be withdrawn. A drained route stays announced, tagged with the
//! GRACEFUL_SHUTDOWN community (and optionally prepended), so the network moves its traffic
//! to other paths before anything is withdrawn.
//!
//! This is the state only; it is saved and loaded by the daemon, and applied to the
//! originated routes by `policy::Origins`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::policy::{ExportModifiers, OriginSource};

/// One drain: since when, how, and until when the routes stay announced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainEntry {
    pub since_unix: u64,
    /// Extra prepends of our AS on eBGP, for peers that ignore the community.
    pub prepend: u8,
    /// Withdraw the drained routes from this time on (Unix seconds); None: keep them.
    pub withdraw_at_unix: Option<u64>,
}

/// What is drained: everything, and/or single services by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainState {
    pub all: Option<DrainEntry>,
    pub services: BTreeMap<String, DrainEntry>,
}

/// What a drain does to one originated route at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainEffect {
    /// Not drained.
    None,
    /// Announced with these modifiers added.
    Tag(ExportModifiers),
    /// Its withdrawal time has passed.
    Withdrawn,
}

impl DrainState {
    pub fn is_drained(&self) -> bool {
        self.all.is_some() || !self.services.is_empty()
    }

    /// The drains that apply to routes of `source`: the global one, and a service's own.
    fn entries<'a>(&'a self, source: &OriginSource) -> impl Iterator<Item = &'a DrainEntry> {
        let service = match source {
            OriginSource::Service(name) => self.services.get(&**name),
            OriginSource::Config | OriginSource::Redistributed(_) => None,
        };
        self.all.iter().chain(service)
    }

    /// What the drains do to a route of `source` at `now_unix`.
    pub fn effect(&self, source: &OriginSource, now_unix: u64) -> DrainEffect {
        let mut effect = DrainEffect::None;
        for entry in self.entries(source) {
            if entry.withdraw_at_unix.is_some_and(|at| at <= now_unix) {
                return DrainEffect::Withdrawn;
            }
            let prepend = match effect {
                DrainEffect::Tag(modifiers) => modifiers.prepend.max(entry.prepend),
                _ => entry.prepend,
            };
            effect = DrainEffect::Tag(ExportModifiers {
                med: None,
                prepend,
                graceful_shutdown: true,
            });
        }
        effect
    }

    /// The next time a withdrawal falls due after `now_unix`, to re-evaluate then.
    pub fn next_deadline(&self, now_unix: u64) -> Option<u64> {
        self.all
            .iter()
            .chain(self.services.values())
            .filter_map(|entry| entry.withdraw_at_unix)
            .filter(|at| *at > now_unix)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn entry(prepend: u8, withdraw_at_unix: Option<u64>) -> DrainEntry {
        DrainEntry {
            since_unix: 100,
            prepend,
            withdraw_at_unix,
        }
    }

    #[test]
    fn a_service_drain_applies_to_that_service_only() {
        let drain = DrainState {
            all: None,
            services: [("dns".to_string(), entry(2, None))].into(),
        };
        let dns = OriginSource::Service(Arc::from("dns"));
        let web = OriginSource::Service(Arc::from("web"));
        assert_eq!(
            drain.effect(&dns, 200),
            DrainEffect::Tag(ExportModifiers {
                med: None,
                prepend: 2,
                graceful_shutdown: true
            })
        );
        assert_eq!(drain.effect(&web, 200), DrainEffect::None);
        assert_eq!(drain.effect(&OriginSource::Config, 200), DrainEffect::None);
    }

    #[test]
    fn the_larger_prepend_wins_and_a_due_withdrawal_wins_over_tagging() {
        let drain = DrainState {
            all: Some(entry(1, Some(300))),
            services: [("dns".to_string(), entry(3, None))].into(),
        };
        let dns = OriginSource::Service(Arc::from("dns"));
        match drain.effect(&dns, 200) {
            DrainEffect::Tag(modifiers) => assert_eq!(modifiers.prepend, 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(drain.effect(&dns, 300), DrainEffect::Withdrawn);
        assert_eq!(drain.next_deadline(200), Some(300));
        assert_eq!(drain.next_deadline(300), None);
    }

    #[test]
    fn the_state_round_trips_through_json() {
        let drain = DrainState {
            all: Some(entry(0, None)),
            services: [("dns".to_string(), entry(2, Some(9)))].into(),
        };
        let text = serde_json::to_string(&drain).unwrap();
        assert_eq!(serde_json::from_str::<DrainState>(&text).unwrap(), drain);
    }
}
