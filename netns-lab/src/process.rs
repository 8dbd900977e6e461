//! Commands and processes of a lab: run to completion, spawn with a log, stop, find.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// Runs a command to completion (stdin closed); its stdout, or an error with its stderr.
pub fn run(command: &mut Command) -> Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// [`run`] for tests: `args[0] args[1..]`, panicking with the output if it fails.
pub fn sh(args: &[&str]) -> String {
    run(Command::new(args[0]).args(&args[1..])).unwrap_or_else(|err| panic!("{err:#}"))
}

/// Polls `check` every 200 ms until it holds; panics after `timeout` with `log()`.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
    log: impl Fn() -> String,
) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}\n{}",
            log()
        );
        thread::sleep(Duration::from_millis(200));
    }
    eprintln!("[{:>6.2?}] {what}", start.elapsed());
}

/// The process exists and is not a zombie (a killed test run may not be reaped yet).
pub fn process_alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// Spawns `command` with stdout and stderr appended to `log` (a restarted process keeps its
/// earlier output) and stdin closed.
pub fn spawn_logged(mut command: Command, log: &Path) -> Child {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()));
    command
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"))
}

/// Stops a child: `signal`, up to 5 s to exit, then SIGKILL to it and to its process group
/// if it has its own (helpers it forked, such as ExaBGP's API processes).
pub fn stop(mut child: Child, signal: libc::c_int) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: plain kill(2) on a child we own (not yet reaped, so the pid is still ours).
    unsafe { libc::kill(pid, signal) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
        thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: the group exists only if the child was made its leader (process_group(0)), and
    // then holds only it and what it forked.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let _ = child.kill();
    let _ = child.wait();
}

fn pidfile_pid(pidfile: &Path) -> Option<u32> {
    fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}

/// Signals the process of a pid file (daemons that fork into the background); no-op if the
/// file is missing.
pub fn signal_pidfile(pidfile: &Path, signal: libc::c_int) {
    if let Some(pid) = pidfile_pid(pidfile) {
        // SAFETY: kill(2) by the pid a daemon of this lab wrote.
        unsafe { libc::kill(pid as libc::pid_t, signal) };
    }
}

/// Waits (up to 5 s) for the process of a pid file to be gone.
pub fn wait_pidfile_gone(pidfile: &Path) {
    let Some(pid) = pidfile_pid(pidfile) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
}

/// Stops a daemon by its pid files: SIGTERM to all, up to 5 s each, then SIGKILL.
pub fn stop_pidfiles(pidfiles: &[PathBuf]) {
    for pidfile in pidfiles {
        signal_pidfile(pidfile, libc::SIGTERM);
    }
    for pidfile in pidfiles {
        wait_pidfile_gone(pidfile);
        signal_pidfile(pidfile, libc::SIGKILL);
    }
}

/// The pids of /proc whose entry satisfies `select(pid, /proc/<pid>)`.
pub(crate) fn pids_where(select: impl Fn(&Path) -> bool) -> Vec<libc::pid_t> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<libc::pid_t>().ok()?;
            select(&entry.path()).then_some(pid)
        })
        .collect()
}

/// SIGTERMs `pids()`, waits up to 3 s for them to be gone, then SIGKILLs what is left.
pub(crate) fn terminate(pids: impl Fn() -> Vec<libc::pid_t>) {
    for pid in pids() {
        // SAFETY: kill(2) of a process the caller identified as a stale lab's.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let start = Instant::now();
    while !pids().is_empty() && start.elapsed() < Duration::from_secs(3) {
        thread::sleep(Duration::from_millis(50));
    }
    for pid in pids() {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}
