//! The HTTP side: `GET /metrics` on `[metrics] listen`, one request per connection. Small on
//! purpose: a scraper sends one GET; anything else gets 404 or 405.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
};

use super::{MetricsConfig, Snapshot, text_format::CONTENT_TYPE};

/// A scrape asking the event loop for its [`Snapshot`].
pub type SnapshotRequest = oneshot::Sender<Snapshot>;

/// The event loop's end: scrapes waiting for a snapshot.
pub struct Endpoint {
    requests: mpsc::Receiver<SnapshotRequest>,
    /// Where it listens (the port chosen, for `listen = "...:0"`).
    pub address: SocketAddr,
}

impl Endpoint {
    pub async fn next(&mut self) -> Option<SnapshotRequest> {
        self.requests.recv().await
    }
}

/// Scrapes waiting for the event loop at once; more are answered 503.
const PENDING_SCRAPES: usize = 4;
/// How long a scrape waits for the event loop (busy with a full table, say) before a 503.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(5);
/// A request's head larger than this is refused (a scrape's is a few hundred bytes).
const MAX_REQUEST: usize = 8192;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Listens on `[metrics] listen` (None when unset). A bind failure is an error naming the
/// key: the agent refuses to start rather than run unmonitored.
pub async fn serve(config: &MetricsConfig, pin_dir: PathBuf) -> Result<Option<Endpoint>> {
    let Some(listen) = config.listen else {
        return Ok(None);
    };
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("metrics.listen: cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "metrics served at /metrics");
    let (requests, receiver) = mpsc::channel(PENDING_SCRAPES);
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(answer(stream, peer, requests.clone(), pin_dir.clone()));
        }
    });
    Ok(Some(Endpoint {
        requests: receiver,
        address,
    }))
}

async fn answer(
    mut stream: TcpStream,
    peer: SocketAddr,
    requests: mpsc::Sender<SnapshotRequest>,
    pin_dir: PathBuf,
) {
    let response = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Some(head)) => respond(&head, &requests, pin_dir).await,
        Ok(None) => reply(400, "text/plain", "bad request\n".into()),
        Err(_) => return,
    };
    if let Err(err) = stream.write_all(&response).await {
        tracing::debug!(%peer, "metrics: answer not written: {err}");
    }
    let _ = stream.shutdown().await;
}

/// Reads up to the end of the request head; None if it is not HTTP or too large.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buffer).await.ok()?;
        if n == 0 || head.len() + n > MAX_REQUEST {
            return None;
        }
        head.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8(head).ok()
}

async fn respond(
    head: &str,
    requests: &mpsc::Sender<SnapshotRequest>,
    pin_dir: PathBuf,
) -> Vec<u8> {
    let mut request_line = head.lines().next().unwrap_or("").split(' ');
    let (method, target) = (request_line.next(), request_line.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return reply(404, "text/plain", "not found: try /metrics\n".into());
    }
    if method != Some("GET") {
        return reply(405, "text/plain", "only GET\n".into());
    }
    let (sender, snapshot) = oneshot::channel();
    match requests.try_send(sender) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            return reply(503, "text/plain", "too many scrapes at once\n".into());
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            return reply(503, "text/plain", "the agent is stopping\n".into());
        }
    }
    let snapshot = match tokio::time::timeout(SNAPSHOT_TIMEOUT, snapshot).await {
        Ok(Ok(snapshot)) => snapshot,
        Ok(Err(_)) => return reply(503, "text/plain", "the agent is stopping\n".into()),
        Err(_) => return reply(503, "text/plain", "the agent is busy\n".into()),
    };
    // Map reads and /proc are blocking system calls: off the runtime's workers.
    match tokio::task::spawn_blocking(move || super::render(&snapshot, &pin_dir)).await {
        Ok(text) => reply(200, CONTENT_TYPE, text),
        Err(_) => reply(500, "text/plain", "rendering failed\n".into()),
    }
}

fn reply(status: u16, content_type: &str, body: String) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
