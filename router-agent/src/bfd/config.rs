//! The `[bfd]` section and the per-neighbour `bfd` key of `[[bgp.neighbor]]` and
//! `[[bgp.dynamic_neighbor]]` (`BgpConfig::compile_with_bfd` gives each compiled neighbour its parameters).
//!
//! ```toml
//! [bfd]                          # the default profile; absent: 300 ms x 3
//! desired_min_tx = "300ms"
//! required_min_rx = "300ms"
//! detect_multiplier = 3
//!
//! [bfd.profile.tor]              # named profiles; unset keys inherit from [bfd]
//! desired_min_tx = "100ms"
//! required_min_rx = "100ms"
//!
//! [[bgp.neighbor]]
//! address = "10.0.1.1"
//! bfd = true                     # the [bfd] values; or bfd = "tor"; absent or false: no BFD
//! ```

use std::{collections::BTreeMap, time::Duration};

use serde::Deserialize;

use super::session::SessionConfig;

/// Below this, a userspace agent cannot keep its promise (scheduling latency); FRR's bfdd
/// has the same floor.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Above this, BFD detects more slowly than BGP's hold timer would (FRR's ceiling too).
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BfdConfig {
    #[serde(with = "humantime_serde", default = "default_interval")]
    pub desired_min_tx: Duration,
    #[serde(with = "humantime_serde", default = "default_interval")]
    pub required_min_rx: Duration,
    #[serde(default = "default_detect_multiplier")]
    pub detect_multiplier: u8,
    #[serde(default, rename = "profile")]
    pub profiles: BTreeMap<String, ProfileConfig>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    #[serde(with = "humantime_serde", default)]
    pub desired_min_tx: Option<Duration>,
    #[serde(with = "humantime_serde", default)]
    pub required_min_rx: Option<Duration>,
    pub detect_multiplier: Option<u8>,
}

/// A neighbour's `bfd` key.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged, expecting = "true, false or the name of a [bfd.profile]")]
pub enum NeighborBfd {
    Enabled(bool),
    Profile(String),
}

fn default_interval() -> Duration {
    SessionConfig::default().desired_min_tx
}

fn default_detect_multiplier() -> u8 {
    SessionConfig::default().detect_mult
}

impl Default for BfdConfig {
    fn default() -> Self {
        BfdConfig {
            desired_min_tx: default_interval(),
            required_min_rx: default_interval(),
            detect_multiplier: default_detect_multiplier(),
            profiles: BTreeMap::new(),
        }
    }
}

fn check_interval(key: String, value: Duration) -> Result<(), (String, String)> {
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&value) {
        return Err((
            key,
            format!(
                "{} is outside {}..={}",
                humantime_serde::re::humantime::format_duration(value),
                humantime_serde::re::humantime::format_duration(MIN_INTERVAL),
                humantime_serde::re::humantime::format_duration(MAX_INTERVAL)
            ),
        ));
    }
    Ok(())
}

fn check_multiplier(key: String, value: u8) -> Result<(), (String, String)> {
    if value == 0 {
        // RFC 5880 6.8.6: a peer discards packets with Detect Mult 0.
        return Err((key, "must be at least 1".to_owned()));
    }
    Ok(())
}

impl BfdConfig {
    /// Errors name the key, e.g. `bfd.profile.tor.required_min_rx`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        check_interval("bfd.desired_min_tx".into(), self.desired_min_tx)?;
        check_interval("bfd.required_min_rx".into(), self.required_min_rx)?;
        check_multiplier("bfd.detect_multiplier".into(), self.detect_multiplier)?;
        for (name, profile) in &self.profiles {
            let key = |field: &str| format!("bfd.profile.{name}.{field}");
            if let Some(tx) = profile.desired_min_tx {
                check_interval(key("desired_min_tx"), tx)?;
            }
            if let Some(rx) = profile.required_min_rx {
                check_interval(key("required_min_rx"), rx)?;
            }
            if let Some(mult) = profile.detect_multiplier {
                check_multiplier(key("detect_multiplier"), mult)?;
            }
        }
        Ok(())
    }

    /// The session parameters for a neighbour whose `bfd` key (named `key` in errors) is
    /// `choice`; None: no BFD for it.
    pub fn session_config(
        &self,
        key: &str,
        choice: &NeighborBfd,
    ) -> Result<Option<SessionConfig>, (String, String)> {
        let defaults = SessionConfig {
            desired_min_tx: self.desired_min_tx,
            required_min_rx: self.required_min_rx,
            detect_mult: self.detect_multiplier,
        };
        match choice {
            NeighborBfd::Enabled(false) => Ok(None),
            NeighborBfd::Enabled(true) => Ok(Some(defaults)),
            NeighborBfd::Profile(name) => {
                let Some(profile) = self.profiles.get(name) else {
                    return Err((key.to_owned(), format!("no [bfd.profile.{name}]")));
                };
                Ok(Some(SessionConfig {
                    desired_min_tx: profile.desired_min_tx.unwrap_or(defaults.desired_min_tx),
                    required_min_rx: profile.required_min_rx.unwrap_or(defaults.required_min_rx),
                    detect_mult: profile.detect_multiplier.unwrap_or(defaults.detect_mult),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc {
        #[serde(default)]
        bfd: BfdConfig,
        neighbor: Option<NeighborBfdHolder>,
    }

    #[derive(Debug, Deserialize)]
    struct NeighborBfdHolder {
        bfd: NeighborBfd,
    }

    fn parse(text: &str) -> Result<Doc, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn defaults_are_300ms_by_3() {
        let doc = parse("neighbor = { bfd = true }").unwrap();
        let session = doc.bfd.session_config("n", &doc.neighbor.unwrap().bfd);
        assert_eq!(session, Ok(Some(SessionConfig::default())));
        assert_eq!(SessionConfig::default().desired_min_tx, 300 * MS);
        assert_eq!(SessionConfig::default().detect_mult, 3);
        let off = parse("neighbor = { bfd = false }").unwrap();
        assert_eq!(
            off.bfd.session_config("n", &off.neighbor.unwrap().bfd),
            Ok(None)
        );
    }

    #[test]
    fn profiles_inherit_unset_keys_from_bfd() {
        let doc = parse(
            r#"
            neighbor = { bfd = "tor" }
            [bfd]
            detect_multiplier = 5
            required_min_rx = "200ms"
            [bfd.profile.tor]
            desired_min_tx = "100ms"
            "#,
        )
        .unwrap();
        doc.bfd.validate().unwrap();
        let session = doc.bfd.session_config("n", &doc.neighbor.unwrap().bfd);
        assert_eq!(
            session,
            Ok(Some(SessionConfig {
                desired_min_tx: 100 * MS,
                required_min_rx: 200 * MS,
                detect_mult: 5,
            }))
        );
    }

    #[test]
    fn errors_name_the_key() {
        let doc = parse("neighbor = { bfd = \"nope\" }").unwrap();
        let err = doc
            .bfd
            .session_config("bgp.neighbor[0].bfd", &doc.neighbor.unwrap().bfd);
        assert_eq!(
            err,
            Err(("bgp.neighbor[0].bfd".into(), "no [bfd.profile.nope]".into()))
        );
        let cases = [
            ("[bfd]\ndesired_min_tx = \"1ms\"", "bfd.desired_min_tx"),
            ("[bfd]\nrequired_min_rx = \"2m\"", "bfd.required_min_rx"),
            ("[bfd]\ndetect_multiplier = 0", "bfd.detect_multiplier"),
            (
                "[bfd.profile.tor]\nrequired_min_rx = \"5ms\"",
                "bfd.profile.tor.required_min_rx",
            ),
            (
                "[bfd.profile.tor]\ndetect_multiplier = 0",
                "bfd.profile.tor.detect_multiplier",
            ),
        ];
        for (text, key) in cases {
            let (got, reason) = parse(text).unwrap().bfd.validate().unwrap_err();
            assert_eq!(got, key, "{reason}");
        }
        // Type errors are serde's, with the line.
        assert!(
            parse("neighbor = { bfd = 3 }")
                .unwrap_err()
                .contains("true, false or")
        );
        assert!(parse("[bfd]\ndetect_multiplier = 300").is_err());
        assert!(
            parse("[bfd]\ninterval = \"1s\"")
                .unwrap_err()
                .contains("unknown field")
        );
    }

    fn agent_config(rest: &str) -> Result<crate::config::Config, String> {
        let text = format!(
            "[[interface]]\nname = \"eth0\"\n[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n{rest}"
        );
        crate::config::Config::parse(&text, std::path::Path::new("test.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn neighbours_and_ranges_get_their_profile() {
        let config = agent_config(
            r#"
            [[bgp.neighbor]]
            address = "10.0.0.1"
            remote_as = 65002
            bfd = true
            [[bgp.neighbor]]
            address = "10.0.0.2"
            remote_as = 65002
            bfd = "tor"
            [[bgp.neighbor]]
            interface = "eth0"
            remote_as = "external"
            [[bgp.dynamic_neighbor]]
            range = "10.1.0.0/24"
            remote_as = "external"
            bfd = "tor"
            [bfd]
            detect_multiplier = 4
            [bfd.profile.tor]
            desired_min_tx = "100ms"
            "#,
        )
        .unwrap();
        let setup = config
            .bgp
            .as_ref()
            .unwrap()
            .compile_with_bfd(&config.bfd)
            .unwrap();
        let default = SessionConfig {
            detect_mult: 4,
            ..SessionConfig::default()
        };
        let tor = SessionConfig {
            desired_min_tx: 100 * MS,
            ..default
        };
        assert_eq!(setup.neighbors[0].bfd, Some(default));
        assert_eq!(setup.neighbors[1].bfd, Some(tor));
        assert_eq!(setup.neighbors[2].bfd, None, "absent: no BFD");
        let vm = setup.dynamic_neighbors[0].neighbor("10.1.0.9".parse().unwrap());
        assert_eq!(vm.bfd, Some(tor));
    }

    #[test]
    fn check_names_the_neighbour_key_of_an_unknown_profile() {
        let e = agent_config(
            "[[bgp.neighbor]]\naddress = \"10.0.0.1\"\nremote_as = 1\n\
             [[bgp.neighbor]]\naddress = \"10.0.0.2\"\nremote_as = 1\nbfd = \"fast\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("bgp.neighbor[1].bfd") && e.contains("no [bfd.profile.fast]"),
            "{e}"
        );
        let e = agent_config(
            "[[bgp.dynamic_neighbor]]\nrange = \"10.1.0.0/24\"\nremote_as = 1\nbfd = \"x\"\n",
        )
        .unwrap_err();
        assert!(e.contains("bgp.dynamic_neighbor[0].bfd"), "{e}");
        // [bfd] is checked without any neighbour using it.
        let e = agent_config("[bfd]\nrequired_min_rx = \"1ms\"\n").unwrap_err();
        assert!(e.contains("bfd.required_min_rx"), "{e}");
    }
}
