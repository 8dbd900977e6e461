//! `[metrics]`: where the Prometheus endpoint listens (off unless `listen` is set).

use std::net::SocketAddr;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `GET /metrics` is served here, e.g. "127.0.0.1:9724"; absent: no endpoint. Changing it
    /// takes a restart (a reload refuses it, naming `metrics.listen`).
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}
