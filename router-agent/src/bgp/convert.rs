//! Conversions between the codec's messages and the FSM's views of them. The FSM only sees
//! what it negotiates; everything else stays in the codec's types.

use super::fsm::{Capabilities, NotificationInfo, OpenInfo};
use super::packet::{Capability, Notification, Open};

impl From<&Open> for OpenInfo {
    fn from(open: &Open) -> Self {
        let mut capabilities = Capabilities::default();
        for capability in &open.capabilities {
            match capability {
                Capability::Multiprotocol { afi, safi } => {
                    capabilities.multiprotocol.insert((*afi, *safi));
                }
                Capability::RouteRefresh => capabilities.route_refresh = true,
                Capability::FourOctetAs(asn) => capabilities.four_octet_as = Some(*asn),
                Capability::ExtendedNextHop(tuples) => capabilities
                    .extended_next_hop
                    .extend(tuples.iter().copied()),
                // RFC 4724 3: of several instances, the last one counts.
                Capability::GracefulRestart(graceful_restart) => {
                    capabilities.graceful_restart = Some(graceful_restart.clone())
                }
                _ => {}
            }
        }
        // The codec already folded the 4-octet AS into `my_as`; the FSM wants the 2-octet
        // field as sent, which is AS_TRANS whenever the real AS does not fit.
        let my_as = match capabilities.four_octet_as {
            Some(asn) if asn > u32::from(u16::MAX) => super::packet::AS_TRANS,
            _ => open.my_as,
        };
        OpenInfo {
            version: open.version,
            my_as,
            hold_time: open.hold_time,
            router_id: open.router_id,
            capabilities,
        }
    }
}

impl From<&OpenInfo> for Open {
    fn from(info: &OpenInfo) -> Self {
        let caps = &info.capabilities;
        let mut capabilities: Vec<Capability> = caps
            .multiprotocol
            .iter()
            .map(|(afi, safi)| Capability::Multiprotocol {
                afi: *afi,
                safi: *safi,
            })
            .collect();
        if caps.route_refresh {
            capabilities.push(Capability::RouteRefresh);
        }
        if let Some(asn) = caps.four_octet_as {
            capabilities.push(Capability::FourOctetAs(asn));
        }
        if !caps.extended_next_hop.is_empty() {
            capabilities.push(Capability::ExtendedNextHop(
                caps.extended_next_hop.iter().copied().collect(),
            ));
        }
        if let Some(graceful_restart) = &caps.graceful_restart {
            capabilities.push(Capability::GracefulRestart(graceful_restart.clone()));
        }
        Open {
            version: info.version,
            my_as: info.asn().unwrap_or(info.my_as),
            hold_time: info.hold_time,
            router_id: info.router_id,
            capabilities,
        }
    }
}

impl From<&Notification> for NotificationInfo {
    fn from(n: &Notification) -> Self {
        NotificationInfo {
            code: n.code,
            subcode: n.subcode,
            data: n.data.clone(),
        }
    }
}

impl From<&NotificationInfo> for Notification {
    fn from(n: &NotificationInfo) -> Self {
        Notification {
            code: n.code,
            subcode: n.subcode,
            data: n.data.clone(),
        }
    }
}
