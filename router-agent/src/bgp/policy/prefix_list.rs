//! Prefix lists (`[bgp.prefix_list.NAME]`) and the filters both directions share.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Deserialize;

use super::*;

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
    #[serde(deserialize_with = "crate::config::prefix::deserialize")]
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

    pub(super) fn resolve(&self, name: &str, key: &str) -> Result<Arc<PrefixList>, PolicyError> {
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
    pub(super) fn from_ref<P: Preset>(
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
    pub(super) fn passes(&self, prefix: &IpNet, ebgp: bool) -> Result<bool, ()> {
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
