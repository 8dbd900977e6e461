//! The XDP program's opt-in debug events (`router-agent run --xdp-log`, `[datapath] log =
//! "debug"`): a frame the program passes to the kernel (UDP to the host's own address:
//! `passed-local`) and a malformed one (IPv4 with version 5: `dropped-malformed`) each show
//! up in the agent's log; with the events off, the same frames leave no trace there (the
//! verdict counters prove the program saw them). Needs root.
//!
//! ```text
//!   peer  p0 10.9.0.2 ═══ h0 10.9.0.1  host (router-agent, XDP on h0)
//! ```

mod netns;
mod scenarios;

use std::{fs, net::SocketAddr, process::Child, time::Duration};

use netns::{AGENT, Namespaces, sh, spawn_logged, stop, tail, wait_for};
use scenarios::{frames::send_raw, link_info, verdict};

struct XdpLogLab {
    agent: Option<Child>,
    /// Last: dropped after the agent is stopped.
    net: Namespaces,
}

/// How the events are switched on, if at all.
#[derive(Clone, Copy, Debug)]
enum Events {
    Off,
    Flag,
    Config,
}

impl XdpLogLab {
    fn new(events: Events) -> Self {
        let net = Namespaces::new(
            "hrx-",
            &format!("{events:?}").to_lowercase(),
            &["peer", "host"],
        );
        net.veth(("peer", "p0"), ("host", "h0"));
        for (role, args) in [
            (
                "peer",
                &["ip", "addr", "add", "10.9.0.2/24", "dev", "p0"][..],
            ),
            ("peer", &["ip", "link", "set", "p0", "up"]),
            ("peer", &["ethtool", "-K", "p0", "tx", "off"]),
            ("host", &["ip", "addr", "add", "10.9.0.1/24", "dev", "h0"]),
            ("host", &["ip", "link", "set", "h0", "up"]),
        ] {
            net.exec(role, args);
        }
        let config = format!(
            "[datapath]\npin_dir = \"{pin_dir}\"\n{log}\n[control]\nsocket = \"{socket}\"\n\
             [drain]\nstate_file = \"{drain}\"\n[[interface]]\nname = \"h0\"\n",
            pin_dir = net.pin_dir.display(),
            log = match events {
                Events::Config => "log = \"debug\"",
                Events::Off | Events::Flag => "",
            },
            socket = net.path_str("agent.sock"),
            drain = net.path_str("drain.json"),
        );
        let path = net.path_str("agent.toml");
        fs::write(&path, config).unwrap();
        sh(&[AGENT, "check", "-c", &path]);
        let mut command = net.command_in("host", AGENT);
        command.args(["run", "-c", &path]).env("NO_COLOR", "1");
        if matches!(events, Events::Flag) {
            command.arg("--xdp-log");
        }
        let agent = spawn_logged(command, &net.path("agent.log"));
        let lab = Self {
            agent: Some(agent),
            net,
        };
        wait_for(
            "the agent attached to h0",
            Duration::from_secs(15),
            || lab.counters().is_some(),
            || lab.log(),
        );
        lab
    }

    fn counters(&self) -> Option<serde_json::Value> {
        self.net.agent_show(AGENT, "host", "counters", None)
    }

    fn log(&self) -> String {
        tail(&self.net.path("agent.log"), 60)
    }

    /// UDP to the host's address, and an IPv4 frame with version 5 to the host's MAC.
    fn send_frames(&self) {
        self.net
            .send_udp("peer", SocketAddr::from(([10, 9, 0, 1], 7)), 3);
        let (peer_ifindex, peer_mac) = link_info(&self.net.ns("peer"), "p0");
        let (_, host_mac) = link_info(&self.net.ns("host"), "h0");
        let mut frame = Vec::new();
        frame.extend_from_slice(&host_mac);
        frame.extend_from_slice(&peer_mac);
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&[0x55; 20]);
        assert_eq!(
            send_raw(&self.net.ns("peer"), peer_ifindex, vec![frame], 1),
            1
        );
    }

    /// Waits until the program counted both verdicts.
    fn wait_counted(&self) {
        wait_for(
            "passed-local and dropped-malformed counted",
            Duration::from_secs(10),
            || {
                self.counters().is_some_and(|counters| {
                    verdict(&counters, "passed-local") > 0
                        && verdict(&counters, "dropped-malformed") > 0
                })
            },
            || format!("{:?}\n{}", self.counters(), self.log()),
        );
    }

    fn events(&self) -> Vec<String> {
        fs::read_to_string(self.net.path("agent.log"))
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(" xdp: "))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for XdpLogLab {
    fn drop(&mut self) {
        if let Some(agent) = self.agent.take() {
            stop(agent, libc::SIGTERM);
        }
    }
}

fn events_reach_the_log(events: Events) {
    let lab = XdpLogLab::new(events);
    lab.send_frames();
    lab.wait_counted();
    let has = |what: &str| {
        lab.events()
            .iter()
            .any(|line| line.contains(&format!("{what} ifindex ")))
    };
    wait_for(
        "both events in the agent's log",
        Duration::from_secs(5),
        || has("passed-local") && has("dropped-malformed"),
        || lab.log(),
    );
    eprintln!("{}", lab.events().join("\n"));
}

#[test]
fn events_on_with_the_flag() {
    events_reach_the_log(Events::Flag);
}

#[test]
fn events_on_with_the_config() {
    events_reach_the_log(Events::Config);
}

#[test]
fn no_events_when_off() {
    let lab = XdpLogLab::new(Events::Off);
    lab.send_frames();
    lab.wait_counted();
    // The events, were they on, would be in the log well within this.
    std::thread::sleep(Duration::from_millis(500));
    assert!(lab.events().is_empty(), "{}", lab.log());
}
