//! What the lab prints: the topology, the steps, and how to use a kept lab.

use std::{path::Path, time::Duration};

use super::{ANYCAST_V4, ANYCAST_V6, Engine, Lab, Routes, peers};

impl Lab {
    pub(super) fn print_intro(&self, engine: Engine) {
        println!("hostrouter lab: router-agent between a client and two anycast servers");
        println!(
            "  namespaces: {}, {}, {}, {}",
            self.client.name(),
            self.router.name(),
            self.server1.name(),
            self.server2.name()
        );
        println!();
        println!("    client  10.1.0.2 ─── r-client ┐");
        println!(
            "                                    ├ router: router-agent, XDP, engine {}",
            engine.config_value()
        );
        println!("    server1 10.2.1.2 ─── r-srv1   ┤   198.18.0.0/24      via 10.2.1.2, 10.2.2.2");
        println!(
            "    server2 10.2.2.2 ─── r-srv2   ┘   2001:db8:ffff::/48 via 2001:db8:2:{{1,2}}::2"
        );
        println!("    both servers hold {ANYCAST_V4} and {ANYCAST_V6} (anycast)");
        if self.routes == Routes::Bgp {
            println!(
                "    the routes come from BGP: server1 runs FRR (AS {}), server2 BIRD (AS {}),\n    \
                 the router is AS {} and advertises the client's subnet back",
                peers::FRR_AS,
                peers::BIRD_AS,
                peers::ROUTER_AS
            );
        }
    }

    pub(super) fn print_keep_instructions(&self, agent_bin: &Path, agent_pid: u32) {
        let pin_dir = self.pin_dir.display();
        let names = [
            self.client.name(),
            self.router.name(),
            self.server1.name(),
            self.server2.name(),
        ];
        println!("\nthe lab keeps running (router-agent pid {agent_pid}).");
        println!("  ping from the client:");
        println!(
            "    ip netns exec {} ping {ANYCAST_V4}   (if ping is installed)",
            names[0]
        );
        println!("  inspect the router (nsenter keeps /sys/fs/bpf, `ip netns exec` hides it):");
        println!(
            "    nsenter --net=/run/netns/{} {} show counters --pin-dir {pin_dir}",
            names[1],
            agent_bin.display()
        );
        println!("  a shell in a namespace:  ip netns exec {} bash", names[3]);
        println!("  agent log: {}", self.dir.join("agent.log").display());
        if self.routes == Routes::Bgp {
            println!(
                "  FRR (server1):  vtysh --vty_socket {}/ -c 'show bgp summary'",
                self.dir.display()
            );
            println!(
                "  BIRD (server2): birdc -s {} show protocols",
                self.dir.join("bird.ctl").display()
            );
        }
        println!("  stop and remove it all (agent, FRR, BIRD, namespaces, pins, files):");
        println!("    cargo xtask lab --stop   (the next `cargo xtask lab` removes it too)");
    }
}

pub(super) fn step(title: &str) {
    println!("\n==> {title}");
}

/// How long after `event` something was seen: "within 120 ms of ...", or "before the first
/// check" when the first check already saw it.
pub(super) fn within(elapsed: Duration, event: &str) -> String {
    if elapsed < Duration::from_millis(1) {
        format!("before the first check, right after {event}")
    } else {
        format!("within {} ms of {event}", elapsed.as_millis())
    }
}

pub(super) fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// Prints the last `max` lines of a log, indented.
pub(super) fn print_log(path: &Path, max: usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines[lines.len().saturating_sub(max)..] {
        println!("      {line}");
    }
}
