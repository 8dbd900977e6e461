//! The config of `[[service]]` (through `Config::parse`, as `check` sees it) and the
//! "checks" thread end to end against local listeners.

use std::time::Duration;

use tokio::{net::TcpListener, sync::mpsc};

use super::*;
use crate::config::Config;

/// A speaker with one neighbor sent everything the host originates.
const BGP: &str = "[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n\
                   [[bgp.neighbor]]\naddress = \"10.0.0.2\"\nremote_as = 65002\nexport = \"all\"\n";

fn parse(text: &str) -> Result<Config, String> {
    let text = if text.contains("[bgp]") {
        text.to_owned()
    } else {
        format!("{BGP}{text}")
    };
    Config::parse(&text, std::path::Path::new("test.toml")).map_err(|e| e.to_string())
}

fn error(text: &str) -> String {
    parse(text).unwrap_err()
}

const SERVICE: &str = "[[service]]\nname = \"dns\"\nprefixes = [\"192.0.2.53/32\"]\n";
const TCP: &str = "[[service.check]]\ntcp = \"127.0.0.1:53\"\n";

#[test]
fn full_service_parses_with_defaults() {
    let config = parse(&format!(
        r#"{SERVICE}
        communities = ["65101:53"]
        med = 10
        [[service.check]]
        tcp = "127.0.0.1:53"
        [[service.check]]
        http = {{ url = "http://127.0.0.1:8080/health", body = "ok" }}
        [[service.check]]
        dns = {{ server = "127.0.0.1:53", name = "health.example.", type = "AAAA" }}
        [[service.check]]
        exec = {{ command = ["/bin/true", "--quick"] }}
        [[service]]
        name = "web"
        prefixes = ["198.51.100.80/32", "2001:db8::80/128"]
        interval = "1s"
        timeout = "500ms"
        rise = 3
        fall = 1
        hold_down = "3s"
        on_failure = "degrade"
        degrade = {{ prepend = 3, graceful_shutdown = true }}
        assign = true
        {TCP}"#
    ))
    .unwrap();
    let dns = &config.service[0];
    assert_eq!(
        (dns.interval, dns.timeout, dns.rise, dns.fall, dns.hold_down),
        (
            Duration::from_secs(2),
            Duration::from_secs(1),
            2,
            2,
            Duration::from_secs(10)
        )
    );
    assert_eq!(dns.check.len(), 4);
    assert_eq!(dns.check[1].http.as_ref().unwrap().status, 200);
    assert_eq!(dns.assign_interface, "hostrouter0");
    let web = &config.service[1];
    assert_eq!(web.degrade.unwrap().prepend, 3);
    let checks: Vec<String> = dns
        .check
        .iter()
        .map(|c| check::Check::from_config(c).unwrap().to_string())
        .collect();
    assert_eq!(
        checks,
        [
            "tcp 127.0.0.1:53",
            "http http://127.0.0.1:8080/health",
            "dns health.example. AAAA @127.0.0.1:53",
            "exec /bin/true --quick"
        ]
    );
}

#[test]
fn refusals_name_the_key() {
    let cases: &[(String, &str)] = &[
        (
            format!("[[service]]\nname = \"a b\"\nprefixes = [\"192.0.2.53/32\"]\n{TCP}"),
            "service[0].name",
        ),
        (
            format!("{SERVICE}{TCP}{SERVICE}{TCP}"),
            "service[1].name: \"dns\" is configured twice",
        ),
        (
            format!("[[service]]\nname = \"x\"\nprefixes = [\"192.0.2.53/24\"]\n{TCP}"),
            "service[0].prefixes[0]: 192.0.2.53/24 has host bits set",
        ),
        (
            format!("[[service]]\nname = \"x\"\nprefixes = [\"0.0.0.0/0\"]\n{TCP}"),
            "service[0].prefixes[0]: a host must not originate a default route",
        ),
        (
            format!("[[service]]\nname = \"x\"\nprefixes = []\n{TCP}"),
            "service[0].prefixes: a service needs",
        ),
        (
            format!(
                "[[service]]\nname = \"x\"\nprefixes = [\"192.0.2.0/24\"]\nassign = true\n{TCP}"
            ),
            "service[0].prefixes[0]: 192.0.2.0/24: assign = true",
        ),
        (
            format!("{SERVICE}timeout = \"3s\"\n{TCP}"),
            "service[0].timeout: 3s is longer than interval (2s)",
        ),
        (
            format!("{SERVICE}interval = \"10ms\"\ntimeout = \"5ms\"\n{TCP}"),
            "service[0].interval: 10ms: must be 100ms..1h",
        ),
        (
            format!("{SERVICE}rise = 0\n{TCP}"),
            "service[0].rise: 0: must be 1..100",
        ),
        (format!("{SERVICE}fall = 101\n{TCP}"), "service[0].fall"),
        (
            format!("{SERVICE}hold_down = \"2h\"\n{TCP}"),
            "service[0].hold_down",
        ),
        (
            format!("{SERVICE}degrade = {{ prepend = 1 }}\n{TCP}"),
            "service[0].degrade: only with on_failure",
        ),
        (
            SERVICE.to_owned(),
            "service[0].check: a service needs at least one check",
        ),
        (
            format!("{SERVICE}[[service.check]]\n"),
            "service[0].check[0]: a check has exactly one",
        ),
        (
            format!(
                "{SERVICE}{TCP}[[service.check]]\ntcp = \"127.0.0.1:1\"\nexec = {{ command = [\"/bin/true\"] }}\n"
            ),
            "service[0].check[1]: a check has exactly one",
        ),
        (
            format!("{SERVICE}{TCP}[[service.check]]\nhttp = {{ url = \"ftp://x/\" }}\n"),
            "service[0].check[1].http.url",
        ),
        (
            format!("{SERVICE}[[service.check]]\nhttp = {{ url = \"http://u:p@x/\" }}\n"),
            "service[0].check[0].http.url",
        ),
        (
            format!(
                "{SERVICE}[[service.check]]\nhttp = {{ url = \"http://x/\", insecure = true }}\n"
            ),
            "service[0].check[0].http.insecure: only for https:// URLs",
        ),
        (
            format!(
                "{SERVICE}[[service.check]]\nhttp = {{ url = \"http://x/\", ca_file = \"/x.pem\" }}\n"
            ),
            "service[0].check[0].http.ca_file: only for https:// URLs",
        ),
        (
            format!("{SERVICE}[[service.check]]\nhttp = {{ url = \"http://x/\", status = 42 }}\n"),
            "service[0].check[0].http.status",
        ),
        (
            format!(
                "{SERVICE}[[service.check]]\ndns = {{ server = \"127.0.0.1:53\", name = \"a..b\" }}\n"
            ),
            "service[0].check[0].dns.name",
        ),
        (
            format!("{SERVICE}[[service.check]]\nexec = {{ command = [] }}\n"),
            "service[0].check[0].exec.command: empty",
        ),
        (
            format!("{SERVICE}[[service.check]]\nexec = {{ command = [\"lb-ok\"] }}\n"),
            "service[0].check[0].exec.command[0]: \"lb-ok\" is not an absolute path",
        ),
        (
            format!(
                "{SERVICE}assign = true\n[[service.check]]\nhttp = {{ url = \"http://192.0.2.53/\" }}\n"
            ),
            "service[0].check[0]: targets 192.0.2.53, which is removed while the service is down",
        ),
        (
            format!(
                "{SERVICE}{TCP}[[service]]\nname = \"other\"\nprefixes = [\"192.0.2.0/24\"]\n{TCP}"
            ),
            "service[1].prefixes[0]: 192.0.2.0/24 overlaps service[0].prefixes[0] (\"dns\")",
        ),
        (
            format!(
                "[[service]]\nname = \"x\"\nprefixes = [\"192.0.2.53/32\", \"192.0.2.53/32\"]\n{TCP}"
            ),
            "service[0].prefixes[1]: 192.0.2.53/32 is listed twice",
        ),
    ];
    for (text, want) in cases {
        let e = error(text);
        assert!(e.contains(want), "want {want:?}, got: {e}");
    }
    // Unknown keys and kinds are refused by the parser, naming them.
    let e = error(&format!(
        "{SERVICE}[[service.check]]\nicmp = \"127.0.0.1\"\n"
    ));
    assert!(e.contains("unknown field `icmp`"), "{e}");
    let e = error(&format!(
        "{SERVICE}[[service.check]]\ndns = {{ server = \"127.0.0.1:53\", name = \"x.\", type = \"ANY\" }}\n"
    ));
    assert!(e.contains("\"ANY\": one of A"), "{e}");
    if cfg!(feature = "https") {
        let e = error(&format!(
            "{SERVICE}[[service.check]]\nhttp = {{ url = \"https://x/\", ca_file = \"/nonexistent.pem\" }}\n"
        ));
        assert!(
            e.contains("service[0].check[0].http.ca_file: /nonexistent.pem"),
            "{e}"
        );
        let e = error(&format!(
            "{SERVICE}[[service.check]]\nhttp = {{ url = \"https://x/\", ca_file = \"/x.pem\", insecure = true }}\n"
        ));
        assert!(
            e.contains("service[0].check[0].http.insecure: with ca_file"),
            "{e}"
        );
        parse(&format!(
            "{SERVICE}[[service.check]]\nhttp = {{ url = \"https://127.0.0.1:8443/\", insecure = true }}\n"
        ))
        .unwrap();
    } else {
        let e = error(&format!(
            "{SERVICE}[[service.check]]\nhttp = {{ url = \"https://127.0.0.1/\" }}\n"
        ));
        assert!(
            e.contains("this agent was built without https checks"),
            "{e}"
        );
    }
    // A check on the VIP is fine when the VIP is not removed (degrade keeps it).
    parse(&format!(
        "{SERVICE}assign = true\non_failure = \"degrade\"\n[[service.check]]\ntcp = \"192.0.2.53:53\"\n"
    ))
    .unwrap();
}

#[test]
fn overlap_with_bgp_originate_is_refused() {
    let e = error(&format!(
        "[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\noriginate = [{{ prefix = \"192.0.2.0/24\" }}]\n\
         [[bgp.neighbor]]\naddress = \"10.0.0.2\"\nremote_as = 65002\nexport = \"all\"\n{SERVICE}{TCP}"
    ));
    assert!(
        e.contains("service[0].prefixes[0]: 192.0.2.53/32 overlaps bgp.originate[0]"),
        "{e}"
    );
}

#[test]
fn a_prefix_no_neighbor_is_sent_is_refused() {
    let no_export = "[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n\
                     [[bgp.neighbor]]\naddress = \"10.0.0.2\"\nremote_as = 65002\n";
    let e = error(&format!("{no_export}{SERVICE}{TCP}"));
    assert!(
        e.contains("service[0].prefixes[0]: 192.0.2.53/32 is exported to no neighbor"),
        "{e}"
    );
    let e = Config::parse(&format!("{SERVICE}{TCP}"), std::path::Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("(there is no [bgp])"), "{e}");
    // A prefix list that leaves the VIP out is the same mistake.
    let listed = "[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n\
                  [bgp.prefix_list.vips]\nipv4 = [{ action = \"permit\", prefix = \"198.51.100.0/24\", le = 32 }]\n\
                  [[bgp.neighbor]]\naddress = \"10.0.0.2\"\nremote_as = 65002\nexport = { prefix_list = \"vips\" }\n";
    let e = error(&format!("{listed}{SERVICE}{TCP}"));
    assert!(e.contains("service[0].prefixes[0]"), "{e}");
}

#[test]
fn missing_exec_program_is_a_warning_only() {
    let config = parse(&format!(
        "{SERVICE}[[service.check]]\nexec = {{ command = [\"/nonexistent/lb-ok\"] }}\n"
    ))
    .unwrap();
    let warnings = config.service[0].warnings(0);
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0]
            .contains("service[0].check[0].exec.command[0]: /nonexistent/lb-ok does not exist")
    );
}

fn service(name: &str, address: std::net::SocketAddr, rise: u32) -> ServiceConfig {
    let config = parse(&format!(
        "[[service]]\nname = \"{name}\"\nprefixes = [\"192.0.2.53/32\"]\ninterval = \"100ms\"\n\
         timeout = \"100ms\"\nrise = {rise}\nfall = 1\nhold_down = \"0s\"\n\
         [[service.check]]\ntcp = \"{address}\"\n"
    ))
    .unwrap();
    config.service[0].clone()
}

async fn next(events: &mut mpsc::UnboundedReceiver<ServiceEvent>) -> ServiceEvent {
    tokio::time::timeout(Duration::from_secs(2), events.recv())
        .await
        .expect("an event within 2 s")
        .unwrap()
}

#[tokio::test]
async fn checks_thread_reports_changes_and_reload_keeps_state() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut set = ServiceSet::start(events_tx).unwrap();
    let applied = set.apply(&[service("web", address, 1)]);
    assert_eq!(applied, [Applied::Added("web".into())]);
    let ServiceEvent::Transition {
        name,
        generation,
        to,
        announce,
        cause,
        ..
    } = next(&mut events).await;
    assert_eq!(
        (&*name, to, announce),
        ("web", Phase::Up, Announce::Announce)
    );
    assert!(set.is_current("web", generation) && cause.is_none());

    // Same config: nothing restarts. Changed: a new task in the current state, no event.
    assert!(set.apply(&[service("web", address, 1)]).is_empty());
    assert_eq!(
        set.apply(&[service("web", address, 2)]),
        [Applied::Changed("web".into())]
    );
    assert!(!set.is_current("web", generation));
    assert_eq!(set.announce("web"), Some(Announce::Announce));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(events.try_recv().is_err(), "no transition on reload");

    drop(listener);
    let ServiceEvent::Transition {
        to,
        announce,
        cause,
        generation,
        ..
    } = next(&mut events).await;
    assert!(set.is_current("web", generation));
    assert_eq!((to, announce), (Phase::Down, Announce::Withdraw));
    let cause = cause.unwrap();
    assert_eq!((cause.index, cause.error), (0, check::CheckError::Refused));
    assert_eq!(cause.check, format!("tcp {address}"));

    let statuses = set.statuses();
    let view = show::view(&statuses);
    assert_eq!(view[0].state, "down");
    assert_eq!(view[0].flaps, 1);
    assert_eq!(
        view[0].checks[0].error.as_deref(),
        Some("connection refused")
    );
    assert!(view[0].latency_p99_us.is_some());
    let table = show::render_services(&serde_json::to_value(&view).unwrap());
    assert!(
        table.contains("web") && table.contains("FAIL: connection refused"),
        "{table}"
    );

    let removed = set.apply(&[]);
    assert!(matches!(&removed[..], [Applied::Removed(name, _)] if &**name == "web"));
    assert!(set.statuses().is_empty());
}
