//! Links: RTM_NEWLINK / RTM_DELLINK -> [`LinkInfo`].

use rtnetlink::packet_route::{
    AddressFamily,
    link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage, State},
};

use super::LinkInfo;

/// Whether a link message describes a network interface as such. Bridge port messages
/// (AF_BRIDGE, sent when a port joins or leaves a bridge or changes its VLANs) carry the port's
/// ifindex too: an RTM_DELLINK of that family only means "no longer a bridge port".
pub(super) fn is_interface_message(msg: &LinkMessage) -> bool {
    msg.header.interface_family == AddressFamily::Unspec
}

/// RTM_NEWLINK -> [`LinkInfo`]; `None` (logged) if the message lacks the name or the MTU.
pub(super) fn parse_link(msg: &LinkMessage) -> Option<LinkInfo> {
    let ifindex = msg.header.index;
    let mut name = None;
    let mut mac = None;
    let mut mtu = None;
    // A missing IFLA_OPERSTATE is treated like IF_OPER_UNKNOWN.
    let mut oper_ok = true;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Mtu(m) => mtu = Some(*m),
            // Only Ethernet-like links have a MAC we can forward with (loopback has an
            // all-zero 6-byte "address", tunnels have none or an IP address).
            LinkAttribute::Address(a) if msg.header.link_layer_type == LinkLayerType::Ether => {
                mac = <[u8; 6]>::try_from(a.as_slice()).ok();
            }
            LinkAttribute::OperState(s) => oper_ok = matches!(s, State::Up | State::Unknown),
            _ => {}
        }
    }
    let (Some(name), Some(mtu)) = (name, mtu) else {
        tracing::debug!("skipping link message for ifindex {ifindex} without name or MTU");
        return None;
    };
    Some(LinkInfo {
        ifindex,
        name,
        mac,
        mtu,
        up: msg.header.flags.contains(LinkFlags::Up) && oper_ok,
    })
}

impl super::Netlink {
    /// The ifindex of dummy interface `name`, created (and set up) if absent. An existing
    /// interface of that name is used whatever its kind: the operator chose it.
    pub async fn ensure_dummy(&self, name: &str) -> anyhow::Result<u32> {
        use anyhow::Context;
        use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};
        use rtnetlink::packet_route::RouteNetlinkMessage;
        if let Ok(ifindex) = super::ifindex_by_name(name) {
            self.set_up(ifindex).await?;
            return Ok(ifindex);
        }
        let message = rtnetlink::LinkDummy::new(name).up().build();
        match self
            .request(
                RouteNetlinkMessage::NewLink(message),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            )
            .await
        {
            // Created meanwhile by someone else: use it.
            Err(err) if err.errno() == Some(libc::EEXIST) => {}
            Err(err) if err.errno() == Some(libc::EOPNOTSUPP) => anyhow::bail!(
                "creating dummy interface {name:?}: this kernel has no dummy interfaces \
                 (CONFIG_DUMMY); create {name:?} yourself (any kind, e.g. `ip link add {name} \
                 type bridge`) or set assign_interface = \"lo\""
            ),
            other => {
                other.with_context(|| format!("creating dummy interface {name:?}"))?;
            }
        }
        let ifindex = super::ifindex_by_name(name)?;
        self.set_up(ifindex).await?;
        Ok(ifindex)
    }

    async fn set_up(&self, ifindex: u32) -> anyhow::Result<()> {
        use anyhow::Context;
        use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST};
        use rtnetlink::packet_route::RouteNetlinkMessage;
        let mut message = LinkMessage::default();
        message.header.index = ifindex;
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        self.request(
            RouteNetlinkMessage::SetLink(message),
            NLM_F_REQUEST | NLM_F_ACK,
        )
        .await
        .with_context(|| format!("setting interface {ifindex} up"))?;
        Ok(())
    }
}
