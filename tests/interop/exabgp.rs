//! ExaBGP 4.2 in a lab's peer namespace (daemon label `exabgp`), driven through its API: a
//! helper process relays the lines written to a FIFO (`commands.fifo`) to ExaBGP, and another
//! appends what ExaBGP reports (JSON: state changes, UPDATEs, NOTIFICATIONs) to
//! `received.json`, which the tests read.

use std::{
    fs,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::Lab;
use crate::netns::sh;

/// Relays API commands from a FIFO to ExaBGP (stdout); exits when ExaBGP goes away.
const COMMANDS_RELAY: &str = r#"import os, select, sys
fifo = sys.argv[1]
parent = os.getppid()
fd = os.open(fifo, os.O_RDWR)
while os.getppid() == parent:
    ready, _, _ = select.select([fd], [], [], 0.5)
    if ready:
        try:
            sys.stdout.buffer.write(os.read(fd, 65536))
            sys.stdout.flush()
        except BrokenPipeError:
            break
"#;

/// The lines a `neighbor { ... }` block of [`start`]'s config needs for the API: commands
/// in, state changes, parsed UPDATEs and NOTIFICATIONs out.
pub const NEIGHBOR_API: &str = r#"  api commands { processes [ commands ]; }
  api received {
    processes [ received ];
    neighbor-changes;
    receive { parsed; update; notification; }
  }
"#;

/// Starts ExaBGP with the API processes and `neighbors` (`neighbor` blocks, each with
/// [`NEIGHBOR_API`]) as its config.
pub fn start(lab: &mut Lab, neighbors: &str) {
    fs::write(lab.path("commands.py"), COMMANDS_RELAY).unwrap();
    // Not `exec`: the shell keeps ExaBGP's pipe as its stdout, or ExaBGP takes the process for
    // dead and respawns it until it gives up.
    let received = format!("cat >> {}\n", lab.path_str("received.json"));
    fs::write(lab.path("received.sh"), received).unwrap();
    sh(&["mkfifo", &lab.path_str("commands.fifo")]);
    let processes = format!(
        r#"process commands {{
  run /usr/bin/python3 {commands} {fifo};
  encoder text;
}}
process received {{
  run /bin/sh {received_sh};
  encoder json;
}}
"#,
        commands = lab.path_str("commands.py"),
        fifo = lab.path_str("commands.fifo"),
        received_sh = lab.path_str("received.sh"),
    );
    let config = lab.path_str("exabgp.conf");
    fs::write(&config, format!("{processes}{neighbors}")).unwrap();
    let mut command = lab.command_in("peer", "exabgp");
    command
        .arg(&config)
        .env("exabgp.daemon.user", "root")
        .env("exabgp.daemon.drop", "false")
        .env("exabgp.daemon.daemonize", "false")
        // No named pipes for exabgpcli: commands come through our own process.
        .env("exabgp.api.cli", "false")
        .env("exabgp.api.ack", "false")
        .env("exabgp.log.destination", "stdout");
    lab.spawn_daemon("exabgp", command);
}

/// Sends one API command (a line) through the FIFO, retrying until the relay reads it.
pub fn command(lab: &Lab, line: &str) {
    let fifo = lab.path("commands.fifo");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Non-blocking: ENXIO while the relay has not opened the FIFO yet.
        match fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
        {
            Ok(mut file) => {
                file.write_all(format!("{line}\n").as_bytes()).unwrap();
                eprintln!("exabgp <- {line}");
                return;
            }
            Err(err) => assert!(
                Instant::now() < deadline,
                "ExaBGP's command relay never opened {}: {err}\n{}",
                fifo.display(),
                lab.logs()
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// ExaBGP's JSON events (lines that do not parse, such as a NOTIFICATION's raw text in a
/// state message, are skipped).
pub fn events(lab: &Lab) -> Vec<Value> {
    fs::read_to_string(lab.path("received.json"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// UPDATEs announcing `prefix` in `family` (ExaBGP's name: "ipv4 unicast", "ipv6 unicast"):
/// (AS path, next hops, origin) of each. ExaBGP files an IPv6 route that came with a global
/// and a link-local next hop (RFC 2545) under each of the two: both are listed, sorted.
pub fn announcements(
    lab: &Lab,
    family: &str,
    prefix: &str,
) -> Vec<(Vec<u64>, Vec<String>, String)> {
    let mut found = Vec::new();
    for event in events(lab) {
        let update = &event["neighbor"]["message"]["update"];
        let Some(by_next_hop) = update["announce"][family].as_object() else {
            continue;
        };
        let mut next_hops: Vec<String> = by_next_hop
            .iter()
            .filter(|(_, nlris)| {
                nlris
                    .as_array()
                    .is_some_and(|n| n.iter().any(|n| n["nlri"] == prefix))
            })
            .map(|(next_hop, _)| next_hop.clone())
            .collect();
        if next_hops.is_empty() {
            continue;
        }
        next_hops.sort();
        let as_path = update["attribute"]["as-path"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        let origin = update["attribute"]["origin"].as_str().unwrap_or("?");
        found.push((as_path, next_hops, origin.to_owned()));
    }
    found
}

/// Everything ExaBGP received in UPDATEs (announced, withdrawn, End-of-RIB), for failure
/// messages.
pub fn updates(lab: &Lab) -> String {
    events(lab)
        .iter()
        .filter(|e| e["type"] == "update")
        .map(|e| e["neighbor"]["message"].to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The session states ExaBGP reported, in order ("connected", "up", "down").
pub fn states(lab: &Lab) -> Vec<String> {
    events(lab)
        .iter()
        .filter(|e| e["type"] == "state")
        .filter_map(|e| e["neighbor"]["state"].as_str().map(str::to_owned))
        .collect()
}

/// How often ExaBGP's session came up.
pub fn ups(lab: &Lab) -> usize {
    states(lab).iter().filter(|s| *s == "up").count()
}
