//! `[drain]`: where the drain state is kept, and what a drain does by default.
//!
//! ```toml
//! [drain]
//! state_file = "/var/lib/hostrouter/drain.json"  # survives reboots: a drained host stays so
//! prepend = 0             # 0..10 extra own-AS prepends while drained (eBGP)
//! withdraw_after = "off"  # or a duration: drained routes are withdrawn after it
//! on_stop = "off"         # or a duration: a full stop drains, waits this long, then stops
//! ```

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

/// The most `prepend` may be: beyond this, paths are no less preferred in practice, only
/// longer.
pub const MAX_PREPEND: u8 = 10;

pub const DEFAULT_STATE_FILE: &str = "/var/lib/hostrouter/drain.json";

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DrainConfig {
    #[serde(default = "default_state_file")]
    pub state_file: PathBuf,
    #[serde(default)]
    pub prepend: u8,
    #[serde(default)]
    pub withdraw_after: OffOrDuration,
    #[serde(default)]
    pub on_stop: OffOrDuration,
}

impl Default for DrainConfig {
    fn default() -> Self {
        Self {
            state_file: default_state_file(),
            prepend: 0,
            withdraw_after: OffOrDuration::default(),
            on_stop: OffOrDuration::default(),
        }
    }
}

fn default_state_file() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_FILE)
}

/// `"off"` or a duration (`"30s"`, `"2m"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct OffOrDuration(pub Option<Duration>);

impl TryFrom<String> for OffOrDuration {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if text == "off" {
            return Ok(Self(None));
        }
        parse_duration(&text).map(|d| Self(Some(d)))
    }
}

/// A duration as the CLI and the config write it (`"500ms"`, `"30s"`, `"2m"`); zero is
/// refused (say "off").
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime_serde::re::humantime::parse_duration(text)
        .map_err(|err| format!("{text:?} is not \"off\" or a duration like \"30s\": {err}"))?;
    if duration.is_zero() {
        return Err(format!("{text:?}: a zero duration; use \"off\""));
    }
    Ok(duration)
}

impl DrainConfig {
    /// Refusals, naming the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.prepend > MAX_PREPEND {
            return Err((
                "drain.prepend".into(),
                format!("{} is more than {MAX_PREPEND}", self.prepend),
            ));
        }
        if !self.state_file.is_absolute() || self.state_file.file_name().is_none() {
            return Err((
                "drain.state_file".into(),
                format!("{:?} must be an absolute file path", self.state_file),
            ));
        }
        if let Some(parent) = self.state_file.parent()
            && parent.exists()
            && !parent.is_dir()
        {
            return Err((
                "drain.state_file".into(),
                format!("{} is not a directory", parent.display()),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DrainConfig, String> {
        let config: DrainConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config
            .validate()
            .map_err(|(key, reason)| format!("{key}: {reason}"))?;
        Ok(config)
    }

    #[test]
    fn defaults_and_durations() {
        let config = parse("").unwrap();
        assert_eq!(config, DrainConfig::default());
        assert_eq!(config.state_file, PathBuf::from(DEFAULT_STATE_FILE));
        let config = parse(
            "prepend = 2\nwithdraw_after = \"30s\"\non_stop = \"2s\"\nstate_file = \"/tmp/d.json\"",
        )
        .unwrap();
        assert_eq!(config.prepend, 2);
        assert_eq!(config.withdraw_after.0, Some(Duration::from_secs(30)));
        assert_eq!(config.on_stop.0, Some(Duration::from_secs(2)));
        assert_eq!(parse("on_stop = \"off\"").unwrap().on_stop.0, None);
    }

    #[test]
    fn refusals_name_their_key() {
        let e = parse("prepend = 11").unwrap_err();
        assert!(e.starts_with("drain.prepend:"), "{e}");
        let e = parse("state_file = \"drain.json\"").unwrap_err();
        assert!(e.starts_with("drain.state_file:"), "{e}");
        let e = parse("state_file = \"/etc/hostname/drain.json\"").unwrap_err();
        assert!(e.starts_with("drain.state_file:"), "{e}");
        let e = parse("withdraw_after = \"soon\"").unwrap_err();
        assert!(e.contains("withdraw_after") && e.contains("soon"), "{e}");
        let e = parse("on_stop = \"0s\"").unwrap_err();
        assert!(e.contains("on_stop") && e.contains("off"), "{e}");
        let e = parse("prepnd = 1").unwrap_err();
        assert!(e.contains("prepnd"), "{e}");
    }
}
