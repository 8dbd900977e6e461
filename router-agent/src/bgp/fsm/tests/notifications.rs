//! NOTIFICATION helpers and the events a received one becomes.

use super::*;

#[test]
fn cease_shutdown_communication() {
    // Empty message: a zero length octet.
    assert_eq!(
        NotificationInfo::cease(CeaseSubcode::AdministrativeShutdown, Some("")).data,
        [0u8]
    );
    assert_eq!(
        NotificationInfo::cease(CeaseSubcode::AdministrativeShutdown, None).data,
        [0u8; 0]
    );
    // Only Administrative Shutdown and Reset carry one.
    assert_eq!(
        NotificationInfo::cease(CeaseSubcode::PeerDeConfigured, Some("bye")),
        NotificationInfo::new(6, 3, vec![])
    );
    // Truncated to 255 bytes on a character boundary: 'é' is 2 bytes, so 127 of them.
    let long = "é".repeat(300);
    let cease = NotificationInfo::cease(CeaseSubcode::AdministrativeReset, Some(&long));
    assert_eq!(cease.data[0], 254);
    assert_eq!(cease.data.len(), 255);
    assert_eq!(cease.shutdown_message(), Some("é".repeat(127).as_str()));
    let ascii = "a".repeat(300);
    let cease = NotificationInfo::cease(CeaseSubcode::AdministrativeShutdown, Some(&ascii));
    assert_eq!(cease.data[0], 255);
    assert_eq!(cease.shutdown_message(), Some(&ascii[..255]));
}

#[test]
fn shutdown_message_decoding() {
    let cease = |subcode, data: &[u8]| NotificationInfo::new(6, subcode, data.to_vec());
    assert_eq!(cease(2, b"\x05hello").shutdown_message(), Some("hello"));
    // Trailing bytes past the length are not part of it.
    assert_eq!(cease(4, b"\x02hello").shutdown_message(), Some("he"));
    assert_eq!(cease(2, b"").shutdown_message(), None);
    assert_eq!(cease(2, b"\x00").shutdown_message(), None);
    // Length past the data, invalid UTF-8.
    assert_eq!(cease(2, b"\x09hello").shutdown_message(), None);
    assert_eq!(cease(2, b"\x02\xff\xfe").shutdown_message(), None);
    // Not a subcode with a Shutdown Communication, not a Cease.
    assert_eq!(cease(3, b"\x05hello").shutdown_message(), None);
    assert_eq!(
        NotificationInfo::new(2, 2, b"\x05hello".to_vec()).shutdown_message(),
        None
    );
}

#[test]
fn cease_subcodes() {
    for subcode in 1..=10 {
        let cease = CeaseSubcode::try_from(subcode).unwrap();
        assert_eq!(cease as u8, subcode);
        assert_eq!(
            NotificationInfo::cease(cease, None).cease_subcode(),
            Some(cease)
        );
    }
    assert_eq!(CeaseSubcode::try_from(0), Err(0));
    assert_eq!(CeaseSubcode::try_from(11), Err(11));
    assert_eq!(NotificationInfo::hold_timer_expired().cease_subcode(), None);
}

#[test]
fn cease_max_prefixes_data() {
    assert_eq!(
        NotificationInfo::cease_max_prefixes(Afi::Ipv6, Safi::Unicast, 0x0001_0203),
        NotificationInfo::new(6, 1, vec![0, 2, 1, 0, 1, 2, 3])
    );
}

#[test]
fn notification_display() {
    let shown = |notification: NotificationInfo| notification.to_string();
    assert_eq!(
        shown(NotificationInfo::hold_timer_expired()),
        "4/0 (Hold Timer Expired)"
    );
    assert_eq!(
        shown(shutdown()),
        "6/2 (Cease / Administrative Shutdown) \"maintenance\""
    );
    // Control characters are escaped, not written to the log.
    assert_eq!(
        shown(NotificationInfo::cease(
            CeaseSubcode::AdministrativeShutdown,
            Some("a\nb")
        )),
        "6/2 (Cease / Administrative Shutdown) \"a\\nb\""
    );
    assert_eq!(
        shown(header_err()),
        "1/2 (Message Header Error / Bad Message Length) [2 bytes of data]"
    );
    assert_eq!(
        shown(fsm_err(2)),
        "5/2 (Finite State Machine Error / Receive Unexpected Message in OpenConfirm State)"
    );
    assert_eq!(
        shown(NotificationInfo::new(3, 99, vec![])),
        "3/99 (UPDATE Message Error)"
    );
    assert_eq!(shown(NotificationInfo::new(42, 1, vec![])), "42/1");
}

#[test]
fn received_notification_events() {
    assert_eq!(
        Event::notification(version_err()),
        Event::NotifMsgVerErr(version_err())
    );
    assert_eq!(
        Event::notification(peer_cease()),
        Event::NotifMsg(peer_cease())
    );
    // Other OPEN errors are plain NotifMsg.
    let bad_as = NotificationInfo::new(2, 2, vec![]);
    assert_eq!(Event::notification(bad_as.clone()), Event::NotifMsg(bad_as));
}

#[test]
fn event_numbers_and_names() {
    let events = all_events();
    let numbers: Vec<Option<u8>> = events.iter().map(Event::number).collect();
    assert_eq!(
        numbers,
        [
            1, 2, 3, 8, 9, 10, 11, 13, 16, 17, 18, 19, 21, 22, 23, 24, 25, 26, 27, 28
        ]
        .map(Some)
        .into_iter()
        .chain([None, None])
        .collect::<Vec<_>>()
    );
    let names: BTreeSet<&str> = events.iter().map(Event::name).collect();
    assert_eq!(names.len(), events.len());
}
