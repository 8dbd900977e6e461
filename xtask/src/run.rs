//! `cargo xtask run -- [agent args]`: builds everything (the XDP program comes with
//! router-agent's build script) in release and runs the agent with the given arguments, as
//! root: through `sudo -E` when not root already (as aya's template does). The agent replaces
//! this process (exec), so Ctrl-C and signals reach it alone and its exit status is ours.

use std::{os::unix::process::CommandExt, process::Command};

use anyhow::{Result, bail};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The agent's arguments, after `--` (e.g. `run --config router.toml`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    agent_args: Vec<String>,
}

pub fn run(args: RunArgs) -> Result<()> {
    // `--workspace`, as the README builds: the same feature set, so nothing is compiled twice.
    crate::cargo(&["build", "--release", "--workspace"])?;
    let agent = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/release/router-agent"
    );
    // SAFETY: geteuid(2) cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut command = if root {
        Command::new(agent)
    } else {
        let mut sudo = Command::new("sudo");
        sudo.args(["-E", agent]);
        sudo
    };
    command.args(&args.agent_args);
    let err = command.exec();
    if root {
        bail!("executing {agent}: {err}")
    }
    bail!("the agent needs root, and running it with sudo failed: {err}")
}
