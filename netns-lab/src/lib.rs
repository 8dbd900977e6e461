//! Network-namespace labs, the one library behind hostrouter's integration tests (`tests/`)
//! and `cargo xtask lab` / `bench`: namespaces owned by values that delete them on drop (also
//! when a test panics or a benchmark fails), processes started inside a namespace, and the
//! removal of what runs killed outright left behind.
//!
//! Naming: every lab is `<prefix><pid>-...` (`hrt-1234-dir`, `hrb-4242`), its namespaces
//! `<lab>-<role>`, its scratch directory `$TMPDIR/<lab>`, its bpffs pins `/sys/fs/bpf/<lab>`.
//! The pid in the name is what lets a later run tell a dead lab from a running one
//! ([`remove_stale_labs`]).
//!
//! Processes go into a namespace with setns(2) on the network namespace only, never
//! `ip netns exec`: that also gives the process a private mount namespace with a fresh /sys,
//! where the agent's bpffs pins would be invisible to everyone else (and die with it). This
//! process itself enters one with [`Namespace::run_in`] (the network namespace is per thread):
//! BPF_PROG_TEST_RUN, XDP attach and `if_nametoindex` resolve interfaces in the calling
//! thread's namespace.

mod interrupt;
mod lab;
mod namespace;
mod process;
mod stale;
mod text;

pub use interrupt::{catch_interrupts, interrupted, sleep};
pub use lab::Namespaces;
pub use namespace::{LinkInfo, Namespace, veth};
pub use process::{
    process_alive, run, sh, signal_pidfile, spawn_logged, stop, stop_pidfiles, wait_for,
    wait_pidfile_gone,
};
pub use stale::{remove_pin_dir, remove_stale_labs};
pub use text::{mac_string, parse_mac, strip_ansi, tail};
