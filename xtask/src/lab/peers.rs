//! The lab's BGP mode: the two servers announce the anycast service by BGP, server1 with FRR
//! (AS 65001), server2 with BIRD 2 (AS 65002), over IPv4 and IPv6 sessions with the router
//! (router-agent, AS 65101), which advertises the client's subnet back.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use netns_lab::{Namespace, run};

pub const ROUTER_AS: u32 = 65101;
pub const FRR_AS: u32 = 65001;
pub const BIRD_AS: u32 = 65002;

/// The `[bgp]` part of the agent's configuration.
pub fn agent_bgp_config(control_socket: &Path) -> String {
    format!(
        r#"
[control]
socket = "{socket}"

[bgp]
asn = {ROUTER_AS}
router_id = "10.1.0.1"
# What the host originates: the only routes it ever advertises (never transit).
originate = [{{ prefix = "10.1.0.0/24" }}, {{ prefix = "2001:db8:1::/64" }}]
kernel_routes = "all"

# Only the anycast service is accepted from the servers (RFC 8212: no import policy, nothing).
[bgp.prefix_list.anycast]
ipv4 = [{{ action = "permit", prefix = "198.18.0.0/24" }}]
ipv6 = [{{ action = "permit", prefix = "2001:db8:ffff::/48" }}]

{neighbors}"#,
        socket = control_socket.display(),
        neighbors = [
            ("10.2.1.2", FRR_AS),
            ("2001:db8:2:1::2", FRR_AS),
            ("10.2.2.2", BIRD_AS),
            ("2001:db8:2:2::2", BIRD_AS),
        ]
        .map(|(address, remote_as)| format!(
            r#"
[[bgp.neighbor]]
address = "{address}"
remote_as = {remote_as}
import = {{ prefix_list = "anycast" }}
export = "all"
hold_time = 9
"#
        ))
        .concat()
    )
}

/// FRR in server1 and BIRD in server2; stopped when dropped.
pub struct Peers {
    dir: PathBuf,
    frr_namespace: String,
    /// FRR's daemons write their pid files here; BIRD is stopped over its control socket.
    frr_pid_files: [PathBuf; 2],
}

impl Peers {
    pub fn start(server1: &Namespace, server2: &Namespace, dir: &Path) -> Result<Self> {
        // FRR's daemons drop to the frr user and write their pid files and sockets here.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .with_context(|| format!("opening {} to FRR's user", dir.display()))?;
        let peers = Self {
            dir: dir.to_owned(),
            frr_namespace: server1.name().to_owned(),
            frr_pid_files: [dir.join("zebra.pid"), dir.join("bgpd.pid")],
        };
        peers.start_frr(server1)?;
        peers.start_bird(server2)?;
        Ok(peers)
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn start_frr(&self, server1: &Namespace) -> Result<()> {
        let config = format!(
            "hostname server1
router bgp {FRR_AS}
 bgp router-id 10.2.1.2
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.2.1.1 remote-as {ROUTER_AS}
 neighbor 10.2.1.1 timers 3 9
 neighbor 2001:db8:2:1::1 remote-as {ROUTER_AS}
 neighbor 2001:db8:2:1::1 timers 3 9
 address-family ipv4 unicast
  network 198.18.0.0/24
  no neighbor 2001:db8:2:1::1 activate
 exit-address-family
 address-family ipv6 unicast
  network 2001:db8:ffff::/48
  neighbor 2001:db8:2:1::1 activate
 exit-address-family
!
"
        );
        let conf = self.path("bgpd.conf");
        std::fs::write(&conf, config).with_context(|| format!("writing {conf}"))?;
        let (zserv, vty) = (self.path("zserv.api"), self.path(""));
        // FRR's own namespace label keeps its sockets apart from any other FRR on the machine.
        let label = &self.frr_namespace;
        // zebra first (bgpd talks to it), then bgpd with its configuration.
        for (daemon, config) in [("zebra", None), ("bgpd", Some(conf.as_str()))] {
            let pid_file = self.path(&format!("{daemon}.pid"));
            let mut args = vec!["-d", "-i", &pid_file];
            if let Some(config) = config {
                args.extend(["-f", config]);
            }
            args.extend(["-z", &zserv, "--vty_socket", &vty, "-N", label]);
            server1.exec(&format!("/usr/lib/frr/{daemon}"), &args)?;
        }
        Ok(())
    }

    fn start_bird(&self, server2: &Namespace) -> Result<()> {
        let config = format!(
            "router id 10.2.2.2;
protocol device {{}}
# The anycast service, announced (not installed: there is no kernel protocol).
protocol static {{ ipv4; route 198.18.0.0/24 blackhole; }}
protocol static {{ ipv6; route 2001:db8:ffff::/48 blackhole; }}
protocol bgp router4 {{
  local 10.2.2.2 as {BIRD_AS};
  neighbor 10.2.2.1 as {ROUTER_AS};
  hold time 9;
  ipv4 {{ import all; export all; }};
}}
protocol bgp router6 {{
  local 2001:db8:2:2::2 as {BIRD_AS};
  neighbor 2001:db8:2:2::1 as {ROUTER_AS};
  hold time 9;
  ipv6 {{ import all; export all; }};
}}
"
        );
        let conf = self.path("bird.conf");
        std::fs::write(&conf, config).with_context(|| format!("writing {conf}"))?;
        server2.exec(
            "bird",
            &[
                "-c",
                &conf,
                "-s",
                &self.path("bird.ctl"),
                "-P",
                &self.path("bird.pid"),
            ],
        )?;
        Ok(())
    }

    /// `vtysh -c COMMAND` against server1's FRR.
    pub fn vtysh(&self, command: &str) -> Result<String> {
        run(Command::new("vtysh").args(["--vty_socket", &self.path(""), "-c", command]))
    }

    /// `birdc COMMAND` against server2's BIRD.
    pub fn birdc(&self, command: &str) -> Result<String> {
        run(Command::new("birdc")
            .args(["-s", &self.path("bird.ctl")])
            .args(command.split(' ')))
    }

    /// Stops FRR's bgpd: it closes its sessions with a Cease NOTIFICATION.
    pub fn stop_frr_bgpd(&self) -> Result<()> {
        signal_pid_file(&self.frr_pid_files[1], libc::SIGTERM)
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        let _ = self.birdc("down");
        for pid_file in &self.frr_pid_files {
            let _ = signal_pid_file(pid_file, libc::SIGTERM);
        }
    }
}

fn signal_pid_file(path: &Path, signal: libc::c_int) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let pid: libc::pid_t = text
        .trim()
        .parse()
        .with_context(|| format!("{}: not a pid", path.display()))?;
    // SAFETY: kill(2) on a pid we read from a daemon's pid file.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(std::io::Error::last_os_error()).context("kill");
    }
    Ok(())
}

/// Waits until `count` of the agent's sessions are Established and have received a prefix
/// (`show neighbors --json`).
pub fn wait_established(
    router: &Namespace,
    agent_bin: &Path,
    config: &Path,
    count: usize,
    timeout: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        // Established and with the server's route in: what the next steps show.
        let established = established_sessions(router, agent_bin, config).unwrap_or(0);
        if established >= count {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            bail!("after {timeout:?} only {established} of {count} BGP sessions are up");
        }
        netns_lab::sleep(Duration::from_millis(200))?;
    }
}

fn established_sessions(router: &Namespace, agent_bin: &Path, config: &Path) -> Result<usize> {
    let text = run(router
        .command(agent_bin)
        .args(["show", "neighbors", "--json", "-c"])
        .arg(config))?;
    let neighbors: serde_json::Value = serde_json::from_str(&text)?;
    Ok(neighbors
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["state"] == "Established" && n["prefixes_received"].as_u64() > Some(0))
        .count())
}
