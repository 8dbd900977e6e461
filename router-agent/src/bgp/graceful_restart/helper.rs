//! The receiving speaker (RFC 4724 4.2), per peer and sans-IO: when a peer that negotiated
//! graceful restart goes down gracefully, its routes of the families it preserves stay
//! (stale, still forwarding) for its Restart Time; once its session is back they wait for
//! its End-of-RIB per family, at most `stale_routes_time`. The speaker feeds the events and
//! carries out the verdicts (sweep a family's stale routes, withdraw everything).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::NegotiatedGracefulRestart;
use crate::bgp::packet::types::{Afi, Safi};

/// Where a restarting peer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Its session is down; its routes are kept until `until` (its Restart Time).
    Restarting { until: Instant },
    /// Its session is back; its stale routes wait for its End-of-RIB until `until`
    /// (`stale_routes_time`).
    AwaitingEndOfRib { until: Instant },
}

/// What a timer expiry asks of the speaker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// The session did not come back in time: withdraw every route of the peer.
    RestartTime,
    /// No End-of-RIB in time for these families: sweep their stale routes.
    StaleRoutesTime(Vec<Afi>),
}

/// One peer's graceful restart, from its graceful down to its last End-of-RIB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRestart {
    pub phase: Phase,
    /// The families whose stale routes are still kept.
    pub families: BTreeSet<Afi>,
    /// The peer's Restart Time, from the capability of the session that ended.
    pub restart_time: Duration,
}

impl PeerRestart {
    /// The session ended gracefully (see `session::retains_routes`): the families to keep,
    /// or None when the peer preserves none of the session's families.
    pub fn begin(now: Instant, negotiated: &NegotiatedGracefulRestart) -> Option<Self> {
        let families: BTreeSet<Afi> = negotiated
            .families
            .iter()
            .filter(|(_, safi)| *safi == Safi::Unicast)
            .map(|(afi, _)| *afi)
            .collect();
        if families.is_empty() {
            return None;
        }
        let restart_time = Duration::from_secs(u64::from(negotiated.peer.restart_time));
        Some(PeerRestart {
            phase: Phase::Restarting {
                until: now + restart_time,
            },
            families,
            restart_time,
        })
    }

    /// The session is Established again: returns the families whose stale routes go at once
    /// (the new OPEN has no capability, leaves the family out, or has F clear: the peer lost
    /// its forwarding state, RFC 4724 4.2; or the new session does not carry the family, so
    /// no End-of-RIB can come). The others wait for End-of-RIB.
    pub fn resumed(
        &mut self,
        now: Instant,
        negotiated: Option<&NegotiatedGracefulRestart>,
        stale_routes_time: Duration,
    ) -> Vec<Afi> {
        let sweep: Vec<Afi> = self
            .families
            .iter()
            .copied()
            .filter(|afi| {
                !negotiated.is_some_and(|gr| {
                    gr.families.contains(&(*afi, Safi::Unicast)) && gr.forwarding_preserved(*afi)
                })
            })
            .collect();
        for afi in &sweep {
            self.families.remove(afi);
        }
        self.phase = Phase::AwaitingEndOfRib {
            until: now + stale_routes_time,
        };
        sweep
    }

    /// The peer's End-of-RIB for `afi`: whether that family's stale routes are to be swept
    /// now (it was waiting for it).
    pub fn end_of_rib(&mut self, afi: Afi) -> bool {
        matches!(self.phase, Phase::AwaitingEndOfRib { .. }) && self.families.remove(&afi)
    }

    /// The operator ends the wait (`clear neighbor` of a peer whose session is gone): the
    /// next tick withdraws everything, as if the restart time had run out.
    pub fn expire_now(&mut self, now: Instant) {
        self.phase = Phase::Restarting { until: now };
    }

    /// Nothing is kept any more: the restart is over.
    pub fn is_over(&self) -> bool {
        self.families.is_empty()
    }

    /// The timer that ran out, if one did.
    pub fn expired(&self, now: Instant) -> Option<Expiry> {
        match self.phase {
            Phase::Restarting { until } if now >= until => Some(Expiry::RestartTime),
            Phase::AwaitingEndOfRib { until } if now >= until => Some(Expiry::StaleRoutesTime(
                self.families.iter().copied().collect(),
            )),
            _ => None,
        }
    }

    /// Time left on the running timer.
    pub fn time_left(&self, now: Instant) -> Duration {
        match self.phase {
            Phase::Restarting { until } | Phase::AwaitingEndOfRib { until } => {
                until.saturating_duration_since(now)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::graceful_restart::{GracefulRestartCapability, GracefulRestartFamily};

    fn negotiated(restart_time: u16, families: &[(Afi, bool)]) -> NegotiatedGracefulRestart {
        let capability = GracefulRestartCapability {
            restarted: false,
            notification: true,
            restart_time,
            families: families
                .iter()
                .map(|&(afi, forwarding)| GracefulRestartFamily {
                    afi,
                    safi: Safi::Unicast,
                    forwarding,
                })
                .collect(),
        };
        NegotiatedGracefulRestart::negotiate(
            Some(&capability),
            Some(&capability),
            &[(Afi::Ipv4, Safi::Unicast), (Afi::Ipv6, Safi::Unicast)].into(),
        )
        .unwrap()
    }

    #[test]
    fn restart_time_runs_out() {
        let now = Instant::now();
        let restart = PeerRestart::begin(now, &negotiated(30, &[(Afi::Ipv4, false)])).unwrap();
        assert_eq!(restart.families, [Afi::Ipv4].into());
        assert_eq!(restart.expired(now + Duration::from_secs(29)), None);
        assert_eq!(
            restart.time_left(now + Duration::from_secs(10)).as_secs(),
            20
        );
        assert_eq!(
            restart.expired(now + Duration::from_secs(30)),
            Some(Expiry::RestartTime)
        );
    }

    #[test]
    fn no_preserved_family_means_no_restart() {
        assert!(PeerRestart::begin(Instant::now(), &negotiated(120, &[])).is_none());
    }

    #[test]
    fn back_with_forwarding_waits_for_each_end_of_rib() {
        let now = Instant::now();
        let both = [(Afi::Ipv4, true), (Afi::Ipv6, true)];
        let mut restart = PeerRestart::begin(now, &negotiated(120, &both)).unwrap();
        // An End-of-RIB before the session is back means nothing.
        assert!(!restart.end_of_rib(Afi::Ipv4));
        let later = now + Duration::from_secs(5);
        let sweep = restart.resumed(
            later,
            Some(&negotiated(120, &both)),
            Duration::from_secs(60),
        );
        assert!(sweep.is_empty());
        assert_eq!(restart.expired(later + Duration::from_secs(59)), None);
        assert!(restart.end_of_rib(Afi::Ipv4));
        assert!(!restart.end_of_rib(Afi::Ipv4), "swept once");
        assert!(!restart.is_over());
        assert_eq!(
            restart.expired(later + Duration::from_secs(60)),
            Some(Expiry::StaleRoutesTime(vec![Afi::Ipv6]))
        );
        assert!(restart.end_of_rib(Afi::Ipv6));
        assert!(restart.is_over());
    }

    #[test]
    fn back_without_capability_or_f_bit_sweeps_at_once() {
        let now = Instant::now();
        let both = [(Afi::Ipv4, false), (Afi::Ipv6, false)];
        let mut restart = PeerRestart::begin(now, &negotiated(120, &both)).unwrap();
        // F set for IPv4 only, IPv6 listed without F.
        let new = negotiated(120, &[(Afi::Ipv4, true), (Afi::Ipv6, false)]);
        let sweep = restart.resumed(now, Some(&new), Duration::from_secs(60));
        assert_eq!(sweep, vec![Afi::Ipv6]);
        assert_eq!(restart.families, [Afi::Ipv4].into());

        let mut restart = PeerRestart::begin(now, &negotiated(120, &both)).unwrap();
        // F for both, but the new session carries IPv4 only.
        let mut v4_session = negotiated(120, &[(Afi::Ipv4, true), (Afi::Ipv6, true)]);
        v4_session.families.remove(&(Afi::Ipv6, Safi::Unicast));
        let sweep = restart.resumed(now, Some(&v4_session), Duration::from_secs(60));
        assert_eq!(sweep, vec![Afi::Ipv6]);

        let mut restart = PeerRestart::begin(now, &negotiated(120, &both)).unwrap();
        let sweep = restart.resumed(now, None, Duration::from_secs(60));
        assert_eq!(sweep, vec![Afi::Ipv4, Afi::Ipv6]);
        assert!(restart.is_over());
    }
}
