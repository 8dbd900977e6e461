//! TCP MD5 signatures (RFC 2385) and GTSM (RFC 5082) on BGP sessions, against GoBGP 3
//! (`auth-password`), FRR 8 (`neighbor X password`, `neighbor X ttl-security hops 1`) and
//! BIRD 2 (`password`, `ttl security on`), each in its own lab (see `interop/mod.rs`). The agent reads its key from a `password_file`
//! (mode 0600) in the lab's directory.
//!
//! GoBGP: the right key establishes and the key appears neither in the agent's log nor in
//! `show neighbors`; a wrong key never establishes (10 s) until the key file is fixed and the
//! agent reloaded (keys re-applied on reload); a key on one side only never establishes,
//! either way round. A wrong key of ours: the agent warns once that its connection attempts
//! get no answer, naming the neighbor, never the key (`peer/unanswered.rs`).
//! IPv6 and a dynamic range's (prefix) key: the right key establishes, a wrong one never.
//! FRR: MD5 and GTSM together establish; FRR reaching us with TTL 254 (its outgoing TTL
//! lowered by nftables) never establishes; both with GTSM for every neighbor (the listener's
//! minimum TTL) and beside a neighbor without it (the listener's socket filter).
//!
//! BIRD 2: MD5 and GTSM together establish.
//!
//! FRR and BIRD, each in one lab: no key at the agent, a wrong one (warned once, as with
//! GoBGP), no key at the daemon never establish (10 s each; keys changed by the agent's
//! `reload` and the daemon's own reconfiguration); then the right key at both ends does.
//!
//! Needs root and the Debian packages `gobgpd`, `frr` and `bird2`. `HRGX_KEEP_LOGS=1` keeps each
//! lab's directory.

mod interop;
mod netns;

use std::{fs, os::unix::fs::PermissionsExt, time::Duration};

use interop::{HOST_ASN, HOST_LOOPBACK, HOST_PREFIX, Lab, bird::Bird, frr::Frr};
use netns::{AGENT, wait_for};

const SESSION: Duration = Duration::from_secs(20);
/// How long a session that must not come up is watched.
const NEVER: Duration = Duration::from_secs(10);
const GOBGP_ASN: u32 = 65010;
const FRR_ASN: u32 = 65030;
const BIRD_ASN: u32 = 65040;
const KEY: &str = "hostrouter-md5-Key";
const WRONG_KEY: &str = "not-the-key";
/// The agent's warning when its connection attempts to a neighbor with a key get no answer.
const UNANSWERED: &str = "no answer to TCP connection attempts; TCP MD5 is configured";

/// The agent's `[bgp]` with one neighbor; `security` lines are added to it.
fn agent_bgp(neighbor: &str, remote_as: u32, security: &str) -> String {
    format!(
        r#"[bgp]
asn = {HOST_ASN}
router_id = "{HOST_LOOPBACK}"
originate = [{{ prefix = "{HOST_PREFIX}" }}]

[[bgp.neighbor]]
address = "{neighbor}"
remote_as = {remote_as}
import = "all"
export = "all"
hold_time = 9
{security}
"#
    )
}

/// Writes the agent's key file (mode 0600) and returns its `password_file` line.
fn key_file(lab: &Lab, key: &str) -> String {
    let path = lab.path("md5.key");
    fs::write(&path, format!("{key}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    format!("password_file = \"{}\"", path.display())
}

/// Replaces the agent's `[bgp]` section (`old`, as started or last replaced) by `new` and
/// reloads the agent (`router-agent reload`).
fn reload_agent_bgp(lab: &Lab, old: &str, new: &str) {
    let path = lab.path("agent.toml");
    let config = fs::read_to_string(&path).unwrap();
    assert!(
        config.ends_with(old),
        "not the agent's [bgp]: {old}\n{config}"
    );
    fs::write(&path, config.replace(old, new)).unwrap();
    reload_agent(lab);
}

fn reload_agent(lab: &Lab) {
    let out = lab
        .command_in("host", AGENT)
        .args(["reload", "-c", &lab.path_str("agent.toml")])
        .output()
        .unwrap();
    assert!(out.status.success(), "reload: {out:?}\n{}", lab.logs());
}

fn gobgp_config(lab: &Lab, password: Option<&str>) -> String {
    gobgp_session(lab, password, &lab.peer_ip, &lab.host_ip)
}

/// GoBGP at `local`, the host at `host` (their family only).
fn gobgp_session(lab: &Lab, password: Option<&str>, local: &str, host: &str) -> String {
    let afi_safi = if local.contains(':') {
        "ipv6-unicast"
    } else {
        "ipv4-unicast"
    };
    let password = password.map_or_else(String::new, |p| format!("    auth-password = \"{p}\"\n"));
    format!(
        r#"[global.config]
  as = {GOBGP_ASN}
  router-id = "{peer}"
  local-address-list = ["{local}"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "{host}"
    peer-as = {HOST_ASN}
{password}  [neighbors.timers.config]
    connect-retry = 2
    hold-time = 9
    keepalive-interval = 3
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "{afi_safi}"
"#,
        peer = lab.peer_ip,
    )
}

/// A lab with GoBGP (its key: `gobgp_key`) and the agent (its key: `agent_key`).
fn gobgp_lab(tag: &str, subnet: u8, gobgp_key: Option<&str>, agent_key: Option<&str>) -> Lab {
    let mut lab = Lab::new(tag, &format!("h{tag}"), &format!("p{tag}"), subnet);
    let config = gobgp_config(&lab, gobgp_key);
    interop::gobgp::spawn(&mut lab, "gobgpd", &config);
    let security = agent_key.map_or_else(String::new, |key| key_file(&lab, key));
    let bgp = agent_bgp(&lab.peer_ip.clone(), GOBGP_ASN, &security);
    lab.start_agent(&bgp);
    lab
}

fn gobgp_established(lab: &Lab) -> bool {
    interop::gobgp::cli(lab, &["neighbor", &lab.host_ip, "-j"])
        .ok()
        .and_then(|out| serde_json::from_str::<serde_json::Value>(&out).ok())
        .is_some_and(|n| n["state"]["session_state"] == 6)
}

fn wait_established(lab: &Lab, what: &str) {
    wait_for(
        what,
        SESSION,
        || lab.agent_established() >= 1,
        || lab.logs(),
    );
}

/// Watches the session for [`NEVER`]: it must not come up, and both daemons keep running.
/// `daemon`: the lab's daemon label, if the peer is one (FRR daemonizes itself).
fn assert_never_established(
    lab: &mut Lab,
    daemon: Option<&str>,
    peer_established: impl Fn(&Lab) -> bool,
) {
    let until = std::time::Instant::now() + NEVER;
    while std::time::Instant::now() < until {
        assert_eq!(lab.agent_established(), 0, "established:\n{}", lab.logs());
        assert!(
            !peer_established(lab),
            "the peer established:\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(lab.agent_running(), "{}", lab.logs());
    if let Some(daemon) = daemon {
        assert!(lab.daemon_running(daemon), "{}", lab.logs());
    }
}

#[test]
fn gobgp_right_key_establishes_and_is_never_shown() {
    let lab = gobgp_lab("md5ok", 41, Some(KEY), Some(KEY));
    wait_established(&lab, "the MD5-signed session with GoBGP");
    wait_for(
        "GoBGP's view",
        SESSION,
        || gobgp_established(&lab),
        || lab.logs(),
    );
    let neighbors = lab.show("neighbors");
    assert!(
        !neighbors.is_null(),
        "show neighbors failed\n{}",
        lab.logs()
    );
    assert!(!neighbors.to_string().contains(KEY), "{neighbors}");
    assert!(!lab.agent_log().contains(KEY), "the key is in the log");
}

#[test]
fn gobgp_wrong_key_never_establishes_until_reload_fixes_it() {
    let mut lab = gobgp_lab("md5bad", 42, Some(KEY), Some(WRONG_KEY));
    assert_never_established(&mut lab, Some("gobgpd"), gobgp_established);
    assert_unanswered_said_once(&lab, 0);

    // The right key, by reload: the listener's and the session's keys are replaced.
    key_file(&lab, KEY);
    reload_agent(&lab);
    wait_established(&lab, "the session after the key was fixed by reload");
    assert!(!lab.agent_log().contains(KEY), "the key is in the log");
}

#[test]
fn gobgp_key_on_one_side_only_never_establishes() {
    let mut lab = gobgp_lab("md5ours", 43, None, Some(KEY));
    assert_never_established(&mut lab, Some("gobgpd"), gobgp_established);
    drop(lab);
    let mut lab = gobgp_lab("md5theirs", 44, Some(KEY), None);
    assert_never_established(&mut lab, Some("gobgpd"), gobgp_established);
}

/// An IPv6 session's key (the neighbor's own v6 address on the listener and the outgoing
/// AF_INET6 socket).
#[test]
fn gobgp_ipv6_key() {
    for (tag, subnet, gobgp_key, establishes) in [
        ("md5v6", 49, KEY, true),
        ("md5v6bad", 50, "other-key", false),
    ] {
        let mut lab = Lab::new(tag, &format!("h{tag}"), &format!("p{tag}"), subnet);
        let (host, peer) = lab.add_ipv6(subnet);
        let config = gobgp_session(&lab, Some(gobgp_key), &peer, &host);
        interop::gobgp::spawn(&mut lab, "gobgpd", &config);
        let security = key_file(&lab, KEY);
        lab.start_agent(&agent_bgp(&peer, GOBGP_ASN, &security));
        if establishes {
            wait_for(
                "the IPv6 MD5-signed session",
                SESSION,
                || lab.agent_established_with(&peer) >= 1,
                || lab.logs(),
            );
        } else {
            let until = std::time::Instant::now() + NEVER;
            while std::time::Instant::now() < until {
                assert_eq!(lab.agent_established_with(&peer), 0, "{}", lab.logs());
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// A dynamic range's key (a prefix key on the listener, the peer's v4 address mapped there).
#[test]
fn gobgp_dynamic_range_key() {
    for (tag, subnet, gobgp_key, establishes) in [
        ("md5dyn", 47, KEY, true),
        ("md5dynbad", 48, "other-key", false),
    ] {
        let mut lab = Lab::new(tag, &format!("h{tag}"), &format!("p{tag}"), subnet);
        let config = gobgp_config(&lab, Some(gobgp_key));
        interop::gobgp::spawn(&mut lab, "gobgpd", &config);
        let bgp = format!(
            "[bgp]\nasn = {HOST_ASN}\nrouter_id = \"{HOST_LOOPBACK}\"\n\
             originate = [{{ prefix = \"{HOST_PREFIX}\" }}]\n\
             [[bgp.dynamic_neighbor]]\nrange = \"10.0.{subnet}.0/24\"\nremote_as = {GOBGP_ASN}\n\
             import = \"all\"\nexport = \"all\"\nhold_time = 9\n{}\n",
            key_file(&lab, KEY)
        );
        lab.start_agent(&bgp);
        if establishes {
            wait_established(&lab, "the dynamic peer's MD5-signed session");
            wait_for(
                "GoBGP's view",
                SESSION,
                || gobgp_established(&lab),
                || lab.logs(),
            );
        } else {
            assert_never_established(&mut lab, Some("gobgpd"), gobgp_established);
        }
    }
}

/// FRR with our key; `ttl_hops`: `ttl-security hops` (GTSM), None: without GTSM.
fn frr_config(lab: &Lab, ttl_hops: Option<&str>) -> String {
    let gtsm = ttl_hops.map_or_else(String::new, |hops| {
        format!(" neighbor {} ttl-security hops {hops}\n", lab.host_ip)
    });
    format!(
        "frr defaults traditional\n\
         router bgp {FRR_ASN}\n bgp router-id {peer}\n no bgp ebgp-requires-policy\n\
         neighbor {host} remote-as {HOST_ASN}\n neighbor {host} password {KEY}\n{gtsm}\
         neighbor {host} timers 3 9\n neighbor {host} timers connect 2\n\
         address-family ipv4 unicast\n  neighbor {host} activate\n exit-address-family\n",
        peer = lab.peer_ip,
        host = lab.host_ip,
    )
}

fn frr_established(frr: &Frr, host: &str) -> bool {
    frr.vtysh(&format!("show bgp neighbors {host} json"))[host]["bgpState"] == "Established"
}

/// A neighbor without GTSM beside FRR (passive, never there): the listener cannot require
/// TTL 255 of all, the socket filter (`gtsm_filter.rs`) does it for FRR's address.
fn other_neighbor(subnet: u8) -> String {
    format!(
        "[[bgp.neighbor]]\naddress = \"10.0.{subnet}.99\"\nremote_as = 65099\npassive = true\n\
         ttl_security = false\n"
    )
}

/// MD5 and GTSM with FRR (`ttl-security hops 1`: FRR sends with 255 and requires 255), with
/// GTSM for all neighbors (the listener's minimum TTL) and for FRR only (the socket filter).
#[test]
fn frr_md5_and_gtsm_establish() {
    for (tag, subnet, mixed) in [("gtsm", 45, false), ("gtsmmix", 51, true)] {
        let mut lab = Lab::new(tag, &format!("h{tag}"), &format!("p{tag}"), subnet);
        let frr = Frr::start(&lab.net, "peer", &frr_config(&lab, Some("1")));
        let security = format!("{}\nttl_security = true", key_file(&lab, KEY));
        let mut bgp = agent_bgp(&lab.peer_ip.clone(), FRR_ASN, &security);
        if mixed {
            bgp.push_str(&other_neighbor(subnet));
        }
        lab.start_agent(&bgp);
        wait_established(&lab, "the MD5 + GTSM session with FRR");
        let host = lab.host_ip.clone();
        wait_for(
            "FRR's view",
            SESSION,
            || frr_established(&frr, &host),
            || lab.logs(),
        );
    }
}

/// BIRD's `protocol bgp host`: `password` (None: without), `ttl security on` (GTSM).
fn bird_config(lab: &Lab, password: Option<&str>, gtsm: bool) -> String {
    let password = password.map_or_else(String::new, |key| format!("  password \"{key}\";\n"));
    let gtsm = if gtsm { "  ttl security on;\n" } else { "" };
    format!(
        "router id {peer};\nprotocol device {{}}\n\
         protocol bgp host {{\n  local {peer} as {BIRD_ASN};\n  neighbor {host} as {HOST_ASN};\n\
         {password}{gtsm}  hold time 9;\n  connect delay time 1;\n\
         connect retry time 2;\n  error wait time 1, 5;\n\
         ipv4 {{ import all; export none; }};\n}}\n",
        peer = lab.peer_ip,
        host = lab.host_ip,
    )
}

fn bird_established(bird: &Bird) -> bool {
    bird.birdc("show protocols host").contains("Established")
}

/// MD5 and GTSM with BIRD (`password`, `ttl security on`).
#[test]
fn bird_md5_and_gtsm_establish() {
    let mut lab = Lab::new("birdmd5", "hbmd5", "pbmd5", 53);
    let bird = Bird::start(&lab.net, "peer", &bird_config(&lab, Some(KEY), true));
    let security = format!("{}\nttl_security = true", key_file(&lab, KEY));
    let bgp = agent_bgp(&lab.peer_ip.clone(), BIRD_ASN, &security);
    lab.start_agent(&bgp);
    wait_established(&lab, "the MD5 + GTSM session with BIRD");
    wait_for(
        "BIRD's view",
        SESSION,
        || bird_established(&bird),
        || format!("{}\n{}", bird.birdc("show protocols all host"), lab.logs()),
    );
}

/// The agent's connection attempts to the lab's peer that got no answer (debug lines).
fn unanswered_attempts(lab: &Lab) -> usize {
    let neighbor = format!("peer={}:179", lab.peer_ip);
    lab.agent_log_count(&["connect: connect timed out", &neighbor])
        + lab.agent_log_count(&["connect: no answer before ConnectRetry expired", &neighbor])
}

/// With a wrong key since `before` unanswered attempts: the agent warned once, naming the
/// neighbor, though its attempts went on (two at least, so that "once" is a finding), and
/// never wrote the key.
fn assert_unanswered_said_once(lab: &Lab, before: usize) {
    wait_for(
        "two unanswered connection attempts with the wrong key",
        SESSION,
        || unanswered_attempts(lab) >= before + 2,
        || lab.logs(),
    );
    let neighbor = format!("peer={}:179", lab.peer_ip);
    assert_eq!(
        lab.agent_log_count(&["WARN", UNANSWERED, &neighbor]),
        1,
        "{}",
        lab.logs()
    );
    assert!(
        !lab.agent_log().contains(WRONG_KEY),
        "the key is in the log"
    );
}

/// The agent against a daemon that has our key (`KEY`): no key at the agent, a wrong one,
/// then none at the daemon (`set_peer_key(None)`) never establish (each watched for
/// [`NEVER`]); the right key at both ends then establishes, so the lab could all along.
/// The wrong key is said once, naming the neighbor, never the key. The order never passes
/// through matching keys (none at both ends included).
fn wrong_or_missing_key_never_establishes(
    lab: &mut Lab,
    remote_as: u32,
    set_peer_key: impl Fn(Option<&str>),
    peer_established: impl Fn(&Lab) -> bool,
) {
    let peer = lab.peer_ip.clone();
    let without_key = agent_bgp(&peer, remote_as, "");
    lab.start_agent(&without_key);
    assert_never_established(lab, None, &peer_established);
    // No key of ours, nothing to suspect: unanswered attempts are not worth a warning.
    assert_eq!(lab.agent_log_count(&[UNANSWERED]), 0, "{}", lab.logs());

    let before = unanswered_attempts(lab);
    let with_wrong_key = agent_bgp(&peer, remote_as, &key_file(lab, WRONG_KEY));
    reload_agent_bgp(lab, &without_key, &with_wrong_key);
    assert_never_established(lab, None, &peer_established);
    assert_unanswered_said_once(lab, before);

    set_peer_key(None);
    assert_never_established(lab, None, &peer_established);

    set_peer_key(Some(KEY));
    key_file(lab, KEY);
    reload_agent(lab);
    wait_established(lab, "the session with the right key at both ends");
    wait_for(
        "the daemon's view",
        SESSION,
        || peer_established(lab),
        || lab.logs(),
    );
    assert!(!lab.agent_log().contains(KEY), "the key is in the log");
}

/// FRR (`neighbor X password`): a wrong or missing key never establishes.
#[test]
fn frr_wrong_or_missing_key_never_establishes() {
    let mut lab = Lab::new("frrmd5bad", "hfmd5bad", "pfmd5bad", 54);
    let frr = Frr::start(&lab.net, "peer", &frr_config(&lab, None));
    let host = lab.host_ip.clone();
    let set_frr_key = |key: Option<&str>| {
        let password = match key {
            Some(key) => format!("neighbor {host} password {key}"),
            None => format!("no neighbor {host} password"),
        };
        let out = frr.vtysh_text(&[
            "configure terminal",
            &format!("router bgp {FRR_ASN}"),
            &password,
        ]);
        assert!(out.trim().is_empty(), "vtysh: {out}");
    };
    wrong_or_missing_key_never_establishes(&mut lab, FRR_ASN, set_frr_key, |_| {
        frr_established(&frr, &host)
    });
}

/// BIRD (`password` in the protocol, changed by `birdc configure`): a wrong or missing key
/// never establishes.
#[test]
fn bird_wrong_or_missing_key_never_establishes() {
    let mut lab = Lab::new("birdmd5bad", "hbmd5bad", "pbmd5bad", 55);
    let bird = Bird::start(&lab.net, "peer", &bird_config(&lab, Some(KEY), false));
    let (config_path, with_key, without_key) = (
        lab.path("bird.conf"),
        bird_config(&lab, Some(KEY), false),
        bird_config(&lab, None, false),
    );
    let set_bird_key = |key: Option<&str>| {
        let config = match key {
            Some(key) => with_key.replace(KEY, key),
            None => without_key.clone(),
        };
        fs::write(&config_path, config).unwrap();
        let out = bird.birdc("configure");
        // A changed password restarts the protocol: "Reconfiguration in progress".
        assert!(out.contains("Reconfigur"), "birdc configure: {out}");
    };
    wrong_or_missing_key_never_establishes(&mut lab, BIRD_ASN, set_bird_key, |_| {
        bird_established(&bird)
    });
}

/// FRR with `ttl-security hops 2` (it sends with 255 and accepts our 255), whose segments an
/// nftables rule in its namespace rewrites to TTL 254: we require 255 and never establish.
/// FRR's neighbor is passive here, so every connection is FRR's: its SYN must be dropped
/// already (no TCP connection at all), which a minimum TTL set after accept would not do.
#[test]
fn gtsm_drops_a_peer_below_ttl_255() {
    for (tag, subnet, mixed) in [("gtsmlow", 46, false), ("gtsmlowmix", 52, true)] {
        let mut lab = Lab::new(tag, &format!("h{tag}"), &format!("p{tag}"), subnet);
        let peer_if = lab.peer_if.clone();
        // FRR's segments leave with TTL 254 (what a peer one router further away would
        // arrive with).
        lab.exec(
            "peer",
            &[
                "nft",
                &format!(
                    "add table ip gtsm; \
                     add chain ip gtsm out {{ type filter hook postrouting priority 0; }}; \
                     add rule ip gtsm out oifname {peer_if} tcp dport 179 ip ttl set 254; \
                     add rule ip gtsm out oifname {peer_if} tcp sport 179 ip ttl set 254"
                ),
            ],
        );
        let frr = Frr::start(&lab.net, "peer", &frr_config(&lab, Some("2")));
        let security = format!(
            "{}\nttl_security = true\npassive = true",
            key_file(&lab, KEY)
        );
        let mut bgp = agent_bgp(&lab.peer_ip.clone(), FRR_ASN, &security);
        if mixed {
            bgp.push_str(&other_neighbor(subnet));
        }
        lab.start_agent(&bgp);
        let host = lab.host_ip.clone();
        assert_never_established(&mut lab, None, |lab| {
            let connections = lab.bgp_connections("host");
            assert!(connections.is_empty(), "TCP connected: {connections:?}");
            frr_established(&frr, &host)
        });
    }
}
