//! `[metrics] listen` scraped by a real Prometheus (Debian's `prometheus` package) in the
//! agent's namespace: the agent forwards client traffic by XDP towards a prefix GoBGP
//! announces, and the test asks Prometheus's HTTP API (`/api/v1/query`) for the forwarded
//! verdict counter (it rose with the traffic), the traffic of the nexthop labelled with the
//! neighbor, and the neighbor's state (Established). `promtool check metrics` passes on the
//! agent's exposition, every metric the Grafana dashboard queries is in it, a planned restart
//! serves it again, and a reload that changes `metrics.listen` is refused naming the key. Run
//! with the default lookup engine and with DXR. Needs root, gobgpd and prometheus (skipped,
//! saying so, without prometheus).
//!
//! ```text
//!   client ── c0 ═══ mc ── [host: router-agent :9724, prometheus] ── mh ═══ mp ── peer (GoBGP)
//!   10.71.0.2/24   10.71.0.1/24                           10.0.95.2/24   10.0.95.1/24
//!                                                                        198.51.100.1/32 on lo
//! ```

mod interop;
mod netns;

use std::{
    collections::BTreeSet,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::Command,
    time::{Duration, Instant},
};

use interop::{HOST_ASN, HOST_LOOPBACK, Lab};
use netns::{AGENT, wait_for};
use serde_json::Value;

const GOBGP_ASN: u32 = 65095;
const SUBNET: u8 = 95;
const PEER_PREFIX: &str = "198.51.100.0/24";
const PEER_ADDRESS: &str = "198.51.100.1";
/// The agent's endpoint, in the host namespace (nothing else listens there).
const METRICS: &str = "127.0.0.1:9724";
const TIMEOUT: Duration = Duration::from_secs(20);

fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// A port for Prometheus: random, so that two runs never meet; free, since the namespace is
/// ours and only the agent listens there (on 9724).
fn random_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    20_000 + (RandomState::new().hash_one(std::process::id()) % 40_000) as u16
}

/// `GET path` from inside the host namespace; the body, or what went wrong.
fn http_get(lab: &Lab, address: &str, path: &str) -> Result<String, String> {
    let address: SocketAddr = address.parse().unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    lab.net
        .namespace("host")
        .run_in(|| {
            let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(request.as_bytes())?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        })
        .map_err(|e| format!("GET http://{address}{path}: {e:#}"))
        .and_then(|response| {
            let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
            if head.starts_with("HTTP/1.1 200") {
                Ok(body.to_owned())
            } else {
                Err(format!("GET {path}: {head}\n{body}"))
            }
        })
}

/// Percent-encodes a PromQL expression for a query string.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Prometheus {
    address: String,
}

impl Prometheus {
    /// Starts `prometheus` in the host namespace, scraping the agent every second; its
    /// configuration and storage in the lab's directory. Waits until it is ready.
    fn start(lab: &mut Lab) -> Self {
        let address = format!("127.0.0.1:{}", random_port());
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: hostrouter\n    static_configs:\n      \
             - targets: [\"{METRICS}\"]\n"
        );
        let config_path = lab.path_str("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        sh_ok(&["promtool", "check", "config", &config_path]);
        let mut command = lab.command_in("host", "prometheus");
        command.args([
            &format!("--config.file={config_path}"),
            &format!("--storage.tsdb.path={}", lab.path_str("prometheus-data")),
            &format!("--web.listen-address={address}"),
            "--log.level=warn",
        ]);
        lab.spawn_daemon("prometheus", command);
        let this = Self { address };
        wait_for(
            "Prometheus to be ready",
            TIMEOUT,
            || http_get(lab, &this.address, "/-/ready").is_ok(),
            || lab.logs(),
        );
        this
    }

    /// The instant vector of `expr`: (labels, value) per series.
    fn query(&self, lab: &Lab, expr: &str) -> Vec<(Value, f64)> {
        let path = format!("/api/v1/query?query={}", url_encode(expr));
        let Ok(body) = http_get(lab, &self.address, &path) else {
            return Vec::new();
        };
        let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        answer["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|series| {
                let value = series["value"][1].as_str().and_then(|v| v.parse().ok());
                (series["metric"].clone(), value.unwrap_or(f64::NAN))
            })
            .collect()
    }

    /// The value of `expr`'s one series, if it has exactly one.
    fn value(&self, lab: &Lab, expr: &str) -> Option<f64> {
        match self.query(lab, expr).as_slice() {
            [(_, value)] => Some(*value),
            _ => None,
        }
    }
}

fn sh_ok(args: &[&str]) {
    netns::sh(args);
}

/// The lab: GoBGP announces 198.51.100.0/24, a client sends towards it through the host.
fn lab(tag: &str) -> Lab {
    let mut lab = Lab::new(tag, "mh", "mp", SUBNET);
    lab.net.add("client");
    lab.exec(
        "peer",
        &["ip", "addr", "add", "198.51.100.1/32", "dev", "lo"],
    );
    // Frames XDP redirects into a veth need NAPI (GRO) on the receiving end.
    lab.exec("peer", &["ethtool", "-K", "mp", "gro", "on"]);
    lab.net.veth(("host", "mc"), ("client", "c0"));
    lab.exec("host", &["ip", "addr", "add", "10.71.0.1/24", "dev", "mc"]);
    lab.exec("host", &["ip", "link", "set", "mc", "up"]);
    for args in [
        &["ip", "addr", "add", "10.71.0.2/24", "dev", "c0"][..],
        &["ip", "link", "set", "c0", "up"],
        &["ip", "route", "add", "default", "via", "10.71.0.1"],
        // Real UDP over veth: checksums computed before the "wire".
        &["ethtool", "-K", "c0", "tx", "off"],
    ] {
        lab.exec("client", args);
    }
    interop::gobgp::start(&mut lab, GOBGP_ASN, 1);
    interop::gobgp::cli(
        &lab,
        &[
            "global",
            "rib",
            "add",
            "-a",
            "ipv4",
            PEER_PREFIX,
            "nexthop",
            &lab.peer_ip,
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    lab
}

fn agent_config(lab: &Lab, listen: &str) -> String {
    format!(
        r#"[[interface]]
name = "mc"

[metrics]
listen = "{listen}"

[bgp]
asn = {HOST_ASN}
router_id = "{HOST_LOOPBACK}"

[[bgp.neighbor]]
address = "{peer}"
remote_as = {GOBGP_ASN}
import = "all"
export = "all"
hold_time = 9
"#,
        peer = lab.peer_ip,
    )
}

/// The family names an exposition declares (`# TYPE name kind`).
fn declared_families(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .map(str::to_owned)
        .collect()
}

/// The `hostrouter_*` and `process_*` names in the dashboard's PromQL expressions.
fn dashboard_metrics() -> BTreeSet<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../dist/grafana-hostrouter.json"
    );
    let dashboard = std::fs::read_to_string(path).unwrap();
    let json: Value = serde_json::from_str(&dashboard).unwrap();
    let mut names = BTreeSet::new();
    let mut stack = vec![&json];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(expr)) = map.get("expr") {
                    names.extend(
                        expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                            .filter(|w| w.starts_with("hostrouter_") || w.starts_with("process_"))
                            .map(str::to_owned),
                    );
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    names
}

#[test]
fn prometheus_scrapes_forwarding_and_bgp_state() {
    scrape_forwarding_and_bgp_state("metrics", "");
}

/// The same with the DXR lookup engine: the counters do not depend on how routes are looked
/// up (nor does reading them: by nexthop id, no route table read back).
#[test]
fn prometheus_scrapes_forwarding_with_dxr() {
    scrape_forwarding_and_bgp_state("metricsdxr", "engine = \"dxr\"\n");
}

fn scrape_forwarding_and_bgp_state(tag: &str, datapath: &str) {
    if !installed("prometheus") || !installed("promtool") {
        println!(
            "skipped: Debian's prometheus package is not installed (scripts/setup installs it)"
        );
        return;
    }
    let started = Instant::now();
    let mut lab = lab(tag);
    let config = agent_config(&lab, METRICS);
    lab.start_agent_with(datapath, &config);
    let prometheus = Prometheus::start(&mut lab);
    let peer = lab.peer_ip.clone();

    // The neighbor's state, as Prometheus scraped it.
    let established =
        format!("hostrouter_bgp_neighbor_state{{neighbor=\"{peer}\",state=\"Established\"}}");
    wait_for(
        "Prometheus to see the GoBGP neighbor Established",
        TIMEOUT,
        || prometheus.value(&lab, &established) == Some(1.0),
        || format!("{:?}\n{}", prometheus.query(&lab, &established), lab.logs()),
    );
    wait_for(
        "the peer's prefix in the XDP FIB",
        TIMEOUT,
        || lab.fib_vias(PEER_PREFIX) == vec![peer.clone()],
        || lab.fib_and_logs(),
    );

    // Forwarded traffic: the verdict counter rises in Prometheus, and so does the traffic of
    // the nexthop that is the neighbor.
    let forwarded = "hostrouter_xdp_packets_total{verdict=\"forwarded\"}";
    wait_for(
        "Prometheus to have scraped the verdict counters",
        TIMEOUT,
        || prometheus.value(&lab, forwarded).is_some(),
        || format!("{:?}\n{}", prometheus.query(&lab, forwarded), lab.logs()),
    );
    let before = prometheus.value(&lab, forwarded).unwrap();
    let sent = 300;
    lab.net
        .send_udp("client", format!("{PEER_ADDRESS}:9").parse().unwrap(), sent);
    // The first datagrams may go to the kernel while the neighbor entry resolves.
    let expected = before + 0.8 * sent as f64;
    wait_for(
        "Prometheus to see the forwarded packets",
        TIMEOUT,
        || {
            prometheus
                .value(&lab, forwarded)
                .is_some_and(|now| now >= expected)
        },
        || {
            format!(
                "before {before}, now {:?}\ncounters: {}\n{}",
                prometheus.query(&lab, forwarded),
                lab.show("counters"),
                lab.logs()
            )
        },
    );
    let by_neighbor = format!(
        "hostrouter_xdp_nexthop_packets_total{{neighbor=\"{peer}\",interface=\"mh\",family=\"ipv4\"}}"
    );
    wait_for(
        "Prometheus to see the neighbor's nexthop traffic",
        TIMEOUT,
        || {
            prometheus
                .value(&lab, &by_neighbor)
                .is_some_and(|n| n >= 0.8 * sent as f64)
        },
        || format!("{:?}\n{}", prometheus.query(&lab, &by_neighbor), lab.logs()),
    );
    let received = format!("hostrouter_bgp_neighbor_prefixes_received{{neighbor=\"{peer}\"}}");
    assert_eq!(prometheus.value(&lab, &received), Some(1.0));

    // The exposition itself: promtool accepts it; the dashboard's metrics are all in it.
    let exposition = http_get(&lab, METRICS, "/metrics").unwrap_or_else(|e| panic!("{e}"));
    let path = lab.path_str("exposition.txt");
    std::fs::write(&path, &exposition).unwrap();
    let check = Command::new("sh")
        .args(["-c", &format!("promtool check metrics < {path}")])
        .output()
        .unwrap();
    assert!(
        check.status.success() && check.stdout.is_empty() && check.stderr.is_empty(),
        "promtool check metrics: {}{}\n{exposition}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let declared = declared_families(&exposition);
    let missing: Vec<_> = dashboard_metrics().difference(&declared).cloned().collect();
    // BFD and services are not configured here: their families have no series.
    let unconfigured = ["hostrouter_bfd_session_state", "hostrouter_service_state"];
    let missing: Vec<_> = missing
        .into_iter()
        .filter(|name| !unconfigured.contains(&name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "not exported: {missing:?}\n{exposition}"
    );

    // A planned restart (the agent executes itself again, same pid) serves it again: the
    // listening socket does not leak into the new process, which binds the port anew.
    let config_path = lab.path("agent.toml");
    let restart = lab
        .command_in("host", AGENT)
        .args(["restart", "-c"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(
        restart.status.success(),
        "restart: {}",
        String::from_utf8_lossy(&restart.stderr)
    );
    wait_for(
        "the restarted agent to serve /metrics",
        TIMEOUT,
        || {
            lab.agent_log_count(&["metrics served at /metrics"]) == 2
                && http_get(&lab, METRICS, "/metrics").is_ok()
        },
        || lab.logs(),
    );

    // The endpoint cannot move at run time: the reload says which key.
    let text = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(&config_path, text.replace(METRICS, "127.0.0.1:9725")).unwrap();
    let reload = lab
        .command_in("host", AGENT)
        .args(["reload", "-c"])
        .arg(&config_path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&reload.stderr);
    assert!(
        !reload.status.success() && said.contains("metrics.listen"),
        "reload: {said}"
    );
    assert!(http_get(&lab, METRICS, "/metrics").is_ok());
    println!("{tag}: took {:.1} s", started.elapsed().as_secs_f64());
}
