//! The peer's OPEN: validation (each error's NOTIFICATION) and what a session negotiates.

use super::*;

/// Sends `open` to a session in OpenSent; returns the actions and the session.
fn receive_open(config: SessionConfig, open: OpenInfo) -> (Vec<Action>, Session) {
    let mut session = session_in(config, State::OpenSent);
    let actions = session.handle(Event::BgpOpen(open));
    (actions, session)
}

/// The OPEN is rejected with `notification`.
#[track_caller]
fn assert_rejected(config: SessionConfig, open: OpenInfo, notification: NotificationInfo) {
    let (actions, session) = receive_open(config, open);
    assert_eq!(
        actions,
        teardown(
            Some(notification.clone()),
            &[Timer::Hold],
            DownReason::ErrorDetected(notification),
        )
    );
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.connect_retry_counter(), 1);
}

#[track_caller]
fn assert_accepted(config: SessionConfig, open: OpenInfo) -> Negotiated {
    let (_, session) = receive_open(config, open);
    assert_eq!(session.state(), State::OpenConfirm);
    session.negotiated().unwrap().clone()
}

#[test]
fn open_bad_version() {
    for version in [3, 5] {
        assert_rejected(
            config(),
            OpenInfo {
                version,
                ..peer_open()
            },
            // Data: the version we support, 2 octets.
            NotificationInfo::new(2, 1, vec![0, 4]),
        );
    }
}

#[test]
fn open_bad_peer_as() {
    let bad_peer_as = NotificationInfo::new(2, 2, vec![]);
    let from_as = |asn: u32| OpenInfo {
        my_as: asn,
        capabilities: Capabilities {
            four_octet_as: Some(asn),
            ..peer_open().capabilities
        },
        ..peer_open()
    };
    // Not the configured AS.
    assert_rejected(config(), from_as(65003), bad_peer_as.clone());
    // External: anything but ours.
    let external = SessionConfig {
        remote_as: RemoteAs::External,
        ..config()
    };
    assert_rejected(external.clone(), from_as(LOCAL_AS), bad_peer_as.clone());
    assert_eq!(assert_accepted(external, from_as(64512)).peer_as, 64512);
    // Internal: ours only.
    let internal = SessionConfig {
        remote_as: RemoteAs::Internal,
        ..config()
    };
    assert_rejected(internal.clone(), from_as(PEER_AS), bad_peer_as.clone());
    assert_eq!(
        assert_accepted(internal, from_as(LOCAL_AS)).peer_as,
        LOCAL_AS
    );
    // AS 0 (RFC 7607), with or without the 4-octet capability.
    let any = SessionConfig {
        remote_as: RemoteAs::External,
        ..config()
    };
    assert_rejected(any.clone(), from_as(0), bad_peer_as.clone());
    let mut old_zero = from_as(0);
    old_zero.capabilities.four_octet_as = None;
    assert_rejected(any, old_zero, bad_peer_as.clone());
    // My Autonomous System contradicting the 4-octet AS capability.
    let mut inconsistent = peer_open();
    inconsistent.my_as = 65010;
    assert_rejected(config(), inconsistent, bad_peer_as);
}

#[test]
fn open_bad_hold_time() {
    for hold_time in [1, 2] {
        assert_rejected(
            config(),
            OpenInfo {
                hold_time,
                ..peer_open()
            },
            NotificationInfo::new(2, 6, vec![]),
        );
    }
    // 0 only when we propose 0 too (see `hardening_tests.rs`).
    assert_rejected(
        config(),
        OpenInfo {
            hold_time: 0,
            ..peer_open()
        },
        NotificationInfo::new(2, 6, vec![]),
    );
    for hold_time in [3, u16::MAX] {
        assert_accepted(
            config(),
            OpenInfo {
                hold_time,
                ..peer_open()
            },
        );
    }
}

#[test]
fn open_bad_bgp_identifier() {
    let bad_id = NotificationInfo::new(2, 3, vec![]);
    assert_rejected(
        config(),
        OpenInfo {
            router_id: Ipv4Addr::UNSPECIFIED,
            ..peer_open()
        },
        bad_id.clone(),
    );
    // Our own identifier: rejected from an internal peer...
    let internal = SessionConfig {
        remote_as: RemoteAs::Internal,
        ..config()
    };
    let ibgp_open = OpenInfo {
        my_as: LOCAL_AS,
        router_id: LOCAL_ID,
        capabilities: Capabilities {
            four_octet_as: Some(LOCAL_AS),
            ..peer_open().capabilities
        },
        ..peer_open()
    };
    assert_rejected(internal, ibgp_open, bad_id);
    // ... legal from an external one (RFC 6286: unique within an AS only).
    assert_accepted(
        config(),
        OpenInfo {
            router_id: LOCAL_ID,
            ..peer_open()
        },
    );
}

#[test]
fn malformed_open_from_codec() {
    let (actions, session) = {
        let mut session = session_in(config(), State::OpenSent);
        let notification = NotificationInfo::open_error(open_error::UNSPECIFIC, Vec::new());
        (session.handle(Event::BgpOpenMsgErr(notification)), session)
    };
    let notification = NotificationInfo::new(2, 0, vec![]);
    assert_eq!(
        actions,
        teardown(
            Some(notification.clone()),
            &[Timer::Hold],
            DownReason::ErrorDetected(notification)
        )
    );
    assert_eq!(session.state(), State::Idle);
}

#[test]
fn four_octet_as_peer() {
    const BIG_AS: u32 = 4_200_000_001;
    let config = SessionConfig {
        remote_as: RemoteAs::Exact(BIG_AS),
        ..config()
    };
    let open = OpenInfo {
        my_as: AS_TRANS,
        capabilities: Capabilities {
            four_octet_as: Some(BIG_AS),
            ..peer_open().capabilities
        },
        ..peer_open()
    };
    let negotiated = assert_accepted(config.clone(), open.clone());
    assert_eq!(negotiated.peer_as, BIG_AS);
    assert!(negotiated.four_octet_as);
    // A 2-octet-only speaker can only say AS_TRANS, which is not the configured AS.
    let old = OpenInfo {
        capabilities: Capabilities {
            four_octet_as: None,
            ..open.capabilities
        },
        ..open
    };
    assert_rejected(config, old, NotificationInfo::new(2, 2, vec![]));
}

#[test]
fn two_octet_only_peer() {
    let open = OpenInfo {
        capabilities: Capabilities {
            four_octet_as: None,
            ..peer_open().capabilities
        },
        ..peer_open()
    };
    let negotiated = assert_accepted(config(), open);
    assert_eq!(negotiated.peer_as, PEER_AS);
    assert!(!negotiated.four_octet_as);
}

#[test]
fn four_octet_local_as_is_sent_as_as_trans() {
    const BIG_AS: u32 = 4_200_000_000;
    let config = SessionConfig {
        local_as: BIG_AS,
        // Ignored: the OPEN carries the local AS.
        capabilities: Capabilities {
            four_octet_as: None,
            ..config().capabilities
        },
        ..config()
    };
    let mut session = session_in(config, State::Connect);
    let actions = session.handle(Event::TcpCrAcked);
    let Some(Action::SendOpen(open)) = actions.get(1) else {
        panic!("no OPEN in {actions:?}")
    };
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(open.capabilities.four_octet_as, Some(BIG_AS));
    assert_eq!(open.asn(), Some(BIG_AS));
}

#[test]
fn families_negotiation() {
    let with_families = |config: SessionConfig, ours: &[(Afi, Safi)]| SessionConfig {
        capabilities: Capabilities {
            multiprotocol: ours.iter().copied().collect(),
            ..config.capabilities
        },
        ..config
    };
    let open_with = |theirs: &[(Afi, Safi)]| OpenInfo {
        capabilities: Capabilities {
            multiprotocol: theirs.iter().copied().collect(),
            ..peer_open().capabilities
        },
        ..peer_open()
    };
    let families = |ours: &[(Afi, Safi)], theirs: &[(Afi, Safi)]| {
        assert_accepted(with_families(config(), ours), open_with(theirs)).families
    };
    assert_eq!(families(&[V4, V6], &[V6]), [V6].into());
    assert_eq!(families(&[V4, V6], &[V4, V6]), [V4, V6].into());
    // No Multiprotocol capability: IPv4 unicast, on either side.
    assert_eq!(families(&[], &[]), [V4].into());
    assert_eq!(families(&[V4, V6], &[]), [V4].into());
    assert_eq!(families(&[], &[V4, V6]), [V4].into());
    // Nothing in common: established all the same, with nothing to exchange.
    assert_eq!(families(&[V6], &[]), BTreeSet::new());
}

#[test]
fn extended_next_hop_negotiation() {
    let v4_over_v6 = (Afi::Ipv4, Safi::Unicast, Afi::Ipv6);
    let v6_over_v4 = (Afi::Ipv6, Safi::Unicast, Afi::Ipv4);
    let config = SessionConfig {
        capabilities: Capabilities {
            multiprotocol: [V4, V6].into(),
            extended_next_hop: [v4_over_v6, v6_over_v4].into(),
            ..config().capabilities
        },
        ..config()
    };
    let open = OpenInfo {
        capabilities: Capabilities {
            multiprotocol: [V4].into(),
            extended_next_hop: [v4_over_v6, v6_over_v4].into(),
            ..peer_open().capabilities
        },
        ..peer_open()
    };
    // IPv6 is not negotiated, so neither is its encoding.
    let negotiated = assert_accepted(config.clone(), open.clone());
    assert_eq!(negotiated.extended_next_hop, [v4_over_v6].into());
    let mut open = open;
    open.capabilities.extended_next_hop.clear();
    assert_eq!(
        assert_accepted(config, open).extended_next_hop,
        BTreeSet::new()
    );
}

#[test]
fn route_refresh_negotiation() {
    let open = |route_refresh| OpenInfo {
        capabilities: Capabilities {
            route_refresh,
            ..peer_open().capabilities
        },
        ..peer_open()
    };
    assert!(assert_accepted(config(), open(true)).route_refresh);
    assert!(!assert_accepted(config(), open(false)).route_refresh);
    let not_offered = SessionConfig {
        capabilities: Capabilities {
            route_refresh: false,
            ..config().capabilities
        },
        ..config()
    };
    assert!(!assert_accepted(not_offered, open(true)).route_refresh);
}

#[test]
fn hold_time_negotiation() {
    let hold = |ours: u16, theirs: u16| {
        let config = SessionConfig {
            hold_time: ours,
            ..config()
        };
        let negotiated = assert_accepted(
            config,
            OpenInfo {
                hold_time: theirs,
                ..peer_open()
            },
        );
        (negotiated.hold_time, negotiated.keepalive)
    };
    assert_eq!(hold(90, 30), (30, Duration::from_secs(10)));
    assert_eq!(hold(9, 90), (9, Duration::from_secs(3)));
    assert_eq!(hold(90, 3), (3, Duration::from_secs(1)));
    assert_eq!(
        hold(90, 4),
        (
            4,
            Duration::from_millis(1333) + Duration::from_nanos(333_333)
        )
    );
    assert_eq!(hold(0, 90), (0, Duration::ZERO));
    assert_eq!(hold(0, 0), (0, Duration::ZERO));
}

#[test]
fn hold_time_zero_runs_no_timers() {
    // Hold time 0 is accepted only when configured (see `hardening_tests.rs`).
    let zero_hold = SessionConfig {
        hold_time: 0,
        ..config()
    };
    let mut session = session_in(zero_hold, State::OpenSent);
    let open = OpenInfo {
        hold_time: 0,
        ..peer_open()
    };
    // The OpenSent hold timer goes, no keepalive timer starts.
    assert_eq!(
        session.handle(Event::BgpOpen(open)),
        [Action::SendKeepalive, stop(Timer::Hold)]
    );
    let negotiated = Negotiated {
        hold_time: 0,
        keepalive: Duration::ZERO,
        ..negotiated()
    };
    assert_eq!(
        session.handle(Event::KeepAliveMsg),
        [Action::Established(negotiated)]
    );
    assert_eq!(session.handle(Event::KeepAliveMsg), NOTHING);
    assert_eq!(session.handle(Event::UpdateMsg), NOTHING);
    // No timer runs, so none can expire.
    assert_eq!(session.handle(Event::HoldTimerExpires), NOTHING);
    assert_eq!(session.handle(Event::KeepaliveTimerExpires), NOTHING);
    assert_eq!(session.state(), State::Established);
    assert_eq!(
        session.handle(Event::ManualStop(shutdown())),
        teardown(Some(shutdown()), &[], DownReason::ManualStop)
    );
}

/// Graceful restart (RFC 4724): our OPEN carries the configured capability; the session
/// negotiates it only when the peer sent one too, with N only when both did.
#[test]
fn graceful_restart_is_sent_and_negotiated() {
    use crate::bgp::graceful_restart::{GracefulRestartCapability, GracefulRestartFamily};
    let capability = |notification: bool, forwarding: bool| GracefulRestartCapability {
        restarted: false,
        notification,
        restart_time: 120,
        families: vec![GracefulRestartFamily {
            afi: Afi::Ipv4,
            safi: Safi::Unicast,
            forwarding,
        }],
    };
    let mut config = config();
    config.capabilities.graceful_restart = Some(capability(true, false));
    let mut session = Session::new(config.clone()).unwrap();
    session.handle(Event::ManualStart);
    let actions = session.handle(Event::TcpCrAcked);
    let Some(Action::SendOpen(open)) = actions.iter().find(|a| matches!(a, Action::SendOpen(_)))
    else {
        panic!("no OPEN sent: {actions:?}");
    };
    assert_eq!(
        open.capabilities.graceful_restart,
        Some(capability(true, false))
    );
    let established = |peer: Option<GracefulRestartCapability>| {
        let mut session = Session::new(config.clone()).unwrap();
        let mut open = peer_open();
        open.capabilities.graceful_restart = peer;
        for event in [Event::ManualStart, Event::TcpCrAcked, Event::BgpOpen(open)] {
            session.handle(event);
        }
        let actions = session.handle(Event::KeepAliveMsg);
        match actions.last() {
            Some(Action::Established(negotiated)) => negotiated.graceful_restart.clone(),
            other => panic!("not established: {other:?}"),
        }
    };
    assert_eq!(established(None), None);
    let with_n = established(Some(capability(true, true))).unwrap();
    assert!(with_n.notification);
    assert!(with_n.forwarding_preserved(Afi::Ipv4));
    assert_eq!(with_n.families, [V4].into());
    let without_n = established(Some(capability(false, false))).unwrap();
    assert!(!without_n.notification);
    assert!(!without_n.forwarding_preserved(Afi::Ipv4));
}
