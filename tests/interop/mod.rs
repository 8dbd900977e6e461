//! A two-namespace lab for interop tests: router-agent in `<name>-host`, a third-party BGP
//! daemon in `<name>-peer`, one veth between them.
//!
//! ```text
//!   [host: router-agent, lo 192.0.2.20/32] host_if ═══ peer_if [peer: gobgpd / exabgp]
//!                           10.0.N.2/24                        10.0.N.1/24
//! ```
//!
//! Processes are started with setns(2) into the network namespace only (not `ip netns exec`,
//! whose private mount namespace hides the agent's bpffs pins), die with the test thread
//! (PR_SET_PDEATHSIG), and are stopped by pid on Drop. Labs of dead test processes (netns,
//! pins, temporary directory, and any process whose command line names that directory) are
//! removed when a new lab starts.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    fs,
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

pub const AGENT: &str = env!("CARGO_BIN_EXE_router-agent");
/// A 4-byte AS number: the OPEN carries AS_TRANS and the 4-octet AS capability (RFC 6793).
pub const HOST_ASN: u32 = 4_200_000_001;
pub const HOST_LOOPBACK: &str = "192.0.2.20";
pub const HOST_PREFIX: &str = "192.0.2.20/32";
const LAB_PREFIX: &str = "hrgx-";

/// Runs a command to completion; panics with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `check` every 200 ms until it holds; panics after `timeout` with `log()`.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
    log: impl Fn() -> String,
) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}\n{}",
            log()
        );
        thread::sleep(Duration::from_millis(200));
    }
    eprintln!("[{:>6.2?}] {what}", start.elapsed());
}

/// The last `lines` lines of a file (all of it if shorter).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A veth pair, `a` in namespace `a_ns` and `b` in `b_ns` (both down).
pub fn veth((a, a_ns): (&str, &str), (b, b_ns): (&str, &str)) {
    sh(&[
        "ip", "link", "add", a, "netns", a_ns, "type", "veth", "peer", "name", b, "netns", b_ns,
    ]);
}

/// gobgpd's configuration in a lab: AS `asn` at the peer's address, the host as its one
/// neighbor (IPv4 unicast), retrying connections every `connect_retry` seconds.
pub fn gobgpd_config(lab: &Lab, asn: u32, connect_retry: u32) -> String {
    format!(
        r#"[global.config]
  as = {asn}
  router-id = "{peer}"
  local-address-list = ["{peer}"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "{host}"
    peer-as = {HOST_ASN}
  [neighbors.timers.config]
    connect-retry = {connect_retry}
    hold-time = 9
    keepalive-interval = 3
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
"#,
        peer = lab.peer_ip,
        host = lab.host_ip
    )
}

/// Starts gobgpd in the peer namespace with [`gobgpd_config`] and waits for its API.
pub fn start_gobgpd(lab: &mut Lab, asn: u32, connect_retry: u32) {
    let config = lab.path_str("gobgpd.toml");
    fs::write(&config, gobgpd_config(lab, asn, connect_retry)).unwrap();
    let _ = fs::remove_file(lab.path("gobgp.sock"));
    let mut command = lab.command_in("peer", "gobgpd");
    command.args(["-f", &config, "--api-hosts", &gobgp_api(lab)]);
    command.args(["--pprof-disable", "--log-plain"]);
    lab.spawn_daemon("gobgpd", command);
    wait_for(
        "gobgpd's API",
        Duration::from_secs(10),
        || gobgp_cli(lab, &["neighbor"]).is_ok(),
        || lab.logs(),
    );
}

fn gobgp_api(lab: &Lab) -> String {
    format!("unix://{}", lab.path_str("gobgp.sock"))
}

/// The `gobgp` CLI over the lab's gobgpd socket: its stdout, or what went wrong.
pub fn gobgp_cli(lab: &Lab, args: &[&str]) -> Result<String, String> {
    let out = Command::new("gobgp")
        .args(["--target", &gobgp_api(lab)])
        .args(args)
        .output()
        .map_err(|e| format!("running gobgp: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "gobgp {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

pub struct Lab {
    pub name: String,
    pub dir: PathBuf,
    pub pin_dir: PathBuf,
    pub host_if: String,
    pub peer_if: String,
    pub host_ip: String,
    pub peer_ip: String,
    agent: Option<Child>,
    /// Third-party daemons by label, stopped on Drop.
    daemons: BTreeMap<String, Child>,
}

impl Lab {
    /// `tag` names the lab (`hrgx-<pid>-<tag>`); `subnet` is N in 10.0.N.0/24.
    pub fn new(tag: &str, host_if: &str, peer_if: &str, subnet: u8) -> Self {
        remove_stale_labs();
        let name = format!("{LAB_PREFIX}{}-{tag}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let lab = Self {
            pin_dir: PathBuf::from(format!("/sys/fs/bpf/{name}")),
            name,
            dir,
            host_if: host_if.to_owned(),
            peer_if: peer_if.to_owned(),
            host_ip: format!("10.0.{subnet}.2"),
            peer_ip: format!("10.0.{subnet}.1"),
            agent: None,
            daemons: BTreeMap::new(),
        };
        let _ = fs::remove_dir_all(&lab.pin_dir);
        for role in ["host", "peer"] {
            sh(&["ip", "netns", "add", &lab.ns(role)]);
            lab.exec(role, &["ip", "link", "set", "lo", "up"]);
        }
        veth((host_if, &lab.ns("host")), (peer_if, &lab.ns("peer")));
        let host_cidr = format!("{}/24", lab.host_ip);
        let peer_cidr = format!("{}/24", lab.peer_ip);
        let loopback = format!("{HOST_LOOPBACK}/32");
        lab.exec("host", &["ip", "addr", "add", &host_cidr, "dev", host_if]);
        lab.exec("host", &["ip", "addr", "add", &loopback, "dev", "lo"]);
        lab.exec("host", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        lab.exec("host", &["ip", "link", "set", host_if, "up"]);
        lab.exec("peer", &["ip", "addr", "add", &peer_cidr, "dev", peer_if]);
        lab.exec("peer", &["ip", "link", "set", peer_if, "up"]);
        lab
    }

    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.name)
    }

    pub fn exec(&self, role: &str, args: &[&str]) -> String {
        let ns = self.ns(role);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(args);
        sh(&full)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn path_str(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }

    /// `program` in the `role` namespace (setns only), killed if the spawning thread dies.
    pub fn command_in(&self, role: &str, program: &str) -> Command {
        let netns = fs::File::open(format!("/run/netns/{}", self.ns(role))).unwrap();
        let mut command = Command::new(program);
        // SAFETY: setns and prctl are async-signal-safe; the fd stays open in the closure.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                Ok(())
            });
        }
        command
    }

    /// Spawns a daemon in the peer namespace with stdout and stderr to `<label>.log`.
    pub fn spawn_daemon(&mut self, label: &str, mut command: Command) {
        // Appended to: a restarted daemon keeps its earlier log.
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(&format!("{label}.log")))
            .unwrap();
        let child = command
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            // Its own process group, so that helpers it forks can be ended with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {label}: {e}"));
        self.daemons.insert(label.to_owned(), child);
    }

    /// Stops a daemon: `signal`, then SIGKILL to its process group after 5 s.
    pub fn stop_daemon(&mut self, label: &str, signal: libc::c_int) {
        if let Some(child) = self.daemons.remove(label) {
            stop(child, signal);
        }
    }

    pub fn daemon_running(&mut self, label: &str) -> bool {
        self.daemons
            .get_mut(label)
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Writes the agent's config (`[datapath]`, the interface, then `bgp`) and starts it.
    pub fn start_agent(&mut self, bgp: &str) {
        let config = format!(
            "[datapath]\npin_dir = \"{}\"\n[[interface]]\nname = \"{}\"\n\n{bgp}",
            self.pin_dir.display(),
            self.host_if
        );
        let path = self.path_str("agent.toml");
        fs::write(&path, config).unwrap();
        sh(&[AGENT, "check", "-c", &path]);
        let log = fs::File::create(self.path("agent.log")).unwrap();
        let child = self
            .command_in("host", AGENT)
            .args(["run", "-c", &path])
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info,router_agent::bgp=debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.agent = Some(child);
    }

    /// The agent process exists and is not a zombie.
    pub fn agent_running(&self) -> bool {
        self.agent
            .as_ref()
            .is_some_and(|child| process_alive(child.id()))
    }

    pub fn agent_log(&self) -> String {
        fs::read_to_string(self.path("agent.log")).unwrap_or_default()
    }

    /// Lines of the agent's log containing every one of `needles`.
    pub fn agent_log_count(&self, needles: &[&str]) -> usize {
        self.agent_log()
            .lines()
            .filter(|line| needles.iter().all(|n| line.contains(n)))
            .count()
    }

    /// Sessions the agent reported established with the peer.
    pub fn agent_established(&self) -> usize {
        let peer = format!("peer={}:179", self.peer_ip);
        self.agent_log_count(&["session established", &peer])
    }

    /// The agent's log (tail) and each daemon's log (tail), for failure messages.
    pub fn logs(&self) -> String {
        let mut out = format!(
            "--- agent log ({}):\n{}\n",
            self.path("agent.log").display(),
            tail(&self.path("agent.log"), 150)
        );
        let mut logs: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        logs.retain(|p| p.extension().is_some_and(|e| e == "log") && !p.ends_with("agent.log"));
        logs.sort();
        for path in logs {
            out.push_str(&format!("--- {}:\n{}\n", path.display(), tail(&path, 60)));
        }
        out
    }

    pub fn show(&self, what: &str) -> Value {
        let out = self
            .command_in("host", AGENT)
            .args(["show", what, "--json", "--pin-dir"])
            .arg(&self.pin_dir)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Forwarded routes in the XDP FIB: prefix -> nexthop addresses.
    pub fn fib(&self) -> BTreeMap<String, Vec<String>> {
        let fib = self.show("fib");
        let mut routes = BTreeMap::new();
        for route in fib["routes"].as_array().cloned().unwrap_or_default() {
            if route["action"] != "forward" {
                continue;
            }
            let mut vias: Vec<String> = route["nexthops"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|n| n["via"].as_str().map(str::to_owned))
                .collect();
            vias.sort();
            routes.insert(route["prefix"].as_str().unwrap_or("?").to_owned(), vias);
        }
        routes
    }

    /// The FIB's nexthops for `prefix` (empty: no such route).
    pub fn fib_vias(&self, prefix: &str) -> Vec<String> {
        self.fib().remove(prefix).unwrap_or_default()
    }

    /// The routes the agent mirrored into the host's kernel table (protocol 201).
    pub fn kernel_routes(&self) -> String {
        self.exec("host", &["ip", "-4", "route", "show", "proto", "201"])
    }

    pub fn fib_and_logs(&self) -> String {
        format!("fib: {:?}\n{}", self.fib(), self.logs())
    }
}

/// SIGTERM/SIGINT-style stop with a bounded wait, then SIGKILL to the process group.
fn stop(mut child: Child, signal: libc::c_int) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: plain kill(2) on a child we own (not yet reaped, so the pid is still ours).
    unsafe { libc::kill(pid, signal) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    // Helpers the daemon forked into its group (ExaBGP's API processes), if any are left.
    // SAFETY: the group was created for this child (process_group(0)) and holds only it and
    // what it forked.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(agent) = self.agent.take() {
            // SIGTERM: the agent sends Cease, detaches, unpins and removes its kernel routes.
            let pid = agent.id() as libc::pid_t;
            let mut agent = agent;
            // SAFETY: kill(2) on our own, unreaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(agent.try_wait(), Ok(None)) {
                thread::sleep(Duration::from_millis(50));
            }
            let _ = agent.kill();
            let _ = agent.wait();
        }
        let labels: Vec<String> = self.daemons.keys().cloned().collect();
        for label in labels {
            self.stop_daemon(&label, libc::SIGTERM);
        }
        let _ = fs::remove_dir_all(&self.pin_dir);
        for role in ["host", "peer"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(role)])
                .status();
        }
        if std::env::var_os("HRGX_KEEP_LOGS").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes what labs of dead test processes left: processes whose command line names the
/// lab's directory (by pid), network namespaces, bpffs pins, directories.
fn remove_stale_labs() {
    let dead = |name: &str| -> bool {
        name.strip_prefix(LAB_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !process_alive(pid))
    };
    let names_in = |dir: &Path| -> Vec<String> {
        fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| name.starts_with(LAB_PREFIX) && dead(name))
                    .collect()
            })
            .unwrap_or_default()
    };
    let tmp = std::env::temp_dir();
    for name in names_in(&tmp) {
        let dir = tmp.join(&name);
        kill_processes_naming(dir.to_str().unwrap());
        let _ = fs::remove_dir_all(dir);
    }
    for name in names_in(Path::new("/run/netns")) {
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
    }
    for name in names_in(Path::new("/sys/fs/bpf")) {
        let _ = fs::remove_dir_all(Path::new("/sys/fs/bpf").join(name));
    }
}

/// The process exists and is not a zombie (a killed test run may not be reaped yet).
fn process_alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// SIGKILLs, by pid, the processes whose command line contains `needle` (a stale lab's
/// directory: only what a lab started names it).
fn kill_processes_naming(needle: &str) {
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            // SAFETY: kill(2) by pid of a process that names the stale lab's directory.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}
