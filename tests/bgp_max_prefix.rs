//! Max-prefix teardown with GoBGP as the peer (see `interop/mod.rs` for the lab): GoBGP sends
//! five prefixes to a neighbor limited to three. The agent tears the session down (Cease /
//! Maximum Number of Prefixes Reached) and holds it down: Idle, no connection attempt, the
//! peer's connections refused. With `restart_after` it comes back on its own after that
//! long; without, only `router-agent clear neighbor ADDR` brings it back. `clear neighbor` on
//! an established session is a hard reset (Cease / Administrative Reset) and a restart.
//! Needs root and gobgpd.

mod interop;
mod netns;

use std::{
    fs,
    io::Read,
    net::TcpStream,
    os::fd::AsRawFd,
    thread,
    time::{Duration, Instant},
};

use interop::{HOST_ASN, HOST_LOOPBACK, HOST_PREFIX, Lab};
use netns::{AGENT, wait_for};
use serde_json::Value;

const GOBGP_ASN: u32 = 65030;
const PREFIXES: [&str; 5] = [
    "10.77.1.0/24",
    "10.77.2.0/24",
    "10.77.3.0/24",
    "10.77.4.0/24",
    "10.77.5.0/24",
];
const LIMIT: usize = 3;
const SESSION: Duration = Duration::from_secs(30);

struct MaxPrefixLab {
    lab: Lab,
}

impl MaxPrefixLab {
    /// GoBGP announcing every prefix of `PREFIXES`, the agent limiting it to `LIMIT` with
    /// `max_prefix` (its TOML inline table, without the limit).
    fn start(tag: &str, subnet: u8, max_prefix: &str) -> Self {
        let mut lab = Lab::new(tag, "mh", "mp", subnet);
        interop::gobgp::start(&mut lab, GOBGP_ASN, 1);
        let this = Self { lab };
        for prefix in PREFIXES {
            this.gobgp(&["global", "rib", "add", "-a", "ipv4", prefix]);
        }
        let bgp = format!(
            r#"[bgp]
asn = {HOST_ASN}
router_id = "{HOST_LOOPBACK}"
originate = [{{ prefix = "{HOST_PREFIX}" }}]

[[bgp.neighbor]]
address = "{peer}"
remote_as = {GOBGP_ASN}
import = "all"
export = "all"
hold_time = 9
max_prefix = {{ limit = {LIMIT}, {max_prefix} }}
"#,
            peer = this.lab.peer_ip,
        );
        let mut this = this;
        this.lab.start_agent(&bgp);
        this
    }

    fn gobgp(&self, args: &[&str]) -> String {
        interop::gobgp::cli(&self.lab, args).unwrap_or_else(|e| panic!("{e}\n{}", self.lab.logs()))
    }

    /// `router-agent ARGS -c <the agent's config>` in the host namespace.
    fn agent_cli(&self, args: &[&str]) -> std::process::Output {
        self.lab
            .command_in("host", AGENT)
            .args(args)
            .args(["-c", &self.lab.path_str("agent.toml")])
            .output()
            .unwrap()
    }

    /// The agent's `show neighbors` record of GoBGP.
    fn neighbor(&self) -> Value {
        let all = self.lab.show("neighbors");
        all.as_array()
            .and_then(|all| all.first().cloned())
            .unwrap_or(Value::Null)
    }

    fn clear_neighbor(&self) {
        let out = self.agent_cli(&["clear", "neighbor", &self.lab.peer_ip]);
        assert!(
            out.status.success(),
            "clear neighbor: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn established(&self) -> usize {
        self.lab.agent_established()
    }

    fn teardowns(&self) -> usize {
        self.lab.agent_log_count(&["maximum prefixes exceeded"])
    }

    /// Waits for the first max-prefix teardown and returns the hold-down `show neighbors`
    /// reports right after it.
    fn wait_for_hold_down(&self, teardowns: usize) -> Value {
        wait_for(
            "the max-prefix teardown",
            SESSION,
            || self.teardowns() > teardowns,
            || self.lab.logs(),
        );
        let mut neighbor = Value::Null;
        wait_for(
            "show neighbors to report the hold-down",
            Duration::from_secs(5),
            || {
                neighbor = self.neighbor();
                !neighbor["hold_down"].is_null()
            },
            || format!("{}\n{}", self.neighbor(), self.lab.logs()),
        );
        assert_eq!(neighbor["state"], "Idle", "{neighbor}");
        assert_eq!(
            self.lab
                .agent_log_count(&["NOTIFICATION sent", "Maximum Number of Prefixes Reached"]),
            teardowns + 1,
            "{}",
            self.lab.logs()
        );
        neighbor
    }

    /// Opens a BGP connection to the agent from the peer's namespace and returns what the
    /// agent sends before closing it: an OPEN if it takes the connection, nothing if it
    /// refuses it.
    fn connect_to_agent(&self) -> Vec<u8> {
        let netns = fs::File::open(format!("/run/netns/{}", self.lab.net.ns("peer"))).unwrap();
        let host = self.lab.host_ip.clone();
        thread::spawn(move || {
            // SAFETY: setns on this thread only; it ends right after.
            assert_eq!(
                unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            let mut stream = TcpStream::connect((host.as_str(), 179)).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut received = Vec::new();
            // A refused connection is closed at once: EOF, no timeout.
            stream
                .read_to_end(&mut received)
                .expect("the agent closes a refused connection");
            received
        })
        .join()
        .unwrap()
    }

    /// Asserts that the session stays down (no new establishment, the neighbor's connection
    /// refused) for `period`.
    fn assert_stays_down(&self, period: Duration) {
        assert_eq!(
            self.connect_to_agent(),
            Vec::<u8>::new(),
            "held down: the agent must refuse the neighbor's connection"
        );
        let established = self.established();
        let start = Instant::now();
        while start.elapsed() < period {
            assert_eq!(
                self.established(),
                established,
                "the session came back during the hold-down\n{}",
                self.lab.logs()
            );
            let neighbor = self.neighbor();
            assert_eq!(neighbor["state"], "Idle", "{neighbor}");
            thread::sleep(Duration::from_millis(250));
        }
    }
}

#[test]
fn max_prefix_hold_down_restarts_after_the_configured_time() {
    let lab = MaxPrefixLab::start(
        "maxpfx-restart",
        71,
        r#"action = "teardown", restart_after = "4s""#,
    );
    let held = lab.wait_for_hold_down(0);
    let seen_at = Instant::now();
    let restarts_in = held["hold_down"]["restarts_in_seconds"].as_u64();
    assert!(matches!(restarts_in, Some(1..=4)), "show neighbors: {held}");
    assert!(
        held["hold_down"]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("maximum prefixes")),
        "{held}"
    );
    // GoBGP retries every second meanwhile: the agent refuses in Idle.
    lab.assert_stays_down(Duration::from_secs(2));
    let established = lab.established();
    wait_for(
        "the session to come back after restart_after",
        SESSION,
        || lab.established() > established,
        || lab.lab.logs(),
    );
    let down_for = seen_at.elapsed();
    assert!(
        down_for >= Duration::from_secs(restarts_in.unwrap() - 1),
        "back after {down_for:?}, hold-down said {restarts_in:?} s"
    );
    // GoBGP still sends five prefixes: the next teardown and hold-down follow.
    lab.wait_for_hold_down(1);
}

#[test]
fn max_prefix_hold_down_until_clear_neighbor() {
    let lab = MaxPrefixLab::start("maxpfx-clear", 72, r#"action = "teardown""#);
    let held = lab.wait_for_hold_down(0);
    assert!(
        held["hold_down"]["restarts_in_seconds"].is_null(),
        "no restart_after: held until cleared: {held}"
    );
    let text = lab.agent_cli(&["show", "neighbors"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("until `router-agent clear neighbor"),
        "show neighbors:\n{text}"
    );
    lab.assert_stays_down(Duration::from_secs(6));

    // The peer fixes its side, the operator clears: the session comes back and stays.
    for prefix in &PREFIXES[LIMIT..] {
        lab.gobgp(&["global", "rib", "del", "-a", "ipv4", prefix]);
    }
    let established = lab.established();
    lab.clear_neighbor();
    wait_for(
        "the session to come back after clear neighbor",
        SESSION,
        || lab.established() > established && lab.neighbor()["state"] == "Established",
        || lab.lab.logs(),
    );
    wait_for(
        "the three prefixes received",
        SESSION,
        || lab.neighbor()["prefixes_received"] == LIMIT,
        || format!("{}\n{}", lab.neighbor(), lab.lab.logs()),
    );
    assert!(lab.neighbor()["hold_down"].is_null(), "{}", lab.neighbor());

    // clear neighbor on an established session: a hard reset, and back.
    let established = lab.established();
    lab.clear_neighbor();
    wait_for(
        "the session to come back after a hard reset",
        SESSION,
        || lab.established() > established,
        || lab.lab.logs(),
    );
    assert_eq!(
        lab.lab
            .agent_log_count(&["NOTIFICATION sent", "Administrative Reset"]),
        1,
        "{}",
        lab.lab.logs()
    );
    assert_eq!(lab.teardowns(), 1, "{}", lab.lab.logs());

    // An unknown neighbor is an error with a message.
    let out = lab.agent_cli(&["clear", "neighbor", "192.0.2.99"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("192.0.2.99 is not a configured neighbor"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
