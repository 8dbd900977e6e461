//! Helpers of the issue-8 scenario tests (`ecmp_resilience.rs`, `kernel_policy.rs`): frames
//! built by hand and sent raw from a namespace, UDP sinks that count what arrives, the
//! attached XDP program run on chosen frames (`BPF_PROG_TEST_RUN`) and per-flow tables.
#![allow(dead_code)]

pub mod flows;
pub mod frames;

use std::{fs, os::fd::AsRawFd, thread};

/// Runs `work` on a fresh thread that has entered the network namespace `ns` (setns on that
/// thread only), and returns its result.
pub fn in_netns<T: Send + 'static>(ns: &str, work: impl FnOnce() -> T + Send + 'static) -> T {
    let netns = fs::File::open(format!("/run/netns/{ns}"))
        .unwrap_or_else(|e| panic!("opening namespace {ns}: {e}"));
    thread::spawn(move || {
        // SAFETY: setns on this thread only; the thread ends when `work` returns.
        let entered = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(entered, 0, "setns: {}", std::io::Error::last_os_error());
        work()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// An interface's index and MAC address in a namespace (from `ip -j link show`).
pub fn link_info(ns: &str, interface: &str) -> (u32, [u8; 6]) {
    let out = crate::netns::sh(&["ip", "-n", ns, "-j", "link", "show", "dev", interface]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("ip -j link");
    let link = &json[0];
    let ifindex = link["ifindex"].as_u64().expect("ifindex") as u32;
    (
        ifindex,
        parse_mac(link["address"].as_str().expect("address")),
    )
}

pub fn parse_mac(text: &str) -> [u8; 6] {
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(text.split(':')) {
        *byte = u8::from_str_radix(part, 16).unwrap_or_else(|_| panic!("MAC {text}"));
    }
    mac
}

pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The pass/drop/forward counters of the agent's datapath (`show counters --json`), by
/// verdict name (`forwarded`, `passed-other-host`, `dropped-rpf`, ...); 0 when absent.
pub fn verdict(counters: &serde_json::Value, name: &str) -> u64 {
    counters["verdicts"][name].as_u64().unwrap_or(0)
}
