use super::super::{Codec, MAX_MESSAGE_LEN, Message};
use super::*;

/// Hand-assembled from RFC 4271 4.1/4.5 and RFC 9003 2 (a capture from FRR/BIRD will be
/// added by the interop tests): Cease/Administrative Shutdown, "maintenance".
const SHUTDOWN_MAINTENANCE: &[u8] = &[
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // marker
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, //
    0x00, 0x21, // length 33
    0x03, // type NOTIFICATION
    0x06, 0x02, // Cease / Administrative Shutdown
    0x0b, // communication length 11
    b'm', b'a', b'i', b'n', b't', b'e', b'n', b'a', b'n', b'c', b'e',
];

fn decode(bytes: &[u8]) -> Notification {
    match Message::decode(bytes, &Codec::default()).unwrap().message {
        Message::Notification(notification) => notification,
        other => panic!("not a NOTIFICATION: {other:?}"),
    }
}

#[test]
fn golden_shutdown_communication() {
    let notification = Notification::administrative_shutdown("maintenance");
    assert_eq!(
        &Message::Notification(notification.clone()).encode(&Codec::default())[..],
        SHUTDOWN_MAINTENANCE
    );
    let decoded = decode(SHUTDOWN_MAINTENANCE);
    assert_eq!(decoded, notification);
    assert_eq!(decoded.shutdown_communication(), Some("maintenance"));
    assert_eq!(
        decoded.to_string(),
        "Cease/Administrative Shutdown: \"maintenance\""
    );
}

#[test]
fn shutdown_communication_is_cut_at_255_octets_on_a_character_boundary() {
    // 200 two-octet characters: 400 octets, cut to 127 characters = 254 octets.
    let long = "é".repeat(200);
    let notification = Notification::administrative_reset(&long);
    assert_eq!(notification.data[0], 254);
    assert_eq!(notification.data.len(), 255);
    assert_eq!(notification.shutdown_communication(), Some(&long[..254]));

    let ascii = "x".repeat(300);
    let notification = Notification::administrative_shutdown(&ascii);
    assert_eq!(notification.data[0], 255);
    assert_eq!(notification.shutdown_communication(), Some(&ascii[..255]));
}

#[test]
fn empty_and_malformed_shutdown_communications() {
    let empty = Notification::administrative_shutdown("");
    assert_eq!(empty.data, vec![0]);
    assert_eq!(empty.shutdown_communication(), None);
    assert_eq!(empty.to_string(), "Cease/Administrative Shutdown");

    let no_data = Notification::new(6, 2, vec![]);
    assert_eq!(no_data.to_string(), "Cease/Administrative Shutdown");

    let overrun = Notification::new(6, 2, vec![10, b'a', b'b']);
    assert_eq!(overrun.shutdown_communication(), None);
    assert_eq!(
        overrun.to_string(),
        "Cease/Administrative Shutdown (malformed shutdown communication: 0a6162)"
    );

    let invalid_utf8 = Notification::new(6, 4, vec![2, 0xc3, 0x28]);
    assert_eq!(invalid_utf8.shutdown_communication(), None);
    assert_eq!(
        invalid_utf8.to_string(),
        "Cease/Administrative Reset (malformed shutdown communication: 02c328)"
    );

    // Only Cease subcodes 2 and 4 carry a communication.
    let peer_deconfigured = Notification::new(6, 3, vec![1, b'x']);
    assert_eq!(peer_deconfigured.shutdown_communication(), None);
}

#[test]
fn display_names_codes_and_subcodes() {
    let cases = [
        (Notification::hold_timer_expired(), "Hold Timer Expired"),
        (
            Notification::new(1, 1, vec![]),
            "Message Header Error/Connection Not Synchronized",
        ),
        (
            Notification::new(1, 3, vec![9]),
            "Message Header Error/Bad Message Type (data: 09)",
        ),
        (
            Notification::unsupported_version(4),
            "OPEN Message Error/Unsupported Version Number (data: 0004)",
        ),
        (
            Notification::unacceptable_hold_time(),
            "OPEN Message Error/Unacceptable Hold Time",
        ),
        (
            Notification::new(3, 11, vec![]),
            "UPDATE Message Error/Malformed AS_PATH",
        ),
        (
            Notification::new(3, 0, vec![]),
            "UPDATE Message Error/Unspecific",
        ),
        (
            Notification::new(3, 42, vec![]),
            "UPDATE Message Error/subcode 42",
        ),
        (
            Notification::fsm_error(FsmSubcode::UnexpectedMessageInOpenConfirm),
            "Finite State Machine Error/Receive Unexpected Message in OpenConfirm State",
        ),
        (
            Notification::peer_deconfigured(),
            "Cease/Peer De-configured",
        ),
        (Notification::new(6, 0, vec![]), "Cease"),
        (
            Notification::maximum_prefixes_reached(Afi::Ipv6, Safi::Unicast, 1000),
            "Cease/Maximum Number of Prefixes Reached (IPv6 unicast, limit 1000)",
        ),
        (
            Notification::hard_reset(&Notification::administrative_shutdown("bye")),
            "Cease/Hard Reset (Cease/Administrative Shutdown: \"bye\")",
        ),
        (
            Notification::new(7, 1, vec![]),
            "ROUTE-REFRESH Message Error/Invalid Message Length",
        ),
        (
            Notification::new(9, 1, vec![1, 2]),
            "error code 9/subcode 1 (data: 0102)",
        ),
    ];
    for (notification, text) in cases {
        assert_eq!(notification.to_string(), text);
    }
}

#[test]
fn long_data_is_cut_when_encoding_and_displaying() {
    let notification = Notification::new(3, 1, vec![0xab; 5000]);
    let encoded = Message::Notification(notification.clone()).encode(&Codec::default());
    assert_eq!(encoded.len(), MAX_MESSAGE_LEN);
    let decoded = decode(&encoded);
    assert_eq!(decoded.data.len(), MAX_MESSAGE_LEN - 21);
    assert!(notification.to_string().ends_with("abab...)"));
}

#[test]
fn round_trip_every_constructor() {
    let notifications = [
        Notification::hold_timer_expired(),
        Notification::fsm_error(FsmSubcode::UnexpectedMessageInEstablished),
        Notification::unsupported_version(4),
        Notification::bad_peer_as(),
        Notification::bad_bgp_identifier(),
        Notification::unacceptable_hold_time(),
        Notification::unsupported_capability(&[0x41, 0x04, 0, 0, 0xfd, 0xe9]),
        Notification::role_mismatch(),
        Notification::maximum_prefixes_reached(Afi::Ipv4, Safi::Unicast, 10),
        Notification::administrative_shutdown("maintenance"),
        Notification::administrative_reset("new config"),
        Notification::peer_deconfigured(),
        Notification::connection_rejected(),
        Notification::other_configuration_change(),
        Notification::connection_collision_resolution(),
        Notification::out_of_resources(),
        Notification::bfd_down(),
        Notification::hard_reset(&Notification::hold_timer_expired()),
    ];
    for notification in notifications {
        let encoded = Message::Notification(notification.clone()).encode(&Codec::default());
        assert_eq!(decode(&encoded), notification);
    }
}
