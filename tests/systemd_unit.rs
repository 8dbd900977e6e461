//! The systemd unit (`dist/router-agent.service`) and the agent's side of it (sd_notify):
//! - `systemd-analyze verify` passes without a single warning on the unit as shipped (its
//!   binary path pointed at the one cargo built, the man page it names generated from clap);
//! - the agent, run as the unit runs it (`run --keep-datapath`, exactly the unit's capability
//!   bounding set and no_new_privs, through setpriv), says READY=1 only once XDP is attached,
//!   the FIB programmed and the BGP port bound, with nothing refused for lack of a capability;
//!   RELOADING=1 then READY=1 around a reload (a refused one too); READY=1 again after
//!   `router-agent restart` (same PID) and after a start that adopts; STOPPING=1 on SIGTERM (a
//!   planned restart: the datapath stays) and on `router-agent stop` (the datapath goes);
//! - where systemd is PID 1, the unit started, checked active, reloaded and stopped with
//!   systemctl; elsewhere that test says why it skipped.
//!
//! Needs root.

mod netns;

use std::{
    fs,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use netns::{AGENT, Namespaces, spawn_logged, wait_for};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/router-agent.service");
const STATIC_PREFIX: &str = "198.18.5.0/24";
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(20);

fn unit_text() -> String {
    fs::read_to_string(UNIT).unwrap_or_else(|e| panic!("reading {UNIT}: {e}"))
}

/// The unit's `KEY=` value (the first line setting it).
fn unit_value(key: &str) -> String {
    let prefix = format!("{key}=");
    unit_text()
        .lines()
        .find_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("{UNIT} sets no {key}"))
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let text = unit_text();
    // What the substitution below relies on, and what the package installs.
    assert!(
        text.contains(
            "ExecStart=/usr/bin/router-agent run --keep-datapath --config \
             /etc/hostrouter/router.toml"
        ),
        "{text}"
    );
    let dir = scratch_dir("verify");
    // verify checks that ExecStart's binary exists, and runs `man` for Documentation=.
    let man = dir.join("man/man8");
    let pages = Command::new(AGENT)
        .arg("manpages")
        .arg(&man)
        .output()
        .unwrap();
    assert!(pages.status.success(), "{pages:?}");
    let unit = dir.join("router-agent.service");
    fs::write(&unit, text.replace("/usr/bin/router-agent", AGENT)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .env("MANPATH", dir.join("man"))
        .output()
        .expect("running systemd-analyze (package systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A warning (an unknown key, a value that does not parse) still exits 0: refused too.
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {:?}\n{stderr}",
        out.status
    );
    let _ = fs::remove_dir_all(&dir);
}

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hrsd{}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// The unit's CapabilityBoundingSet as setpriv's `--bounding-set` (`-all,+bpf,...`), after
/// checking that the ambient set is the same.
fn unit_capabilities() -> String {
    let bounding = unit_value("CapabilityBoundingSet");
    assert_eq!(bounding, unit_value("AmbientCapabilities"));
    let mut spec = String::from("-all");
    for cap in bounding.split_whitespace() {
        let name = cap.strip_prefix("CAP_").expect("CAP_ names").to_lowercase();
        spec.push_str(&format!(",+{name}"));
    }
    spec
}

/// A host namespace attached to a peer over a veth, and the datagram socket the agent
/// notifies (`$NOTIFY_SOCKET`).
struct Lab {
    net: Namespaces,
    notify: UnixDatagram,
    agent: Option<Child>,
}

impl Lab {
    fn new(tag: &str) -> Self {
        let net = Namespaces::new("hrsd", tag, &["host", "peer"]);
        net.veth(("host", "sd0"), ("peer", "sd1"));
        net.exec(
            "host",
            &["ip", "addr", "add", "10.232.0.1/24", "dev", "sd0"],
        );
        net.exec(
            "peer",
            &["ip", "addr", "add", "10.232.0.2/24", "dev", "sd1"],
        );
        net.exec("host", &["ip", "link", "set", "sd0", "up"]);
        net.exec("peer", &["ip", "link", "set", "sd1", "up"]);
        // Off, so that finding it on shows the agent could enter the peer's namespace.
        net.exec("peer", &["ethtool", "-K", "sd1", "gro", "off"]);
        let notify = UnixDatagram::bind(net.path("notify")).unwrap();
        notify.set_read_timeout(Some(NOTIFY_TIMEOUT)).unwrap();
        let lab = Self {
            net,
            notify,
            agent: None,
        };
        lab.write_config("sd0");
        lab
    }

    fn config(&self) -> String {
        self.net.path_str("router.toml")
    }

    /// The agent's configuration; `interface` other than sd0 is a change a reload refuses.
    fn write_config(&self, interface: &str) {
        let text = format!(
            r#"[datapath]
pin_dir = "{pin_dir}"
[[interface]]
name = "{interface}"
[[route]]
prefix = "{STATIC_PREFIX}"
nexthops = [{{ via = "10.232.0.2" }}]
[control]
socket = "{socket}"
[drain]
state_file = "{state}"
[bgp]
asn = 65101
router_id = "10.232.0.1"
[[bgp.neighbor]]
address = "10.232.0.2"
remote_as = 65000
passive = true
"#,
            pin_dir = self.net.pin_dir.display(),
            socket = self.net.path_str("agent.sock"),
            state = self.net.path_str("drain.json"),
        );
        fs::write(self.config(), text).unwrap();
    }

    /// `router-agent run --keep-datapath` as the unit runs it: the unit's capability set,
    /// no_new_privs, `$NOTIFY_SOCKET`.
    fn start_agent(&mut self) {
        let mut command = self.net.command_in("host", "setpriv");
        command
            .arg(format!("--bounding-set={}", unit_capabilities()))
            .arg("--no-new-privs")
            .args([AGENT, "run", "--keep-datapath", "--config", &self.config()])
            .env("NOTIFY_SOCKET", self.net.path("notify"))
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
        self.agent = Some(spawn_logged(command, &self.net.path("agent.log")));
    }

    /// The next notification that has the line `key` (earlier ones are skipped); panics after
    /// NOTIFY_TIMEOUT.
    fn wait_notification(&self, key: &str) -> String {
        let deadline = Instant::now() + NOTIFY_TIMEOUT;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let Ok(n) = self.notify.recv(&mut buf) else {
                break;
            };
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            if message.lines().any(|line| line == key) {
                return message;
            }
        }
        panic!(
            "no {key} notification within {NOTIFY_TIMEOUT:?}\n{}",
            self.log()
        );
    }

    /// `router-agent ARGS --config ...` in the host namespace; its exit status and output.
    fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = self
            .net
            .command_in("host", AGENT)
            .args(args)
            .args(["--config", &self.config()])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn attached(&self) -> bool {
        self.net.pin_dir.join("link_sd0").exists()
    }

    fn fib_has_static_route(&self) -> bool {
        self.net
            .agent_show(AGENT, "host", "fib", None)
            .is_some_and(|fib| fib.to_string().contains(STATIC_PREFIX))
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let agent = self.agent.as_mut().expect("an agent running");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = agent.try_wait().unwrap() {
                self.agent = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "agent still running\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        netns::tail(&self.net.path("agent.log"), 60)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(agent) = self.agent.take() {
            netns::stop(agent, libc::SIGKILL);
        }
    }
}

#[test]
fn readiness_reload_restart_and_stop_are_notified() {
    let mut lab = Lab::new("notify");
    lab.start_agent();

    let ready = lab.wait_notification("READY=1");
    // Checked at once: READY=1 must not come before any of this is true.
    assert!(
        lab.attached(),
        "READY=1 before XDP was attached\n{}",
        lab.log()
    );
    assert!(
        lab.fib_has_static_route(),
        "READY=1 before the FIB held {STATIC_PREFIX}\n{}",
        lab.log()
    );
    assert!(ready.contains("STATUS=forwarding"), "{ready}");
    assert!(
        lab.net
            .exec("host", &["ss", "-ltnH", "sport", "= :179"])
            .contains(":179"),
        "the BGP port is not bound\n{}",
        lab.log()
    );
    // The capability set suffices: the GRO switch needed setns into the peer's namespace.
    assert!(
        lab.net
            .exec("peer", &["ethtool", "-k", "sd1"])
            .contains("generic-receive-offload: on"),
        "{}",
        lab.log()
    );
    let log = lab.log();
    for denied in ["not permitted", "Permission denied"] {
        assert!(
            !log.contains(denied),
            "{denied} with the unit's capabilities\n{log}"
        );
    }

    // Reload (ExecReload=): RELOADING=1, then READY=1.
    let (ok, out) = lab.cli(&["reload"]);
    assert!(ok, "{out}");
    lab.wait_notification("RELOADING=1");
    lab.wait_notification("READY=1");
    // A refused reload fails the command (and so `systemctl reload`), and the agent is ready
    // again with its configuration unchanged.
    lab.write_config("sd9");
    let (ok, out) = lab.cli(&["reload"]);
    assert!(!ok && out.contains("need a restart"), "{out}");
    lab.wait_notification("RELOADING=1");
    lab.wait_notification("READY=1");
    lab.write_config("sd0");

    // `router-agent restart`: same PID, ready again once the new process adopted.
    let pid = lab.agent.as_ref().unwrap().id();
    let (ok, out) = lab.cli(&["restart"]);
    assert!(ok, "{out}");
    lab.wait_notification("RELOADING=1");
    let ready = lab.wait_notification("READY=1");
    assert!(ready.contains("adopting"), "{ready}\n{}", lab.log());
    assert!(lab.agent.as_mut().unwrap().try_wait().unwrap().is_none());
    assert_eq!(lab.agent.as_ref().unwrap().id(), pid);

    // SIGTERM (`systemctl stop` / `restart`): STOPPING=1, the datapath stays for the next
    // start, which adopts it.
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let stopping = lab.wait_notification("STOPPING=1");
    assert!(stopping.contains("datapath kept"), "{stopping}");
    assert!(lab.wait_exit().success(), "{}", lab.log());
    assert!(
        lab.attached(),
        "a planned restart detached XDP\n{}",
        lab.log()
    );
    lab.start_agent();
    let ready = lab.wait_notification("READY=1");
    assert!(ready.contains("adopting"), "{ready}\n{}", lab.log());

    // `router-agent stop`: a full stop, STOPPING=1, exit 0 (a unit with Restart=on-failure
    // stays stopped), XDP detached.
    let (ok, out) = lab.cli(&["stop"]);
    assert!(ok, "{out}");
    let stopping = lab.wait_notification("STOPPING=1");
    assert!(stopping.contains("datapath removed"), "{stopping}");
    assert!(lab.wait_exit().success(), "{}", lab.log());
    wait_for(
        "the XDP link unpinned",
        Duration::from_secs(5),
        || !lab.attached(),
        || lab.log(),
    );
}

#[test]
fn unit_starts_reloads_and_stops_under_systemd() {
    if !Path::new("/run/systemd/system").exists() {
        let init = fs::read_to_string("/proc/1/comm").unwrap_or_default();
        let run = Command::new("systemd-run")
            .args(["--wait", "--quiet", "true"])
            .output();
        let why = match &run {
            Ok(out) => String::from_utf8_lossy(&out.stderr)
                .trim()
                .replace('\n', " "),
            Err(err) => err.to_string(),
        };
        if !run.is_ok_and(|out| out.status.success()) {
            eprintln!(
                "SKIPPED: systemd is not PID 1 on this machine (PID 1 is {:?}) and systemd-run \
                 cannot reach a service manager ({why}): the unit was not started. \
                 unit_passes_systemd_analyze_verify checks the unit and \
                 readiness_reload_restart_and_stop_are_notified the agent's side of it.",
                init.trim()
            );
            return;
        }
    }
    let systemd = SystemdUnit::install();
    let systemctl = |args: &[&str]| {
        let out = Command::new("systemctl").args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success(), text)
    };
    let unit = systemd.name.as_str();
    let (ok, _) = systemctl(&["start", unit]);
    assert!(ok, "systemctl start {unit}\n{}", systemd.journal());
    // Type=notify: start returned, so READY=1 came: XDP must be attached by now.
    assert_eq!(systemctl(&["is-active", unit]).1, "active");
    assert!(systemd.lab.attached(), "{}", systemd.journal());
    assert!(systemctl(&["reload", unit]).0, "{}", systemd.journal());
    assert_eq!(systemctl(&["is-active", unit]).1, "active");
    assert!(systemctl(&["stop", unit]).0, "{}", systemd.journal());
    assert_eq!(systemctl(&["is-active", unit]).1, "inactive");
    // `systemctl stop` is a planned restart under this unit: the datapath stays.
    assert!(systemd.lab.attached(), "{}", systemd.journal());
}

/// The shipped unit installed as a runtime unit (/run/systemd/system, gone at reboot) running
/// the built agent in a lab namespace; removed on drop.
struct SystemdUnit {
    name: String,
    lab: Lab,
    files: Vec<PathBuf>,
}

impl SystemdUnit {
    fn install() -> Self {
        let lab = Lab::new("unit");
        let name = format!("hrsd-{}.service", std::process::id());
        // PrivateTmp hides the lab's scratch directory from the service: the configuration
        // goes under /run, the socket and state under a RuntimeDirectory of its own.
        let run_dir = format!("hrsd-{}", std::process::id());
        let conf_dir = PathBuf::from(format!("/run/{run_dir}-conf"));
        fs::create_dir_all(&conf_dir).unwrap();
        let config = conf_dir.join("router.toml");
        let text = fs::read_to_string(lab.config())
            .unwrap()
            .replace(
                &lab.net.path_str("agent.sock"),
                &format!("/run/{run_dir}/sock"),
            )
            .replace(
                &lab.net.path_str("drain.json"),
                &format!("/run/{run_dir}/drain.json"),
            );
        fs::write(&config, text).unwrap();
        let unit_path = PathBuf::from(format!("/run/systemd/system/{name}"));
        fs::write(
            &unit_path,
            unit_text()
                .replace("/usr/bin/router-agent", AGENT)
                .replace("/etc/hostrouter/router.toml", config.to_str().unwrap()),
        )
        .unwrap();
        let drop_in = PathBuf::from(format!("/run/systemd/system/{name}.d"));
        fs::create_dir_all(&drop_in).unwrap();
        fs::write(
            drop_in.join("lab.conf"),
            format!(
                // The empty assignments reset the unit's lists: stopping this test unit must
                // not remove /run/hostrouter under a real agent on the same host.
                "[Service]\nNetworkNamespacePath=/run/netns/{}\nRuntimeDirectory=\n\
                 RuntimeDirectory={run_dir}\nStateDirectory=\n",
                lab.net.ns("host")
            ),
        )
        .unwrap();
        let _ = Command::new("systemctl").arg("daemon-reload").status();
        Self {
            name,
            lab,
            files: vec![unit_path, drop_in, conf_dir],
        }
    }

    fn journal(&self) -> String {
        Command::new("journalctl")
            .args(["-u", &self.name, "-n", "60", "--no-pager"])
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for SystemdUnit {
    fn drop(&mut self) {
        let _ = Command::new("systemctl")
            .args(["stop", &self.name])
            .status();
        for file in &self.files {
            let _ = fs::remove_dir_all(file).or_else(|_| fs::remove_file(file));
        }
        let _ = Command::new("systemctl").arg("daemon-reload").status();
    }
}
