//! `[[redistribute]]`: which of the host's own kernel routes and addresses are announced.
//!
//! ```toml
//! [[redistribute]]
//! name = "containers"
//! prefix_list = "workloads"      # a [bgp.prefix_list.NAME]: what may be announced at all
//! kernel_routes = { protocols = ["boot", 80], tables = ["main"], interfaces = ["cali*"] }
//! addresses = { interfaces = ["dummy*", "lo"] }   # each address as /32 or /128
//! connected = { interfaces = ["eth2"] }            # the subnets of these interfaces' addresses
//! limit = 1000
//! communities = []; large_communities = []; med = 0
//! ```
//!
//! It is a host-side source, so it sits at the top level next to `[[route]]`, not under
//! `[bgp]`.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use serde::Deserialize;

use super::pattern::Pattern;
use crate::{
    bgp::policy::{Community, LargeCommunity, PrefixList, PrefixListConfig, PrefixLists},
    config::kernel_routes::{NameOrNumber, protocol_number, table_number},
    netlink::ROUTING_DAEMON_PROTOCOLS,
};

/// Config errors: (key, reason).
type KeyError = (String, String);

pub const DEFAULT_LIMIT: u32 = 1000;
const MAX_LIMIT: u32 = 1_000_000;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedistributeConfig {
    pub name: String,
    pub prefix_list: String,
    pub kernel_routes: Option<KernelRoutesSource>,
    pub addresses: Option<InterfacesSource>,
    pub connected: Option<InterfacesSource>,
    #[serde(default = "default_limit")]
    pub limit: u32,
    #[serde(default)]
    pub communities: Vec<Community>,
    #[serde(default)]
    pub large_communities: Vec<LargeCommunity>,
    pub med: Option<u32>,
}

fn default_limit() -> u32 {
    DEFAULT_LIMIT
}

/// `kernel_routes = { protocols = [...], tables = [...], interfaces = [...] }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KernelRoutesSource {
    /// Required: there is no "all", which would take in a routing daemon's learned routes.
    pub protocols: Vec<NameOrNumber>,
    #[serde(default = "default_tables")]
    pub tables: Vec<NameOrNumber>,
    /// Output-interface patterns; absent: any interface.
    pub interfaces: Option<Vec<String>>,
}

fn default_tables() -> Vec<NameOrNumber> {
    vec![NameOrNumber::Name("main".into())]
}

/// `addresses` / `connected`: `{ interfaces = [...] }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InterfacesSource {
    pub interfaces: Vec<String>,
}

/// A pattern with the config key it came from (for the "matches nothing yet" warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedPattern {
    pub key: String,
    pub pattern: Pattern,
}

/// The kernel routes a rule takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSelection {
    pub protocols: BTreeSet<u8>,
    /// Table -> its config key (a table outside the observed ones is restart-only).
    pub tables: BTreeMap<u32, String>,
    /// Empty: any interface.
    pub interfaces: Vec<KeyedPattern>,
}

/// One compiled `[[redistribute]]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `redistribute[N]`, for log lines and errors.
    pub key: String,
    pub name: Arc<str>,
    pub prefix_list: Arc<PrefixList>,
    pub kernel_routes: Option<KernelSelection>,
    pub addresses: Vec<KeyedPattern>,
    pub connected: Vec<KeyedPattern>,
    pub limit: usize,
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    pub med: Option<u32>,
}

impl Rule {
    /// Every pattern of the rule, with its key.
    pub fn patterns(&self) -> impl Iterator<Item = &KeyedPattern> {
        self.kernel_routes
            .iter()
            .flat_map(|k| k.interfaces.iter())
            .chain(&self.addresses)
            .chain(&self.connected)
    }
}

/// Checks and compiles every `[[redistribute]]`. `prefix_lists`: `[bgp.prefix_list.*]`
/// (none without `[bgp]`); `own_protocol`: `datapath.route_protocol`.
pub fn compile(
    configs: &[RedistributeConfig],
    prefix_lists: Option<&BTreeMap<String, PrefixListConfig>>,
    own_protocol: u8,
) -> Result<Vec<Rule>, KeyError> {
    if configs.is_empty() {
        return Ok(Vec::new());
    }
    let empty = BTreeMap::new();
    // The lists themselves are checked (with their own keys) by the bgp section.
    let lists = PrefixLists::compile(prefix_lists.unwrap_or(&empty))
        .map_err(|err| (err.key, err.reason))?;
    let mut names = BTreeSet::new();
    let mut rules = Vec::with_capacity(configs.len());
    for (i, config) in configs.iter().enumerate() {
        let key = format!("redistribute[{i}]");
        if config.name.is_empty()
            || config.name.len() > 64
            || !config
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err((
                format!("{key}.name"),
                format!("{:?}: 1-64 characters of A-Z a-z 0-9 _ . -", config.name),
            ));
        }
        if !names.insert(config.name.as_str()) {
            return Err((
                format!("{key}.name"),
                format!("{:?} names two rules", config.name),
            ));
        }
        rules.push(compile_rule(&key, config, &lists, own_protocol)?);
    }
    Ok(rules)
}

fn compile_rule(
    key: &str,
    config: &RedistributeConfig,
    lists: &PrefixLists,
    own_protocol: u8,
) -> Result<Rule, KeyError> {
    let prefix_list = lists.get(&config.prefix_list).cloned().ok_or_else(|| {
        (
            format!("{key}.prefix_list"),
            format!(
                "unknown prefix list {:?} (define it as [bgp.prefix_list.{}])",
                config.prefix_list, config.prefix_list
            ),
        )
    })?;
    if config.kernel_routes.is_none() && config.addresses.is_none() && config.connected.is_none() {
        return Err((
            key.to_owned(),
            "takes nothing: give at least one of kernel_routes, addresses, connected".into(),
        ));
    }
    let kernel_routes = config
        .kernel_routes
        .as_ref()
        .map(|source| kernel_selection(&format!("{key}.kernel_routes"), source, own_protocol))
        .transpose()?;
    let addresses = match &config.addresses {
        Some(source) => patterns(&format!("{key}.addresses.interfaces"), &source.interfaces)?,
        None => Vec::new(),
    };
    let connected = match &config.connected {
        Some(source) => patterns(&format!("{key}.connected.interfaces"), &source.interfaces)?,
        None => Vec::new(),
    };
    if !(1..=MAX_LIMIT).contains(&config.limit) {
        return Err((
            format!("{key}.limit"),
            format!("{} is outside 1..{MAX_LIMIT}", config.limit),
        ));
    }
    Ok(Rule {
        key: key.to_owned(),
        name: Arc::from(config.name.as_str()),
        prefix_list,
        kernel_routes,
        addresses,
        connected,
        limit: config.limit as usize,
        communities: config.communities.clone(),
        large_communities: config.large_communities.clone(),
        med: config.med,
    })
}

fn kernel_selection(
    key: &str,
    source: &KernelRoutesSource,
    own_protocol: u8,
) -> Result<KernelSelection, KeyError> {
    if source.protocols.is_empty() {
        return Err((
            format!("{key}.protocols"),
            "name the protocols of the routes to announce (there is no \"all\": it would take \
             in routing daemons' learned routes)"
                .into(),
        ));
    }
    let mut protocols = BTreeSet::new();
    for (i, item) in source.protocols.iter().enumerate() {
        let item_key = format!("{key}.protocols[{i}]");
        let number = protocol_number(item, &item_key)?;
        if number == own_protocol {
            return Err((
                item_key,
                format!(
                    "{number} is datapath.route_protocol, our BGP mirror: this would make \
                     learned routes transit"
                ),
            ));
        }
        if let Some((_, daemon)) = ROUTING_DAEMON_PROTOCOLS.iter().find(|(p, _)| *p == number) {
            return Err((
                item_key,
                format!(
                    "{number} ({daemon}) is a routing daemon's protocol: its routes are learned \
                     from peers, and announcing them would make this host a transit"
                ),
            ));
        }
        protocols.insert(number);
    }
    if source.tables.is_empty() {
        return Err((
            format!("{key}.tables"),
            "at least one table (absent: main)".into(),
        ));
    }
    let mut tables = BTreeMap::new();
    for (i, table) in source.tables.iter().enumerate() {
        let item_key = format!("{key}.tables[{i}]");
        let number = table_number(table, item_key.clone())?;
        tables.entry(number).or_insert(item_key);
    }
    let interfaces = match &source.interfaces {
        Some(list) => patterns(&format!("{key}.interfaces"), list)?,
        None => Vec::new(),
    };
    Ok(KernelSelection {
        protocols,
        tables,
        interfaces,
    })
}

fn patterns(key: &str, list: &[String]) -> Result<Vec<KeyedPattern>, KeyError> {
    if list.is_empty() {
        return Err((key.to_owned(), "name at least one interface pattern".into()));
    }
    list.iter()
        .enumerate()
        .map(|(i, text)| {
            let key = format!("{key}[{i}]");
            Pattern::parse(text)
                .map(|pattern| KeyedPattern {
                    key: key.clone(),
                    pattern,
                })
                .map_err(|reason| (key, reason))
        })
        .collect()
}

/// Every kernel table some rule reads: the netlink task observes these from the start.
pub fn tables(rules: &[Rule]) -> BTreeSet<u32> {
    rules
        .iter()
        .filter_map(|rule| rule.kernel_routes.as_ref())
        .flat_map(|k| k.tables.keys().copied())
        .collect()
}

/// The first table a rule needs that is not observed (a reload cannot add one: the netlink
/// filter is set at start), as (key, reason).
pub fn unobserved_table(rules: &[Rule], observed: &BTreeSet<u32>) -> Option<KeyError> {
    rules
        .iter()
        .filter_map(|rule| rule.kernel_routes.as_ref())
        .flat_map(|k| k.tables.iter())
        .find(|(table, _)| !observed.contains(table))
        .map(|(table, key)| {
            (
                key.clone(),
                format!(
                    "table {table} is not observed by the running agent (the netlink filter is \
                     set at start): needs a restart"
                ),
            )
        })
}
