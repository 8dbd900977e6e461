//! Network-namespace labs shared by the integration tests: shell helpers, the namespaces of
//! one lab with its scratch directory (both removed on Drop, also when the test fails),
//! processes started inside a namespace, and the removal of what labs of dead test processes
//! left behind.
//!
//! Naming: a lab is `<prefix><pid>-<tag>` (`hrt-1234-dir`), its namespaces
//! `<lab>-<role>`, its scratch directory `$TMPDIR/<lab>`, its bpffs pins `/sys/fs/bpf/<lab>`.
//! The pid in the name is what lets a later run tell a dead lab from a running one.
//!
//! Processes go into a namespace with setns(2) on the network namespace only, never
//! `ip netns exec`: that also gives the process a private mount namespace with a fresh /sys,
//! where the agent's bpffs pins would be invisible to everyone else (and die with it).
#![allow(dead_code)]

use std::{
    fs,
    net::{SocketAddr, UdpSocket},
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

pub const AGENT: &str = env!("CARGO_BIN_EXE_router-agent");

/// Set (to anything) to keep every lab's scratch directory (configs and logs).
const KEEP_ENV: &[&str] = &["HOSTROUTER_KEEP_LABS", "HRGX_KEEP_LOGS"];

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

/// The last `lines` lines of a file (all of it if shorter; empty if unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `text` without ANSI escape sequences (ESC [ ... letter).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The process exists and is not a zombie (a killed test run may not be reaped yet).
pub fn process_alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// Spawns `command` with stdout and stderr appended to `log` (a restarted process keeps its
/// earlier output) and stdin closed.
pub fn spawn_logged(mut command: Command, log: &Path) -> Child {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()));
    command
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"))
}

/// Stops a child: `signal`, up to 5 s to exit, then SIGKILL to it and to its process group
/// if it has its own (helpers it forked, such as ExaBGP's API processes).
pub fn stop(mut child: Child, signal: libc::c_int) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: plain kill(2) on a child we own (not yet reaped, so the pid is still ours).
    unsafe { libc::kill(pid, signal) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
        thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: the group exists only if the child was made its leader (process_group(0)), and
    // then holds only it and what it forked.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let _ = child.kill();
    let _ = child.wait();
}

/// Signals the process of a pid file (daemons that fork into the background); no-op if the
/// file is missing.
pub fn signal_pidfile(pidfile: &Path, signal: libc::c_int) {
    let Some(pid) = fs::read_to_string(pidfile)
        .ok()
        .and_then(|pid| pid.trim().parse::<libc::pid_t>().ok())
    else {
        return;
    };
    // SAFETY: kill(2) by the pid a daemon of this lab wrote.
    unsafe { libc::kill(pid, signal) };
}

/// Waits (up to 5 s) for the process of a pid file to be gone.
pub fn wait_pidfile_gone(pidfile: &Path) {
    let Some(pid) = fs::read_to_string(pidfile)
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
    else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
}

/// Stops a daemon by its pid files: SIGTERM to all, up to 5 s each, then SIGKILL.
pub fn stop_pidfiles(pidfiles: &[PathBuf]) {
    for pidfile in pidfiles {
        signal_pidfile(pidfile, libc::SIGTERM);
    }
    for pidfile in pidfiles {
        wait_pidfile_gone(pidfile);
        signal_pidfile(pidfile, libc::SIGKILL);
    }
}

/// The network namespaces and scratch directory of one lab, removed on Drop.
pub struct Namespaces {
    /// `<prefix><pid>-<tag>`.
    pub name: String,
    /// Scratch directory (configs, logs, sockets), world-writable: FRR and BIRD drop
    /// privileges and write their sockets there.
    pub dir: PathBuf,
    /// Where the agent pins its maps and links.
    pub pin_dir: PathBuf,
    roles: Vec<String>,
}

impl Namespaces {
    /// Removes stale labs of `prefix`, then creates `<prefix><pid>-<tag>-<role>` for each
    /// role with the loopback up, and a fresh scratch directory.
    pub fn new(prefix: &str, tag: &str, roles: &[&str]) -> Self {
        remove_stale_labs(prefix);
        let name = format!("{prefix}{}-{tag}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        sh(&["chmod", "777", dir.to_str().unwrap()]);
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/{name}"));
        let _ = fs::remove_dir_all(&pin_dir);
        let mut lab = Self {
            name,
            dir,
            pin_dir,
            roles: Vec::new(),
        };
        for role in roles {
            lab.add(role);
        }
        lab
    }

    /// One more namespace, loopback up.
    pub fn add(&mut self, role: &str) {
        sh(&["ip", "netns", "add", &self.ns(role)]);
        self.roles.push(role.to_owned());
        self.exec(role, &["ip", "link", "set", "lo", "up"]);
    }

    /// The namespace's name.
    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.name)
    }

    /// A file in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn path_str(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }

    /// Runs a short command in `role`'s namespace (`ip netns exec`; fine for iproute2,
    /// sysctl, ethtool: they need no bpffs); panics if it fails.
    pub fn exec(&self, role: &str, args: &[&str]) -> String {
        let ns = self.ns(role);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// A veth pair between two namespaces (left down).
    pub fn veth(&self, (role_a, if_a): (&str, &str), (role_b, if_b): (&str, &str)) {
        sh(&[
            "ip",
            "link",
            "add",
            if_a,
            "netns",
            &self.ns(role_a),
            "type",
            "veth",
            "peer",
            "name",
            if_b,
            "netns",
            &self.ns(role_b),
        ]);
    }

    /// `program` in `role`'s network namespace (setns only, see the module docs), killed if
    /// the spawning thread dies.
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

    /// `router-agent show WHAT --json --pin-dir ... [-c CONFIG]` in `role`'s namespace: the
    /// FIB and counters come from the pinned maps, neighbors and routes from the running
    /// agent's control socket (named in `config`). None if it failed.
    pub fn agent_show(&self, role: &str, what: &str, config: Option<&Path>) -> Option<Value> {
        let mut command = self.command_in(role, AGENT);
        command.args(["show", what, "--json", "--pin-dir"]);
        command.arg(&self.pin_dir);
        if let Some(config) = config {
            command.arg("-c").arg(config);
        }
        let out = command.output().ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// Sends `count` UDP datagrams from `role` to `dst`, each from a new socket (a new source
    /// port: a new flow for ECMP).
    pub fn send_udp(&self, role: &str, dst: SocketAddr, count: usize) {
        let netns = fs::File::open(format!("/run/netns/{}", self.ns(role))).unwrap();
        thread::spawn(move || {
            // SAFETY: setns on this thread only; the thread ends right after.
            assert_eq!(
                unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            let bind = if dst.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
            for _ in 0..count {
                let socket = UdpSocket::bind(bind).unwrap();
                socket.send_to(b"hostrouter", dst).unwrap();
            }
        })
        .join()
        .unwrap();
    }
}

impl Drop for Namespaces {
    /// Runs after the owning lab's own Drop (fields drop last): by then its processes are
    /// stopped and its pins removed (unpinning the links detaches the program), so the
    /// namespaces can go.
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.pin_dir);
        for role in &self.roles {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(role)])
                .status();
        }
        // FRR makes a run directory per pathspace (-N): `<lab><role>`, see interop/frr.rs.
        for role in &self.roles {
            let _ = fs::remove_dir_all(format!("/var/run/frr/{}{role}", self.name));
        }
        if KEEP_ENV.iter().all(|var| std::env::var_os(var).is_none()) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes what labs named `<prefix><pid>-...` of dead test processes left: processes whose
/// command line names the lab's scratch directory, network namespaces, bpffs pins, FRR run
/// directories, scratch directories.
pub fn remove_stale_labs(prefix: &str) {
    // The pid is the digits after the prefix (FRR's run directories append the role
    // without a dash).
    let dead = |name: &str| -> bool {
        name.strip_prefix(prefix)
            .map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|pid| pid?.parse::<u32>().ok())
            .is_some_and(|pid| !process_alive(pid))
    };
    let stale_in = |dir: &Path| -> Vec<PathBuf> {
        fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| dead(&e.file_name().to_string_lossy()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    };
    for path in stale_in(&std::env::temp_dir()) {
        if path.is_dir() {
            kill_processes_naming(path.to_str().unwrap());
            let _ = fs::remove_dir_all(&path);
        } else {
            // Logs and configs of labs from before the scratch directories.
            let _ = fs::remove_file(&path);
        }
    }
    for netns in stale_in(Path::new("/run/netns")) {
        let name = netns.file_name().unwrap().to_string_lossy().into_owned();
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
    }
    for stale in [Path::new("/sys/fs/bpf"), Path::new("/var/run/frr")]
        .into_iter()
        .flat_map(stale_in)
    {
        let _ = fs::remove_dir_all(stale);
    }
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
