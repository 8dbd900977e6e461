//! Exec check: a program run with its argv (no shell), in its own process group, passing on
//! the exit status wanted. When the check ends, by timeout or not, the whole group is killed:
//! nothing a check started outlives it.

use std::{os::unix::process::ExitStatusExt, path::PathBuf, process::Stdio};

use serde::Deserialize;

use super::error::CheckError;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExecCheckConfig {
    /// argv; `command[0]` an absolute path. No shell.
    pub command: Vec<String>,
    #[serde(default)]
    pub exit: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCheck {
    pub command: Vec<String>,
    exit: i32,
}

impl ExecCheck {
    pub fn from_config(config: &ExecCheckConfig) -> Self {
        ExecCheck {
            command: config.command.clone(),
            exit: config.exit,
        }
    }

    pub async fn probe(&self) -> Result<(), CheckError> {
        let Some((program, args)) = self.command.split_first() else {
            return Err(CheckError::ExecNotFound(PathBuf::new()));
        };
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| match err.kind() {
                std::io::ErrorKind::NotFound => CheckError::ExecNotFound(program.into()),
                _ => CheckError::ExecSpawn(err.to_string()),
            })?;
        // The group's id is the child's pid (process_group(0)); the kernel does not hand
        // that number to a new process while the group has members, so killing it later
        // reaches only what this check started.
        let _group = child.id().map(GroupKill);
        let status = child
            .wait()
            .await
            .map_err(|err| CheckError::ExecSpawn(err.to_string()))?;
        match (status.code(), status.signal()) {
            (Some(code), _) if code == self.exit => Ok(()),
            (Some(code), _) => Err(CheckError::ExecExit {
                got: code,
                want: self.exit,
            }),
            (None, Some(signal)) => Err(CheckError::ExecSignal(signal)),
            (None, None) => Err(CheckError::ExecSpawn(format!("ended with {status}"))),
        }
    }
}

/// SIGKILL to a process group when dropped: on timeout (the future is dropped mid-wait) and
/// after a normal exit (strays the program left behind).
struct GroupKill(u32);

impl Drop for GroupKill {
    fn drop(&mut self) {
        let Ok(pgid) = libc::pid_t::try_from(self.0) else {
            return;
        };
        // SAFETY: kill(2) with a negative pid signals that group; no memory is involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio::sync::Semaphore;

    use super::*;
    use crate::services::check::{Check, run_check};

    async fn run(command: &[&str], timeout: Duration) -> Result<(), CheckError> {
        let check = Check::Exec(ExecCheck::from_config(&ExecCheckConfig {
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            exit: 0,
        }));
        run_check(&check, timeout, &Semaphore::new(1)).await.outcome
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn exit_statuses() {
        assert_eq!(run(&["/bin/true"], SECOND).await, Ok(()));
        assert_eq!(
            run(&["/bin/false"], SECOND).await,
            Err(CheckError::ExecExit { got: 1, want: 0 })
        );
        assert_eq!(
            run(&["/bin/sh", "-c", "kill -9 $$"], SECOND).await,
            Err(CheckError::ExecSignal(9))
        );
        assert_eq!(
            run(&["/nonexistent/lb-ok"], SECOND).await,
            Err(CheckError::ExecNotFound("/nonexistent/lb-ok".into()))
        );
    }

    /// Live (not zombie) processes in group `pgid`.
    fn group_members(pgid: i32) -> usize {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("stat")).ok())
            .filter(|stat| {
                // After "(comm)": state, ppid, pgrp.
                let fields: Vec<&str> = stat
                    .rsplit_once(')')
                    .map_or("", |(_, rest)| rest)
                    .split_whitespace()
                    .collect();
                fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
            })
            .count()
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = std::env::temp_dir().join(format!("svc-exec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("pid");
        let script = format!("echo $$ > {}; sleep 60 & sleep 60", pid_file.display());
        let started = Instant::now();
        let outcome = run(&["/bin/sh", "-c", &script], Duration::from_millis(300)).await;
        assert_eq!(outcome, Err(CheckError::Timeout));
        assert!(started.elapsed() < Duration::from_millis(400));
        let pgid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let deadline = Instant::now() + SECOND;
        while group_members(pgid) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(group_members(pgid), 0, "the shell and both sleeps are gone");
    }
}
