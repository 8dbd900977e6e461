//! What an Established session agreed on, for `show neighbors`: the timers in use and the
//! capabilities both sides announced (only those change how the session behaves).

use crate::bgp::{
    fsm::Negotiated,
    packet::types::{Afi, Safi},
};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NegotiatedStatus {
    /// The smaller of both proposals; 0: no hold timer and no keepalives.
    pub hold_time_seconds: u16,
    /// Our KEEPALIVE interval, a third of the hold time.
    pub keepalive_seconds: u64,
    /// Capabilities both announced, e.g. `ipv4-unicast`, `four-octet-as`, `route-refresh`,
    /// `extended-next-hop ipv4-unicast/ipv6`, `graceful-restart`.
    pub capabilities: Vec<String>,
}

fn family(afi: Afi, safi: Safi) -> String {
    let afi = match afi {
        Afi::Ipv4 => "ipv4",
        Afi::Ipv6 => "ipv6",
    };
    let safi = match safi {
        Safi::Unicast => "unicast",
    };
    format!("{afi}-{safi}")
}

impl From<&Negotiated> for NegotiatedStatus {
    fn from(negotiated: &Negotiated) -> Self {
        let mut capabilities: Vec<String> = negotiated
            .families
            .iter()
            .map(|(afi, safi)| family(*afi, *safi))
            .collect();
        if negotiated.four_octet_as {
            capabilities.push("four-octet-as".to_owned());
        }
        if negotiated.route_refresh {
            capabilities.push("route-refresh".to_owned());
        }
        for (afi, safi, next_hop_afi) in &negotiated.extended_next_hop {
            let next_hop = family(*next_hop_afi, Safi::Unicast);
            let next_hop = next_hop.trim_end_matches("-unicast");
            capabilities.push(format!(
                "extended-next-hop {}/{next_hop}",
                family(*afi, *safi)
            ));
        }
        if negotiated.graceful_restart.is_some() {
            capabilities.push("graceful-restart".to_owned());
        }
        NegotiatedStatus {
            hold_time_seconds: negotiated.hold_time,
            keepalive_seconds: negotiated.keepalive.as_secs(),
            capabilities,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{net::Ipv4Addr, time::Duration};

    use super::*;

    #[test]
    fn lists_timers_and_agreed_capabilities() {
        let negotiated = Negotiated {
            peer_as: 65001,
            peer_router_id: Ipv4Addr::new(10, 0, 0, 1),
            hold_time: 9,
            keepalive: Duration::from_secs(3),
            four_octet_as: true,
            families: [(Afi::Ipv4, Safi::Unicast), (Afi::Ipv6, Safi::Unicast)].into(),
            route_refresh: false,
            extended_next_hop: [(Afi::Ipv4, Safi::Unicast, Afi::Ipv6)].into(),
            graceful_restart: None,
        };
        assert_eq!(
            NegotiatedStatus::from(&negotiated),
            NegotiatedStatus {
                hold_time_seconds: 9,
                keepalive_seconds: 3,
                capabilities: vec![
                    "ipv4-unicast".to_owned(),
                    "ipv6-unicast".to_owned(),
                    "four-octet-as".to_owned(),
                    "extended-next-hop ipv4-unicast/ipv6".to_owned(),
                ],
            }
        );
    }
}
