//! The daemon's control socket: `router-agent show neighbors|routes|status`, `router-agent
//! clear neighbor ADDR`, `reload`, `restart` and `stop` talk to the running agent over a Unix socket (root-only permissions).
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

pub const DEFAULT_SOCKET: &str = "/run/hostrouter/router-agent.sock";

/// What a client asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
            _ => None,
        }
    }

    fn to_line(self) -> String {
        match self {
            Self::Neighbors => "neighbors".to_owned(),
            Self::Routes => "routes".to_owned(),
            Self::Bfd => "bfd".to_owned(),
            Self::Status => "status".to_owned(),
            Self::Reload => "reload".to_owned(),
            Self::Restart => "restart".to_owned(),
            Self::Stop => "stop".to_owned(),
            Self::ClearNeighbor(address) => format!("clear-neighbor {address}"),
        }
    }
}

/// A query for the event loop, which owns the state, with where to send the JSON answer.
pub struct ControlRequest {
    pub query: Query,
    pub reply: oneshot::Sender<String>,
}

/// Listens on `path` (replacing a stale socket) and forwards queries to the event loop.
pub fn serve(path: &Path) -> Result<mpsc::UnboundedReceiver<ControlRequest>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let (requests, request_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
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
    let timeout = match query {
        Query::Reload => Duration::from_secs(300),
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
