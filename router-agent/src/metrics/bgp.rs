//! BGP per neighbor: state, uptime, prefixes, messages, flaps, last error; graceful restart.
//! Read from `show neighbors`' view ([`NeighborMetrics`]).

use super::exposition::{Exposition, Labels, count, set};
use crate::bgp::{northbound::NeighborMetrics, peer::MESSAGE_TYPES};

/// The FSM states, as the `state` label spells them (one series each, 1 for the current).
const STATES: [&str; 6] = [
    "Idle",
    "Connect",
    "Active",
    "OpenSent",
    "OpenConfirm",
    "Established",
];

/// The `neighbor` label: the configured address, or an unnumbered neighbor's interface (its
/// link-local address may change; the interface does not).
pub fn neighbor_label(neighbor: &NeighborMetrics) -> String {
    match (&neighbor.status.interface, neighbor.status.address) {
        (Some(interface), _) => interface.clone(),
        (None, Some(address)) => address.to_string(),
        (None, None) => String::new(),
    }
}

fn labels(neighbor: &NeighborMetrics) -> Labels {
    vec![
        ("neighbor", neighbor_label(neighbor)),
        (
            "interface",
            neighbor.status.interface.clone().unwrap_or_default(),
        ),
    ]
}

fn with(mut labels: Labels, key: &'static str, value: &str) -> Labels {
    labels.push((key, value.to_owned()));
    labels
}

pub fn record(out: &mut Exposition, neighbors: &[NeighborMetrics]) {
    let state = out.gauge(
        "hostrouter_bgp_neighbor_state",
        "BGP session state: 1 for the neighbor's current state, 0 for the others",
    );
    let up = out.gauge(
        "hostrouter_bgp_neighbor_up",
        "1 when the BGP session is Established",
    );
    let uptime = out.gauge(
        "hostrouter_bgp_neighbor_uptime_seconds",
        "Seconds since the session was established (0 when it is not)",
    );
    let received = out.gauge(
        "hostrouter_bgp_neighbor_prefixes_received",
        "Paths received from the neighbor (Adj-RIB-In, before import policy)",
    );
    let accepted = out.gauge(
        "hostrouter_bgp_neighbor_prefixes_accepted",
        "Received paths import policy accepted",
    );
    let rejected = out.gauge(
        "hostrouter_bgp_neighbor_prefixes_rejected",
        "Received paths import policy rejected",
    );
    let advertised = out.gauge(
        "hostrouter_bgp_neighbor_prefixes_advertised",
        "Prefixes advertised to the neighbor (Adj-RIB-Out)",
    );
    let messages_in = out.counter(
        "hostrouter_bgp_neighbor_messages_received",
        "BGP messages received, by type",
    );
    let messages_out = out.counter(
        "hostrouter_bgp_neighbor_messages_sent",
        "BGP messages sent, by type",
    );
    let flaps = out.counter(
        "hostrouter_bgp_neighbor_flaps",
        "Times the session left Established",
    );
    let error_code = out.gauge(
        "hostrouter_bgp_neighbor_last_error_code",
        "Error code of the last NOTIFICATION sent or received (0: none)",
    );
    let error_subcode = out.gauge(
        "hostrouter_bgp_neighbor_last_error_subcode",
        "Error subcode of the last NOTIFICATION sent or received",
    );
    let held_down = out.gauge(
        "hostrouter_bgp_neighbor_held_down",
        "1 while the session is held down (max-prefix, BFD)",
    );
    let gr_negotiated = out.gauge(
        "hostrouter_bgp_neighbor_graceful_restart_negotiated",
        "1 when the last session negotiated graceful restart",
    );
    let gr_restarting = out.gauge(
        "hostrouter_bgp_neighbor_graceful_restart_restarting",
        "1 while the neighbor restarts and its routes are kept stale",
    );
    let stale = out.gauge(
        "hostrouter_bgp_neighbor_stale_routes",
        "Routes of a restarting neighbor kept (stale) until it is back",
    );
    for neighbor in neighbors {
        let status = &neighbor.status;
        let labels = labels(neighbor);
        for name in STATES {
            let current = f64::from(u8::from(status.state == name));
            set(&state, with(labels.clone(), "state", name), current);
        }
        let established = status.state == "Established";
        set(&up, labels.clone(), f64::from(u8::from(established)));
        set(
            &uptime,
            labels.clone(),
            status.uptime_seconds.unwrap_or(0) as f64,
        );
        set(&received, labels.clone(), status.prefixes_received as f64);
        set(&accepted, labels.clone(), neighbor.prefixes_accepted as f64);
        let refused = status
            .prefixes_received
            .saturating_sub(neighbor.prefixes_accepted);
        set(&rejected, labels.clone(), refused as f64);
        set(
            &advertised,
            labels.clone(),
            status.prefixes_advertised as f64,
        );
        let counters = &neighbor.counters;
        for (i, kind) in MESSAGE_TYPES.iter().enumerate() {
            let typed = with(labels.clone(), "type", kind);
            count(&messages_in, typed.clone(), counters.received[i] as f64);
            count(&messages_out, typed, counters.sent[i] as f64);
        }
        count(&flaps, labels.clone(), counters.flaps as f64);
        let (code, subcode) = counters.last_notification.unwrap_or((0, 0));
        set(&error_code, labels.clone(), f64::from(code));
        set(&error_subcode, labels.clone(), f64::from(subcode));
        let held = status.hold_down.is_some();
        set(&held_down, labels.clone(), f64::from(u8::from(held)));
        let gr = status.graceful_restart.as_ref();
        set(
            &gr_negotiated,
            labels.clone(),
            f64::from(u8::from(gr.is_some())),
        );
        let restarting = gr.and_then(|gr| gr.restarting.as_ref());
        set(
            &gr_restarting,
            labels.clone(),
            f64::from(u8::from(restarting.is_some())),
        );
        set(
            &stale,
            labels,
            restarting.map_or(0, |r| r.stale_routes) as f64,
        );
    }
}
