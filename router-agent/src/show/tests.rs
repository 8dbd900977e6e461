use super::*;

#[test]
fn fib_shows_routes_the_kernel_forwards() {
    let nexthop = NexthopView {
        id: 3,
        via: "0.0.0.0".into(),
        interface: "eth1".into(),
        ifindex: 7,
        mac: "00:00:00:00:00:00".into(),
        resolved: true,
        on_link: true,
        mtu: 1500,
        buckets: 64,
    };
    let view = FibView {
        engine: "lpm-trie".into(),
        routes: vec![
            RouteView {
                prefix: "10.0.0.0/8".into(),
                group: GROUP_PASS,
                action: "kernel",
                nexthops: Vec::new(),
            },
            RouteView {
                prefix: "192.0.2.0/24".into(),
                group: 5,
                action: "forward",
                nexthops: vec![nexthop],
            },
        ],
    };
    let text = render_fib(&view);
    assert!(
        text.contains("10.0.0.0/8") && text.contains("passed to the kernel (it forwards)"),
        "{text}"
    );
    assert!(
        text.contains("on-link dev eth1 [neighbors] 64/64"),
        "{text}"
    );
}

#[test]
fn counters_list_every_verdict() {
    let view = CountersView {
        verdicts: Verdict::ALL.iter().map(|v| (v.name(), 1)).collect(),
        nexthops: Vec::new(),
    };
    let text = render_counters(&view);
    for name in [
        "passed-other-host",
        "dropped-rpf",
        "passed-martian",
        "passed-rpf-kernel",
    ] {
        assert!(text.contains(name), "{text}");
    }
}

#[test]
fn status_shows_an_adoption_in_progress_only() {
    let status = |adoption| {
        render_status(&serde_json::json!({
            "fib": { "routes": 3, "groups": 1, "nexthops": 1 },
            "neighbors": [],
            "adoption": adoption,
        }))
    };
    let adopting = status(serde_json::json!({
        "adopting": true, "adopted_routes": 1200, "deferral_left_secs": 95.4
    }));
    assert!(
        adopting.contains("1200 adopted routes left, swept in 95 s"),
        "{adopting}"
    );
    let over = status(serde_json::json!({ "adopting": false }));
    assert!(!over.contains("dopt"), "{over}");
}

#[test]
fn status_shows_what_is_drained_only() {
    let status = |drain| {
        render_status(&serde_json::json!({
            "fib": { "routes": 3, "groups": 1, "nexthops": 1 },
            "neighbors": [], "adoption": { "adopting": false }, "drain": drain,
        }))
    };
    let drained = status(serde_json::json!({
        "all": { "since_unix": 1700000000, "prepend": 2, "withdraw_at_unix": 1700000060 },
        "services": { "dns": { "since_unix": 5, "prepend": 0, "withdraw_at_unix": null } }
    }));
    assert!(
        drained.contains(
            "Drained (all routes): since 1700000000 (unix), prepend 2, withdrawn at 1700000060"
        ),
        "{drained}"
    );
    assert!(
        drained.contains("Drained service dns: since 5 (unix), prepend 0\n"),
        "{drained}"
    );
    let not = status(serde_json::json!({ "all": null, "services": {} }));
    assert!(!not.contains("rained"), "{not}");
    assert!(!status(serde_json::Value::Null).contains("rained"));
}

#[test]
fn neighbors_show_graceful_restart_state() {
    let value = serde_json::json!([{
        "address": "10.0.1.1", "interface": null, "dynamic": false, "state": "Active",
        "remote_as": 65001, "uptime_seconds": null, "prefixes_received": 3,
        "prefixes_advertised": 0, "last_error": "hold timer expired", "hold_down": null,
        "graceful_restart": {
            "peer_restart_time_seconds": 120, "notification": true,
            "peer_families": ["ipv4", "ipv6"], "peer_forwarding": ["ipv4"],
            "restarting": {
                "phase": "restarting", "stale_routes": 3, "seconds_left": 97,
                "families": ["ipv4", "ipv6"]
            }
        }
    }, {
        "address": "10.0.2.1", "interface": null, "dynamic": false, "state": "Established",
        "remote_as": 65002, "uptime_seconds": 5, "prefixes_received": 1,
        "prefixes_advertised": 1, "last_error": null, "hold_down": null,
        "graceful_restart": null,
        "negotiated": {
            "hold_time_seconds": 9, "keepalive_seconds": 3,
            "capabilities": ["ipv4-unicast", "four-octet-as", "route-refresh"]
        }
    }]);
    let text = render_neighbors(&value);
    assert!(
        text.contains(
            "graceful restart: negotiated (N), peer restart time 120 s, families ipv4, \
             ipv6, forwarding preserved ipv4"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "graceful restart: peer restarting, session down: 3 stale routes (ipv4, ipv6) \
             kept, 97 s left"
        ),
        "{text}"
    );
    assert_eq!(text.matches("graceful restart").count(), 2, "{text}");
    // Only the Established neighbor has negotiated facts, under its own row.
    assert!(
        text.contains("10.0.2.1")
            && text.contains(
                "  negotiated: hold time 9 s, keepalive 3 s, capabilities: ipv4-unicast, \
                 four-octet-as, route-refresh\n"
            ),
        "{text}"
    );
    assert_eq!(text.matches("negotiated:").count(), 1, "{text}");
}

#[test]
fn routes_mark_stale_paths() {
    let path = |stale: bool, status: &str| {
        serde_json::json!({
            "peer": "10.0.1.1", "next_hop": "10.0.1.1", "status": status, "stale": stale,
            "as_path": [65001], "origin": "igp"
        })
    };
    let value = serde_json::json!([
        {"prefix": "198.18.0.0/24", "paths": [path(true, "best")]},
        {"prefix": "198.18.1.0/24", "paths": [path(false, "best")]},
    ]);
    let text = render_routes(&value);
    assert!(text.contains("*>S 198.18.0.0/24"), "{text}");
    assert!(text.contains("*>  198.18.1.0/24"), "{text}");
}
