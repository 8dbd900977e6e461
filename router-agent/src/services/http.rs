//! HTTP check: one hand-rolled HTTP/1.1 GET (`Connection: close`), the status compared and
//! the body optionally searched for a substring. At most [`MAX_RESPONSE`] bytes are read.
//! `https://` goes through `tls.rs` (cargo feature `https`; without it, refused by `check`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::CheckError;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpCheckConfig {
    pub url: String,
    /// The status wanted (default 200).
    #[serde(default = "default_status")]
    pub status: u16,
    /// A substring the body must contain.
    #[serde(default)]
    pub body: Option<String>,
    /// https: the CA certificates (PEM) the server's must chain to; default: the Mozilla
    /// roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// https: take any certificate (a self-signed one on a health port).
    #[serde(default)]
    pub insecure: bool,
}

fn default_status() -> u16 {
    200
}

/// How much of a response is read: a health page, not a download.
pub const MAX_RESPONSE: usize = 64 * 1024;

/// An `http://` URL, as far as a health check needs one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// A name or an address (IPv6 without its brackets).
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
    /// `https://`.
    pub tls: bool,
}

impl Url {
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
        let (rest, tls) = if lower.starts_with("http://") {
            (&text[7..], false)
        } else if lower.starts_with("https://") && cfg!(feature = "https") {
            (&text[8..], true)
        } else if lower.starts_with("https://") {
            return Err(format!(
                "{text:?}: this agent was built without https checks (cargo feature `https`); \
                 check the service over http (or tcp) on its local address"
            ));
        } else {
            return Err(format!("{text:?}: only http:// and https:// URLs"));
        };
        if text
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(format!("{text:?}: spaces or control characters"));
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.contains('@') {
            return Err(format!(
                "{text:?}: no user:password@ (it would travel in clear text and into logs)"
            ));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (address, after) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: unclosed [ in the host"))?;
            address
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| format!("{text:?}: {address:?} is not an IPv6 address"))?;
            (address, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{text:?}: a host is required"));
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'))
        {
            return Err(format!("{text:?}: {host:?} is not a host name or address"));
        }
        let port = match port {
            None if tls => 443,
            None => 80,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{text:?}: {port:?} is not a port"))?,
        };
        let path = path.split('#').next().unwrap_or_default();
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        Ok(Url {
            host: host.to_owned(),
            port,
            path,
            tls,
        })
    }

    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpCheck {
    pub url: String,
    parsed: Url,
    status: u16,
    body: Option<String>,
    #[cfg(feature = "https")]
    tls: Option<std::sync::Arc<super::tls::Tls>>,
}

impl PartialEq for HttpCheck {
    fn eq(&self, other: &Self) -> bool {
        (&self.url, self.status, &self.body) == (&other.url, other.status, &other.body)
    }
}

impl HttpCheck {
    pub fn from_config(config: &HttpCheckConfig) -> Result<Self, String> {
        let parsed = Url::parse(&config.url)?;
        if !parsed.tls && (config.ca_file.is_some() || config.insecure) {
            return Err("ca_file and insecure are for https:// URLs only".into());
        }
        if config.ca_file.is_some() && config.insecure {
            return Err("ca_file or insecure, not both".into());
        }
        Ok(HttpCheck {
            url: config.url.clone(),
            status: config.status,
            body: config.body.clone(),
            #[cfg(feature = "https")]
            tls: parsed
                .tls
                .then(|| super::tls::Tls::new(config.ca_file.as_deref(), config.insecure))
                .transpose()?
                .map(std::sync::Arc::new),
            parsed,
        })
    }

    pub async fn probe(&self) -> Result<(), CheckError> {
        let address = resolve(&self.parsed).await?;
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(CheckError::connect)?;
        #[cfg(feature = "https")]
        if let Some(tls) = &self.tls {
            let stream = tls.connect(&self.parsed.host, stream).await?;
            return self.exchange(stream).await;
        }
        self.exchange(stream).await
    }

    /// The request and its response, over TCP or TLS.
    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
    ) -> Result<(), CheckError> {
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: hostrouter-check\r\n\
             Accept: */*\r\n\r\n",
            self.parsed.path,
            self.parsed.host_header()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(CheckError::connect)?;
        let mut buffer = Vec::with_capacity(4096);
        let mut chunk = vec![0u8; 16 * 1024];
        let response = loop {
            let room = (MAX_RESPONSE - buffer.len()).min(chunk.len());
            let read = if room == 0 {
                0
            } else {
                stream
                    .read(&mut chunk[..room])
                    .await
                    .map_err(CheckError::connect)?
            };
            buffer.extend_from_slice(&chunk[..read]);
            if let Some(response) =
                parse_response(&buffer, read == 0).map_err(CheckError::HttpGarbage)?
            {
                break response;
            }
        };
        if response.status != self.status {
            return Err(CheckError::HttpStatus {
                got: response.status,
                want: self.status,
            });
        }
        if let Some(wanted) = &self.body
            && !contains(&response.body, wanted.as_bytes())
        {
            return Err(CheckError::BodyMismatch(wanted.clone()));
        }
        Ok(())
    }
}

async fn resolve(url: &Url) -> Result<SocketAddr, CheckError> {
    if let Ok(address) = url.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(address, url.port));
    }
    tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|err| CheckError::Connect(format!("resolving {}: {err}", url.host)))?
        .next()
        .ok_or_else(|| CheckError::Connect(format!("{} has no address", url.host)))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A whole response: its status and its (decoded, possibly capped) body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Parses what has arrived: `Ok(None)` until it is complete. `eof`: the peer closed. A buffer
/// of [`MAX_RESPONSE`] bytes counts as the end: what is there is all that will be looked at.
pub fn parse_response(buffer: &[u8], eof: bool) -> Result<Option<Response>, String> {
    let last = eof || buffer.len() >= MAX_RESPONSE;
    let prefix = &buffer[..buffer.len().min(5)];
    if !b"HTTP/"[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return Err(format!("starts with {:?}", String::from_utf8_lossy(prefix)));
    }
    let Some(head_end) = find(buffer, b"\r\n\r\n") else {
        return match (eof, last) {
            (true, _) if buffer.is_empty() => Err("closed without a response".into()),
            (true, _) => Err("closed inside the headers".into()),
            (false, true) => Err("headers longer than 64 KiB".into()),
            (false, false) => Ok(None),
        };
    };
    let head = std::str::from_utf8(&buffer[..head_end]).map_err(|_| "headers not UTF-8")?;
    let rest = &buffer[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = parse_status_line(status_line)?;
    if (100..200).contains(&status) && status != 101 {
        // Interim (100 Continue): the real response follows.
        return if rest.is_empty() && !last {
            Ok(None)
        } else {
            parse_response(rest, eof)
        };
    }
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("header line {line:?} has no colon"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("Content-Length {value:?}"))?,
            );
        }
    }
    let complete = |body: &[u8]| {
        Ok(Some(Response {
            status,
            body: body.to_vec(),
        }))
    };
    if status == 204 || status == 304 {
        return complete(&[]);
    }
    if chunked {
        return match dechunk(rest)? {
            Some(body) => Ok(Some(Response { status, body })),
            None if buffer.len() >= MAX_RESPONSE => Ok(Some(Response {
                status,
                body: dechunk_partial(rest),
            })),
            None if eof => Err("closed inside a chunked body".into()),
            None => Ok(None),
        };
    }
    match length {
        Some(length) if rest.len() >= length => complete(&rest[..length]),
        Some(_) if buffer.len() >= MAX_RESPONSE => complete(rest),
        Some(length) if eof => Err(format!(
            "closed after {} of {length} body bytes",
            rest.len()
        )),
        Some(_) => Ok(None),
        None if last => complete(rest),
        None => Ok(None),
    }
}

fn parse_status_line(line: &str) -> Result<u16, String> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(format!("status line {line:?}"));
    }
    code.parse()
        .ok()
        .filter(|c| (100..=599).contains(c))
        .ok_or_else(|| format!("status line {line:?}"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A chunked body, decoded: `None` while its last chunk has not arrived.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(rest, b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&rest[..line_end]).map_err(|_| "chunk size not text")?;
        let digits = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(digits, 16)
            .ok()
            .filter(|_| !digits.is_empty() && digits.len() <= 8)
            .ok_or_else(|| format!("chunk size {line:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(Some(body));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        if &rest[size..size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// As much of a chunked body as arrived before the cap.
fn dechunk_partial(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = find(rest, b"\r\n") {
        let line = String::from_utf8_lossy(&rest[..line_end]);
        let Ok(size) = usize::from_str_radix(line.split(';').next().unwrap_or_default().trim(), 16)
        else {
            break;
        };
        rest = &rest[line_end + 2..];
        let take = size.min(rest.len());
        body.extend_from_slice(&rest[..take]);
        if take < size || size == 0 || rest.len() < size + 2 {
            break;
        }
        rest = &rest[size + 2..];
    }
    body
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
