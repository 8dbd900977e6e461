//! `router-agent show bfd` (JSON and text), and the BFD line of `show neighbors`.

use std::{fmt::Write, net::IpAddr, time::Instant};

/// One session as the operator sees it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SessionStatus {
    pub peer: IpAddr,
    /// The interface of a link-local or unnumbered peer.
    pub interface: Option<String>,
    pub state: String,
    /// The state in the peer's last packet.
    pub remote_state: String,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
    /// Configured.
    pub desired_min_tx_ms: f64,
    pub required_min_rx_ms: f64,
    pub detect_multiplier: u8,
    /// Negotiated: how often we send (before jitter), and how long the peer may be silent.
    pub transmit_interval_ms: f64,
    pub detection_time_ms: f64,
    pub source_port: u16,
    /// Seconds Up; None when not Up.
    pub uptime_seconds: Option<u64>,
    /// The last time it left Up, and why.
    pub last_down: Option<LastDown>,
    #[serde(skip)]
    pub(super) up_at: Option<Instant>,
    #[serde(skip)]
    pub(super) down_at: Option<Instant>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct LastDown {
    pub seconds_ago: u64,
    pub diagnostic: String,
}

impl SessionStatus {
    /// The times relative to `now` (the snapshot is written when something happens, read
    /// later).
    pub(super) fn at(mut self, now: Instant) -> SessionStatus {
        self.uptime_seconds = self.up_at.map(|at| now.duration_since(at).as_secs());
        if let (Some(last), Some(at)) = (self.last_down.as_mut(), self.down_at) {
            last.seconds_ago = now.duration_since(at).as_secs();
        }
        self
    }
}

fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "-".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `show bfd` as a table, one session a row, its last failure under it.
pub fn render_bfd(value: &serde_json::Value) -> String {
    let mut out = format!(
        "{:<32} {:<9} {:<9} {:>10} {:>10} {:>13} {:>10} {:>8}\n",
        "PEER", "STATE", "REMOTE", "LOCAL ID", "REMOTE ID", "TX/RX (ms)", "DETECT ms", "UP (s)"
    );
    for s in value.as_array().into_iter().flatten() {
        let peer = match &s["interface"] {
            serde_json::Value::String(interface) => format!("{}%{interface}", text(&s["peer"])),
            _ => text(&s["peer"]),
        };
        let ms = |key: &str| {
            s[key]
                .as_f64()
                .map_or("-".to_owned(), |v| format!("{v:.0}"))
        };
        let _ = writeln!(
            out,
            "{:<32} {:<9} {:<9} {:>10} {:>10} {:>13} {:>10} {:>8}",
            peer,
            text(&s["state"]),
            text(&s["remote_state"]),
            text(&s["local_discriminator"]),
            text(&s["remote_discriminator"]),
            format!(
                "{}/{}",
                ms("transmit_interval_ms"),
                ms("required_min_rx_ms")
            ),
            ms("detection_time_ms"),
            text(&s["uptime_seconds"]),
        );
        let last = &s["last_down"];
        if !last.is_null() {
            let _ = writeln!(
                out,
                "  last down {} s ago: {}",
                text(&last["seconds_ago"]),
                text(&last["diagnostic"])
            );
        }
    }
    out
}

/// The BFD line under a neighbour of `show neighbors` (its `bfd` member; none without BFD).
pub fn render_neighbor_bfd(out: &mut String, bfd: &serde_json::Value) {
    if bfd.is_null() {
        return;
    }
    let _ = write!(
        out,
        "  BFD {} (remote {}), detection {} ms",
        text(&bfd["state"]),
        text(&bfd["remote_state"]),
        bfd["detection_time_ms"]
            .as_f64()
            .map_or("-".to_owned(), |v| format!("{v:.0}")),
    );
    if let Some(diag) = bfd["last_down"]["diagnostic"].as_str() {
        let _ = write!(out, "; last down: {diag}");
    }
    out.push('\n');
}

#[cfg(test)]
impl SessionStatus {
    /// A session as a freshly started agent lists it: configured, Down, never Up.
    pub fn fresh_for_tests(peer: IpAddr) -> Self {
        SessionStatus {
            peer,
            interface: None,
            state: "Down".to_owned(),
            remote_state: "Down".to_owned(),
            local_discriminator: 1,
            remote_discriminator: 0,
            desired_min_tx_ms: 300.0,
            required_min_rx_ms: 300.0,
            detect_multiplier: 3,
            transmit_interval_ms: 1000.0,
            detection_time_ms: 3000.0,
            source_port: 49152,
            uptime_seconds: None,
            last_down: None,
            up_at: None,
            down_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_state_intervals_and_the_last_failure() {
        let value = serde_json::json!([{
            "peer": "10.0.1.1", "interface": null, "state": "Up", "remote_state": "Up",
            "local_discriminator": 7, "remote_discriminator": 9,
            "desired_min_tx_ms": 300.0, "required_min_rx_ms": 300.0, "detect_multiplier": 3,
            "transmit_interval_ms": 300.0, "detection_time_ms": 900.0, "source_port": 49200,
            "uptime_seconds": 12,
            "last_down": { "seconds_ago": 40, "diagnostic": "control detection time expired" }
        }, {
            "peer": "fe80::1", "interface": "eth1", "state": "Down", "remote_state": "Down",
            "local_discriminator": 8, "remote_discriminator": 0,
            "desired_min_tx_ms": 300.0, "required_min_rx_ms": 300.0, "detect_multiplier": 3,
            "transmit_interval_ms": 1000.0, "detection_time_ms": 0.0, "source_port": 49201,
            "uptime_seconds": null, "last_down": null
        }]);
        let table = render_bfd(&value);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[1].starts_with("10.0.1.1") && lines[1].contains("300/300"));
        assert!(
            lines[1].contains(" 900 ") && lines[1].ends_with("12"),
            "{table}"
        );
        assert!(lines[2].contains("40 s ago: control detection time expired"));
        assert!(lines[3].starts_with("fe80::1%eth1") && lines[3].contains("Down"));
        let mut out = String::new();
        render_neighbor_bfd(&mut out, &value[0]);
        assert_eq!(
            out,
            "  BFD Up (remote Up), detection 900 ms; last down: control detection time expired\n"
        );
        let mut none = String::new();
        render_neighbor_bfd(&mut none, &serde_json::Value::Null);
        assert!(none.is_empty());
    }
}
