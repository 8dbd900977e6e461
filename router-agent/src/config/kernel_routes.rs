//! `[datapath]`'s keys about the kernel's own routes: which of them the XDP FIB follows
//! (`follow_kernel_routes`, compiled into a netlink filter) and which prefixes are left to the
//! kernel (`pass_to_kernel`). What is done with the routes is `crate::kernel_routes`.

use std::collections::BTreeSet;

use ipnet::IpNet;
use serde::Deserialize;

use super::DatapathConfig;
use crate::netlink::{RouteFilter, TABLE_DEFAULT, TABLE_LOCAL, TABLE_MAIN};

/// `[datapath.follow_kernel_routes]`. Changing it needs a restart.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FollowConfig {
    #[serde(default = "default_tables")]
    pub tables: Vec<NameOrNumber>,
    #[serde(default)]
    pub protocols: Selection,
    #[serde(default)]
    pub interfaces: Selection,
}

impl Default for FollowConfig {
    fn default() -> Self {
        Self {
            tables: default_tables(),
            protocols: Selection::default(),
            interfaces: Selection::default(),
        }
    }
}

fn default_tables() -> Vec<NameOrNumber> {
    vec![NameOrNumber::Name("main".into())]
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum NameOrNumber {
    Number(i64),
    Name(String),
}

/// `"all"` or a list.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Selection {
    Keyword(String),
    List(Vec<NameOrNumber>),
}

impl Default for Selection {
    fn default() -> Self {
        Selection::Keyword("all".into())
    }
}

/// Config errors: (key, reason).
type KeyError = (String, String);

const FOLLOW: &str = "datapath.follow_kernel_routes";

/// Route protocol names, as iproute2 spells them (/etc/iproute2/rt_protos).
const PROTOCOL_NAMES: &[(&str, u8)] = &[
    ("redirect", 1),
    ("kernel", 2),
    ("boot", 3),
    ("static", 4),
    ("ra", 9),
    ("zebra", 11),
    ("bird", 12),
    ("dhcp", 16),
    ("keepalived", 18),
    ("babel", 42),
    ("bgp", 186),
    ("isis", 187),
    ("ospf", 188),
    ("rip", 189),
    ("eigrp", 192),
];

/// Checks `[datapath]`'s kernel-route keys (`follow_kernel_routes`, `pass_to_kernel`).
pub fn validate(datapath: &DatapathConfig) -> Result<(), KeyError> {
    route_filter(datapath)?;
    parse_pass_to_kernel(&datapath.pass_to_kernel)?;
    Ok(())
}

/// The netlink filter `[datapath.follow_kernel_routes]` stands for.
pub fn route_filter(datapath: &DatapathConfig) -> Result<RouteFilter, KeyError> {
    let follow = &datapath.follow_kernel_routes;
    let mut tables = BTreeSet::new();
    if follow.tables.is_empty() {
        return Err((
            format!("{FOLLOW}.tables"),
            "at least one table (\"main\" follows the main table)".into(),
        ));
    }
    for (i, table) in follow.tables.iter().enumerate() {
        tables.insert(table_number(table, format!("{FOLLOW}.tables[{i}]"))?);
    }
    let own = datapath.route_protocol;
    let protocols = match selection(&follow.protocols, "protocols")? {
        None => None,
        Some(list) => {
            let mut protocols = BTreeSet::new();
            for (i, item) in list.iter().enumerate() {
                let key = format!("{FOLLOW}.protocols[{i}]");
                let number = protocol_number(item, &key)?;
                if number == own {
                    return Err((
                        key,
                        format!(
                            "protocol {number} is our own (datapath.route_protocol): the kernel \
                             copy of our routes is never followed"
                        ),
                    ));
                }
                protocols.insert(number);
            }
            Some(protocols)
        }
    };
    let interfaces = match selection(&follow.interfaces, "interfaces")? {
        None => None,
        Some(list) => {
            let mut names = BTreeSet::new();
            for (i, item) in list.iter().enumerate() {
                let key = format!("{FOLLOW}.interfaces[{i}]");
                match item {
                    NameOrNumber::Name(name) if !name.is_empty() && name.len() < libc::IFNAMSIZ => {
                        names.insert(name.clone());
                    }
                    other => {
                        return Err((key, format!("{other:?} is not an interface name")));
                    }
                }
            }
            Some(names)
        }
    };
    Ok(RouteFilter {
        tables,
        observe_tables: BTreeSet::new(),
        protocols,
        interfaces,
        own_protocol: own,
    })
}

/// A table of a config list (`main`, `default` or a number), `key` naming the item.
pub(crate) fn table_number(table: &NameOrNumber, key: String) -> Result<u32, KeyError> {
    Ok(match table {
        NameOrNumber::Name(name) if name == "main" => TABLE_MAIN,
        NameOrNumber::Name(name) if name == "default" => TABLE_DEFAULT,
        NameOrNumber::Name(name) => {
            return Err((
                key,
                format!("unknown table {name:?} (main, default or a number)"),
            ));
        }
        NameOrNumber::Number(n) => match u32::try_from(*n) {
            Ok(n) if n != 0 && n != TABLE_LOCAL => n,
            _ => {
                return Err((
                    key,
                    format!(
                        "{n} is not a table that can be followed (1..2^32, not 255: the local \
                         table is always followed)"
                    ),
                ));
            }
        },
    })
}

/// A route protocol of a config list (an iproute2 name or a number), `key` naming the item.
pub(crate) fn protocol_number(item: &NameOrNumber, key: &str) -> Result<u8, KeyError> {
    match item {
        NameOrNumber::Name(name) => PROTOCOL_NAMES
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
            .ok_or_else(|| {
                let known: Vec<&str> = PROTOCOL_NAMES.iter().map(|(n, _)| *n).collect();
                (
                    key.to_owned(),
                    format!(
                        "unknown protocol {name:?} (a number or one of {})",
                        known.join(", ")
                    ),
                )
            }),
        NameOrNumber::Number(n) => u8::try_from(*n)
            .map_err(|_| (key.to_owned(), format!("{n} is not a protocol (0..255)"))),
    }
}

/// `None` for "all", else the list.
fn selection<'a>(
    selection: &'a Selection,
    field: &str,
) -> Result<Option<&'a [NameOrNumber]>, KeyError> {
    match selection {
        Selection::Keyword(word) if word == "all" => Ok(None),
        Selection::Keyword(word) => Err((
            format!("{FOLLOW}.{field}"),
            format!("{word:?}: use \"all\" or a list"),
        )),
        Selection::List(list) if list.is_empty() => Err((
            format!("{FOLLOW}.{field}"),
            "an empty list follows nothing; use \"all\" or name some".into(),
        )),
        Selection::List(list) => Ok(Some(list)),
    }
}

fn parse_pass_to_kernel(prefixes: &[String]) -> Result<Vec<IpNet>, KeyError> {
    let mut out = Vec::with_capacity(prefixes.len());
    for (i, text) in prefixes.iter().enumerate() {
        let key = format!("datapath.pass_to_kernel[{i}]");
        let prefix: IpNet =
            crate::config::prefix::parse(text).map_err(|reason| (key.clone(), reason))?;
        if prefix != prefix.trunc() {
            return Err((
                key,
                format!(
                    "{prefix} has host bits set (did you mean {}?)",
                    prefix.trunc()
                ),
            ));
        }
        if out.contains(&prefix) {
            return Err((key, format!("{prefix} is listed twice")));
        }
        out.push(prefix);
    }
    Ok(out)
}

/// `datapath.pass_to_kernel`, parsed (the config was validated: nothing invalid is left).
pub fn pass_to_kernel_prefixes(datapath: &DatapathConfig) -> Vec<IpNet> {
    parse_pass_to_kernel(&datapath.pass_to_kernel).unwrap_or_default()
}

/// What of `[datapath]` changed that a reload cannot apply (`pass_to_kernel` can).
pub fn datapath_restart_keys(old: &DatapathConfig, new: &DatapathConfig) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.follow_kernel_routes != new.follow_kernel_routes {
        keys.push("datapath.follow_kernel_routes");
    }
    let rest = |d: &DatapathConfig| DatapathConfig {
        follow_kernel_routes: Default::default(),
        pass_to_kernel: Vec::new(),
        ..d.clone()
    };
    if rest(old) != rest(new) {
        keys.push("[datapath]");
    }
    keys
}

#[cfg(test)]
mod tests;
