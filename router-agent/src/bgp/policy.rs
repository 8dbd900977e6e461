//! Routing policy: what a host accepts from its ToRs, and what it tells them.
//!
//! # Import
//!
//! [`ImportPolicy`] decides, per received route, whether it enters the decision process.
//! AS_PATH loop detection (our own AS in the path) is always on. The filter is a preset or a
//! prefix list; an eBGP session whose import policy is *not configured* imports nothing
//! (RFC 8212), which is distinct from a policy configured to deny everything (no log line, an
//! explicit choice). A max-prefix limit bounds what a peer can make the host store.
//!
//! # Export: never transit, by construction
//!
//! A host must never carry traffic between its ToRs, so it must never advertise a route it
//! learned. This is enforced by types, not by a filter someone could misconfigure:
//!
//! * The only way to fill an [`AdjRibOut`] is an [`ExportTarget`], and the only way to make one
//!   is [`build_adj_rib_out`] (its field is private to this module).
//! * [`build_adj_rib_out`] takes the host's [`Originated`] table, the session and the export
//!   policy. None of them can hold a learned route: an [`OriginatedRoute`] is a prefix plus
//!   communities from the configuration, with no `PathAttributes`, no `Path`, no peer; the
//!   attributes sent are built here from a fixed template (ORIGIN IGP, AS_PATH = our AS only,
//!   NEXT_HOP = our session address). Nothing of a received AS_PATH, MED or community can leak.
//! * Nothing in this module reads the RIB, and the RIB has no way to produce an
//!   `ExportTarget`. Passing a learned path where originated routes are expected does not
//!   compile:
//!
//! ```compile_fail,E0308
//! use router_agent::bgp::policy::{build_adj_rib_out, ExportPolicy, ExportSession};
//! use router_agent::bgp::rib::{Path, Rib};
//!
//! fn leak(rib: &Rib, session: &ExportSession, policy: &ExportPolicy) {
//!     let learned: Vec<Path> = rib.routes().flat_map(|r| r.paths).map(|p| p.path).collect();
//!     // Expected `&Originated`, found `&Vec<Path>`: a learned route cannot be exported.
//!     let _ = build_adj_rib_out(&learned, session, policy);
//! }
//! ```
//!
//! (Stable rustdoc does not check the error code of a `compile_fail` example; the test
//! `compile_fail_example_twin_compiles` keeps the same calls compiling with an `&Originated`,
//! so the example fails for the leak and nothing else.)
//!
//! What types cannot stop is someone writing a learned *prefix* into an `OriginatedRoute` on
//! purpose; `OriginatedRoute`s come from the origination configuration (loopbacks, service
//! VIPs), and code that builds one from a RIB route would stand out in review. A default route
//! can never be originated (it would pull every ToR's traffic through the host).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::bgp::packet::types::{AsPath, AsSegment, AsSegmentKind, Origin, PathAttributes};
use crate::bgp::rib::{NextHop, PeerInfo};

/// LOCAL_PREF sent to iBGP peers with originated routes (RFC 4271 5.1.5 wants one on iBGP).
pub const IBGP_LOCAL_PREF: u32 = 100;

/// A configuration error, naming the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct PolicyError {
    pub key: String,
    pub reason: String,
}

impl PolicyError {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Prefix lists
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyAction {
    Permit,
    Deny,
}

/// `[bgp.prefix_list.NAME]`: entries per address family, evaluated in order; a prefix no
/// entry matches is denied. A family left out denies everything of that family.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixListConfig {
    #[serde(default)]
    pub ipv4: Vec<PrefixListEntryConfig>,
    #[serde(default)]
    pub ipv6: Vec<PrefixListEntryConfig>,
}

/// `{ action = "permit", prefix = "10.0.0.0/8", ge = 24, le = 32 }`. Without `ge`/`le` the
/// entry matches exactly `prefix`; with them, any prefix inside `prefix` whose length is in
/// `ge..=le` (`ge` defaults to the entry's length, `le` to the family's maximum).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixListEntryConfig {
    pub action: PolicyAction,
    pub prefix: IpNet,
    pub ge: Option<u8>,
    pub le: Option<u8>,
}

/// One compiled prefix list entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixRule {
    pub action: PolicyAction,
    pub prefix: IpNet,
    pub min_len: u8,
    pub max_len: u8,
}

impl PrefixRule {
    pub fn matches(&self, prefix: &IpNet) -> bool {
        (self.min_len..=self.max_len).contains(&prefix.prefix_len()) && self.prefix.contains(prefix)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixList {
    pub name: String,
    pub ipv4: Vec<PrefixRule>,
    pub ipv6: Vec<PrefixRule>,
}

impl PrefixList {
    /// The first matching entry's action; no match denies.
    pub fn evaluate(&self, prefix: &IpNet) -> PolicyAction {
        let rules = match prefix {
            IpNet::V4(_) => &self.ipv4,
            IpNet::V6(_) => &self.ipv6,
        };
        rules
            .iter()
            .find(|rule| rule.matches(prefix))
            .map_or(PolicyAction::Deny, |rule| rule.action)
    }

    pub fn permits(&self, prefix: &IpNet) -> bool {
        self.evaluate(prefix) == PolicyAction::Permit
    }

    /// The `default-only` preset: 0.0.0.0/0 and ::/0 exactly, nothing else.
    pub fn default_only() -> Self {
        let exact = |prefix: &str| {
            let prefix: IpNet = prefix.parse().expect("valid literal");
            PrefixRule {
                action: PolicyAction::Permit,
                prefix,
                min_len: 0,
                max_len: 0,
            }
        };
        Self {
            name: "default-only".into(),
            ipv4: vec![exact("0.0.0.0/0")],
            ipv6: vec![exact("::/0")],
        }
    }

    pub fn compile(name: &str, config: &PrefixListConfig) -> Result<Self, PolicyError> {
        let compile_family = |family: &str, entries: &[PrefixListEntryConfig], v4: bool| {
            entries
                .iter()
                .enumerate()
                .map(|(i, entry)| {
                    compile_rule(entry, v4).map_err(|reason| {
                        PolicyError::new(format!("bgp.prefix_list.{name}.{family}[{i}]"), reason)
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            name: name.to_owned(),
            ipv4: compile_family("ipv4", &config.ipv4, true)?,
            ipv6: compile_family("ipv6", &config.ipv6, false)?,
        })
    }
}

fn compile_rule(entry: &PrefixListEntryConfig, v4: bool) -> Result<PrefixRule, String> {
    let prefix = entry.prefix;
    if matches!(prefix, IpNet::V4(_)) != v4 {
        return Err(format!(
            "{prefix} is not an {} prefix",
            if v4 { "IPv4" } else { "IPv6" }
        ));
    }
    if prefix != prefix.trunc() {
        return Err(format!(
            "{prefix} has host bits set (did you mean {}?)",
            prefix.trunc()
        ));
    }
    let len = prefix.prefix_len();
    let family_max = prefix.max_prefix_len();
    for (key, value) in [("ge", entry.ge), ("le", entry.le)] {
        if let Some(value) = value
            && !(len..=family_max).contains(&value)
        {
            return Err(format!(
                "{key} = {value} must be between the prefix length {len} and {family_max}"
            ));
        }
    }
    let (min_len, max_len) = match (entry.ge, entry.le) {
        (None, None) => (len, len),
        (Some(ge), None) => (ge, family_max),
        (None, Some(le)) => (len, le),
        (Some(ge), Some(le)) if ge <= le => (ge, le),
        (Some(ge), Some(le)) => {
            return Err(format!(
                "ge = {ge} is greater than le = {le}: nothing would match"
            ));
        }
    };
    Ok(PrefixRule {
        action: entry.action,
        prefix,
        min_len,
        max_len,
    })
}

/// The compiled `[bgp.prefix_list.*]` tables, by name.
#[derive(Clone, Debug, Default)]
pub struct PrefixLists {
    lists: BTreeMap<String, Arc<PrefixList>>,
}

impl PrefixLists {
    pub fn compile(config: &BTreeMap<String, PrefixListConfig>) -> Result<Self, PolicyError> {
        let mut lists = BTreeMap::new();
        for (name, list) in config {
            if name.is_empty() {
                return Err(PolicyError::new(
                    "bgp.prefix_list",
                    "a prefix list needs a name",
                ));
            }
            lists.insert(name.clone(), Arc::new(PrefixList::compile(name, list)?));
        }
        Ok(Self { lists })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<PrefixList>> {
        self.lists.get(name)
    }

    fn resolve(&self, name: &str, key: &str) -> Result<Arc<PrefixList>, PolicyError> {
        self.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.lists.keys().map(String::as_str).collect();
            PolicyError::new(
                key,
                if known.is_empty() {
                    format!("unknown prefix list {name:?} (no [bgp.prefix_list.*] is defined)")
                } else {
                    format!(
                        "unknown prefix list {name:?} (defined: {})",
                        known.join(", ")
                    )
                },
            )
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Policy references in the neighbor configuration
// ---------------------------------------------------------------------------------------------

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

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("{name:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Filters shared by both directions
// ---------------------------------------------------------------------------------------------

/// Which prefixes a policy lets through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Filter {
    /// No policy in the configuration: RFC 8212 makes eBGP sessions pass nothing; iBGP
    /// sessions pass everything.
    #[default]
    NotConfigured,
    All,
    /// Configured to pass nothing.
    None,
    PrefixList(Arc<PrefixList>),
}

impl Filter {
    fn from_ref<P: Preset>(
        reference: Option<&PolicyRef<P>>,
        preset: impl Fn(&P) -> Filter,
        lists: &PrefixLists,
        key: &str,
    ) -> Result<Self, PolicyError> {
        Ok(match reference {
            None => Filter::NotConfigured,
            Some(PolicyRef::Preset(p)) => preset(p),
            Some(PolicyRef::PrefixList(name)) => {
                Filter::PrefixList(lists.resolve(name, &format!("{key}.prefix_list"))?)
            }
        })
    }

    /// Whether `prefix` passes; `Err(())` only for RFC 8212's "not configured on eBGP".
    fn passes(&self, prefix: &IpNet, ebgp: bool) -> Result<bool, ()> {
        match self {
            Filter::NotConfigured if ebgp => Err(()),
            Filter::NotConfigured | Filter::All => Ok(true),
            Filter::None => Ok(false),
            Filter::PrefixList(list) => Ok(list.permits(prefix)),
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Filter::NotConfigured => f.write_str("not configured"),
            Filter::All => f.write_str("all"),
            Filter::None => f.write_str("none"),
            Filter::PrefixList(list) => write!(f, "prefix-list {}", list.name),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------------------------

/// Why import policy turned a route away (kept in the Adj-RIB-In; shown by `show`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImportRejection {
    #[error("AS_PATH contains our AS {0} (loop)")]
    AsPathLoop(u32),
    #[error("no import policy configured for this eBGP neighbor (RFC 8212)")]
    NotConfigured,
    #[error("denied by import policy")]
    Denied,
}

/// What a neighbor's routes must pass to reach the decision process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportPolicy {
    pub filter: Filter,
    pub max_prefix: Option<MaxPrefix>,
}

impl ImportPolicy {
    /// What to apply when the neighbor's configuration has no `import` (RFC 8212).
    pub fn not_configured() -> Self {
        Self::default()
    }

    pub fn default_only() -> Self {
        Self {
            filter: Filter::PrefixList(Arc::new(PrefixList::default_only())),
            max_prefix: None,
        }
    }

    /// Compiles a neighbor's `import` and `max_prefix` settings; `key` names the neighbor in
    /// errors (e.g. `bgp.neighbor[0].import`).
    pub fn from_config(
        import: Option<&ImportConfig>,
        max_prefix: Option<MaxPrefix>,
        lists: &PrefixLists,
        key: &str,
    ) -> Result<Self, PolicyError> {
        let filter = Filter::from_ref(
            import,
            |preset| match preset {
                ImportPreset::DefaultOnly => {
                    Filter::PrefixList(Arc::new(PrefixList::default_only()))
                }
                ImportPreset::All => Filter::All,
                ImportPreset::None => Filter::None,
            },
            lists,
            key,
        )?;
        Ok(Self { filter, max_prefix })
    }

    /// Whether `prefix` with `attrs`, received from `peer`, may enter the decision process.
    pub fn evaluate(
        &self,
        prefix: &IpNet,
        attrs: &PathAttributes,
        peer: &PeerInfo,
    ) -> Result<(), ImportRejection> {
        // RFC 4271 9.1.2: a route whose AS_PATH holds our own AS has looped. Always on: a host
        // accepting one would forward into the loop.
        if attrs.as_path.contains(peer.local_as) {
            return Err(ImportRejection::AsPathLoop(peer.local_as));
        }
        match self.filter.passes(prefix, peer.ebgp) {
            Ok(true) => Ok(()),
            Ok(false) => Err(ImportRejection::Denied),
            Err(()) => Err(ImportRejection::NotConfigured),
        }
    }

    /// Logs the RFC 8212 consequence of a missing import policy, once per session start.
    pub fn log_if_unconfigured(&self, peer: &PeerInfo) {
        if self.filter == Filter::NotConfigured && peer.ebgp {
            tracing::warn!(
                neighbor = %peer.address,
                remote_as = peer.remote_as,
                "no import policy configured for eBGP neighbor: importing nothing (RFC 8212); \
                 set import = \"default-only\" or a prefix list"
            );
        }
    }
}

/// `max_prefix = { limit = 100, action = "teardown", restart_after = "60s" }`: bounds the
/// routes a neighbor can make this host store. It counts the routes received (Adj-RIB-In,
/// before import policy, like Junos `prefix-limit` or BIRD `receive limit`): those are what
/// take memory here, even when policy rejects them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "MaxPrefixConfig")]
pub struct MaxPrefix {
    pub limit: u32,
    pub action: MaxPrefixAction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxPrefixAction {
    /// Log, keep the session.
    Warn,
    /// Close the session (NOTIFICATION Cease, subcode 1, RFC 4486); reconnect after
    /// `restart_after`, or only on operator action when None.
    Teardown { restart_after: Option<Duration> },
}

/// The signal [`crate::bgp::rib::Rib::take_max_prefix_exceeded`] gives the speaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPrefixExceeded {
    pub limit: u32,
    pub received: usize,
    pub action: MaxPrefixAction,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum MaxPrefixActionName {
    Warn,
    Teardown,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaxPrefixConfig {
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

fn deserialize_duration<'de, D: Deserializer<'de>>(
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

// ---------------------------------------------------------------------------------------------
// Origination and export
// ---------------------------------------------------------------------------------------------

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
            "graceful-shutdown" => Some(0xFFFF_0000),
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
    pub prefix: IpNet,
    #[serde(default)]
    pub communities: Vec<Community>,
    #[serde(default)]
    pub large_communities: Vec<LargeCommunity>,
}

/// A route this host originates. Deliberately carries no path attributes: the attributes
/// sent are built by [`build_adj_rib_out`] from a fixed template, so nothing learned can ride
/// along (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginatedRoute {
    prefix: IpNet,
    communities: Vec<u32>,
    large_communities: Vec<[u32; 3]>,
}

impl OriginatedRoute {
    /// Refuses host bits and default routes: a host announcing 0/0 or ::/0 would attract its
    /// ToRs' traffic, the very transit this module exists to prevent.
    pub fn new(
        prefix: IpNet,
        communities: &[Community],
        large_communities: &[LargeCommunity],
    ) -> Result<Self, String> {
        if prefix != prefix.trunc() {
            return Err(format!(
                "{prefix} has host bits set (did you mean {}?)",
                prefix.trunc()
            ));
        }
        if prefix.prefix_len() == 0 {
            return Err(format!(
                "a host must not originate a default route ({prefix}): it would draw its ToRs' traffic"
            ));
        }
        let mut communities: Vec<u32> = communities.iter().map(|c| c.0).collect();
        communities.sort_unstable();
        communities.dedup();
        let mut large_communities: Vec<[u32; 3]> = large_communities.iter().map(|c| c.0).collect();
        large_communities.sort_unstable();
        large_communities.dedup();
        Ok(Self {
            prefix,
            communities,
            large_communities,
        })
    }

    pub fn prefix(&self) -> IpNet {
        self.prefix
    }
}

/// The host's originated routes: the only input of export.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Originated {
    routes: BTreeMap<IpNet, OriginatedRoute>,
}

impl Originated {
    pub fn new() -> Self {
        Self::default()
    }

    /// Compiles `[[bgp.originate]]`.
    pub fn from_config(config: &[OriginateConfig]) -> Result<Self, PolicyError> {
        let mut originated = Self::new();
        for (i, entry) in config.iter().enumerate() {
            let key = format!("bgp.originate[{i}]");
            let route =
                OriginatedRoute::new(entry.prefix, &entry.communities, &entry.large_communities)
                    .map_err(|reason| PolicyError::new(format!("{key}.prefix"), reason))?;
            if originated.insert(route).is_some() {
                return Err(PolicyError::new(
                    format!("{key}.prefix"),
                    format!("{} is originated twice", entry.prefix),
                ));
            }
        }
        Ok(originated)
    }

    /// Adds or replaces a route; returns the one it replaced.
    pub fn insert(&mut self, route: OriginatedRoute) -> Option<OriginatedRoute> {
        self.routes.insert(route.prefix, route)
    }

    pub fn remove(&mut self, prefix: &IpNet) -> Option<OriginatedRoute> {
        self.routes.remove(prefix)
    }

    pub fn iter(&self) -> impl Iterator<Item = &OriginatedRoute> {
        self.routes.values()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// Which originated routes a neighbor gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportPolicy {
    pub filter: Filter,
}

impl ExportPolicy {
    pub fn not_configured() -> Self {
        Self::default()
    }

    pub fn all_originated() -> Self {
        Self {
            filter: Filter::All,
        }
    }

    /// Compiles a neighbor's `export` setting; `key` names it in errors.
    pub fn from_config(
        export: Option<&ExportConfig>,
        lists: &PrefixLists,
        key: &str,
    ) -> Result<Self, PolicyError> {
        let filter = Filter::from_ref(
            export,
            |preset| match preset {
                ExportPreset::All => Filter::All,
                ExportPreset::None => Filter::None,
            },
            lists,
            key,
        )?;
        Ok(Self { filter })
    }

    fn permits(&self, prefix: &IpNet, ebgp: bool) -> bool {
        // RFC 8212: an eBGP neighbor without an export policy gets nothing.
        self.filter.passes(prefix, ebgp).unwrap_or(false)
    }
}

/// What export needs of a session; the caller fills it from the session's local side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSession {
    /// The AS this session runs as (AS_PATH of eBGP advertisements).
    pub local_as: u32,
    pub ebgp: bool,
    /// NEXT_HOP for IPv4 routes: the session's local IPv4 address, or its IPv6 next hop when
    /// RFC 8950 extended next hop was negotiated. None: IPv4 routes are not sent.
    pub ipv4_next_hop: Option<NextHop>,
    /// Next hop for IPv6 routes: global and, on a shared link, link-local (RFC 2545; see
    /// `next_hop_out.rs`). None: IPv6 routes are not sent.
    pub ipv6_next_hop: Option<NextHop>,
    /// For log lines.
    pub peer_address: IpAddr,
}

/// One route as sent to a neighbor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advertisement {
    /// Built by export; `next_hop` inside is set for IPv4 routes with an IPv4 next hop
    /// (the NEXT_HOP attribute), the rest go in MP_REACH_NLRI with `next_hop` below.
    pub attrs: Arc<PathAttributes>,
    pub next_hop: NextHop,
}

/// What an [`AdjRibOut`] should hold. Only [`build_adj_rib_out`] makes one (the field is
/// private), and it only reads originated routes: this type is the never-transit proof.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportTarget {
    routes: BTreeMap<IpNet, Advertisement>,
}

impl ExportTarget {
    pub fn iter(&self) -> impl Iterator<Item = (&IpNet, &Advertisement)> {
        self.routes.iter()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// The routes a neighbor should receive: the originated routes the export policy lets
/// through, with attributes built from scratch. Takes no RIB, no learned path: there is no way
/// to hand it one (see the module docs).
pub fn build_adj_rib_out(
    originated: &Originated,
    session: &ExportSession,
    policy: &ExportPolicy,
) -> ExportTarget {
    // Routes with the same communities and next hop share one attribute set, as the codec
    // packs one UPDATE per attribute set.
    let mut shared: HashMap<PathAttributes, Arc<PathAttributes>> = HashMap::new();
    let mut routes = BTreeMap::new();
    for route in originated.iter() {
        if !policy.permits(&route.prefix, session.ebgp) {
            continue;
        }
        let next_hop = match route.prefix {
            IpNet::V4(_) => session.ipv4_next_hop,
            IpNet::V6(_) => session.ipv6_next_hop,
        };
        let Some(next_hop) = next_hop else {
            tracing::debug!(
                neighbor = %session.peer_address,
                prefix = %route.prefix,
                "no next hop of this family on the session; route not exported"
            );
            continue;
        };
        let attrs = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: if session.ebgp {
                AsPath {
                    segments: vec![AsSegment {
                        kind: AsSegmentKind::Sequence,
                        asns: vec![session.local_as],
                    }],
                }
            } else {
                AsPath::default()
            },
            next_hop: match (route.prefix, next_hop.address) {
                (IpNet::V4(_), IpAddr::V4(address)) => Some(address),
                _ => None,
            },
            // No MED: it would only steer the ToRs between our own links, which ECMP already
            // balances. LOCAL_PREF is an iBGP-only attribute (RFC 4271 5.1.5).
            med: None,
            local_pref: (!session.ebgp).then_some(IBGP_LOCAL_PREF),
            communities: route.communities.clone(),
            large_communities: route.large_communities.clone(),
            ..PathAttributes::default()
        };
        let attrs = shared
            .entry(attrs)
            .or_insert_with_key(|attrs| Arc::new(attrs.clone()))
            .clone();
        routes.insert(route.prefix, Advertisement { attrs, next_hop });
    }
    ExportTarget { routes }
}

/// The changes to send a neighbor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportDiff {
    /// New or changed routes, in prefix order.
    pub announce: Vec<(IpNet, Advertisement)>,
    pub withdraw: Vec<IpNet>,
}

impl ExportDiff {
    pub fn is_empty(&self) -> bool {
        self.announce.is_empty() && self.withdraw.is_empty()
    }
}

/// What this host advertised to one neighbor, so a change sends only the difference and a
/// route refresh (RFC 2918) re-sends everything.
#[derive(Debug, Default)]
pub struct AdjRibOut {
    advertised: BTreeMap<IpNet, Advertisement>,
    warned_unconfigured: bool,
}

impl AdjRibOut {
    pub fn new() -> Self {
        Self::default()
    }

    /// Recomputes the neighbor's routes from the originated ones and returns what to send.
    pub fn update(
        &mut self,
        originated: &Originated,
        session: &ExportSession,
        policy: &ExportPolicy,
    ) -> ExportDiff {
        if policy.filter == Filter::NotConfigured && session.ebgp && !self.warned_unconfigured {
            self.warned_unconfigured = true;
            tracing::warn!(
                neighbor = %session.peer_address,
                "no export policy configured for eBGP neighbor: exporting nothing (RFC 8212); \
                 set export = \"all\" or a prefix list"
            );
        }
        self.sync(build_adj_rib_out(originated, session, policy))
    }

    /// Makes the Adj-RIB-Out `target`; returns the announcements and withdrawals needed.
    pub fn sync(&mut self, target: ExportTarget) -> ExportDiff {
        let mut diff = ExportDiff::default();
        for prefix in self.advertised.keys() {
            if !target.routes.contains_key(prefix) {
                diff.withdraw.push(*prefix);
            }
        }
        for (prefix, advertisement) in &target.routes {
            if self.advertised.get(prefix) != Some(advertisement) {
                diff.announce.push((*prefix, advertisement.clone()));
            }
        }
        self.advertised = target.routes;
        diff
    }

    /// Everything advertised, to answer a ROUTE-REFRESH.
    pub fn refresh(&self) -> ExportDiff {
        ExportDiff {
            announce: self
                .advertised
                .iter()
                .map(|(prefix, advertisement)| (*prefix, advertisement.clone()))
                .collect(),
            withdraw: Vec::new(),
        }
    }

    /// The session went down: the neighbor holds nothing from us any more.
    pub fn clear(&mut self) {
        self.advertised.clear();
    }

    pub fn advertised(&self) -> impl Iterator<Item = (&IpNet, &Advertisement)> {
        self.advertised.iter()
    }

    pub fn len(&self) -> usize {
        self.advertised.len()
    }

    pub fn is_empty(&self) -> bool {
        self.advertised.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::bgp::rib::{PathSpec, PeerId, Rib};

    const LOCAL_AS: u32 = 65000;

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    fn peer(id: u32, ebgp: bool) -> PeerInfo {
        PeerInfo {
            id: PeerId(id),
            address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8)),
            router_id: Ipv4Addr::new(192, 0, 2, id as u8),
            remote_as: if ebgp { 65100 + id } else { LOCAL_AS },
            local_as: LOCAL_AS,
            ebgp,
            ifindex: Some(id),
            own_next_hops_only: false,
        }
    }

    fn path_from(asns: &[u32]) -> PathAttributes {
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: AsPath {
                segments: vec![AsSegment {
                    kind: AsSegmentKind::Sequence,
                    asns: asns.to_vec(),
                }],
            },
            ..Default::default()
        }
    }

    fn entry(
        action: PolicyAction,
        prefix: &str,
        ge: Option<u8>,
        le: Option<u8>,
    ) -> PrefixListEntryConfig {
        PrefixListEntryConfig {
            action,
            prefix: net(prefix),
            ge,
            le,
        }
    }

    fn list_v4(entries: Vec<PrefixListEntryConfig>) -> PrefixList {
        PrefixList::compile(
            "test",
            &PrefixListConfig {
                ipv4: entries,
                ipv6: Vec::new(),
            },
        )
        .unwrap()
    }

    use PolicyAction::{Deny, Permit};

    #[test]
    fn prefix_list_entry_without_ge_le_matches_exactly() {
        let list = list_v4(vec![entry(Permit, "10.0.0.0/8", None, None)]);
        assert!(list.permits(&net("10.0.0.0/8")));
        assert!(!list.permits(&net("10.0.0.0/9")));
        assert!(!list.permits(&net("10.1.0.0/16")));
        assert!(!list.permits(&net("0.0.0.0/0")));
    }

    #[test]
    fn prefix_list_ge_le_bounds_are_inclusive() {
        let list = list_v4(vec![entry(Permit, "10.0.0.0/8", Some(24), Some(32))]);
        assert!(
            !list.permits(&net("10.0.0.0/8")),
            "the covering prefix itself is below ge"
        );
        assert!(!list.permits(&net("10.1.2.0/23")));
        assert!(list.permits(&net("10.1.2.0/24")));
        assert!(list.permits(&net("10.255.255.255/32")));
        assert!(
            !list.permits(&net("11.0.0.0/24")),
            "outside the covering prefix"
        );

        // ge alone: up to the family's maximum.
        let ge_only = list_v4(vec![entry(Permit, "10.0.0.0/8", Some(16), None)]);
        assert!(!ge_only.permits(&net("10.0.0.0/15")));
        assert!(ge_only.permits(&net("10.0.0.0/16")));
        assert!(ge_only.permits(&net("10.0.0.1/32")));

        // le alone: from the entry's own length.
        let le_only = list_v4(vec![entry(Permit, "10.0.0.0/8", None, Some(16))]);
        assert!(le_only.permits(&net("10.0.0.0/8")));
        assert!(le_only.permits(&net("10.3.0.0/16")));
        assert!(!le_only.permits(&net("10.3.0.0/17")));

        // ge = le = length: the same as exact.
        let exact = list_v4(vec![entry(Permit, "10.0.0.0/8", Some(8), Some(8))]);
        assert!(exact.permits(&net("10.0.0.0/8")));
        assert!(!exact.permits(&net("10.0.0.0/9")));

        // 0.0.0.0/0 le 32: every IPv4 prefix, and no IPv6 one (per-family lists).
        let any = list_v4(vec![entry(Permit, "0.0.0.0/0", None, Some(32))]);
        assert!(any.permits(&net("0.0.0.0/0")));
        assert!(any.permits(&net("203.0.113.7/32")));
        assert!(!any.permits(&net("::/0")));
        assert!(!any.permits(&net("2001:db8::/32")));
    }

    #[test]
    fn prefix_list_first_match_wins_and_no_match_denies() {
        let list = list_v4(vec![
            entry(Deny, "10.1.0.0/16", None, Some(32)),
            entry(Permit, "10.0.0.0/8", None, Some(32)),
        ]);
        assert_eq!(list.evaluate(&net("10.1.2.0/24")), Deny);
        assert_eq!(list.evaluate(&net("10.2.0.0/16")), Permit);
        assert_eq!(list.evaluate(&net("192.168.0.0/16")), Deny);
        let empty = list_v4(Vec::new());
        assert_eq!(empty.evaluate(&net("10.0.0.0/8")), Deny);
    }

    #[test]
    fn prefix_list_validation_names_the_entry() {
        let compile = |e: PrefixListEntryConfig| {
            PrefixList::compile(
                "bad",
                &PrefixListConfig {
                    ipv4: vec![entry(Permit, "192.0.2.0/24", None, None), e],
                    ipv6: Vec::new(),
                },
            )
            .unwrap_err()
        };
        let err = compile(entry(Permit, "10.0.0.1/8", None, None));
        assert_eq!(err.key, "bgp.prefix_list.bad.ipv4[1]");
        assert!(err.reason.contains("did you mean 10.0.0.0/8"), "{err}");
        assert!(
            compile(entry(Permit, "10.0.0.0/8", Some(7), None))
                .reason
                .contains("ge = 7")
        );
        assert!(
            compile(entry(Permit, "10.0.0.0/8", None, Some(33)))
                .reason
                .contains("le = 33")
        );
        assert!(
            compile(entry(Permit, "10.0.0.0/8", None, Some(7)))
                .reason
                .contains("le = 7")
        );
        assert!(
            compile(entry(Permit, "10.0.0.0/8", Some(25), Some(24)))
                .reason
                .contains("greater than le")
        );
        assert!(
            compile(entry(Permit, "2001:db8::/32", None, None))
                .reason
                .contains("not an IPv4")
        );
    }

    #[test]
    fn default_only_permits_exactly_the_default_routes() {
        let policy = ImportPolicy::default_only();
        let tor = peer(1, true);
        let attrs = path_from(&[65101]);
        for prefix in ["0.0.0.0/0", "::/0"] {
            assert_eq!(
                policy.evaluate(&net(prefix), &attrs, &tor),
                Ok(()),
                "{prefix}"
            );
        }
        for prefix in ["0.0.0.0/1", "128.0.0.0/1", "10.0.0.0/8", "::/1", "2000::/3"] {
            assert_eq!(
                policy.evaluate(&net(prefix), &attrs, &tor),
                Err(ImportRejection::Denied),
                "{prefix}"
            );
        }
    }

    #[test]
    fn rfc8212_unconfigured_ebgp_imports_and_exports_nothing() {
        let attrs = path_from(&[65101]);
        let unconfigured = ImportPolicy::not_configured();
        assert_eq!(
            unconfigured.evaluate(&net("0.0.0.0/0"), &attrs, &peer(1, true)),
            Err(ImportRejection::NotConfigured)
        );
        // RFC 8212 is about eBGP: an iBGP session without policy takes everything.
        assert_eq!(
            unconfigured.evaluate(&net("0.0.0.0/0"), &path_from(&[65101]), &peer(2, false)),
            Ok(())
        );
        // Configured to deny is a different thing (and says so).
        let lists = PrefixLists::compile(&BTreeMap::from([(
            "empty".to_owned(),
            PrefixListConfig::default(),
        )]))
        .unwrap();
        let empty = ImportPolicy::from_config(
            Some(&PolicyRef::PrefixList("empty".into())),
            None,
            &lists,
            "bgp.neighbor[0].import",
        )
        .unwrap();
        assert_ne!(empty, unconfigured);
        assert_eq!(
            empty.evaluate(&net("0.0.0.0/0"), &attrs, &peer(1, true)),
            Err(ImportRejection::Denied)
        );

        // Export side.
        let originated = originated(&["192.0.2.1/32"]);
        let ebgp = session(true);
        assert!(build_adj_rib_out(&originated, &ebgp, &ExportPolicy::not_configured()).is_empty());
        let ibgp = session(false);
        assert_eq!(
            build_adj_rib_out(&originated, &ibgp, &ExportPolicy::not_configured()).len(),
            1
        );
    }

    #[test]
    fn as_path_loop_is_rejected_whatever_the_filter() {
        let looped = path_from(&[65101, LOCAL_AS, 65200]);
        let all = ImportPolicy {
            filter: Filter::All,
            max_prefix: None,
        };
        for tor in [peer(1, true), peer(2, false)] {
            assert_eq!(
                all.evaluate(&net("0.0.0.0/0"), &looped, &tor),
                Err(ImportRejection::AsPathLoop(LOCAL_AS))
            );
        }
        // Inside an AS_SET too.
        let mut in_set = path_from(&[65101]);
        in_set.as_path.segments.push(AsSegment {
            kind: AsSegmentKind::Set,
            asns: vec![1, LOCAL_AS],
        });
        assert!(
            all.evaluate(&net("0.0.0.0/0"), &in_set, &peer(1, true))
                .is_err()
        );
    }

    /// The neighbor table is integrated elsewhere; this mirrors its policy keys.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TestNeighbor {
        address: IpAddr,
        import: Option<ImportConfig>,
        export: Option<ExportConfig>,
        max_prefix: Option<MaxPrefix>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TestBgp {
        #[serde(default)]
        neighbor: Vec<TestNeighbor>,
        #[serde(default)]
        prefix_list: BTreeMap<String, PrefixListConfig>,
        #[serde(default)]
        originate: Vec<OriginateConfig>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TestConfig {
        bgp: TestBgp,
    }

    const EXAMPLE: &str = r#"
[[bgp.neighbor]]
address = "10.0.0.1"
import = { prefix_list = "from-tor" }
export = { prefix_list = "ours" }
max_prefix = { limit = 100, action = "teardown", restart_after = "60s" }

[[bgp.neighbor]]
address = "fe80::1"
import = "default-only"
export = "all"
max_prefix = { limit = 10, action = "warn" }

[[bgp.neighbor]]
address = "10.0.0.3"

[bgp.prefix_list.from-tor]
ipv4 = [ { action = "permit", prefix = "0.0.0.0/0" }, { action = "permit", prefix = "10.0.0.0/8", ge = 24, le = 32 } ]

[bgp.prefix_list.ours]
ipv4 = [ { action = "permit", prefix = "192.0.2.0/24", le = 32 } ]
ipv6 = [ { action = "permit", prefix = "2001:db8::/32", le = 128 } ]

[[bgp.originate]]
prefix = "192.0.2.10/32"
communities = ["65000:100", "graceful-shutdown"]
large_communities = ["4200000000:1:2"]

[[bgp.originate]]
prefix = "198.51.100.0/24"
"#;

    #[test]
    fn example_configuration_parses_and_compiles() {
        let config: TestConfig = toml::from_str(EXAMPLE).unwrap();
        let lists = PrefixLists::compile(&config.bgp.prefix_list).unwrap();
        let [first, second, third] = &config.bgp.neighbor[..] else {
            panic!("three neighbors");
        };
        assert_eq!(first.address, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        let import =
            ImportPolicy::from_config(first.import.as_ref(), first.max_prefix, &lists, "n0")
                .unwrap();
        assert!(matches!(&import.filter, Filter::PrefixList(list) if list.name == "from-tor"));
        assert_eq!(
            import.max_prefix,
            Some(MaxPrefix {
                limit: 100,
                action: MaxPrefixAction::Teardown {
                    restart_after: Some(Duration::from_secs(60))
                }
            })
        );
        let tor = peer(1, true);
        let attrs = path_from(&[65101]);
        assert!(import.evaluate(&net("0.0.0.0/0"), &attrs, &tor).is_ok());
        assert!(import.evaluate(&net("10.1.1.0/24"), &attrs, &tor).is_ok());
        assert!(import.evaluate(&net("10.1.0.0/16"), &attrs, &tor).is_err());

        assert_eq!(
            second.import,
            Some(PolicyRef::Preset(ImportPreset::DefaultOnly))
        );
        assert_eq!(second.export, Some(PolicyRef::Preset(ExportPreset::All)));
        assert_eq!(
            second.max_prefix.map(|m| m.action),
            Some(MaxPrefixAction::Warn)
        );
        // Nothing configured is kept apart from anything configured.
        assert!(third.import.is_none() && third.export.is_none());
        let unconfigured =
            ImportPolicy::from_config(third.import.as_ref(), None, &lists, "n2").unwrap();
        assert_eq!(unconfigured.filter, Filter::NotConfigured);

        let export = ExportPolicy::from_config(first.export.as_ref(), &lists, "n0").unwrap();
        let originated = Originated::from_config(&config.bgp.originate).unwrap();
        let target = build_adj_rib_out(&originated, &session(true), &export);
        // 198.51.100.0/24 is originated but not in "ours".
        let prefixes: Vec<IpNet> = target.iter().map(|(prefix, _)| *prefix).collect();
        assert_eq!(prefixes, vec![net("192.0.2.10/32")]);
        let (_, advertisement) = target.iter().next().unwrap();
        // Sorted, so that equal sets compare equal whatever the configured order.
        assert_eq!(
            advertisement.attrs.communities,
            vec![(65000 << 16) | 100, 0xFFFF_0000]
        );
        assert_eq!(
            advertisement.attrs.large_communities,
            vec![[4_200_000_000, 1, 2]]
        );
    }

    #[test]
    fn configuration_errors_are_clear() {
        let parse_error = |text: &str| match toml::from_str::<TestConfig>(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(err) => err.to_string(),
        };
        let neighbor = |line: &str| format!("[[bgp.neighbor]]\naddress = \"10.0.0.1\"\n{line}\n");

        let err = parse_error(&neighbor("import = \"default\""));
        assert!(err.contains("unknown policy \"default\""), "{err}");
        assert!(err.contains("\"default-only\""), "{err}");
        let err = parse_error(&neighbor("import = { prefix-list = \"x\" }"));
        assert!(err.contains("unknown field `prefix-list`"), "{err}");
        let err = parse_error(&neighbor("export = \"default-only\""));
        assert!(err.contains("expected one of \"all\", \"none\""), "{err}");
        let err = parse_error(&neighbor(
            "max_prefix = { limit = 5, action = \"warn\", restart_after = \"1m\" }",
        ));
        assert!(err.contains("restart_after only applies"), "{err}");
        let err = parse_error(&neighbor(
            "max_prefix = { limit = 5, restart_after = \"60\" }",
        ));
        assert!(err.contains("unit must be"), "{err}");
        let err = parse_error(&neighbor("max_prefix = { limit = 0 }"));
        assert!(err.contains("at least 1"), "{err}");
        let err = parse_error(&neighbor("max_prefix = { limit = 5, action = \"drop\" }"));
        assert!(err.contains("unknown variant `drop`"), "{err}");
        let err = parse_error(
            "[bgp.prefix_list.x]\nipv4 = [ { action = \"permit\", prefix = \"10.0.0.0/8\", lt = 9 } ]\n",
        );
        assert!(err.contains("unknown field `lt`"), "{err}");
        let err = parse_error(
            "[[bgp.originate]]\nprefix = \"192.0.2.1/32\"\ncommunities = [\"65536:1\"]\n",
        );
        assert!(err.contains("invalid community"), "{err}");

        // Errors found once everything is parsed name the key.
        let config: TestConfig =
            toml::from_str(&neighbor("import = { prefix_list = \"from-tor\" }")).unwrap();
        let err = ImportPolicy::from_config(
            config.bgp.neighbor[0].import.as_ref(),
            None,
            &PrefixLists::default(),
            "bgp.neighbor[0].import",
        )
        .unwrap_err();
        assert_eq!(err.key, "bgp.neighbor[0].import.prefix_list");
        assert!(
            err.reason.contains("unknown prefix list \"from-tor\""),
            "{err}"
        );

        let default_route = OriginateConfig {
            prefix: net("0.0.0.0/0"),
            communities: Vec::new(),
            large_communities: Vec::new(),
        };
        let err = Originated::from_config(&[default_route]).unwrap_err();
        assert_eq!(err.key, "bgp.originate[0].prefix");
        assert!(
            err.reason.contains("must not originate a default route"),
            "{err}"
        );
        let twice = OriginateConfig {
            prefix: net("192.0.2.1/32"),
            communities: Vec::new(),
            large_communities: Vec::new(),
        };
        assert!(Originated::from_config(&[twice.clone(), twice]).is_err());
    }

    #[test]
    fn durations_and_communities() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert_eq!("65000:100".parse(), Ok(Community((65000 << 16) | 100)));
        assert_eq!("no-export".parse(), Ok(Community(0xFFFF_FF01)));
        assert!("65000".parse::<Community>().is_err());
        assert!("1:2:3".parse::<Community>().is_err());
        assert_eq!("1:2:3".parse(), Ok(LargeCommunity([1, 2, 3])));
        assert!("1:2".parse::<LargeCommunity>().is_err());
    }

    fn originated(prefixes: &[&str]) -> Originated {
        let mut table = Originated::new();
        for prefix in prefixes {
            table.insert(OriginatedRoute::new(net(prefix), &[], &[]).unwrap());
        }
        table
    }

    fn session(ebgp: bool) -> ExportSession {
        ExportSession {
            local_as: LOCAL_AS,
            ebgp,
            ipv4_next_hop: Some(NextHop::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100)))),
            ipv6_next_hop: Some(NextHop {
                address: "2001:db8::100".parse().unwrap(),
                link_local: Some("fe80::100".parse().unwrap()),
            }),
            peer_address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        }
    }

    #[test]
    fn export_attributes_for_ebgp_and_ibgp() {
        let mut table = originated(&["2001:db8:1::/48"]);
        table.insert(
            OriginatedRoute::new(net("192.0.2.1/32"), &["65000:7".parse().unwrap()], &[]).unwrap(),
        );
        let target = build_adj_rib_out(&table, &session(true), &ExportPolicy::all_originated());
        let routes: BTreeMap<IpNet, Advertisement> =
            target.iter().map(|(p, a)| (*p, a.clone())).collect();

        let v4 = &routes[&net("192.0.2.1/32")];
        assert_eq!(v4.attrs.origin, Some(Origin::Igp));
        assert_eq!(
            v4.attrs.as_path,
            AsPath {
                segments: vec![AsSegment {
                    kind: AsSegmentKind::Sequence,
                    asns: vec![LOCAL_AS]
                }]
            }
        );
        assert_eq!(v4.attrs.next_hop, Some(Ipv4Addr::new(10, 0, 0, 100)));
        assert_eq!(
            v4.next_hop.address,
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100))
        );
        assert_eq!(v4.attrs.med, None);
        assert_eq!(v4.attrs.local_pref, None);
        assert_eq!(v4.attrs.communities, vec![(65000 << 16) | 7]);

        let v6 = &routes[&net("2001:db8:1::/48")];
        assert_eq!(
            v6.attrs.next_hop, None,
            "IPv6 routes carry their next hop in MP_REACH"
        );
        assert_eq!(
            v6.next_hop.link_local,
            Some("fe80::100".parse::<Ipv6Addr>().unwrap())
        );

        let target = build_adj_rib_out(&table, &session(false), &ExportPolicy::all_originated());
        for (_, advertisement) in target.iter() {
            assert!(advertisement.attrs.as_path.segments.is_empty());
            assert_eq!(advertisement.attrs.local_pref, Some(IBGP_LOCAL_PREF));
            assert_eq!(advertisement.attrs.med, None);
        }

        // A session without an IPv6 next hop gets no IPv6 routes.
        let mut v4_only = session(true);
        v4_only.ipv6_next_hop = None;
        let target = build_adj_rib_out(&table, &v4_only, &ExportPolicy::all_originated());
        assert_eq!(target.len(), 1);
    }

    #[test]
    fn export_routes_with_equal_attributes_share_them() {
        let table = originated(&["192.0.2.1/32", "192.0.2.2/32"]);
        let target = build_adj_rib_out(&table, &session(true), &ExportPolicy::all_originated());
        let attrs: Vec<&Arc<PathAttributes>> = target.iter().map(|(_, a)| &a.attrs).collect();
        assert!(Arc::ptr_eq(attrs[0], attrs[1]));
    }

    /// Never transit: routes learned from peer A are in the RIB (and best), yet peer B's
    /// Adj-RIB-Out holds only what the host originates. There is no code path to try
    /// otherwise: `build_adj_rib_out` takes no RIB (see the compile_fail example in the
    /// module docs), so the test shows the outcome, the types guarantee it.
    #[test]
    fn never_transit_learned_routes_are_not_exported() {
        let mut rib = Rib::default();
        let tor_a = peer(1, true);
        rib.peer_up(
            tor_a.clone(),
            ImportPolicy {
                filter: Filter::All,
                max_prefix: None,
            },
        )
        .unwrap();
        let learned = ["0.0.0.0/0", "10.0.0.0/8", "192.0.2.0/24", "192.0.2.1/32"];
        for prefix in learned {
            let spec = PathSpec {
                attrs: Arc::new(path_from(&[tor_a.remote_as, 64999])),
                next_hop: NextHop::new(tor_a.address),
            };
            assert!(rib.update(tor_a.id, net(prefix), Some(spec)).is_some());
        }
        assert_eq!(rib.len(), learned.len());
        assert!(rib.best(&net("192.0.2.1/32")).is_some());

        // The host originates its loopback; one prefix overlaps a learned one.
        let ours = originated(&["192.0.2.1/32", "2001:db8::1/128"]);
        let mut out_b = AdjRibOut::new();
        let diff = out_b.update(&ours, &session(true), &ExportPolicy::all_originated());
        let announced: Vec<IpNet> = diff.announce.iter().map(|(p, _)| *p).collect();
        assert_eq!(announced, vec![net("192.0.2.1/32"), net("2001:db8::1/128")]);
        for (_, advertisement) in out_b.advertised() {
            // Our attributes, not the learned ones: AS_PATH is our AS alone.
            assert_eq!(advertisement.attrs.as_path.length(), 1);
            assert_eq!(advertisement.attrs.as_path.first_as(), Some(LOCAL_AS));
            assert!(!advertisement.attrs.as_path.contains(tor_a.remote_as));
        }
        // Even a policy that permits everything exports nothing learned.
        let permit_all = PrefixList::compile(
            "everything",
            &PrefixListConfig {
                ipv4: vec![entry(Permit, "0.0.0.0/0", None, Some(32))],
                ipv6: vec![PrefixListEntryConfig {
                    action: Permit,
                    prefix: net("::/0"),
                    ge: None,
                    le: Some(128),
                }],
            },
        )
        .unwrap();
        let policy = ExportPolicy {
            filter: Filter::PrefixList(Arc::new(permit_all)),
        };
        let target = build_adj_rib_out(&ours, &session(true), &policy);
        assert_eq!(target.len(), 2);
        assert!(
            target
                .iter()
                .all(|(prefix, _)| ours.iter().any(|r| r.prefix() == *prefix))
        );
    }

    /// The module docs' compile_fail example with the leak replaced by what is allowed.
    #[test]
    fn compile_fail_example_twin_compiles() {
        fn no_leak(rib: &Rib, session: &ExportSession, policy: &ExportPolicy) -> ExportTarget {
            let learned: Vec<crate::bgp::rib::Path> =
                rib.routes().flat_map(|r| r.paths).map(|p| p.path).collect();
            assert!(learned.is_empty());
            build_adj_rib_out(&Originated::new(), session, policy)
        }
        let target = no_leak(
            &Rib::default(),
            &session(true),
            &ExportPolicy::all_originated(),
        );
        assert!(target.is_empty());
    }

    #[test]
    fn adj_rib_out_sends_only_differences() {
        let policy = ExportPolicy::all_originated();
        let session = session(true);
        let mut out = AdjRibOut::new();
        let mut table = originated(&["192.0.2.1/32", "192.0.2.2/32"]);

        let diff = out.update(&table, &session, &policy);
        assert_eq!(diff.announce.len(), 2);
        assert!(diff.withdraw.is_empty());
        assert!(
            out.update(&table, &session, &policy).is_empty(),
            "no change, nothing to send"
        );

        // A changed community re-announces that prefix only.
        table.insert(
            OriginatedRoute::new(net("192.0.2.2/32"), &["65000:1".parse().unwrap()], &[]).unwrap(),
        );
        table.insert(OriginatedRoute::new(net("192.0.2.3/32"), &[], &[]).unwrap());
        table.remove(&net("192.0.2.1/32"));
        let diff = out.update(&table, &session, &policy);
        let announced: Vec<IpNet> = diff.announce.iter().map(|(p, _)| *p).collect();
        assert_eq!(announced, vec![net("192.0.2.2/32"), net("192.0.2.3/32")]);
        assert_eq!(diff.withdraw, vec![net("192.0.2.1/32")]);

        // A policy change is a diff like any other.
        let diff = out.update(
            &table,
            &session,
            &ExportPolicy {
                filter: Filter::None,
            },
        );
        assert!(diff.announce.is_empty());
        assert_eq!(diff.withdraw.len(), 2);
        out.update(&table, &session, &policy);

        // Route refresh: everything again.
        let refresh = out.refresh();
        assert_eq!(refresh.announce.len(), 2);
        assert!(refresh.withdraw.is_empty());

        // After a session reset, everything is new again.
        out.clear();
        assert_eq!(out.update(&table, &session, &policy).announce.len(), 2);
    }
}
