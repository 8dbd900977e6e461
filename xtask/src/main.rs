//! `cargo xtask <task>`: developer tasks that are not part of the product.
//!
//! - `build`: build everything (the XDP objects come with router-agent's build.rs).
//! - `test`: the full test suite, as CI runs it (needs root).
//! - `lab`: a network-namespace lab with router-agent forwarding between a client and servers.
//! - `bench datapath`: forwarding throughput and per-packet cost, kernel vs XDP engines.
//! - `bench cost`: per-packet cost, route programming rate and memory per engine.
//! - `bench bgp`: BGP convergence and memory, router-agent vs BIRD 2 vs FRR.
//! - `bench restart`: packets lost and time to a clean FIB across a restart of the daemon.
//! - `bench workloads`: time for N workload routes (`/32 dev veth`) to reach an FRR ToR.
//! - `run -- [agent args]`: build everything and run the agent as root (`run.rs`).
//! - `deb [--install-test]`: the Debian package, and a test install of it (`deb.rs`).

mod bench_bgp;
mod bench_cost;
mod bench_restart;
mod bench_services;
mod bench_throughput;
mod bench_workloads;
mod deb;
mod lab;
mod plot;
mod run;

use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the workspace (release).
    Build,
    /// Run every test (unit, BPF_PROG_TEST_RUN, network namespaces). Needs root.
    Test,
    /// Start a namespace lab, show router-agent forwarding, tear it down.
    Lab(lab::LabArgs),
    /// Benchmarks; results go to stdout (copy them into BENCHMARKS.md with the command).
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
    /// Build everything (release) and run the agent as root: `cargo xtask run -- run -c X`.
    Run(run::RunArgs),
    /// Build the Debian package into target/debian/ (dpkg-deb); --install-test installs,
    /// runs and purges it.
    Deb(deb::DebArgs),
}

#[derive(Subcommand)]
enum Bench {
    /// Forwarding: kernel vs XDP (bpf_fib_lookup, LPM trie, DIR-24-8), 1 route and a full table.
    Datapath(bench_throughput::Args),
    /// Per-packet cost (BPF_PROG_TEST_RUN) and route programming rate/memory per engine.
    Cost(bench_cost::Args),
    /// BGP convergence (Established -> routes in the FIB) and memory: router-agent, BIRD, FRR.
    Bgp(bench_bgp::Args),
    /// Restarts (planned, `router-agent restart`, kill -9; FRR's bgpd with GR): packets lost,
    /// time to a clean FIB, with 1 route and a full table.
    Restart(bench_restart::Args),
    /// Workload routes: N `/32 dev veth` routes added at once (`ip -batch`), time until the
    /// FRR ToR holds them all, and until it holds none after deleting them.
    Workloads(bench_workloads::Args),
    /// Health checks: N services with a TCP check each every second: agent CPU and check
    /// latency p99.
    Services(bench_services::Args),
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Build => cargo(&["build", "--release", "--workspace"]),
        Task::Test => {
            ensure_bpffs()?;
            cargo(&[
                "test",
                "--release",
                "--workspace",
                "--no-fail-fast",
                "--",
                "--test-threads=2",
            ])
        }
        Task::Lab(args) => lab::lab(args),
        Task::Bench { what } => match what {
            Bench::Datapath(args) => bench_throughput::run(args),
            Bench::Cost(args) => bench_cost::run(args),
            Bench::Bgp(args) => bench_bgp::run(args),
            Bench::Restart(args) => bench_restart::run(args),
            Bench::Workloads(args) => bench_workloads::run(args),
            Bench::Services(args) => bench_services::run(args),
        },
        Task::Run(args) => run::run(args),
        Task::Deb(args) => deb::run(args),
    }
}

pub fn cargo(args: &[&str]) -> Result<()> {
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(args);
    // `cargo xtask` runs us under `cargo run`, which sets the package's variables for xtask.
    // Build scripts that read one (ring's reads CARGO_MANIFEST_DIR) would see it change between
    // this cargo and a plain one, and rebuild ring, rustls and the agent every time.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_by_cargo_run = key.starts_with("CARGO_PKG_")
            || matches!(
                key.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            );
        if set_by_cargo_run {
            cargo.env_remove(key.as_ref());
        }
    }
    let status = cargo.status().context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

/// bpffs on /sys/fs/bpf, where tests and the agent pin.
pub fn ensure_bpffs() -> Result<()> {
    let mounts = std::fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf"))
    {
        return Ok(());
    }
    let status = Command::new("mount")
        .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
        .status()?;
    if !status.success() {
        bail!("mounting bpffs on /sys/fs/bpf failed (are you root?)");
    }
    Ok(())
}
