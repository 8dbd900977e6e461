//! The host's own addresses: RTM_NEWADDR / RTM_DELADDR -> [`AddressInfo`].

use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};

use super::AddressInfo;

/// RTM_NEWADDR / RTM_DELADDR -> [`AddressInfo`]; `None` (logged) for anything but IPv4/IPv6
/// or without an address.
pub(super) fn parse_address(msg: &AddressMessage) -> Option<AddressInfo> {
    let mut address = None;
    let mut local = None;
    let mut broadcast = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Broadcast(b) => broadcast = Some(*b),
            _ => {}
        }
    }
    // IFA_LOCAL is the host's address; IFA_ADDRESS is the same, except on point-to-point
    // configurations (`ip addr add A peer B`) where it is the peer. IPv6 usually sends only
    // IFA_ADDRESS. Same rule as iproute2.
    let Some(addr) = local.or(address) else {
        tracing::debug!("skipping address message without address: {:?}", msg.header);
        return None;
    };
    let max_len = if addr.is_ipv4() { 32 } else { 128 };
    if msg.header.prefix_len > max_len {
        tracing::debug!(
            "skipping address {addr} with prefix length {}",
            msg.header.prefix_len
        );
        return None;
    }
    Some(AddressInfo {
        ifindex: msg.header.index,
        addr,
        prefix_len: msg.header.prefix_len,
        broadcast: if addr.is_ipv4() { broadcast } else { None },
    })
}
