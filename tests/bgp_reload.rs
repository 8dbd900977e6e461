//! Configuration reload with GoBGP as the peer (see `interop/mod.rs` for the lab):
//! `router-agent reload` and SIGHUP apply a new import policy over the routes GoBGP already
//! sent and a new originated route, without resetting the session; a change that needs a
//! restart, or an invalid file, is refused and changes nothing; a neighbor removed from the
//! file is stopped and its routes withdrawn, and comes back when it is added again.
//! Needs root and gobgpd.

mod interop;
mod netns;

use std::{fs, time::Duration};

use interop::{HOST_ASN, HOST_LOOPBACK, HOST_PREFIX, Lab};
use netns::{AGENT, wait_for};

const GOBGP_ASN: u32 = 65040;
const ALLOWED: &str = "10.66.1.0/24";
const HELD_BACK: &str = "10.66.2.0/24";
/// Originated only once the reload adds it.
const SERVICE: &str = "198.51.100.80/32";
/// A static route the reload adds, then removes.
const STATIC: &str = "10.55.0.0/16";
const SESSION: Duration = Duration::from_secs(30);
const ROUTE: Duration = Duration::from_secs(15);

/// The agent's `[bgp]` section: `prefixes` passes GoBGP's routes (a prefix list), the host
/// originates `originate`; without `with_neighbor`, GoBGP is not a neighbor.
fn bgp(lab: &Lab, prefixes: &[&str], originate: &[&str], with_neighbor: bool) -> String {
    let permits: Vec<String> = prefixes
        .iter()
        .map(|p| format!(r#"{{ action = "permit", prefix = "{p}" }}"#))
        .collect();
    let originate: Vec<String> = originate
        .iter()
        .map(|p| format!(r#"{{ prefix = "{p}" }}"#))
        .collect();
    let neighbor = if with_neighbor {
        format!(
            r#"
[[bgp.neighbor]]
address = "{peer}"
remote_as = {GOBGP_ASN}
import = {{ prefix_list = "from-gobgp" }}
export = "all"
hold_time = 9
"#,
            peer = lab.peer_ip
        )
    } else {
        String::new()
    };
    format!(
        r#"[bgp]
asn = {HOST_ASN}
router_id = "{HOST_LOOPBACK}"
originate = [{}]
{neighbor}
[bgp.prefix_list.from-gobgp]
ipv4 = [{}]
"#,
        originate.join(", "),
        permits.join(", ")
    )
}

struct ReloadLab {
    lab: Lab,
    /// The agent's config file with the lab's header (datapath, control, interface).
    header: String,
}

impl ReloadLab {
    fn gobgp(&self, args: &[&str]) -> String {
        interop::gobgp::cli(&self.lab, args).unwrap_or_else(|e| panic!("{e}\n{}", self.lab.logs()))
    }

    /// Rewrites the agent's config with this `[bgp]` section.
    fn write_config(&self, bgp: &str) {
        fs::write(self.lab.path("agent.toml"), format!("{}{bgp}", self.header)).unwrap();
    }

    /// `router-agent reload -c <config>`: (success, stdout + stderr).
    fn reload(&self) -> (bool, String) {
        let out = self
            .lab
            .command_in("host", AGENT)
            .args(["reload", "-c", &self.lab.path_str("agent.toml")])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Prefixes GoBGP received from the host.
    fn gobgp_received(&self) -> Vec<String> {
        let out = self.gobgp(&["-j", "neighbor", &self.lab.host_ip, "adj-in", "-a", "ipv4"]);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        value
            .as_object()
            .map(|routes| routes.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn sessions_down(&self) -> usize {
        self.lab.agent_log_count(&["session down"])
    }
}

#[test]
fn reload_applies_policy_and_neighbors_without_resetting_sessions() {
    let mut lab = Lab::new("reload", "rh", "rp", 73);
    interop::gobgp::start(&mut lab, GOBGP_ASN, 1);
    lab.start_agent(&bgp(&lab, &[ALLOWED], &[HOST_PREFIX], true));
    let header = {
        let config = fs::read_to_string(lab.path("agent.toml")).unwrap();
        config[..config.find("[bgp]").unwrap()].to_owned()
    };
    let this = ReloadLab { lab, header };
    for prefix in [ALLOWED, HELD_BACK] {
        this.gobgp(&["global", "rib", "add", "-a", "ipv4", prefix]);
    }
    let lab = &this.lab;
    wait_for(
        "the session and GoBGP's allowed prefix",
        SESSION,
        || lab.agent_established() == 1 && lab.fib().contains_key(ALLOWED),
        || lab.fib_and_logs(),
    );
    wait_for(
        "GoBGP to receive the host's /32",
        ROUTE,
        || this.gobgp_received() == [HOST_PREFIX],
        || format!("{:?}\n{}", this.gobgp_received(), lab.logs()),
    );
    assert!(!lab.fib().contains_key(HELD_BACK), "{:?}", lab.fib());

    // Import and export change: GoBGP's second prefix is let in from what it already sent
    // (no route refresh, no reset), the service address goes out; a static route comes in.
    let static_route = format!(
        "\n[[route]]\nprefix = \"{STATIC}\"\nnexthops = [{{ via = \"{}\" }}]\n",
        lab.peer_ip
    );
    this.write_config(&format!(
        "{}{static_route}",
        bgp(lab, &[ALLOWED, HELD_BACK], &[HOST_PREFIX, SERVICE], true)
    ));
    let (ok, text) = this.reload();
    assert!(ok, "reload: {text}");
    assert!(text.contains("import_reapplied"), "{text}");
    wait_for(
        "the held-back prefix and the static route in the FIB, the service address at GoBGP",
        ROUTE,
        || {
            let fib = lab.fib();
            fib.contains_key(HELD_BACK)
                && fib.contains_key(STATIC)
                && this.gobgp_received() == [HOST_PREFIX, SERVICE]
        },
        || format!("{:?}\n{}", this.gobgp_received(), lab.fib_and_logs()),
    );
    assert_eq!(this.sessions_down(), 0, "{}", lab.logs());
    assert_eq!(lab.agent_established(), 1, "{}", lab.logs());

    // A change that needs a restart, and an invalid file: refused, nothing applied.
    let restart_only = bgp(lab, &[ALLOWED], &[HOST_PREFIX], true).replace(
        &format!("asn = {HOST_ASN}"),
        &format!("asn = {}", HOST_ASN + 1),
    );
    this.write_config(&restart_only);
    let (ok, text) = this.reload();
    assert!(
        !ok && text.contains("bgp.asn need a restart; nothing applied"),
        "{text}"
    );
    assert_eq!(
        lab.agent_log_count(&["reload refused", "bgp.asn"]),
        1,
        "{}",
        lab.logs()
    );
    this.write_config("[bgp]\nasn = \"not a number\"\n");
    let (ok, text) = this.reload();
    assert!(!ok && text.contains("invalid type"), "{text}");
    // The CLI refused that one itself; SIGHUP makes the agent read it.
    lab.signal_agent(libc::SIGHUP);
    wait_for(
        "the agent to refuse the invalid file",
        ROUTE,
        || lab.agent_log_count(&["reload refused", "TOML parse error"]) == 1,
        || lab.logs(),
    );
    // (`show fib` reads the file too: a valid one again.)
    this.write_config(&bgp(
        lab,
        &[ALLOWED, HELD_BACK],
        &[HOST_PREFIX, SERVICE],
        true,
    ));
    assert!(lab.fib().contains_key(HELD_BACK), "{:?}", lab.fib());
    assert_eq!(this.sessions_down(), 0, "{}", lab.logs());

    // A lowered max-prefix acts at once (GoBGP sends nothing new), here a warning; the static
    // route moves to a gateway no configured interface reaches: not installed, and the old
    // version must not keep forwarding.
    let unreachable_static = static_route.replace(&lab.peer_ip, "203.0.113.1");
    this.write_config(&format!(
        "{}{unreachable_static}",
        bgp(lab, &[ALLOWED, HELD_BACK], &[HOST_PREFIX, SERVICE], true).replace(
            "hold_time = 9",
            "hold_time = 9\nmax_prefix = { limit = 1, action = \"warn\" }"
        )
    ));
    let (ok, text) = this.reload();
    assert!(ok && text.contains(STATIC), "reload: {text}");
    assert_eq!(
        lab.agent_log_count(&["maximum prefixes exceeded", "limit=1"]),
        1,
        "{}",
        lab.logs()
    );
    wait_for(
        "the static route gone",
        ROUTE,
        || !lab.fib().contains_key(STATIC),
        || lab.fib_and_logs(),
    );
    assert!(
        lab.fib().contains_key(HELD_BACK),
        "a warning keeps the routes"
    );
    assert_eq!(this.sessions_down(), 0, "{}", lab.logs());

    // The neighbor and the static route leave the file (SIGHUP this time): the session
    // stopped, its routes withdrawn, the static route removed.
    this.write_config(&bgp(
        lab,
        &[ALLOWED, HELD_BACK],
        &[HOST_PREFIX, SERVICE],
        false,
    ));
    lab.signal_agent(libc::SIGHUP);
    wait_for(
        "GoBGP's routes gone with its neighbor, and the static route",
        ROUTE,
        || {
            let fib = lab.fib();
            !fib.contains_key(ALLOWED) && !fib.contains_key(HELD_BACK) && !fib.contains_key(STATIC)
        },
        || lab.fib_and_logs(),
    );
    assert_eq!(
        lab.agent_log_count(&[
            "BGP neighbor removed",
            "neighbor removed from the configuration"
        ]),
        1,
        "{}",
        lab.logs()
    );

    // And back: a new session, the routes as the current policy says.
    this.write_config(&bgp(lab, &[ALLOWED], &[HOST_PREFIX], true));
    let (ok, text) = this.reload();
    assert!(ok && text.contains("neighbors_added"), "reload: {text}");
    wait_for(
        "the neighbor back with the allowed prefix only",
        SESSION,
        || {
            lab.agent_established() == 2
                && lab.fib().contains_key(ALLOWED)
                && !lab.fib().contains_key(HELD_BACK)
        },
        || lab.fib_and_logs(),
    );
    wait_for(
        "GoBGP to receive the host's /32 only",
        ROUTE,
        || this.gobgp_received() == [HOST_PREFIX],
        || format!("{:?}\n{}", this.gobgp_received(), lab.logs()),
    );
    assert!(lab.agent_running(), "router-agent exited\n{}", lab.logs());
}
