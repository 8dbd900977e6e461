//! `router-agent show services`: the JSON the agent answers with, and its table.

use std::{fmt::Write, time::SystemTime};

use serde::Serialize;

use super::{ServiceConfig, ServiceStatus, state::LatencyHistogram};

#[derive(Debug, Serialize)]
pub struct ServiceView {
    pub name: String,
    pub prefixes: Vec<String>,
    pub state: &'static str,
    /// What the prefixes do: withdraw, announce or degraded.
    pub announce: super::Announce,
    /// Seconds since the Unix epoch of the last change of state.
    pub since_unix: u64,
    pub for_seconds: u64,
    /// Up -> down changes since the agent started.
    pub flaps: u64,
    pub rounds: u64,
    pub latency_p50_us: Option<u64>,
    pub latency_p99_us: Option<u64>,
    /// log2 µs buckets (bucket i: below 2^i µs), for merging across services.
    pub latency_histogram: LatencyHistogram,
    pub checks: Vec<CheckView>,
}

#[derive(Debug, Serialize)]
pub struct CheckView {
    pub check: String,
    /// null until the first round.
    pub ok: Option<bool>,
    pub error: Option<String>,
    pub latency_us: Option<u64>,
}

pub fn view(services: &[(&ServiceConfig, ServiceStatus)]) -> Vec<ServiceView> {
    let now = SystemTime::now();
    services
        .iter()
        .map(|(config, status)| {
            let since = status
                .since
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            let quantile = |q| status.latency.quantile(q).map(|d| d.as_micros() as u64);
            ServiceView {
                name: config.name.clone(),
                prefixes: config.prefixes.iter().map(ToString::to_string).collect(),
                state: status.machine.phase().name(),
                announce: status.machine.announce(),
                since_unix: since.as_secs(),
                for_seconds: now
                    .duration_since(status.since)
                    .unwrap_or_default()
                    .as_secs(),
                flaps: status.machine.flaps(),
                rounds: status.rounds,
                latency_p50_us: quantile(0.5),
                latency_p99_us: quantile(0.99),
                latency_histogram: status.latency.clone(),
                checks: status
                    .checks
                    .iter()
                    .map(|check| CheckView {
                        check: check.check.clone(),
                        ok: check.last.as_ref().map(Result::is_ok),
                        error: check
                            .last
                            .as_ref()
                            .and_then(|last| last.as_ref().err())
                            .map(ToString::to_string),
                        latency_us: check.latency.map(|d| d.as_micros() as u64),
                    })
                    .collect(),
            }
        })
        .collect()
}

fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// The table `show services` prints: one line per service, then one per check.
pub fn render_services(value: &serde_json::Value) -> String {
    let mut out = format!(
        "{:<20} {:<10} {:<9} {:>8} {:>6} {:>9} {:>9}  PREFIXES\n",
        "SERVICE", "STATE", "ANNOUNCE", "FOR (s)", "FLAPS", "P50 (ms)", "P99 (ms)"
    );
    let ms = |v: &serde_json::Value| {
        v.as_u64()
            .map_or("-".to_owned(), |us| format!("{:.1}", us as f64 / 1000.0))
    };
    for s in value.as_array().into_iter().flatten() {
        let prefixes: Vec<String> = s["prefixes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        let _ = writeln!(
            out,
            "{:<20} {:<10} {:<9} {:>8} {:>6} {:>9} {:>9}  {}",
            text(&s["name"]),
            text(&s["state"]),
            text(&s["announce"]),
            text(&s["for_seconds"]),
            text(&s["flaps"]),
            ms(&s["latency_p50_us"]),
            ms(&s["latency_p99_us"]),
            prefixes.join(" ")
        );
        for check in s["checks"].as_array().into_iter().flatten() {
            let result = match (&check["ok"], &check["error"]) {
                (serde_json::Value::Bool(true), _) => "ok".to_owned(),
                (serde_json::Value::Bool(false), error) => format!("FAIL: {}", text(error)),
                _ => "not run yet".to_owned(),
            };
            let _ = writeln!(
                out,
                "  {:<48} {:>9}  {result}",
                text(&check["check"]),
                ms(&check["latency_us"]),
            );
        }
    }
    out
}
