//! The lab's router-agent process.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use netns_lab::Namespace;

use super::narration::print_log;

/// The router-agent process, stopped (SIGTERM, then SIGKILL) when dropped.
pub(super) struct Agent {
    pub(super) child: Child,
    log: PathBuf,
}

impl Agent {
    pub(super) fn start(router: &Namespace, bin: &Path, config: &Path, log: &Path) -> Result<Self> {
        let file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = router.command(bin);
        command
            .args(["run", "-c"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        // Its own session (and process group): a Ctrl-C or hang-up of the terminal reaches
        // us, not it, and we stop it; with `--keep` it outlives us.
        // SAFETY: setsid(2) is async-signal-safe, as pre_exec requires.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Self {
            child,
            log: log.to_owned(),
        })
    }

    /// Waits until the agent has pinned its maps (the last step of its start-up).
    pub(super) fn wait_ready(&mut self, pin_dir: &Path, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        let marker = pin_dir.join(router_common::map_names::VERDICT_STATS);
        loop {
            if let Some(status) = self.child.try_wait()? {
                print_log(&self.log, usize::MAX);
                bail!("router-agent exited during start-up ({status}); its log is above");
            }
            if marker.exists() {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                print_log(&self.log, usize::MAX);
                bail!("router-agent did not pin its maps within {timeout:?}; its log is above");
            }
            netns_lab::sleep(Duration::from_millis(50))?;
        }
    }

    /// SIGTERM, then wait up to 10 s.
    pub(super) fn stop(&mut self) -> Result<ExitStatus> {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                bail!("router-agent ignored SIGTERM for 10 s; killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.stop();
        }
    }
}

/// `target/release/router-agent`, next to this xtask binary.
pub(super) fn agent_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let bin = exe
        .parent()
        .context("the xtask binary has no directory")?
        .join("router-agent");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p router-agent -p xtask)",
            bin.display()
        );
    }
    Ok(bin)
}
