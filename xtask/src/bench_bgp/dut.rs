//! The devices under test: router-agent, BIRD 2 and FRR (bgpd + zebra), each started in the
//! DUT namespace as passive BGP neighbors of the sender, and asked how far they got:
//!
//! | DUT        | RIB converged (routes received)        | FIB installed                           |
//! |------------|----------------------------------------|-----------------------------------------|
//! | hostrouter | `status` query: prefixes_received      | `status` query: FIB routes (= XDP maps) |
//! | BIRD       | `birdc show protocols all`: imported   | kernel FIB count (`protocol kernel`)    |
//! | FRR        | `vtysh show bgp summary json`: pfxRcd  | kernel FIB count (zebra)                |
//!
//! hostrouter answers the `status` query in its event loop between two datapath commits, so the
//! FIB count it gives is what the XDP maps hold. Kernel counts come from
//! `/proc/<pid>/net/fib_triestat` (IPv4 prefixes) and `/proc/<pid>/net/rt6_stats` (IPv6 route
//! entries) of a process in the namespace: counters, not route dumps, so polling them costs
//! little next to `ip route | wc -l` at a million routes. Both count the namespace's own local
//! and connected routes too: [`Dut::progress`] reports the change since the DUT started.

use std::{
    fs,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use router_agent::control::{self, Query};

use super::Link;
use netns_lab::Namespace;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// router-agent, BGP routes not mirrored into the kernel (`kernel_routes = none`).
    Hostrouter,
    /// router-agent, every BGP route also in the kernel (`kernel_routes = all`).
    HostrouterKernel,
    /// BIRD 2, `protocol kernel` exporting everything to the kernel FIB.
    Bird,
    /// FRR: bgpd + zebra, which installs into the kernel FIB.
    Frr,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Hostrouter => "hostrouter (kernel_routes none)",
            Kind::HostrouterKernel => "hostrouter (kernel_routes all)",
            Kind::Bird => "BIRD 2 (kernel export)",
            Kind::Frr => "FRR bgpd+zebra",
        }
    }

    /// What "FIB installed" means for this DUT.
    pub fn fib_signal(self) -> &'static str {
        match self {
            Kind::Hostrouter => "XDP maps",
            Kind::HostrouterKernel => "XDP maps + kernel",
            Kind::Bird | Kind::Frr => "kernel FIB",
        }
    }
}

/// How far a DUT got, in routes learned from the sender.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub rib: usize,
    pub fib: usize,
}

/// The DUT's counters as read; the FIB ones include routes the DUT had before the feed.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    rib: usize,
    /// hostrouter: routes in the XDP maps.
    maps: Option<usize>,
    /// Routes in the namespace's kernel FIB, when the DUT installs there.
    kernel: Option<usize>,
}

/// Peak and current resident memory of the DUT's processes, summed.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Memory {
    /// VmHWM: peak resident set.
    pub peak: u64,
    /// VmRSS now.
    pub rss: u64,
    /// RssAnon now: the processes' own data (heap, stacks), without mapped files and BPF
    /// arrays (router-agent maps its engine's tables, which VmHWM counts).
    pub anon: u64,
}

pub struct Dut {
    pub kind: Kind,
    dir: PathBuf,
    /// Daemons by label, stopped (SIGTERM, then SIGKILL) on drop, in reverse order.
    processes: Vec<(String, Child)>,
    control_socket: PathBuf,
    pin_dir: PathBuf,
    /// Counts at start: local and connected routes, not the sender's.
    baseline: Counts,
}

pub const DUT_ASN: u32 = 65000;

/// How router-agent is started: its binary, under a wrapper command if one is given.
#[derive(Default)]
pub struct Agent {
    pub binary: PathBuf,
    pub wrapper: Vec<String>,
    /// `datapath.engine`.
    pub engine: String,
}

impl Dut {
    /// Starts the DUT in `ns` and waits until it answers queries.
    /// `agent`: the router-agent binary, for the hostrouter kinds; `pin_dir` its pins;
    /// `ipv4_routes` the IPv4 routes of the feed, which router-agent is told to expect.
    pub fn start(
        kind: Kind,
        ns: &Namespace,
        link: &Link,
        dir: &Path,
        pin_dir: &Path,
        agent: &Agent,
        ipv4_routes: usize,
    ) -> Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut dut = Dut {
            kind,
            dir: dir.to_owned(),
            processes: Vec::new(),
            control_socket: dir.join("agent.sock"),
            pin_dir: pin_dir.to_owned(),
            baseline: Counts::default(),
        };
        match kind {
            Kind::Hostrouter | Kind::HostrouterKernel => {
                dut.start_agent(ns, link, agent, ipv4_routes)?
            }
            Kind::Bird => dut.start_bird(ns, link)?,
            Kind::Frr => dut.start_frr(ns, link)?,
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            dut.check_running()?;
            match dut.counts() {
                Ok(counts) => {
                    dut.baseline = counts;
                    return Ok(dut);
                }
                Err(err) if Instant::now() > deadline => {
                    return Err(err.context(format!("{} did not come up", kind.label())));
                }
                Err(_) => netns_lab::sleep(Duration::from_millis(200))?,
            }
        }
    }

    /// router-agent as a full-table host is configured: `--engine`, and the table size it should
    /// plan for (its FIB sizes the route map once instead of doubling it on the way).
    fn start_agent(
        &mut self,
        ns: &Namespace,
        link: &Link,
        agent: &Agent,
        ipv4_routes: usize,
    ) -> Result<()> {
        let mirror = if self.kind == Kind::HostrouterKernel {
            "all"
        } else {
            "none"
        };
        let config = format!(
            r#"[datapath]
pin_dir = "{pin_dir}"
engine = "{engine}"
expected_ipv4_routes = {ipv4_routes}
[control]
socket = "{socket}"
[[interface]]
name = "{ifname}"

[bgp]
asn = {DUT_ASN}
router_id = "{dut_v4}"
kernel_routes = "{mirror}"

[[bgp.neighbor]]
address = "{sender_v4}"
remote_as = {sender_asn}
import = "all"
passive = true
"#,
            pin_dir = self.pin_dir.display(),
            socket = self.control_socket.display(),
            ifname = link.dut_if,
            dut_v4 = link.dut_v4,
            sender_v4 = link.sender_v4,
            sender_asn = link.sender_asn,
            engine = agent.engine,
        );
        let path = self.dir.join("agent.toml");
        fs::write(&path, config)?;
        netns_lab::run(
            Command::new(&agent.binary)
                .arg("check")
                .arg("-c")
                .arg(&path),
        )?;
        let mut command = match agent.wrapper.split_first() {
            None => ns.command(&agent.binary),
            Some((wrapper, args)) => {
                let mut command = ns.command(wrapper);
                command.args(args).arg(&agent.binary);
                command
            }
        };
        command
            .arg("run")
            .arg("-c")
            .arg(&path)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
        self.spawn("router-agent", command)
    }

    fn start_bird(&mut self, ns: &Namespace, link: &Link) -> Result<()> {
        let config = format!(
            r#"router id {dut_v4};
protocol device {{}}
protocol kernel kernel4 {{ ipv4 {{ import none; export all; }}; }}
protocol kernel kernel6 {{ ipv6 {{ import none; export all; }}; }}
protocol bgp sender {{
  local {dut_v4} as {DUT_ASN};
  neighbor {sender_v4} as {sender_asn};
  passive on;
  ipv4 {{ import all; export none; }};
  ipv6 {{ import all; export none; }};
}}
"#,
            dut_v4 = link.dut_v4,
            sender_v4 = link.sender_v4,
            sender_asn = link.sender_asn,
        );
        let path = self.dir.join("bird.conf");
        fs::write(&path, config)?;
        let mut command = ns.command("bird");
        command
            .arg("-f")
            .arg("-c")
            .arg(&path)
            .arg("-s")
            .arg(self.dir.join("bird.ctl"))
            .arg("-P")
            .arg(self.dir.join("bird.pid"));
        self.spawn("bird", command)
    }

    fn start_frr(&mut self, ns: &Namespace, link: &Link) -> Result<()> {
        let config = format!(
            r#"frr defaults traditional
hostname dut
router bgp {DUT_ASN}
 bgp router-id {dut_v4}
 no bgp ebgp-requires-policy
 no bgp network import-check
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
        let bgpd_conf = self.dir.join("bgpd.conf");
        let zebra_conf = self.dir.join("zebra.conf");
        fs::write(&bgpd_conf, config)?;
        fs::write(&zebra_conf, "hostname dut\n")?;
        // FRR drops privileges to the frr user: it must be able to enter the directory.
        set_mode(&self.dir, 0o777)?;
        let zserv = self.dir.join("zserv.api");
        let pathspace = self
            .dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "hrbb".into());
        let dir = self.dir.clone();
        let common = |command: &mut Command, pidfile: &str| {
            command
                .arg("-i")
                .arg(dir.join(pidfile))
                .arg("-z")
                .arg(&zserv)
                .arg("--vty_socket")
                .arg(&dir)
                .arg("-N")
                .arg(&pathspace);
        };
        let mut zebra = ns.command("/usr/lib/frr/zebra");
        common(&mut zebra, "zebra.pid");
        // A netlink receive buffer large enough for a full table's notifications (FRR's advice
        // for big tables).
        zebra.arg("-f").arg(&zebra_conf).args(["-s", "90000000"]);
        self.spawn("zebra", zebra)?;
        // bgpd needs zebra's socket.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !zserv.exists() {
            self.check_running()?;
            if Instant::now() > deadline {
                bail!("zebra did not create {}", zserv.display());
            }
            netns_lab::sleep(Duration::from_millis(50))?;
        }
        let mut bgpd = ns.command("/usr/lib/frr/bgpd");
        common(&mut bgpd, "bgpd.pid");
        bgpd.arg("-f").arg(&bgpd_conf);
        self.spawn("bgpd", bgpd)
    }

    fn spawn(&mut self, label: &str, mut command: Command) -> Result<()> {
        let log = fs::File::create(self.dir.join(format!("{label}.log")))?;
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

    /// An error naming the daemon that exited, with its log.
    pub fn check_running(&mut self) -> Result<()> {
        for (label, child) in &mut self.processes {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{label} exited ({status}); its log ends with:\n{}",
                    log_tail(&self.dir.join(format!("{label}.log")), 20)
                );
            }
        }
        Ok(())
    }

    /// Routes learned from the sender so far: received (RIB) and installed (FIB: for
    /// hostrouter with kernel mirroring, in the maps *and* in the kernel).
    pub fn progress(&self) -> Result<Progress> {
        let counts = self.counts()?;
        let added = |now: Option<usize>, before: Option<usize>| {
            now.map(|now| now.saturating_sub(before.unwrap_or(0)))
        };
        let fib = [
            added(counts.maps, self.baseline.maps),
            added(counts.kernel, self.baseline.kernel),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(0);
        Ok(Progress {
            rib: counts.rib.saturating_sub(self.baseline.rib),
            fib,
        })
    }

    fn counts(&self) -> Result<Counts> {
        match self.kind {
            Kind::Hostrouter | Kind::HostrouterKernel => {
                let status = control::query(&self.control_socket, Query::Status)?;
                let maps = status["fib"]["routes"]
                    .as_u64()
                    .with_context(|| format!("no fib.routes in {status}"))?;
                let rib = status["neighbors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|n| n["prefixes_received"].as_u64())
                    .sum::<u64>();
                let kernel = if self.kind == Kind::HostrouterKernel {
                    Some(kernel_routes(self.pid("router-agent")?)?)
                } else {
                    None
                };
                Ok(Counts {
                    rib: rib as usize,
                    maps: Some(maps as usize),
                    kernel,
                })
            }
            Kind::Bird => {
                let text = netns_lab::run(
                    Command::new("birdc")
                        .arg("-s")
                        .arg(self.dir.join("bird.ctl"))
                        .args(["show", "protocols", "all", "sender"]),
                )?;
                if !text.contains("Channel ipv4") {
                    bail!("birdc: no channel yet: {text}");
                }
                Ok(Counts {
                    rib: bird_imported(&text),
                    maps: None,
                    kernel: Some(kernel_routes(self.pid("bird")?)?),
                })
            }
            Kind::Frr => {
                let text = netns_lab::run(
                    Command::new("vtysh")
                        .arg("--vty_socket")
                        .arg(&self.dir)
                        .args(["-c", "show bgp summary json"]),
                )?;
                let summary: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("vtysh show bgp summary json: {text}"))?;
                if summary.get("ipv4Unicast").is_none() {
                    bail!("bgpd not ready: {text}");
                }
                Ok(Counts {
                    rib: frr_received(&summary),
                    maps: None,
                    kernel: Some(kernel_routes(self.pid("zebra")?)?),
                })
            }
        }
    }

    fn pid(&self, label: &str) -> Result<u32> {
        self.processes
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, child)| child.id())
            .with_context(|| format!("{label} is not running"))
    }

    /// Memory of every process of the DUT, summed (bgpd + zebra for FRR).
    pub fn memory(&self) -> Result<Memory> {
        let mut memory = Memory::default();
        for (label, child) in &self.processes {
            let path = format!("/proc/{}/status", child.id());
            let status = fs::read_to_string(&path).with_context(|| format!("{label}: {path}"))?;
            let kib = |key: &str| -> Result<u64> {
                crate::bench_cost::sys::field(&status, key)
                    .map(|kib| kib * 1024)
                    .with_context(|| format!("{key} in {path}"))
            };
            memory.peak += kib("VmHWM:")?;
            memory.rss += kib("VmRSS:")?;
            memory.anon += kib("RssAnon:")?;
        }
        Ok(memory)
    }

    /// The last lines of every daemon's log, for error messages.
    pub fn logs(&self) -> String {
        self.processes
            .iter()
            .map(|(label, _)| {
                format!(
                    "--- {label} log:\n{}\n",
                    log_tail(&self.dir.join(format!("{label}.log")), 15)
                )
            })
            .collect()
    }

    /// Lines of the agent's log that say a route did not make it into the datapath.
    pub fn install_errors(&self) -> Vec<String> {
        if !matches!(self.kind, Kind::Hostrouter | Kind::HostrouterKernel) {
            return Vec::new();
        }
        fs::read_to_string(self.dir.join("router-agent.log"))
            .unwrap_or_default()
            .lines()
            .filter(|line| {
                line.contains("datapath update incomplete") || line.contains("not installed")
            })
            .map(str::to_owned)
            .collect()
    }
}

impl Dut {
    /// Stops the daemons (SIGTERM to each process group, in reverse order of start) and
    /// returns how long until the last one exited. One still running after `patience` is
    /// killed, and that is an error.
    pub fn stop(&mut self, patience: Duration) -> Result<Duration> {
        let started = Instant::now();
        while let Some((label, mut child)) = self.processes.pop() {
            if !stop_child(&label, &mut child, patience) {
                bail!(
                    "{label} did not stop within {:.0} s of SIGTERM",
                    patience.as_secs_f64()
                );
            }
        }
        Ok(started.elapsed())
    }
}

/// SIGTERM to `child`'s process group; SIGKILL after `patience`. Whether it stopped on
/// SIGTERM.
fn stop_child(label: &str, child: &mut Child, patience: Duration) -> bool {
    // SAFETY: kill(2) on the process group of a child we spawned in its own group.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
    let deadline = Instant::now() + patience;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return true,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                eprintln!("  {label} did not stop on SIGTERM; killing it");
                // SAFETY: as above.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                return false;
            }
        }
    }
}

impl Drop for Dut {
    fn drop(&mut self) {
        while let Some((label, mut child)) = self.processes.pop() {
            stop_child(&label, &mut child, Duration::from_secs(10));
        }
        netns_lab::remove_pin_dir(&self.pin_dir);
    }
}

/// Routes in the kernel FIB of `pid`'s network namespace: IPv4 prefixes plus IPv6 route
/// entries (both include local and connected routes).
fn kernel_routes(pid: u32) -> Result<usize> {
    let trie = fs::read_to_string(format!("/proc/{pid}/net/fib_triestat"))
        .context("reading fib_triestat")?;
    let v4 = fib_triestat_prefixes(&trie).context("no Main table in fib_triestat")?;
    let rt6 =
        fs::read_to_string(format!("/proc/{pid}/net/rt6_stats")).context("reading rt6_stats")?;
    let v6 = rt6_entries(&rt6).context("unexpected rt6_stats")?;
    Ok(v4 + v6)
}

/// "Prefixes:" of the Main table (which, without policy rules, also holds the local routes).
fn fib_triestat_prefixes(text: &str) -> Option<usize> {
    let main = text.split("Main:").nth(1)?;
    let main = main.split("Local:").next()?;
    main.lines()
        .find_map(|line| line.trim().strip_prefix("Prefixes:"))?
        .trim()
        .parse()
        .ok()
}

/// The fourth field of rt6_stats (hex): fib_rt_entries, the IPv6 routes in the FIB.
fn rt6_entries(text: &str) -> Option<usize> {
    let field = text.split_whitespace().nth(3)?;
    usize::from_str_radix(field, 16).ok()
}

/// Sum of "Routes: N imported" over the protocol's channels.
fn bird_imported(text: &str) -> usize {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("Routes:"))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<usize>().ok())
        .sum()
}

/// Sum of pfxRcd over the families and peers of `show bgp summary json`.
fn frr_received(summary: &serde_json::Value) -> usize {
    ["ipv4Unicast", "ipv6Unicast"]
        .iter()
        .filter_map(|family| summary[family]["peers"].as_object())
        .flat_map(|peers| peers.values())
        .filter_map(|peer| peer["pfxRcd"].as_u64())
        .sum::<u64>() as usize
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// The release router-agent of this workspace, built first if it is missing or stale (a
/// debug agent would measure the compiler, not the agent).
pub fn agent_binary() -> Result<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has a parent directory")?;
    crate::cargo(&[
        "build",
        "--release",
        "-p",
        "router-agent",
        "--bin",
        "router-agent",
    ])?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let agent = target.join("release").join("router-agent");
    if !agent.exists() {
        bail!(
            "cargo built router-agent but {} is missing",
            agent.display()
        );
    }
    Ok(agent)
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_counters() {
        let trie = "Basic info: size of leaf: 48 bytes, size of tnode: 40 bytes.\nMain:\n\
                    \tAver depth:     2.42\n\tLeaves:         7\n\tPrefixes:       1007\n\
                    Local:\n\tPrefixes:       7\n";
        assert_eq!(fib_triestat_prefixes(trie), Some(1007));
        assert_eq!(
            rt6_entries("0009 0006 000b 01f7 0000 0000 0000\n"),
            Some(0x1f7)
        );
    }

    #[test]
    fn parses_bird_and_frr_counts() {
        let bird = "sender     BGP        ---        up     18:40:00.000  Established\n\
                    \x20 Channel ipv4\n    Routes:         1000 imported, 0 exported, 1000 preferred\n\
                    \x20 Channel ipv6\n    Routes:         200 imported, 0 exported, 200 preferred\n";
        assert_eq!(bird_imported(bird), 1200);
        let frr = serde_json::json!({
            "ipv4Unicast": { "peers": { "10.0.0.1": { "pfxRcd": 1000 } } },
            "ipv6Unicast": { "peers": { "10.0.0.1": { "pfxRcd": 200 } } },
        });
        assert_eq!(frr_received(&frr), 1200);
    }
}
