//! How policy is written in the configuration: presets and prefix list references,
//! `max_prefix`, durations, communities, `[[bgp.originate]]` (hand-written visitors where
//! serde's derived errors would not name the key).

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::*;

/// A named preset of a policy direction.
pub trait Preset: Sized {
    const NAMES: &'static [&'static str];
    fn parse(name: &str) -> Option<Self>;
}

/// `import = ...`: a preset name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportPreset {
    /// Only 0.0.0.0/0 and ::/0: what a host needs from its ToRs.
    DefaultOnly,
    /// Everything (still subject to AS_PATH loop detection and max-prefix).
    All,
    /// Nothing, deliberately (unlike leaving `import` out, which RFC 8212 also makes
    /// import nothing on eBGP, but logs).
    None,
}

impl Preset for ImportPreset {
    const NAMES: &'static [&'static str] = &["default-only", "all", "none"];
    fn parse(name: &str) -> Option<Self> {
        match name {
            "default-only" => Some(Self::DefaultOnly),
            "all" => Some(Self::All),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// `export = ...`: a preset name. Export only ever sees originated routes, so "all" means
/// every route this host originates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportPreset {
    All,
    None,
}

impl Preset for ExportPreset {
    const NAMES: &'static [&'static str] = &["all", "none"];
    fn parse(name: &str) -> Option<Self> {
        match name {
            "all" => Some(Self::All),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// A policy reference: `"preset"` or `{ prefix_list = "name" }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyRef<P> {
    Preset(P),
    PrefixList(String),
}

pub type ImportConfig = PolicyRef<ImportPreset>;

pub type ExportConfig = PolicyRef<ExportPreset>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrefixListRef {
    prefix_list: String,
}

// Hand-written rather than `#[serde(untagged)]`: untagged enums report "data did not match any
// variant", which does not tell the operator what to write.
impl<'de, P: Preset> Deserialize<'de> for PolicyRef<P> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RefVisitor<P>(PhantomData<P>);
        impl<'de, P: Preset> Visitor<'de> for RefVisitor<P> {
            type Value = PolicyRef<P>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(
                    f,
                    "one of {} or a table {{ prefix_list = \"name\" }}",
                    quoted(P::NAMES)
                )
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
                P::parse(name).map(PolicyRef::Preset).ok_or_else(|| {
                    E::custom(format!(
                        "unknown policy {name:?}: expected one of {} or {{ prefix_list = \"name\" }}",
                        quoted(P::NAMES)
                    ))
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let reference =
                    PrefixListRef::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(PolicyRef::PrefixList(reference.prefix_list))
            }
        }
        deserializer.deserialize_any(RefVisitor(PhantomData))
    }
}

pub(super) fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("{name:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum MaxPrefixActionName {
    Warn,
    Teardown,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MaxPrefixConfig {
    limit: u32,
    /// Tearing down is the default: a host flooded with routes is better off without the
    /// session than out of memory.
    action: Option<MaxPrefixActionName>,
    #[serde(default, deserialize_with = "deserialize_duration")]
    restart_after: Option<Duration>,
}

impl TryFrom<MaxPrefixConfig> for MaxPrefix {
    type Error = String;
    fn try_from(config: MaxPrefixConfig) -> Result<Self, String> {
        if config.limit == 0 {
            return Err("max_prefix limit must be at least 1".into());
        }
        let action = match config.action.unwrap_or(MaxPrefixActionName::Teardown) {
            MaxPrefixActionName::Warn if config.restart_after.is_some() => {
                return Err("restart_after only applies to action = \"teardown\"".into());
            }
            MaxPrefixActionName::Warn => MaxPrefixAction::Warn,
            MaxPrefixActionName::Teardown => MaxPrefixAction::Teardown {
                restart_after: config.restart_after,
            },
        };
        Ok(MaxPrefix {
            limit: config.limit,
            action,
        })
    }
}

pub(super) fn deserialize_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map(Some).map_err(de::Error::custom)
}

/// `"500ms"`, `"60s"`, `"5m"`, `"1h"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. \"60s\", \"5m\""))?;
    let seconds = |factor: u64| {
        value
            .checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("duration {text:?} is too long"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        _ => Err(format!(
            "invalid duration {text:?}: the unit must be ms, s, m or h"
        )),
    }
}

/// A standard community (RFC 1997): `"65000:100"` or a well-known name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Community(pub u32);

impl std::str::FromStr for Community {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let well_known = match text {
            "no-export" => Some(0xFFFF_FF01),
            "no-advertise" => Some(0xFFFF_FF02),
            "no-export-subconfed" => Some(0xFFFF_FF03),
            // RFC 8326: lets the ToRs move traffic away before the host goes down.
            "graceful-shutdown" => Some(crate::bgp::packet::types::GRACEFUL_SHUTDOWN),
            _ => None,
        };
        if let Some(value) = well_known {
            return Ok(Community(value));
        }
        let parse = |part: &str| part.parse::<u16>().ok();
        match text.split_once(':') {
            Some((high, low)) if parse(high).is_some() && parse(low).is_some() => Ok(Community(
                u32::from(parse(high).expect("checked")) << 16
                    | u32::from(parse(low).expect("checked")),
            )),
            _ => Err(format!(
                "invalid community {text:?}: expected \"ASN:VALUE\" (each 0-65535) or one of \
                 no-export, no-advertise, no-export-subconfed, graceful-shutdown"
            )),
        }
    }
}

/// A large community (RFC 8092): `"4200000000:1:2"`, for 4-byte ASNs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity(pub [u32; 3]);

impl std::str::FromStr for LargeCommunity {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let parts: Vec<Option<u32>> = text.split(':').map(|part| part.parse().ok()).collect();
        match parts.as_slice() {
            [Some(a), Some(b), Some(c)] => Ok(LargeCommunity([*a, *b, *c])),
            _ => Err(format!(
                "invalid large community {text:?}: expected \"ASN:VALUE:VALUE\" (each 0-4294967295)"
            )),
        }
    }
}

macro_rules! deserialize_from_str {
    ($type:ty) => {
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(de::Error::custom)
            }
        }
    };
}

deserialize_from_str!(Community);
deserialize_from_str!(LargeCommunity);

/// `[[bgp.originate]]`: a prefix this host announces (a loopback, a service VIP).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginateConfig {
    #[serde(deserialize_with = "crate::config::prefix::deserialize")]
    pub prefix: IpNet,
    #[serde(default)]
    pub communities: Vec<Community>,
    #[serde(default)]
    pub large_communities: Vec<LargeCommunity>,
}
