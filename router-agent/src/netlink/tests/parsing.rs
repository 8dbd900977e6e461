//! Pure unit tests of message parsing and formatting (no root needed).

use super::*;

#[test]
fn mac_formatting() {
    assert_eq!(
        mac_to_string(&[0x02, 0, 0xab, 0x10, 0xff, 1]),
        "02:00:ab:10:ff:01"
    );
}

#[test]
fn nud_states() {
    use rtnetlink::packet_route::neighbour::NeighbourState as S;
    // Every state the kernel sends on, STALE included (the agent has it confirmed).
    for usable in [
        S::Reachable,
        S::Stale,
        S::Delay,
        S::Probe,
        S::Permanent,
        S::Noarp,
    ] {
        assert!(neighbors::nud_usable(usable), "{usable:?}");
    }
    for unusable in [S::Incomplete, S::Failed, S::None] {
        assert!(!neighbors::nud_usable(unusable), "{unusable:?}");
    }
    // Combined bits, as the kernel's state is a mask: usable if any valid bit is set.
    assert!(neighbors::nud_usable(S::Other(0x02 | 0x80)));
}

#[test]
fn neighbor_message_parsing() {
    use rtnetlink::packet_route::{
        AddressFamily,
        neighbour::{NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState},
    };
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.ifindex = 4;
    msg.header.state = NeighbourState::Reachable;
    msg.attributes = vec![
        NeighbourAttribute::Destination(addr("10.0.0.1").into()),
        NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 0, 1]),
    ];
    assert_eq!(
        neighbors::parse_neighbor(&msg),
        Some(NeighborInfo {
            ifindex: 4,
            addr: addr("10.0.0.1"),
            mac: Some([2, 0, 0, 0, 0, 1])
        })
    );
    assert!(!neighbors::needs_confirmation(&msg));
    // STALE: usable, and to be confirmed unless the kernel re-probes it anyway (managed).
    msg.header.state = NeighbourState::Stale;
    assert_eq!(
        neighbors::parse_neighbor(&msg).unwrap().mac,
        Some([2, 0, 0, 0, 0, 1])
    );
    assert!(neighbors::needs_confirmation(&msg));
    msg.attributes.push(NeighbourAttribute::ExtFlags(
        rtnetlink::packet_route::neighbour::NeighbourExtFlags::Managed,
    ));
    assert_eq!(
        neighbors::parse_neighbor(&msg).unwrap().mac,
        Some([2, 0, 0, 0, 0, 1])
    );
    assert!(!neighbors::needs_confirmation(&msg));
    msg.header.state = NeighbourState::Failed;
    assert_eq!(neighbors::parse_neighbor(&msg).unwrap().mac, None);
    msg.header.flags = NeighbourFlags::Proxy;
    assert_eq!(neighbors::parse_neighbor(&msg), None);
    msg.header.flags = NeighbourFlags::empty();
    msg.header.family = AddressFamily::Bridge;
    assert_eq!(neighbors::parse_neighbor(&msg), None);
}

#[test]
fn extack_parsing() {
    use rtnetlink::packet_core::NetlinkHeader;
    let mut outer = NetlinkHeader::default();
    outer.flags = NLM_F_CAPPED | NLM_F_ACK_TLVS;
    let mut payload = vec![0u8; 16]; // echoed request header
    let text = b"Nexthop has invalid gateway\0";
    let len = 4 + text.len();
    payload.extend((len as u16).to_ne_bytes());
    payload.extend(NLMSGERR_ATTR_MSG.to_ne_bytes());
    payload.extend(text);
    payload.resize(payload.len().next_multiple_of(4), 0);
    assert_eq!(
        extack_message(&outer, &payload).as_deref(),
        Some("Nexthop has invalid gateway")
    );
    outer.flags = NLM_F_CAPPED;
    assert_eq!(extack_message(&outer, &payload), None);
    // Garbage never panics.
    outer.flags = NLM_F_ACK_TLVS;
    assert_eq!(extack_message(&outer, &[0xff; 20]), None);
}
