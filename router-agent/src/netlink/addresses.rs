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

/// Adding and removing the host's addresses: a service's VIPs on its dummy interface
/// (`[[service]] assign = true`).
impl super::Netlink {
    /// Puts `address` on `ifindex` as a host address (/32 or /128); already there is fine.
    /// IPv6 skips duplicate address detection (`IFA_F_NODAD`): an anycast VIP is on every
    /// host by design, and DAD would hold it "tentative" (unusable) for a second or more.
    pub async fn add_host_address(
        &self,
        ifindex: u32,
        address: std::net::IpAddr,
    ) -> Result<(), super::NetlinkError> {
        use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST};
        let message = host_address_message(ifindex, address, true);
        self.request(
            rtnetlink::packet_route::RouteNetlinkMessage::NewAddress(message),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await
        .map(drop)
    }

    /// Removes `address` from `ifindex`; already gone is fine.
    pub async fn remove_host_address(
        &self,
        ifindex: u32,
        address: std::net::IpAddr,
    ) -> Result<(), super::NetlinkError> {
        use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST};
        let message = host_address_message(ifindex, address, false);
        match self
            .request(
                rtnetlink::packet_route::RouteNetlinkMessage::DelAddress(message),
                NLM_F_REQUEST | NLM_F_ACK,
            )
            .await
        {
            Err(err) if matches!(err.errno(), Some(libc::EADDRNOTAVAIL | libc::ENODEV)) => Ok(()),
            other => other.map(drop),
        }
    }
}

fn host_address_message(ifindex: u32, address: std::net::IpAddr, nodad: bool) -> AddressMessage {
    use rtnetlink::packet_route::{
        AddressFamily,
        address::{AddressFlags, AddressScope},
    };
    let mut message = AddressMessage::default();
    message.header.index = ifindex;
    message.header.scope = AddressScope::Universe;
    message.header.family = if address.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    message.header.prefix_len = if address.is_ipv4() { 32 } else { 128 };
    message.attributes.push(AddressAttribute::Local(address));
    message.attributes.push(AddressAttribute::Address(address));
    if nodad && address.is_ipv6() {
        message
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    message
}
