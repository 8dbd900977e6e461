//! Config and control gaps, driven through the binary in a network namespace: a start that
//! fails after attaching undoes a cold start and keeps an adopted datapath forwarding; a
//! second agent on the same control socket refuses to start; `[control] show_group` lets its
//! members show and nothing more; `show fib` outside the agent's namespace names the agent's
//! interfaces; a closed stdout pipe is no panic. Needs root.

mod netns;

use std::{
    fs,
    net::TcpListener,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::{fs::PermissionsExt, process::CommandExt},
    },
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use netns::{AGENT, Namespaces, spawn_logged, stop, tail, wait_for};

const AGENT_IF: &str = "gapa";
const PEER_IF: &str = "gapb";
const ROUTE: &str = "198.18.77.0/24";
const BGP_PORT: u16 = 1790;
const NOBODY: u32 = 65534;
const NOGROUP: u32 = 65534;

struct Lab {
    net: Namespaces,
    agent: Option<Child>,
}

impl Lab {
    /// The agent's namespace `host`, a veth to `peer` (10.77.0.1 / .2), and the config.
    fn new(tag: &str, control: &str) -> Self {
        let net = Namespaces::new("hrgap", tag, &["host", "peer"]);
        net.veth(("host", AGENT_IF), ("peer", PEER_IF));
        net.exec(
            "host",
            &["ip", "addr", "add", "10.77.0.1/24", "dev", AGENT_IF],
        );
        net.exec(
            "peer",
            &["ip", "addr", "add", "10.77.0.2/24", "dev", PEER_IF],
        );
        net.exec("host", &["ip", "link", "set", AGENT_IF, "up"]);
        net.exec("peer", &["ip", "link", "set", PEER_IF, "up"]);
        let config = format!(
            r#"[datapath]
pin_dir = "{pins}"
xdp_mode = "generic"
[control]
socket = "{socket}"
{control}
[[interface]]
name = "{AGENT_IF}"
[[route]]
prefix = "{ROUTE}"
nexthops = [{{ via = "10.77.0.2" }}]
[bgp]
asn = 65100
router_id = "10.77.0.1"
port = {BGP_PORT}
"#,
            pins = net.pin_dir.display(),
            socket = net.path_str("agent.sock"),
        );
        fs::write(net.path("agent.toml"), config).unwrap();
        Lab { net, agent: None }
    }

    fn config(&self) -> PathBuf {
        self.net.path("agent.toml")
    }

    fn run_command(&self, extra: &[&str]) -> Command {
        let mut command = self.net.command_in("host", AGENT);
        command.arg("run").args(extra).arg("-c").arg(self.config());
        command.env("NO_COLOR", "1").env("RUST_LOG", "info");
        command
    }

    fn start(&mut self, extra: &[&str]) {
        let command = self.run_command(extra);
        self.agent = Some(spawn_logged(command, &self.net.path("agent.log")));
        wait_for(
            "the agent's control socket",
            Duration::from_secs(20),
            || self.cli_in_host(&["show", "status"]).status.success(),
            || self.logs(),
        );
    }

    /// Runs an agent that must fail to start; its output.
    fn run_failing(&self, extra: &[&str]) -> String {
        let log = self.net.path("failed-run.log");
        let _ = fs::remove_file(&log);
        let mut child = spawn_logged(self.run_command(extra), &log);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                stop(child, libc::SIGKILL);
                panic!("the agent did not give up\n{}", tail(&log, 40));
            }
            thread::sleep(Duration::from_millis(50));
        };
        let text = fs::read_to_string(&log).unwrap_or_default();
        assert!(!status.success(), "the start should fail\n{text}");
        text
    }

    /// `router-agent ARGS -c CONFIG` in the agent's namespace, as root.
    fn cli_in_host(&self, args: &[&str]) -> Output {
        let mut command = self.net.command_in("host", AGENT);
        command.args(args).arg("-c").arg(self.config());
        command.output().unwrap()
    }

    /// The same as `uid`:`gid` with no supplementary groups.
    fn cli_as(&self, uid: u32, gid: u32, args: &[&str]) -> Output {
        let mut command = self.net.command_in("host", AGENT);
        command.args(args).arg("-c").arg(self.config());
        // SAFETY: setgroups, setgid and setuid are async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command.output().unwrap()
    }

    fn stop_agent(&mut self) {
        let out = self.cli_in_host(&["stop"]);
        assert!(out.status.success(), "{}", text(&out));
        let mut agent = self.agent.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(15);
        while agent.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "no exit after stop\n{}",
                self.logs()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM under `--keep-datapath`: a planned restart, the datapath left forwarding.
    fn stop_planned(&mut self) {
        let mut agent = self.agent.take().expect("running");
        // SAFETY: kill(2) on our own, unreaped child.
        unsafe { libc::kill(agent.id() as libc::pid_t, libc::SIGTERM) };
        let status = agent.wait().unwrap();
        assert!(status.success(), "{}", self.logs());
    }

    /// The XDP program attached to the agent's interface, if any (`prog/xdp id N`).
    fn xdp_program(&self) -> Option<String> {
        let link = self
            .net
            .exec("host", &["ip", "-d", "link", "show", "dev", AGENT_IF]);
        let at = link.find("prog/xdp id ")?;
        Some(link[at..].split_whitespace().nth(2)?.to_owned())
    }

    fn kernel_routes(&self) -> String {
        self.net
            .exec("host", &["ip", "route", "show", "proto", "201"])
    }

    fn pins(&self) -> Vec<String> {
        fs::read_dir(&self.net.pin_dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Binds the BGP port in the agent's namespace (as a dual-stack listener does), so that
    /// its start fails after the datapath is attached and pinned.
    fn take_bgp_port(&self) -> TcpListener {
        let netns = fs::File::open(format!("/run/netns/{}", self.net.ns("host"))).unwrap();
        thread::spawn(move || {
            // SAFETY: setns on this thread only; it ends right after.
            assert_eq!(
                unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            TcpListener::bind(("::", BGP_PORT)).unwrap()
        })
        .join()
        .unwrap()
    }

    fn logs(&self) -> String {
        format!(
            "--- agent.log\n{}\n--- failed-run.log\n{}",
            tail(&self.net.path("agent.log"), 60),
            tail(&self.net.path("failed-run.log"), 40)
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(agent) = self.agent.take() {
            // Without --keep-datapath, SIGTERM is a full stop: detached and unpinned.
            stop(agent, libc::SIGTERM);
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn failed_start_undoes_a_cold_start_and_keeps_an_adopted_datapath() {
    let mut lab = Lab::new("start", "");

    // Cold start, failing after attach and pin (the BGP port is taken): nothing is left.
    let port = lab.take_bgp_port();
    let out = lab.run_failing(&[]);
    assert!(
        out.contains("attached XDP program"),
        "failed too early:\n{out}"
    );
    assert!(out.contains("listening on BGP port"), "{out}");
    assert_eq!(lab.xdp_program(), None, "still attached\n{out}");
    assert!(lab.pins().is_empty(), "pins left: {:?}\n{out}", lab.pins());
    assert_eq!(lab.kernel_routes().trim(), "", "kernel routes left\n{out}");
    drop(port);

    // A run that leaves its datapath for the next (planned restart) ...
    lab.start(&["--keep-datapath"]);
    lab.stop_planned();
    let program = lab.xdp_program().expect("left attached");
    assert!(lab.kernel_routes().contains("198.18.77.0/24"));
    // ... then a start adopting it fails: the datapath keeps forwarding, for the next start.
    let port = lab.take_bgp_port();
    let out = lab.run_failing(&["--keep-datapath"]);
    assert!(out.contains("adopted the previous datapath"), "{out}");
    assert!(out.contains("left forwarding"), "{out}");
    assert!(lab.xdp_program().is_some(), "detached\n{out}");
    assert!(
        lab.pins().contains(&format!("link_{AGENT_IF}")),
        "{:?}",
        lab.pins()
    );
    assert!(lab.kernel_routes().contains("198.18.77.0/24"), "{out}");
    drop(port);
    lab.start(&[]);
    let log = fs::read_to_string(lab.net.path("agent.log")).unwrap();
    assert!(
        log.matches("adopted the previous datapath").count() >= 1,
        "{log}"
    );
    assert_ne!(lab.xdp_program(), Some(program), "replaced by the new run");
    lab.stop_agent();
    assert_eq!(lab.xdp_program(), None);
}

#[test]
fn control_socket_is_locked_private_and_open_to_show_group_only() {
    let mut lab = Lab::new("ctl", "show_group = \"nogroup\"");
    lab.start(&[]);
    let socket = lab.net.path("agent.sock");
    let meta = fs::metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), NOGROUP);
    let program = lab.xdp_program();

    // A second agent on the same socket refuses before touching anything.
    let out = lab.run_failing(&[]);
    assert!(out.contains("another router-agent (pid"), "{out}");
    assert!(socket.exists(), "the first agent's socket was removed");
    assert!(
        lab.cli_in_host(&["show", "status"]).status.success(),
        "{}",
        lab.logs()
    );
    assert_eq!(lab.xdp_program(), program, "the datapath was taken over");

    // show_group members show; only root or the agent's user act.
    let out = lab.cli_as(NOBODY, NOGROUP, &["show", "status"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = lab.cli_as(NOBODY, NOGROUP, &["stop"]);
    assert!(
        !out.status.success() && text(&out).contains("permission denied"),
        "{}",
        text(&out)
    );
    let out = lab.cli_as(NOBODY, NOGROUP, &["reload"]);
    assert!(!out.status.success(), "{}", text(&out));
    let out = lab.cli_as(NOBODY, 12345, &["show", "status"]);
    assert!(!out.status.success(), "not in the group: {}", text(&out));
    assert!(
        lab.cli_in_host(&["show", "status"]).status.success(),
        "{}",
        lab.logs()
    );

    // A reload naming a neighbor that cannot be applied is refused as a whole, by the agent
    // itself (asked directly, past the CLI's own check) and by the CLI (exit status).
    let good = fs::read_to_string(lab.config()).unwrap();
    fs::write(
        lab.config(),
        format!(
            "{good}[[bgp.neighbor]]\naddress = \"10.77.0.2\"\nremote_as = 65002\n\
             [[bgp.neighbor]]\naddress = \"10.77.0.3\"\nremote_as = 0\n"
        ),
    )
    .unwrap();
    let answer = ask(&socket, "reload");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("bgp.neighbor[1].remote_as")),
        "{answer}"
    );
    assert!(!lab.cli_in_host(&["reload"]).status.success());
    let neighbors = ask(&socket, "neighbors");
    assert_eq!(neighbors, serde_json::json!([]), "nothing applied");
    fs::write(lab.config(), good).unwrap();

    // `show fib` from the root namespace names the agent's interface, not ours by its index.
    let out = Command::new(AGENT)
        .args(["show", "fib", "--json", "--pin-dir"])
        .arg(&lab.net.pin_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let fib: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let route = fib["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["prefix"] == ROUTE)
        .unwrap_or_else(|| panic!("{fib}"));
    assert_eq!(route["nexthops"][0]["interface"], AGENT_IF, "{fib}");

    // A reader that went away (`| head`) is no panic and no error.
    let pin_dir = lab.net.pin_dir.to_str().unwrap().to_owned();
    for args in [
        vec!["show", "routes"],
        vec!["show", "status"],
        vec!["show", "fib", "--pin-dir", &pin_dir],
        vec!["show", "counters", "--pin-dir", &pin_dir],
        vec!["check"],
    ] {
        let mut command = lab.net.command_in("host", AGENT);
        command.args(&args).arg("-c").arg(lab.config());
        let out = command
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("panicked"),
            "{args:?}: {}: {stderr}",
            out.status
        );
    }
    lab.stop_agent();
    assert!(!socket.exists());
}

/// One request line to the agent's control socket, its JSON answer.
fn ask(socket: &std::path::Path, request: &str) -> serde_json::Value {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    writeln!(stream, "{request}").unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stream)
        .read_line(&mut line)
        .unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// The write end of a pipe whose read end is already closed.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) into a two-int array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just created and are owned here.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}
