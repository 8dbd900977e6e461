//! One agent per control socket: `<socket>.lock`, held with flock(2) for the life of the
//! process. A second agent given the same socket refuses to start before it touches the
//! datapath, instead of unlinking the first one's socket. The kernel drops the lock when the
//! process ends, however it ends; a restart (exec) closes it first (close-on-exec), and the
//! new process takes it again.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, Write},
    os::{fd::AsRawFd, unix::fs::OpenOptionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

/// The lock of a control socket: released when dropped.
pub struct SocketLock {
    _file: File,
}

/// Where the lock of `socket` lives.
pub fn lock_path(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock of `socket`; fails, naming the other agent's pid, if it is held.
pub fn claim(socket: &Path) -> Result<SocketLock> {
    if let Some(parent) = socket.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let path = lock_path(socket);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => String::new(),
                pid => format!(" (pid {pid})"),
            };
            bail!(
                "another router-agent{holder} serves the control socket {}: refusing to \
                 start (it holds {}); give this one its own [control] socket and pin_dir",
                socket.display(),
                path.display()
            );
        }
        return Err(err).with_context(|| format!("locking {}", path.display()));
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    Ok(SocketLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("hr-lock-test-{}", std::process::id()));
        let socket = dir.join("agent.sock");
        let first = claim(&socket).unwrap();
        let err = format!("{:#}", claim(&socket).err().expect("refused"));
        assert!(
            err.contains(&format!("pid {}", std::process::id())) && err.contains("agent.sock"),
            "{err}"
        );
        drop(first);
        claim(&socket).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
