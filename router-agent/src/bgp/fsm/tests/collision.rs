//! Connection collisions (RFC 4271 6.8).

use super::*;

#[test]
fn collision_winner_compares_identifiers_then_as() {
    let low = Ipv4Addr::new(10, 0, 0, 1);
    let high = Ipv4Addr::new(10, 0, 0, 2);
    assert_eq!(collision_winner(low, 65001, high, 65002), Side::Remote);
    assert_eq!(collision_winner(high, 65001, low, 65002), Side::Local);
    // As unsigned integers, not per octet text.
    assert_eq!(
        collision_winner(
            Ipv4Addr::new(9, 255, 255, 255),
            1,
            Ipv4Addr::new(10, 0, 0, 0),
            1
        ),
        Side::Remote
    );
    assert_eq!(
        collision_winner(
            Ipv4Addr::new(200, 0, 0, 0),
            1,
            Ipv4Addr::new(100, 255, 255, 255),
            1
        ),
        Side::Local
    );
    // Equal identifiers (between ASes, RFC 6286): the larger AS.
    assert_eq!(collision_winner(low, 65001, low, 65002), Side::Remote);
    assert_eq!(collision_winner(low, 65002, low, 65001), Side::Local);
}

/// The driver's collision procedure with two sessions to one peer: ours (outgoing) and the
/// peer's (incoming). Returns (outgoing, incoming) after resolution.
fn collide(peer_id: Ipv4Addr) -> (Session, Session) {
    let open = OpenInfo {
        router_id: peer_id,
        ..peer_open()
    };
    let mut outgoing = session_in(config(), State::OpenSent);
    // The peer's connection arrives while ours is in OpenSent: a second, passive session.
    let mut incoming = Session::new(passive_config()).unwrap();
    assert_eq!(incoming.handle(Event::AutomaticStart), NOTHING);
    incoming.handle(Event::TcpConnectionConfirmed);
    assert_eq!(incoming.state(), State::OpenSent);
    // The peer's OPEN arrives on its connection first.
    incoming.handle(Event::BgpOpen(open.clone()));
    assert_eq!(incoming.state(), State::OpenConfirm);
    let dump = |session: &mut Session| {
        assert_eq!(
            session.handle(Event::OpenCollisionDump).first(),
            Some(&Action::SendNotification(collision_cease()))
        );
        assert_eq!(session.state(), State::Idle);
    };
    if incoming.wins_collision().unwrap() {
        dump(&mut outgoing);
    } else {
        dump(&mut incoming);
        outgoing.handle(Event::BgpOpen(open));
        assert_eq!(outgoing.wins_collision(), Some(true));
    }
    (outgoing, incoming)
}

#[test]
fn collision_higher_peer_identifier_keeps_its_connection() {
    let (outgoing, mut incoming) = collide(Ipv4Addr::new(192, 0, 2, 200));
    assert_eq!(outgoing.state(), State::Idle);
    assert_eq!(incoming.state(), State::OpenConfirm);
    assert!(matches!(
        incoming.handle(Event::KeepAliveMsg).last(),
        Some(Action::Established(_))
    ));
}

#[test]
fn collision_higher_local_identifier_keeps_our_connection() {
    let (mut outgoing, incoming) = collide(Ipv4Addr::new(192, 0, 2, 0));
    assert_eq!(incoming.state(), State::Idle);
    assert_eq!(outgoing.state(), State::OpenConfirm);
    assert!(matches!(
        outgoing.handle(Event::KeepAliveMsg).last(),
        Some(Action::Established(_))
    ));
}

#[test]
fn wins_collision_needs_the_peer_open() {
    assert_eq!(session_in(config(), State::OpenSent).wins_collision(), None);
    assert_eq!(session_in(config(), State::Idle).wins_collision(), None);
    // Ours is the lower identifier: our connection loses.
    assert_eq!(
        session_in(config(), State::Established).wins_collision(),
        Some(false)
    );
}
