//! RFC 9687's send hold timer with GoBGP as the peer (see `interop/mod.rs` for the lab):
//! GoBGP is frozen (SIGSTOP) and a reload makes the agent send it a large table. The
//! socket buffers fill, the agent's writes make no progress, and after the send hold time
//! (twice the 9 s hold time) the agent ends the session (NOTIFICATION 8/0, Send Hold Timer
//! Expired). Without the timer the write waits forever and the session never ends. The
//! agent's memory is measured (VmRSS, VmHWM) and printed.
//! Needs root and gobgpd.

mod interop;
mod netns;

use std::{
    fs, thread,
    time::{Duration, Instant},
};

use interop::{HOST_ASN, HOST_LOOPBACK, HOST_PREFIX, Lab};
use netns::{AGENT, wait_for};

const GOBGP_ASN: u32 = 65050;
/// /32s originated by the reload: far more UPDATE bytes (about 250 kB) than the small socket
/// buffers below hold.
const PREFIXES: u32 = 50_000;
const SEND_HOLD: Duration = Duration::from_secs(18);
/// Ceiling on the agent's peak RSS through the whole test.
const MAX_RSS_KB: u64 = 256 * 1024;

/// A field of /proc/PID/status, in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

fn originate(count: u32) -> String {
    let mut prefixes = vec![format!("{{ prefix = \"{HOST_PREFIX}\" }}")];
    for i in 0..count {
        let ip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 96, 0, 0)) + i);
        prefixes.push(format!("{{ prefix = \"{ip}/32\" }}"));
    }
    format!("originate = [{}]\n", prefixes.join(", "))
}

#[test]
fn a_peer_that_stops_reading_is_dropped_after_the_send_hold_time() {
    let mut lab = Lab::new("sendhold", "sh", "sp", 83);
    // Small socket buffers at both ends (per namespace), so that a stalled reader blocks
    // the agent's writes after a few tens of kilobytes.
    lab.exec(
        "peer",
        &["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 16384 32768"],
    );
    lab.exec(
        "host",
        &["sysctl", "-qw", "net.ipv4.tcp_wmem=4096 16384 32768"],
    );
    interop::gobgp::start(&mut lab, GOBGP_ASN, 1);
    let bgp = |originate: &str| {
        format!(
            r#"[bgp]
asn = {HOST_ASN}
router_id = "{HOST_LOOPBACK}"
{originate}
[[bgp.neighbor]]
address = "{peer}"
remote_as = {GOBGP_ASN}
import = "all"
export = "all"
hold_time = 9
"#,
            peer = lab.peer_ip,
        )
    };
    let small = originate(0);
    lab.start_agent(&bgp(&small));
    wait_for(
        "the session",
        Duration::from_secs(30),
        || lab.agent_established() == 1,
        || lab.logs(),
    );
    let pid = lab.agent_pid().expect("agent started");
    let rss_before = status_kb(pid, "VmRSS");

    lab.signal_daemon("gobgpd", libc::SIGSTOP);
    let frozen = Instant::now();
    let config = fs::read_to_string(lab.path("agent.toml")).unwrap();
    fs::write(
        lab.path("agent.toml"),
        config.replace(&small, &originate(PREFIXES)),
    )
    .unwrap();
    let out = lab
        .command_in("host", AGENT)
        .args(["reload", "-c", &lab.path_str("agent.toml")])
        .output()
        .unwrap();
    assert!(out.status.success(), "reload: {out:?}");

    let mut rss_max = 0;
    let timeout = SEND_HOLD + Duration::from_secs(15);
    while lab.agent_log_count(&["NOTIFICATION sent", "Send Hold Timer Expired"]) == 0 {
        rss_max = rss_max.max(status_kb(pid, "VmRSS"));
        assert!(
            frozen.elapsed() < timeout,
            "no send hold expiry {timeout:?} after the peer froze\n{}",
            lab.logs()
        );
        thread::sleep(Duration::from_millis(200));
    }
    let ended = frozen.elapsed();
    wait_for(
        "the session down",
        Duration::from_secs(5),
        || lab.agent_log_count(&["session down", "send hold timer expired"]) == 1,
        || lab.logs(),
    );
    let peak = status_kb(pid, "VmHWM");
    eprintln!(
        "send hold: peer frozen, {PREFIXES} routes to send; session ended {ended:.1?} after \
         the freeze (send hold time {SEND_HOLD:?}); agent VmRSS {rss_before} kB before, \
         {rss_max} kB at most while stalled, VmHWM {peak} kB"
    );
    // Not the hold timer: the agent's writes were stalled, so only the send hold timer ran.
    assert!(ended >= SEND_HOLD - Duration::from_secs(1), "{ended:?}");
    assert!(peak < MAX_RSS_KB, "agent peak RSS {peak} kB");
    lab.signal_daemon("gobgpd", libc::SIGCONT);
}
