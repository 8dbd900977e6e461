//! Network-namespace helpers shared by `cargo xtask lab` and `cargo xtask bench datapath`, and
//! the lab itself (`netns/lab.rs`).
//!
//! Every namespace we create is named `<tag>-<pid>-<role>` (e.g. `hrb-4242-rtr`) and owned by a
//! [`Namespace`] value that deletes it when dropped, so namespaces go away on success, on error
//! and on panic. A run killed outright (SIGKILL) leaves them behind: [`remove_stale`] deletes
//! those of dead processes at the next start.
//!
//! Two ways to act inside a namespace:
//! - child processes: [`Namespace::command`] (the child calls `setns` before `exec`; unlike
//!   `ip netns exec` this keeps the host's mounts, so `/sys/fs/bpf` stays visible);
//! - this process: [`Namespace::run_in`] runs a closure on a scoped thread that entered the
//!   namespace (the network namespace is per thread). BPF_PROG_TEST_RUN, XDP attach and
//!   `if_nametoindex` resolve interfaces in the calling thread's namespace.
//!
//! Careful with devmaps (`Datapath::add_egress_port`): the kernel binds an entry to the device
//! that has the ifindex in the *updating thread's* namespace. Updated from the host namespace,
//! an entry meant for a veth in a lab namespace names whatever host interface has that index,
//! and XDP would redirect lab traffic out of it. Always update them through `run_in`.

mod lab;

pub use lab::{LabArgs, lab};

use std::{
    fs::File,
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::Path,
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context, Result, bail};

/// A network namespace created by this process, deleted on drop.
pub struct Namespace {
    name: String,
    /// `/run/netns/<name>`, held open for `setns`.
    handle: File,
}

impl Namespace {
    /// `ip netns add <name>`, with its loopback up.
    pub fn create(name: &str) -> Result<Self> {
        run(Command::new("ip").args(["netns", "add", name]))?;
        let path = Path::new("/run/netns").join(name);
        let handle = match File::open(&path) {
            Ok(handle) => handle,
            Err(err) => {
                let _ = run(Command::new("ip").args(["netns", "del", name]));
                return Err(err).with_context(|| format!("opening {}", path.display()));
            }
        };
        let ns = Self {
            name: name.to_owned(),
            handle,
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <ns> <args>`; returns stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// A command whose process runs in this namespace (it enters it between fork and exec).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        let fd = self.handle.as_raw_fd();
        // SAFETY: setns is async-signal-safe; `fd` stays open as long as `self`, and the
        // command is spawned while the caller still borrows the namespace.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command
    }

    /// Runs `program args` in the namespace and returns its stdout; fails on a non-zero exit.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String> {
        run(self.command(program).args(args))
    }

    /// `sysctl -w key=value` in the namespace (net.* sysctls are per namespace).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec("sysctl", &["-q", "-w", &format!("{key}={value}")])?;
        Ok(())
    }

    /// Moves the calling thread into the namespace. Only for threads that stay there (a
    /// generator thread); otherwise use [`Namespace::run_in`].
    pub fn enter_current_thread(&self) -> Result<()> {
        // SAFETY: plain syscall on an open namespace fd.
        if unsafe { libc::setns(self.handle.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("setns into {}", self.name));
        }
        Ok(())
    }

    /// Runs `f` on a thread inside the namespace and returns its result.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    self.enter_current_thread()?;
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Index and MAC address of an interface in this namespace.
    pub fn link(&self, ifname: &str) -> Result<LinkInfo> {
        let json = self.ip(&["-j", "link", "show", "dev", ifname])?;
        let links: serde_json::Value = serde_json::from_str(&json)
            .with_context(|| format!("parsing `ip -j link show dev {ifname}`"))?;
        let link = &links[0];
        let ifindex = link["ifindex"]
            .as_u64()
            .with_context(|| format!("{ifname}: no ifindex in {json}"))?;
        let mac = link["address"]
            .as_str()
            .with_context(|| format!("{ifname}: no address in {json}"))?;
        Ok(LinkInfo {
            ifindex: ifindex as u32,
            mac: parse_mac(mac)?,
        })
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Err(err) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("warning: could not delete namespace {}: {err:#}", self.name);
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct LinkInfo {
    pub ifindex: u32,
    pub mac: [u8; 6],
}

/// A veth pair `a_name` (in `a`) <-> `b_name` (in `b`), both up, with fixed MACs.
pub fn veth(
    (a, a_name, a_mac): (&Namespace, &str, [u8; 6]),
    (b, b_name, b_mac): (&Namespace, &str, [u8; 6]),
) -> Result<()> {
    let (a_mac, b_mac) = (mac_string(&a_mac), mac_string(&b_mac));
    run(Command::new("ip").args([
        "link",
        "add",
        a_name,
        "netns",
        a.name(),
        "address",
        &a_mac,
        "type",
        "veth",
        "peer",
        "name",
        b_name,
        "netns",
        b.name(),
        "address",
        &b_mac,
    ]))?;
    a.ip(&["link", "set", a_name, "up"])?;
    b.ip(&["link", "set", b_name, "up"])?;
    Ok(())
}

/// Deletes namespaces `<tag>-<pid>-*` (and pin directories `/sys/fs/bpf/<tag>-<pid>`) left by
/// runs whose process is gone, after stopping what still runs inside them (a router-agent left
/// by `lab --keep`).
pub fn remove_stale(tag: &str) {
    let prefix = format!("{tag}-");
    let alive = |pid: &str| {
        // A live xtask with that pid still owns them (pids are reused, so check the name).
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "xtask")
    };
    let owner = |name: &str| -> Option<String> {
        let rest = name.strip_prefix(&prefix)?;
        let pid = rest.split('-').next()?;
        pid.chars()
            .all(|c| c.is_ascii_digit())
            .then(|| pid.to_owned())
    };
    if let Ok(list) = run(Command::new("ip").args(["netns", "list"])) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if let Some(pid) = owner(name)
                && !alive(&pid)
            {
                eprintln!("removing stale namespace {name} (pid {pid} is gone)");
                stop_processes_in(name);
                let _ = run(Command::new("ip").args(["netns", "del", name]));
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/sys/fs/bpf") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = owner(&name)
                && !alive(&pid)
            {
                eprintln!("removing stale pin directory /sys/fs/bpf/{name}");
                remove_pin_dir(&entry.path());
            }
        }
    }
}

/// SIGTERMs the processes whose network namespace is `/run/netns/<name>` and waits up to 3 s for
/// them to exit (then SIGKILL). Namespaces are identified by inode, as `ip netns pids` does.
fn stop_processes_in(name: &str) {
    use std::os::unix::fs::MetadataExt;
    let Ok(ns) = std::fs::metadata(Path::new("/run/netns").join(name)) else {
        return;
    };
    let target = format!("net:[{}]", ns.ino());
    let inside = || -> Vec<i32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/ns/net"))
                    .is_ok_and(|link| link.to_string_lossy() == target)
            })
            .collect()
    };
    let pids = inside();
    for &pid in &pids {
        eprintln!("  stopping pid {pid} (left running in {name})");
        // SAFETY: plain kill(2) of a process identified by its namespace.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let start = std::time::Instant::now();
    while !inside().is_empty() && start.elapsed() < std::time::Duration::from_secs(3) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for pid in inside() {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Removes a bpffs directory of pins (one level deep, as the agent pins).
pub fn remove_pin_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Runs a command to completion; its stdout, or an error with its stderr.
pub fn run(command: &mut Command) -> Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {command:?}"))?;
    check(command, output)
}

fn check(command: &Command, output: Output) -> Result<String> {
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub fn mac_string(mac: &[u8; 6]) -> String {
    router_agent::netlink::mac_to_string(mac)
}

pub fn parse_mac(text: &str) -> Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next().with_context(|| format!("bad MAC {text:?}"))?;
        *byte = u8::from_str_radix(part, 16).with_context(|| format!("bad MAC {text:?}"))?;
    }
    if parts.next().is_some() {
        bail!("bad MAC {text:?}");
    }
    Ok(mac)
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Turns SIGINT/SIGTERM into a flag ([`interrupted`]) so that long runs stop at the next check
/// and unwind through the cleanup guards instead of dying with namespaces left behind.
pub fn catch_interrupts() {
    extern "C" fn on_signal(_: libc::c_int) {
        INTERRUPTED.store(true, Ordering::SeqCst);
    }
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Sleeps up to `duration`, returning early (with an error) if interrupted.
pub fn sleep(duration: std::time::Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + duration;
    loop {
        if interrupted() {
            bail!("interrupted");
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return Ok(());
        }
        std::thread::sleep((deadline - now).min(std::time::Duration::from_millis(50)));
    }
}
