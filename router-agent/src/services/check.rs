//! One health check, compiled from its config, and how a run of it ends.

use std::{
    fmt,
    net::SocketAddr,
    time::{Duration, Instant},
};

use tokio::sync::Semaphore;

pub use super::error::CheckError;
use super::{
    config::CheckConfig,
    dns::{DnsCheck, RecordType},
    exec::ExecCheck,
    http::HttpCheck,
};

/// A check ready to run.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Tcp(SocketAddr),
    Http(HttpCheck),
    Dns(DnsCheck),
    Exec(ExecCheck),
}

/// The end of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub outcome: Result<(), CheckError>,
    pub latency: Duration,
}

impl Check {
    pub fn from_config(config: &CheckConfig) -> Result<Self, String> {
        if let Some(address) = config.tcp {
            Ok(Check::Tcp(address))
        } else if let Some(http) = &config.http {
            Ok(Check::Http(HttpCheck::from_config(http)?))
        } else if let Some(dns) = &config.dns {
            Ok(Check::Dns(DnsCheck::from_config(dns)?))
        } else if let Some(exec) = &config.exec {
            Ok(Check::Exec(ExecCheck::from_config(exec)))
        } else {
            Err("a check has exactly one of tcp, http, dns, exec".into())
        }
    }

    fn is_exec(&self) -> bool {
        matches!(self, Check::Exec(_))
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Tcp(address) => write!(f, "tcp {address}"),
            Check::Http(http) => write!(f, "http {}", http.url),
            Check::Dns(dns) => write!(
                f,
                "dns {} {} @{}",
                dns.name,
                RecordType::name(dns.record_type),
                dns.server
            ),
            Check::Exec(exec) => write!(f, "exec {}", exec.command.join(" ")),
        }
    }
}

/// Runs `check` once, bounded by `timeout` (dropping a prober closes its socket or kills its
/// process group). `exec_slots` bounds concurrent programs; waiting for a slot is not part
/// of the check's time.
pub async fn run_check(check: &Check, timeout: Duration, exec_slots: &Semaphore) -> CheckResult {
    let _slot = if check.is_exec() {
        exec_slots.acquire().await.ok()
    } else {
        None
    };
    let started = Instant::now();
    let outcome = match tokio::time::timeout(timeout, probe(check)).await {
        Ok(outcome) => outcome,
        Err(_) if matches!(check, Check::Dns(_)) => Err(CheckError::DnsTimeout),
        Err(_) => Err(CheckError::Timeout),
    };
    CheckResult {
        outcome,
        latency: started.elapsed(),
    }
}

async fn probe(check: &Check) -> Result<(), CheckError> {
    match check {
        Check::Tcp(address) => super::tcp::probe(*address).await,
        Check::Http(http) => http.probe().await,
        Check::Dns(dns) => dns.probe().await,
        Check::Exec(exec) => exec.probe().await,
    }
}
