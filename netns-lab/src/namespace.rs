//! One network namespace, owned: created with its loopback up, deleted on drop.

use std::{
    ffi::OsStr,
    fs::File,
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::Path,
    process::Command,
};

use anyhow::{Context, Result};

use crate::{process::run, text::mac_string};

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
    /// It outlives us: `cargo xtask lab --keep` leaves its agent running.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        self.command_with(program, false)
    }

    /// Like [`Namespace::command`], but the process is killed when the thread that spawned it
    /// ends (PR_SET_PDEATHSIG): a test that panics leaves no daemon behind.
    pub fn command_tied(&self, program: impl AsRef<OsStr>) -> Command {
        self.command_with(program, true)
    }

    fn command_with(&self, program: impl AsRef<OsStr>, tied: bool) -> Command {
        let mut command = Command::new(program);
        let fd = self.handle.as_raw_fd();
        // SAFETY: setns and prctl are async-signal-safe; `fd` stays open as long as `self`,
        // and the command is spawned while the caller still borrows the namespace.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if tied {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
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
    ///
    /// Careful with devmaps: the kernel binds an entry to the device that has the ifindex in
    /// the *updating thread's* namespace. Updated from the host namespace, an entry meant for
    /// a veth in a lab namespace names whatever host interface has that index, and XDP would
    /// redirect lab traffic out of it. Always update them through `run_in`.
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
            mac: crate::parse_mac(mac)?,
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
