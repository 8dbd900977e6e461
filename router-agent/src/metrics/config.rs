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

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, std::path::Path::new("router.toml")).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn off_unless_listen_is_set() {
        assert_eq!(parse("").unwrap().metrics.listen, None);
        let config = parse("[metrics]\nlisten = \"127.0.0.1:9724\"\n").unwrap();
        assert_eq!(
            config.metrics.listen,
            Some("127.0.0.1:9724".parse().unwrap())
        );
    }

    #[test]
    fn errors_name_the_key() {
        let err = parse("[metrics]\nlisten = \"localhost\"\n").unwrap_err();
        assert!(err.contains("listen"), "{err}");
        let err = parse("[metrics]\nport = 9724\n").unwrap_err();
        assert!(err.contains("port"), "{err}");
    }
}
