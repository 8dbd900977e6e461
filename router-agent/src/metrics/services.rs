//! Health-checked services: state, what their prefixes do, flaps, check rounds, from `show
//! services`' view.

use super::exposition::{Exposition, count, set};
use crate::services::show::ServiceView;

/// Phases as `show services` names them.
const STATES: [&str; 4] = ["init", "up", "down", "hold-down"];

pub fn record(out: &mut Exposition, services: &[ServiceView]) {
    let state = out.gauge(
        "hostrouter_service_state",
        "Service health: 1 for the current state, 0 for the others",
    );
    let announced = out.gauge(
        "hostrouter_service_announced",
        "1 when the service's prefixes are announced (degraded included)",
    );
    let degraded = out.gauge(
        "hostrouter_service_degraded",
        "1 when the service's prefixes are announced less preferred",
    );
    let flaps = out.counter(
        "hostrouter_service_flaps",
        "Up to down changes of the service",
    );
    let rounds = out.counter(
        "hostrouter_service_check_rounds",
        "Rounds of health checks run",
    );
    let latency = out.gauge(
        "hostrouter_service_check_latency_p99_seconds",
        "99th percentile of the service's check latency",
    );
    for service in services {
        let labels = || vec![("service", service.name.clone())];
        for name in STATES {
            let mut labels = labels();
            labels.push(("state", name.to_owned()));
            set(&state, labels, f64::from(u8::from(service.state == name)));
        }
        let announce = service.announce;
        let on = announce != crate::services::Announce::Withdraw;
        set(&announced, labels(), f64::from(u8::from(on)));
        let less = announce == crate::services::Announce::Degraded;
        set(&degraded, labels(), f64::from(u8::from(less)));
        count(&flaps, labels(), service.flaps as f64);
        count(&rounds, labels(), service.rounds as f64);
        if let Some(p99) = service.latency_p99_us {
            set(&latency, labels(), p99 as f64 / 1e6);
        }
    }
}
