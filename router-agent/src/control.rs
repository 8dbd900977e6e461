//! The daemon's control socket: `router-agent show neighbors|routes|status`, `router-agent
//! clear neighbor ADDR`, `reload`, `restart` and `stop` talk to the running agent over a Unix
//! socket: mode 0600, or 0660 for `[control] show_group`, whose members may only show
//! (`access.rs`); one agent per socket (`lock.rs`).
//! One request line in, one JSON document out.

use std::{
    io::{BufRead, BufReader, Write},
    net::IpAddr,
    os::unix::{fs::PermissionsExt, net::UnixStream},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt},
    net::UnixListener,
    sync::{mpsc, oneshot},
};

mod access;
mod lock;

pub use lock::lock_path;

pub use crate::config::DEFAULT_CONTROL_SOCKET as DEFAULT_SOCKET;

/// What a client asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    Neighbors,
    Routes,
    /// BFD sessions: state, discriminators, intervals (`show bfd`).
    Bfd,
    /// Hard-reset a BGP session and restart it (ends a max-prefix hold-down).
    ClearNeighbor(IpAddr),
    /// Route, group and nexthop counts of the FIB as the datapath holds it, and per neighbor
    /// the prefixes received; no route listing, so benchmarks can poll it for convergence.
    Status,
    /// Re-read the configuration file and apply it (what can change at run time).
    Reload,
    /// A planned restart in place: everything left forwarding, then the agent executes its
    /// binary again (the new process adopts the datapath).
    Restart,
    /// A full stop: sessions closed, program detached, maps unpinned, kernel routes removed.
    Stop,
    /// Drain everything the host announces, or one service (RFC 8326 graceful shutdown,
    /// `drain/`); persisted before the answer.
    Drain(crate::drain::DrainRequest),
    /// End a drain (everything, or one service's).
    Undrain(crate::drain::UndrainRequest),
    /// `[[redistribute]]` rules: prefixes announced and held back by the limit.
    Redistribute,
    /// Health-checked services: state, last result per check, latency, flaps
    /// (`show services`).
    Services,
}

impl Query {
    fn parse(line: &str) -> Option<Self> {
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["neighbors"] => Some(Self::Neighbors),
            ["routes"] => Some(Self::Routes),
            ["bfd"] => Some(Self::Bfd),
            ["status"] => Some(Self::Status),
            ["reload"] => Some(Self::Reload),
            ["restart"] => Some(Self::Restart),
            ["stop"] => Some(Self::Stop),
            ["clear-neighbor", address] => address.parse().ok().map(Self::ClearNeighbor),
            ["drain", ref rest @ ..] => crate::drain::DrainRequest::parse(rest)
                .ok()
                .map(Self::Drain),
            ["undrain", ref rest @ ..] => crate::drain::UndrainRequest::parse(rest)
                .ok()
                .map(Self::Undrain),
            ["redistribute"] => Some(Self::Redistribute),
            ["services"] => Some(Self::Services),
            _ => None,
        }
    }

    fn to_line(&self) -> String {
        match self {
            Self::Neighbors => "neighbors".to_owned(),
            Self::Routes => "routes".to_owned(),
            Self::Bfd => "bfd".to_owned(),
            Self::Status => "status".to_owned(),
            Self::Reload => "reload".to_owned(),
            Self::Restart => "restart".to_owned(),
            Self::Stop => "stop".to_owned(),
            Self::ClearNeighbor(address) => format!("clear-neighbor {address}"),
            Self::Drain(request) => request.to_line(),
            Self::Undrain(request) => request.to_line(),
            Self::Redistribute => "redistribute".to_owned(),
            Self::Services => "services".to_owned(),
        }
    }
}

/// A query for the event loop, which owns the state, with where to send the JSON answer.
pub struct ControlRequest {
    pub query: Query,
    pub reply: oneshot::Sender<String>,
}

/// What `run` takes before it touches the datapath: the socket's lock (no other agent serves
/// it) and the gid `show` is opened to.
pub struct ControlClaim {
    _lock: lock::SocketLock,
    show_group: Option<u32>,
}

/// Takes the control socket for this agent: refused if another agent holds it, or if
/// `show_group` names no group.
pub fn claim(config: &crate::config::ControlConfig) -> Result<ControlClaim> {
    let show_group = config
        .show_group
        .as_deref()
        .map(access::group_id)
        .transpose()?;
    Ok(ControlClaim {
        _lock: lock::claim(&config.socket)?,
        show_group,
    })
}

/// Listens on `path` (replacing a stale socket: the claim says no agent serves it) and
/// forwards the queries each peer may ask to the event loop.
pub fn serve(path: &Path, claim: &ControlClaim) -> Result<mpsc::UnboundedReceiver<ControlRequest>> {
    let _ = std::fs::remove_file(path);
    let listener = bind_private(path)?;
    if let Some(gid) = claim.show_group {
        std::os::unix::fs::chown(path, None, Some(gid))
            .with_context(|| format!("giving {} to gid {gid}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    }
    let show_group = claim.show_group;
    let (requests, request_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let access = {
                use std::os::fd::AsFd;
                access::of_peer(stream.as_fd(), show_group)
            };
            let requests = requests.clone();
            tokio::spawn(async move {
                let (reader, mut writer) = stream.into_split();
                let mut line = String::new();
                let mut reader = tokio::io::BufReader::new(reader);
                if reader.read_line(&mut line).await.is_err() {
                    return;
                }
                let answer = match Query::parse(&line) {
                    Some(query) if !access.allows(query.clone()) => error_json(&format!(
                        "permission denied: {:?} needs root or the agent's user{}",
                        line.trim(),
                        if access == access::Access::ShowOnly {
                            " (control.show_group may only show)"
                        } else {
                            ""
                        }
                    )),
                    Some(query) => {
                        let (reply, answer) = oneshot::channel();
                        let _ = requests.send(ControlRequest { query, reply });
                        answer
                            .await
                            .unwrap_or_else(|_| error_json("the agent is stopping"))
                    }
                    None => error_json(&format!("unknown query {:?}", line.trim())),
                };
                let _ = writer.write_all(answer.as_bytes()).await;
                let _ = writer.write_all(b"\n").await;
            });
        }
    });
    Ok(request_rx)
}

/// Binds `path` as mode 0600 from the start: created under umask 0177, so that there is no
/// moment at which anyone else may connect (a chmod after bind leaves one).
fn bind_private(path: &Path) -> Result<UnixListener> {
    // SAFETY: umask(2) cannot fail. It is process-wide: nothing else of the agent creates
    // files while it starts.
    let previous = unsafe { libc::umask(0o177) };
    let bound = std::os::unix::net::UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(previous) };
    let listener = bound.with_context(|| format!("binding {}", path.display()))?;
    listener.set_nonblocking(true)?;
    Ok(UnixListener::from_std(listener)?)
}

fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// Asks the agent listening on `path`; returns its JSON answer.
pub fn query(path: &PathBuf, query: Query) -> Result<serde_json::Value> {
    let mut stream = UnixStream::connect(path).with_context(|| {
        format!(
            "connecting to {} (is router-agent running?)",
            path.display()
        )
    })?;
    // A reload may re-run policy over a full table and wait for the kernel's FIB.
    let timeout = match &query {
        Query::Reload => Duration::from_secs(300),
        // `--wait`: the agent answers within max-wait.
        Query::Drain(request) => Duration::from_secs(10) + request.answer_within(),
        _ => Duration::from_secs(10),
    };
    stream.set_read_timeout(Some(timeout))?;
    writeln!(stream, "{}", query.to_line())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    let value: serde_json::Value =
        serde_json::from_str(&line).context("the agent's answer is not JSON")?;
    if let Some(error) = value.get("error").and_then(|e| e.as_str()) {
        bail!("the agent says: {error}");
    }
    Ok(value)
}
