//! Why a check failed: what `show services` prints, and the WARN when a service goes down.

use std::path::PathBuf;

/// How a check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("timed out")]
    Timeout,
    #[error("connection refused")]
    Refused,
    #[error("connection: {0}")]
    Connect(String),
    #[error("HTTP status {got}, want {want}")]
    HttpStatus { got: u16, want: u16 },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("not an HTTP response: {0}")]
    HttpGarbage(String),
    #[error("body does not contain {0:?}")]
    BodyMismatch(String),
    #[error("no DNS answer in time")]
    DnsTimeout,
    #[error("DNS rcode {0} ({name})", name = rcode_name(*.0))]
    DnsRcode(u8),
    #[error("DNS answer section empty")]
    DnsNoAnswer,
    #[error("not a DNS response: {0}")]
    DnsGarbage(String),
    #[error("{} does not exist", .0.display())]
    ExecNotFound(PathBuf),
    #[error("starting it: {0}")]
    ExecSpawn(String),
    #[error("exit status {got}, want {want}")]
    ExecExit { got: i32, want: i32 },
    #[error("killed by signal {0}")]
    ExecSignal(i32),
}

fn rcode_name(rcode: u8) -> &'static str {
    match rcode {
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => "other",
    }
}

impl CheckError {
    /// A connect error, with refusal told apart (the commonest failure, worth its own word).
    pub fn connect(err: std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::ConnectionRefused {
            Self::Refused
        } else {
            Self::Connect(err.to_string())
        }
    }
}
