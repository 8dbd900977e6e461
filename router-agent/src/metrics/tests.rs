//! The exposition of a fresh agent: every family there, each with help and type, and every
//! metric the Grafana dashboard queries among them.

use std::collections::BTreeSet;

use router_common::{NexthopStats, Verdict};

use super::{NexthopLabel, Snapshot, render, render_with, xdp::XdpCounters};
use crate::{
    bfd::show::SessionStatus,
    bgp::northbound::{NeighborMetrics, NeighborStatus},
    services::show::ServiceView,
};

/// The families of a fresh agent without BGP, BFD, services or routes: no per-object series.
const ALWAYS: &[&str] = &[
    "hostrouter_fib_routes",
    "hostrouter_fib_groups",
    "hostrouter_fib_nexthops",
    "hostrouter_fib_unplaced_routes",
    "hostrouter_fib_batches_applied_total",
    "hostrouter_kernel_mirror_enabled",
    "hostrouter_kernel_mirror_queue_depth",
    "hostrouter_kernel_mirror_changes_applied_total",
    "hostrouter_kernel_mirror_failures_total",
    "hostrouter_xdp_packets_total",
    "hostrouter_xdp_maps_readable",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
    "process_open_fds",
    "process_max_fds",
    "hostrouter_build_info",
];

/// The families with a series per neighbor, BFD session, service or nexthop.
const PER_OBJECT: &[&str] = &[
    "hostrouter_bgp_neighbor_state",
    "hostrouter_bgp_neighbor_up",
    "hostrouter_bgp_neighbor_uptime_seconds",
    "hostrouter_bgp_neighbor_prefixes_received",
    "hostrouter_bgp_neighbor_prefixes_accepted",
    "hostrouter_bgp_neighbor_prefixes_rejected",
    "hostrouter_bgp_neighbor_prefixes_advertised",
    "hostrouter_bgp_neighbor_messages_received_total",
    "hostrouter_bgp_neighbor_messages_sent_total",
    "hostrouter_bgp_neighbor_flaps_total",
    "hostrouter_bgp_neighbor_last_error_code",
    "hostrouter_bgp_neighbor_last_error_subcode",
    "hostrouter_bgp_neighbor_held_down",
    "hostrouter_bgp_neighbor_graceful_restart_negotiated",
    "hostrouter_bgp_neighbor_graceful_restart_restarting",
    "hostrouter_bgp_neighbor_stale_routes",
    "hostrouter_xdp_nexthop_packets_total",
    "hostrouter_xdp_nexthop_bytes_total",
    "hostrouter_bfd_session_state",
    "hostrouter_bfd_session_uptime_seconds",
    "hostrouter_bfd_session_detection_time_seconds",
    "hostrouter_service_state",
    "hostrouter_service_announced",
    "hostrouter_service_degraded",
    "hostrouter_service_flaps_total",
    "hostrouter_service_check_rounds_total",
    "hostrouter_service_check_latency_p99_seconds",
];

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Every family the agent exports: a family renamed or dropped breaks dashboards and
/// alerts, so these lists change with it, on purpose.
pub fn all_families() -> BTreeSet<String> {
    names(ALWAYS).union(&names(PER_OBJECT)).cloned().collect()
}

/// The family names an exposition declares (`# TYPE name kind`).
pub fn declared_families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .map(str::to_owned)
        .collect()
}

/// What a freshly started agent's event loop and maps hold: one configured neighbor not yet
/// connected, one BFD session Down, one service not checked yet, one static route's nexthop,
/// every counter at zero.
fn fresh_agent() -> (Snapshot, XdpCounters) {
    let neighbor = NeighborMetrics {
        status: NeighborStatus {
            address: Some("192.0.2.1".parse().unwrap()),
            interface: None,
            dynamic: false,
            state: "Idle".to_owned(),
            remote_as: None,
            uptime_seconds: None,
            prefixes_received: 0,
            prefixes_advertised: 0,
            last_error: None,
            hold_down: None,
            graceful_restart: None,
            negotiated: None,
        },
        prefixes_accepted: 0,
        counters: Default::default(),
    };
    let service = ServiceView {
        name: "web".to_owned(),
        prefixes: vec!["198.18.0.1/32".to_owned()],
        state: "init",
        announce: crate::services::Announce::Withdraw,
        since_unix: 0,
        for_seconds: 0,
        flaps: 0,
        rounds: 0,
        latency_p50_us: None,
        latency_p99_us: Some(1500),
        latency_histogram: Default::default(),
        checks: Vec::new(),
    };
    let snapshot = Snapshot {
        neighbors: vec![neighbor],
        nexthops: vec![NexthopLabel {
            id: 1,
            via: "192.0.2.1".parse().unwrap(),
            interface: "eth0".to_owned(),
        }],
        bfd: vec![SessionStatus::fresh_for_tests("192.0.2.1".parse().unwrap())],
        services: vec![service],
        ..Snapshot::default()
    };
    let counters = XdpCounters {
        verdicts: vec![0; Verdict::ALL.len()],
        nexthops: vec![NexthopStats::default()],
    };
    (snapshot, counters)
}

fn fresh_exposition() -> String {
    let (snapshot, counters) = fresh_agent();
    render_with(&snapshot, Some(&counters))
}

#[test]
fn every_family_is_present_on_a_fresh_agent() {
    let text = fresh_exposition();
    let declared = declared_families(&text);
    assert_eq!(declared, all_families(), "exposition:\n{text}");
    for family in &declared {
        let help = text
            .lines()
            .find_map(|line| line.strip_prefix(&format!("# HELP {family} ")));
        assert!(
            help.is_some_and(|h| !h.ends_with("..")),
            "{family}: help {help:?}"
        );
    }
    let samples = [
        "hostrouter_bgp_neighbor_state{neighbor=\"192.0.2.1\",interface=\"\",state=\"Idle\"} 1",
        "hostrouter_bgp_neighbor_up{neighbor=\"192.0.2.1\",interface=\"\"} 0",
        "hostrouter_xdp_packets_total{verdict=\"forwarded\"} 0",
        "hostrouter_xdp_nexthop_packets_total{nexthop=\"192.0.2.1\",interface=\"eth0\",\
         family=\"ipv4\",neighbor=\"192.0.2.1\"} 0",
        "hostrouter_bfd_session_state{neighbor=\"192.0.2.1\",interface=\"\",state=\"Down\"} 1",
        "hostrouter_service_check_latency_p99_seconds{service=\"web\"} 0.0015",
        "hostrouter_fib_routes{family=\"ipv4\"} 0",
        "\nprocess_resident_memory_bytes ",
    ];
    for sample in samples {
        assert!(text.contains(sample), "{sample} missing from:\n{text}");
    }
    assert!(!text.contains("# EOF"));
}

#[test]
fn an_agent_without_bgp_or_datapath_still_has_its_own_families() {
    let text = render(
        &Snapshot::default(),
        std::path::Path::new("/nonexistent/pins"),
    );
    let mut expected = names(ALWAYS);
    // Unreadable maps: the gauge says so, the verdict counters are absent.
    expected.remove("hostrouter_xdp_packets_total");
    assert_eq!(declared_families(&text), expected, "{text}");
    assert!(text.contains("hostrouter_xdp_maps_readable 0"), "{text}");
}

#[test]
fn every_sample_belongs_to_a_declared_family() {
    let text = fresh_exposition();
    let declared = declared_families(&text);
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(declared.contains(name), "{name} is not declared: {line}");
    }
}

/// The metric names a Grafana dashboard's PromQL expressions use.
pub fn dashboard_metrics(dashboard: &str) -> BTreeSet<String> {
    let json: serde_json::Value = serde_json::from_str(dashboard).expect("dashboard JSON");
    let mut names = BTreeSet::new();
    let mut stack = vec![&json];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(expr)) = map.get("expr") {
                    names.extend(metric_names(expr));
                }
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    names
}

/// Words of a PromQL expression that name our metrics (`hostrouter_*`, `process_*`).
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("hostrouter_") || word.starts_with("process_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_metric_of_the_dashboard_is_exported() {
    let dashboard = include_str!("../../../dist/grafana-hostrouter.json");
    let used = dashboard_metrics(dashboard);
    assert!(used.len() >= 5, "the dashboard queries {used:?}");
    let declared = all_families();
    let missing: Vec<_> = used.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries {missing:?}, not exported"
    );
}
