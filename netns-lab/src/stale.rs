//! What runs killed outright (SIGKILL, a CI timeout) left behind, removed at the next start.

use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Command,
};

use crate::process::{pids_where, process_alive, terminate};

/// Removes what labs named `<prefix><pid>...` of dead processes left: the processes running
/// in their network namespaces or naming their scratch directory (a router-agent left by
/// `xtask lab --keep`, FRR, BIRD), the namespaces, bpffs pins, FRR run directories and
/// scratch directories.
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
    for netns in stale_in(Path::new("/run/netns")) {
        let name = netns.file_name().unwrap().to_string_lossy().into_owned();
        eprintln!("removing stale namespace {name}");
        stop_processes_in(&netns);
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
    }
    for path in stale_in(&std::env::temp_dir()) {
        if path.is_dir() {
            let needle = path.to_string_lossy().into_owned();
            terminate(|| pids_where(|proc| cmdline_contains(proc, &needle)));
            let _ = fs::remove_dir_all(&path);
        } else {
            // Logs and configs of labs from before the scratch directories.
            let _ = fs::remove_file(&path);
        }
    }
    for pins in stale_in(Path::new("/sys/fs/bpf")) {
        remove_pin_dir(&pins);
    }
    for frr_run_dir in stale_in(Path::new("/var/run/frr")) {
        let _ = fs::remove_dir_all(frr_run_dir);
    }
}

/// Removes a bpffs directory of pins (one level deep, as the agent pins).
pub fn remove_pin_dir(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let _ = fs::remove_file(entry.path());
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Stops the processes whose network namespace is the one bound at `netns` (by inode, as
/// `ip netns pids` does).
fn stop_processes_in(netns: &Path) {
    let Ok(ns) = fs::metadata(netns) else {
        return;
    };
    let target = format!("net:[{}]", ns.ino());
    terminate(|| {
        pids_where(|proc| {
            fs::read_link(proc.join("ns/net")).is_ok_and(|link| link.to_string_lossy() == target)
        })
    });
}

fn cmdline_contains(proc: &Path, needle: &str) -> bool {
    fs::read(proc.join("cmdline")).is_ok_and(|cmdline| {
        String::from_utf8_lossy(&cmdline)
            .replace('\0', " ")
            .contains(needle)
    })
}
