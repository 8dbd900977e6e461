//! Graceful restart as one session sees it: the capability we send, what both sides agreed on,
//! whether a session's end keeps the peer's routes (RFC 4724 4.2 with RFC 8538 4), and how we
//! end a session the graceful or the hard way (RFC 8538 3).

use std::collections::BTreeSet;

use super::{
    GracefulRestartCapability, GracefulRestartConfig, GracefulRestartFamily, RestartState,
};
use crate::bgp::fsm::{CeaseSubcode, DownReason, NotificationInfo, error_code};
use crate::bgp::packet::types::{Afi, Safi};

/// The capability we send for `families`, or None when graceful restart is off. R while this
/// run restarted, F per family when the datapath (so the forwarding state) was kept, N with
/// `notification`.
pub fn local_capability(
    config: &GracefulRestartConfig,
    restart: RestartState,
    families: &BTreeSet<(Afi, Safi)>,
) -> Option<GracefulRestartCapability> {
    config.enabled.then(|| GracefulRestartCapability {
        restarted: restart.restarted,
        notification: config.notification,
        restart_time: config.restart_time_seconds(),
        families: families
            .iter()
            .map(|&(afi, safi)| GracefulRestartFamily {
                afi,
                safi,
                forwarding: restart.forwarding_preserved,
            })
            .collect(),
    })
}

/// Graceful restart on an established session: both sides sent the capability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NegotiatedGracefulRestart {
    /// The peer's capability as received.
    pub peer: GracefulRestartCapability,
    /// Both sent N: RFC 8538 semantics (only a Hard Reset ends GR).
    pub notification: bool,
    /// The session's families the peer preserves across a restart (those it listed): its
    /// routes of these are kept when the session ends gracefully, the others are withdrawn.
    pub families: BTreeSet<(Afi, Safi)>,
}

impl NegotiatedGracefulRestart {
    /// None unless both sides sent the capability.
    pub fn negotiate(
        ours: Option<&GracefulRestartCapability>,
        theirs: Option<&GracefulRestartCapability>,
        session_families: &BTreeSet<(Afi, Safi)>,
    ) -> Option<Self> {
        let (ours, theirs) = (ours?, theirs?);
        Some(NegotiatedGracefulRestart {
            peer: theirs.clone(),
            notification: ours.notification && theirs.notification,
            families: theirs
                .families
                .iter()
                .map(|family| (family.afi, family.safi))
                .filter(|family| session_families.contains(family))
                .collect(),
        })
    }

    /// Whether the peer said it kept its forwarding state for `afi` (unicast) in this OPEN.
    pub fn forwarding_preserved(&self, afi: Afi) -> bool {
        self.peer
            .family(afi, Safi::Unicast)
            .is_some_and(|family| family.forwarding)
    }
}

/// Whether a session that ended this way keeps the peer's routes (stale) for its restart time.
///
/// - The connection failed, or the hold timer expired (the peer is gone, whatever we tried to
///   tell it): yes.
/// - We stopped it (operator, `clear neighbor`, max-prefix, configuration): never, they are
///   hard resets.
/// - A NOTIFICATION was sent or received: without N on both sides, no (RFC 4724); with N,
///   yes unless it is a Cease / Hard Reset (RFC 8538 4).
pub fn retains_routes(reason: &DownReason, negotiated: &NegotiatedGracefulRestart) -> bool {
    match reason {
        DownReason::TcpConnectionFails | DownReason::HoldTimerExpired => true,
        DownReason::ManualStop | DownReason::AutomaticStop | DownReason::HeldDown { .. } => false,
        // Alive but not reading: not restarting, and its forwarding is suspect.
        DownReason::SendHoldTimerExpired => false,
        // Never for an Established session (a collision never dumps one).
        DownReason::OpenCollisionDump => false,
        DownReason::NotificationReceived(notification)
        | DownReason::ErrorDetected(notification) => {
            negotiated.notification && !is_hard_reset(notification)
        }
        DownReason::FsmError { .. } => negotiated.notification,
    }
}

fn is_hard_reset(notification: &NotificationInfo) -> bool {
    notification.code == error_code::CEASE && notification.subcode == CeaseSubcode::HardReset as u8
}

/// RFC 8538 3: on a session that negotiated N, a NOTIFICATION meant to end graceful restart
/// is sent as Cease / Hard Reset carrying the original code, subcode and data.
pub fn hard_reset(notification: NotificationInfo) -> NotificationInfo {
    if is_hard_reset(&notification) {
        return notification;
    }
    let mut data = Vec::with_capacity(2 + notification.data.len());
    data.push(notification.code);
    data.push(notification.subcode);
    data.extend_from_slice(&notification.data);
    NotificationInfo::new(error_code::CEASE, CeaseSubcode::HardReset as u8, data)
}

/// How a planned restart ends a session (`Speaker::graceful_stop`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GracefulClose {
    /// Send this NOTIFICATION, then close.
    Notify(NotificationInfo),
    /// Close the TCP connection without a NOTIFICATION: a peer without N keeps our routes
    /// only then (RFC 4724).
    Silent,
}

/// The planned-restart close of a session: with N, Cease / Administrative Reset (RFC 8538
/// keeps GR for anything but a Hard Reset); with GR but no N, a bare TCP close; without GR,
/// the usual Cease / Administrative Shutdown.
pub fn graceful_close(
    negotiated: Option<&NegotiatedGracefulRestart>,
    message: &str,
) -> GracefulClose {
    match negotiated {
        Some(gr) if gr.notification => GracefulClose::Notify(NotificationInfo::cease(
            CeaseSubcode::AdministrativeReset,
            Some(message),
        )),
        Some(_) => GracefulClose::Silent,
        None => GracefulClose::Notify(NotificationInfo::cease(
            CeaseSubcode::AdministrativeShutdown,
            Some(message),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capability(notification: bool, families: &[(Afi, bool)]) -> GracefulRestartCapability {
        GracefulRestartCapability::unicast(notification, 120, families)
    }

    fn both() -> BTreeSet<(Afi, Safi)> {
        [(Afi::Ipv4, Safi::Unicast), (Afi::Ipv6, Safi::Unicast)].into()
    }

    fn negotiated(n_ours: bool, n_theirs: bool) -> NegotiatedGracefulRestart {
        NegotiatedGracefulRestart::negotiate(
            Some(&capability(n_ours, &[])),
            Some(&capability(n_theirs, &[(Afi::Ipv4, false)])),
            &both(),
        )
        .unwrap()
    }

    #[test]
    fn local_capability_follows_config_and_restart_state() {
        let mut config = GracefulRestartConfig::default();
        let cold = local_capability(&config, RestartState::default(), &both()).unwrap();
        assert_eq!(cold.encode(), [0x40, 120, 0, 1, 1, 0, 0, 2, 1, 0]);
        let restarted = RestartState {
            restarted: true,
            forwarding_preserved: true,
        };
        let warm = local_capability(&config, restarted, &both()).unwrap();
        assert_eq!(warm.encode(), [0xc0, 120, 0, 1, 1, 0x80, 0, 2, 1, 0x80]);
        config.notification = false;
        config.restart_time = std::time::Duration::from_secs(300);
        let no_n = local_capability(&config, RestartState::default(), &both()).unwrap();
        assert_eq!(no_n.encode()[..2], [0x01, 0x2c]);
        config.enabled = false;
        assert!(local_capability(&config, restarted, &both()).is_none());
    }

    #[test]
    fn negotiation_needs_both_and_keeps_session_families() {
        let ours = capability(true, &[(Afi::Ipv4, false), (Afi::Ipv6, false)]);
        let theirs = capability(true, &[(Afi::Ipv4, true), (Afi::Ipv6, false)]);
        let v4_only = [(Afi::Ipv4, Safi::Unicast)].into();
        let gr =
            NegotiatedGracefulRestart::negotiate(Some(&ours), Some(&theirs), &v4_only).unwrap();
        assert!(gr.notification);
        assert_eq!(gr.families, v4_only);
        assert!(gr.forwarding_preserved(Afi::Ipv4));
        assert!(!gr.forwarding_preserved(Afi::Ipv6));
        assert!(NegotiatedGracefulRestart::negotiate(None, Some(&theirs), &both()).is_none());
        assert!(NegotiatedGracefulRestart::negotiate(Some(&ours), None, &both()).is_none());
        let no_n = capability(false, &[]);
        let gr = NegotiatedGracefulRestart::negotiate(Some(&no_n), Some(&theirs), &both());
        assert!(!gr.unwrap().notification);
    }

    #[test]
    fn which_ends_keep_the_routes() {
        let with_n = negotiated(true, true);
        let without_n = negotiated(true, false);
        let admin_reset = NotificationInfo::cease(CeaseSubcode::AdministrativeReset, None);
        let hard = hard_reset(NotificationInfo::cease(
            CeaseSubcode::AdministrativeShutdown,
            None,
        ));
        let update_error = NotificationInfo::new(error_code::UPDATE_MESSAGE_ERROR, 1, vec![]);
        let cases = [
            (DownReason::TcpConnectionFails, true, true),
            (DownReason::HoldTimerExpired, true, true),
            (DownReason::ManualStop, false, false),
            (DownReason::AutomaticStop, false, false),
            (
                DownReason::HeldDown {
                    restart_after: None,
                },
                false,
                false,
            ),
            (
                DownReason::NotificationReceived(admin_reset.clone()),
                true,
                false,
            ),
            (DownReason::NotificationReceived(hard.clone()), false, false),
            (DownReason::ErrorDetected(update_error), true, false),
            (DownReason::FsmError { event: "BGPOpen" }, true, false),
        ];
        for (reason, expect_with_n, expect_without_n) in cases {
            assert_eq!(retains_routes(&reason, &with_n), expect_with_n, "{reason}");
            assert_eq!(
                retains_routes(&reason, &without_n),
                expect_without_n,
                "{reason}"
            );
        }
    }

    #[test]
    fn hard_reset_wraps_the_original_once() {
        let shutdown = NotificationInfo::cease(CeaseSubcode::AdministrativeShutdown, Some("bye"));
        let wrapped = hard_reset(shutdown);
        assert_eq!(
            wrapped,
            NotificationInfo::new(6, 9, vec![6, 2, 3, b'b', b'y', b'e'])
        );
        assert_eq!(hard_reset(wrapped.clone()), wrapped);
    }

    #[test]
    fn graceful_close_per_negotiation() {
        assert_eq!(
            graceful_close(Some(&negotiated(true, true)), "restart"),
            GracefulClose::Notify(NotificationInfo::cease(
                CeaseSubcode::AdministrativeReset,
                Some("restart")
            ))
        );
        assert_eq!(
            graceful_close(Some(&negotiated(true, false)), "restart"),
            GracefulClose::Silent
        );
        assert_eq!(
            graceful_close(None, "restart"),
            GracefulClose::Notify(NotificationInfo::cease(
                CeaseSubcode::AdministrativeShutdown,
                Some("restart")
            ))
        );
    }
}
