//! The restart bench's namespaces and the DUT processes: router-agent (started with
//! `--keep-datapath`, restarted by SIGTERM, `router-agent restart` or SIGKILL) or FRR's bgpd +
//! zebra (bgpd killed and started again, graceful restart on).
//!
//! ```text
//!   client ns: probe sender ──veth── dut ns: router-agent | bgpd+zebra ──veth── sender ns
//!   10.254.0.2                 10.254.0.1 (dutc)   10.255.0.2 (dut0)        10.255.0.1: BGP
//!                                                                     feed, probe receiver
//! ```

use std::{
    fs,
    net::Ipv4Addr,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use router_agent::control::{self, Query};

use crate::bench_bgp::{Link, dut::DUT_ASN};
use netns_lab::Namespace;

pub const TAG: &str = "hrbr";
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(10, 254, 0, 2);
pub const DUT_CLIENT_V4: Ipv4Addr = Ipv4Addr::new(10, 254, 0, 1);

pub struct Topology {
    pub client: Namespace,
    pub sender: Namespace,
    pub dut: Namespace,
}

impl Topology {
    pub fn create(link: &Link, case: &str) -> Result<Self> {
        let pid = std::process::id();
        let client = Namespace::create(&format!("{TAG}-{pid}-{case}-cli"))?;
        let sender = Namespace::create(&format!("{TAG}-{pid}-{case}-snd"))?;
        let dut = Namespace::create(&format!("{TAG}-{pid}-{case}-dut"))?;
        netns_lab::veth(
            (&sender, link.sender_if, [0x02, 0, 0, 0, 0x5e, 0x01]),
            (&dut, link.dut_if, [0x02, 0, 0, 0, 0xd0, 0x01]),
        )?;
        netns_lab::veth(
            (&client, "cli0", [0x02, 0, 0, 0, 0xc1, 0x01]),
            (&dut, "dutc", [0x02, 0, 0, 0, 0xd0, 0x02]),
        )?;
        for (ns, ifname, v4, v6) in [
            (&sender, link.sender_if, link.sender_v4, link.sender_v6),
            (&dut, link.dut_if, link.dut_v4, link.dut_v6),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", ifname])?;
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"])?;
        }
        client.ip(&["addr", "add", &format!("{CLIENT_V4}/24"), "dev", "cli0"])?;
        client.ip(&["route", "add", "default", "via", &DUT_CLIENT_V4.to_string()])?;
        dut.ip(&["addr", "add", &format!("{DUT_CLIENT_V4}/24"), "dev", "dutc"])?;
        // Real UDP from the client: checksums filled in before the veth.
        client.exec("ethtool", &["-K", "cli0", "tx", "off"])?;
        // XDP redirects into the sender's veth need NAPI (GRO) there.
        sender.exec("ethtool", &["-K", link.sender_if, "gro", "on"])?;
        sender.sysctl("net.ipv4.conf.all.rp_filter", "0")?;
        sender.sysctl("net.ipv4.conf.default.rp_filter", "0")?;
        sender.sysctl(&format!("net.ipv4.conf.{}.rp_filter", link.sender_if), "0")?;
        dut.sysctl("net.ipv4.ip_forward", "1")?;
        dut.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        Ok(Self {
            client,
            sender,
            dut,
        })
    }
}

/// The DUT: router-agent or FRR, in the DUT namespace.
pub struct Dut {
    pub dir: PathBuf,
    pub pin_dir: PathBuf,
    binary: PathBuf,
    /// router-agent, or zebra then bgpd.
    processes: Vec<(String, Child)>,
}

impl Dut {
    pub fn new(dir: &Path, pin_dir: &Path, binary: &Path) -> Result<Self> {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_owned(),
            pin_dir: pin_dir.to_owned(),
            binary: binary.to_owned(),
            processes: Vec::new(),
        })
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join("agent.toml")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("agent.sock")
    }

    /// router-agent's configuration: `engine`, sized for the feed, BGP routes not mirrored
    /// into the kernel unless `kernel_routes`, the sender as passive neighbor.
    pub fn write_agent_config(
        &self,
        link: &Link,
        ipv4_routes: usize,
        kernel_routes: &str,
        engine: &str,
    ) -> Result<()> {
        let config = format!(
            r#"[datapath]
pin_dir = "{pin_dir}"
engine = "{engine}"
expected_ipv4_routes = {ipv4_routes}
[control]
socket = "{socket}"
[[interface]]
name = "{ifname}"
[[interface]]
name = "dutc"

[bgp]
asn = {DUT_ASN}
router_id = "{dut_v4}"
kernel_routes = "{kernel_routes}"

[[bgp.neighbor]]
address = "{sender_v4}"
remote_as = {sender_asn}
import = "all"
passive = true
"#,
            pin_dir = self.pin_dir.display(),
            socket = self.socket().display(),
            ifname = link.dut_if,
            dut_v4 = link.dut_v4,
            sender_v4 = link.sender_v4,
            sender_asn = link.sender_asn,
        );
        fs::write(self.config(), config)?;
        netns_lab::run(
            Command::new(&self.binary)
                .arg("check")
                .arg("-c")
                .arg(self.config()),
        )?;
        Ok(())
    }

    /// `router-agent run --keep-datapath`, its log appended to across runs.
    pub fn start_agent(&mut self, ns: &Namespace) -> Result<()> {
        let mut command = ns.command(&self.binary);
        command
            .args(["run", "--keep-datapath", "-c"])
            .arg(self.config())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
        self.spawn("router-agent", command)
    }

    fn spawn(&mut self, label: &str, mut command: Command) -> Result<()> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{label}.log")))?;
        let child = command
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {label}"))?;
        self.processes.push((label.to_owned(), child));
        Ok(())
    }

    fn take(&mut self, label: &str) -> Result<Child> {
        let at = self
            .processes
            .iter()
            .position(|(l, _)| l == label)
            .with_context(|| format!("{label} is not running"))?;
        Ok(self.processes.remove(at).1)
    }

    /// SIGTERM (a planned restart under `--keep-datapath`); returns how long the process took
    /// to exit.
    pub fn stop_planned(&mut self, label: &str) -> Result<Duration> {
        let mut child = self.take(label)?;
        let start = Instant::now();
        // SAFETY: kill(2) on our own, unreaped child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!(
                        "{label} exited with {status}:\n{}",
                        self.log_tail(label, 20)
                    );
                }
                return Ok(start.elapsed());
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{label} did not exit within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self, label: &str) -> Result<()> {
        let mut child = self.take(label)?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// `router-agent restart`: the agent re-executes itself (same pid).
    pub fn restart_command(&self) -> Result<()> {
        netns_lab::run(
            Command::new(&self.binary)
                .arg("restart")
                .arg("-c")
                .arg(self.config()),
        )?;
        Ok(())
    }

    /// `router-agent stop` (the full stop); returns how long until the process exited.
    pub fn stop_command(&mut self) -> Result<Duration> {
        let mut child = self.take("router-agent")?;
        let start = Instant::now();
        netns_lab::run(
            Command::new(&self.binary)
                .arg("stop")
                .arg("-c")
                .arg(self.config()),
        )?;
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!(
                        "router-agent exited with {status}:\n{}",
                        self.log_tail("router-agent", 20)
                    );
                }
                return Ok(start.elapsed());
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                bail!("router-agent did not exit within 60 s of `router-agent stop`");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// An error naming a process that exited, with its log.
    pub fn check_running(&mut self) -> Result<()> {
        for (label, child) in &mut self.processes {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{label} exited ({status}); its log ends with:\n{}",
                    tail(&self.dir.join(format!("{label}.log")), 20)
                );
            }
        }
        Ok(())
    }

    /// router-agent's `status`: FIB routes and adopted entries left (the sum of the numbers
    /// under keys naming "adopted"; None if it reports none).
    pub fn agent_status(&self) -> Result<(usize, Option<u64>)> {
        let status = control::query(&self.socket(), Query::Status)?;
        let routes = status["fib"]["routes"]
            .as_u64()
            .with_context(|| format!("no fib.routes in {status}"))?;
        let mut adopted = None;
        sum_adopted(&status, &mut adopted);
        Ok((routes as usize, adopted))
    }

    /// The UTC time of day (seconds since midnight) of the agent's last log line containing
    /// `needle` (the log's lines start with an RFC 3339 timestamp).
    pub fn log_time_of_day(&self, needle: &str) -> Option<f64> {
        let text = fs::read_to_string(self.dir.join("router-agent.log")).ok()?;
        let line = text.lines().rev().find(|line| line.contains(needle))?;
        let clock = line.get(11..)?.split('Z').next()?;
        let mut parts = clock.split(':');
        let hours: f64 = parts.next()?.parse().ok()?;
        let minutes: f64 = parts.next()?.parse().ok()?;
        let seconds: f64 = parts.next()?.parse().ok()?;
        Some(hours * 3600.0 + minutes * 60.0 + seconds)
    }

    pub fn log_tail(&self, label: &str, lines: usize) -> String {
        tail(&self.dir.join(format!("{label}.log")), lines)
    }

    // FRR: zebra + bgpd with graceful restart, for the anchor row.

    pub fn start_frr(&mut self, ns: &Namespace, link: &Link) -> Result<()> {
        let config = format!(
            r#"frr defaults traditional
hostname dut
router bgp {DUT_ASN}
 bgp router-id {dut_v4}
 bgp graceful-restart
 bgp graceful-restart preserve-fw-state
 no bgp ebgp-requires-policy
 neighbor {sender_v4} remote-as {sender_asn}
 neighbor {sender_v4} passive
 address-family ipv6 unicast
  neighbor {sender_v4} activate
 exit-address-family
!
"#,
            dut_v4 = link.dut_v4,
            sender_v4 = link.sender_v4,
            sender_asn = link.sender_asn,
        );
        fs::write(self.dir.join("bgpd.conf"), config)?;
        fs::write(self.dir.join("zebra.conf"), "hostname dut\n")?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o777))?;
        let mut zebra = self.frr_command(ns, "zebra");
        zebra
            .arg("-f")
            .arg(self.dir.join("zebra.conf"))
            .args(["-s", "90000000"]);
        self.spawn("zebra", zebra)?;
        let zserv = self.dir.join("zserv.api");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !zserv.exists() {
            self.check_running()?;
            if Instant::now() > deadline {
                bail!("zebra did not create {}", zserv.display());
            }
            netns_lab::sleep(Duration::from_millis(50))?;
        }
        self.start_bgpd(ns)
    }

    pub fn start_bgpd(&mut self, ns: &Namespace) -> Result<()> {
        let mut bgpd = self.frr_command(ns, "bgpd");
        bgpd.arg("-f").arg(self.dir.join("bgpd.conf"));
        self.spawn("bgpd", bgpd)
    }

    fn frr_command(&self, ns: &Namespace, daemon: &str) -> Command {
        let pathspace = self
            .dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| TAG.into());
        let mut command = ns.command(format!("/usr/lib/frr/{daemon}"));
        command
            .arg("-i")
            .arg(self.dir.join(format!("{daemon}.pid")))
            .arg("-z")
            .arg(self.dir.join("zserv.api"))
            .arg("--vty_socket")
            .arg(&self.dir)
            .arg("-N")
            .arg(pathspace);
        command
    }

    /// bgpd's prefixes received from the sender (both families).
    pub fn frr_received(&self) -> Result<usize> {
        let text = netns_lab::run(
            Command::new("vtysh")
                .arg("--vty_socket")
                .arg(&self.dir)
                .args(["-c", "show bgp summary json"]),
        )?;
        let summary: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("vtysh show bgp summary json: {text}"))?;
        Ok(["ipv4Unicast", "ipv6Unicast"]
            .iter()
            .filter_map(|family| summary[family]["peers"].as_object())
            .flat_map(|peers| peers.values())
            .filter_map(|peer| peer["pfxRcd"].as_u64())
            .sum::<u64>() as usize)
    }
}

impl Drop for Dut {
    fn drop(&mut self) {
        // The agent ran with --keep-datapath: a full stop is asked for, then whatever is left
        // is killed; the pins go with the pin directory (the namespaces take the links).
        if let Some(at) = self.processes.iter().position(|(l, _)| l == "router-agent") {
            let _ = Command::new(&self.binary)
                .arg("stop")
                .arg("-c")
                .arg(self.config())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            // Acknowledged before it is done: let it finish.
            let agent = &mut self.processes[at].1;
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(agent.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        while let Some((_, mut child)) = self.processes.pop() {
            // SAFETY: kill(2) on the process group of a child we spawned in its own group.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            // SAFETY: as above.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
        netns_lab::remove_pin_dir(&self.pin_dir);
    }
}

/// Sums the numbers under keys naming "adopted" (not a timer's setting) in `value`, and the
/// `adopting` flag of `status`'s `adoption`.
fn sum_adopted(value: &serde_json::Value, found: &mut Option<u64>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                let key = key.to_ascii_lowercase();
                // `"adopting": false` once the adoption is over (no count then); while it
                // runs, the count comes with it and the flag counts as one more.
                let number = match inner {
                    serde_json::Value::Bool(adopting) if key == "adopting" => {
                        Some(u64::from(*adopting))
                    }
                    _ if key.contains("adopted") && !key.contains("time") => inner.as_u64(),
                    _ => None,
                };
                match number {
                    Some(n) => *found = Some(found.unwrap_or(0) + n),
                    None => sum_adopted(inner, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| sum_adopted(item, found)),
        _ => {}
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
