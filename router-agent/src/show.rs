//! `router-agent show fib|counters`: human tables or JSON, straight from the pinned maps;
//! interfaces named as the agent's namespace names them (`pinned_links.rs`).

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::Result;
use router_common::{GROUP_LOCAL, GROUP_PASS, NEXTHOP_F_CONNECTED, NO_NEXTHOP, Verdict};
use serde::Serialize;

use crate::{
    datapath::{
        pinned::{PinnedDatapath, nexthop_via},
        pinned_links::attached_interfaces,
    },
    netlink::{ifname_by_index, mac_to_string},
};

#[derive(Serialize)]
pub struct FibView {
    pub engine: String,
    pub routes: Vec<RouteView>,
}

#[derive(Serialize)]
pub struct RouteView {
    pub prefix: String,
    pub group: u32,
    /// `local`, `kernel` (the kernel forwards it, `GROUP_PASS`) or `forward`.
    pub action: &'static str,
    pub nexthops: Vec<NexthopView>,
}

#[derive(Serialize, Clone)]
pub struct NexthopView {
    pub id: u32,
    pub via: String,
    pub interface: String,
    pub ifindex: u32,
    pub mac: String,
    pub resolved: bool,
    /// On a connected subnet: the destination is the neighbor, its MAC looked up per packet.
    pub on_link: bool,
    pub mtu: u16,
    /// Share of the group's buckets.
    pub buckets: usize,
}

#[derive(Serialize)]
pub struct CountersView {
    pub verdicts: BTreeMap<&'static str, u64>,
    pub nexthops: Vec<NexthopCountersView>,
}

#[derive(Serialize)]
pub struct NexthopCountersView {
    pub id: u32,
    pub via: String,
    pub interface: String,
    pub packets: u64,
    pub bytes: u64,
}

fn engine_name(engine: router_common::LookupEngine) -> String {
    match engine {
        router_common::LookupEngine::LpmTrie => "lpm-trie",
        router_common::LookupEngine::Dir24 => "dir24",
        router_common::LookupEngine::Kernel => "kernel",
        router_common::LookupEngine::Dxr => "dxr",
    }
    .to_owned()
}

pub fn interface_name(ifindex: u32) -> String {
    ifname_by_index(ifindex).unwrap_or_else(|| format!("if{ifindex}"))
}

/// The group's nexthops, with how many buckets each holds: members that failed hold none
/// but are listed (unresolved).
/// `names`: the agent's interfaces by its ifindex ([`attached_interfaces`]); an ifindex not
/// among them shows as `if<N>`, never by the caller's own table (another namespace's).
fn group_nexthops(
    dp: &PinnedDatapath,
    group: u32,
    names: &BTreeMap<u32, String>,
) -> Result<Vec<NexthopView>> {
    let record = dp.group(group)?;
    let mut by_slot: BTreeMap<u32, usize> = record
        .members
        .iter()
        .filter(|slot| **slot != NO_NEXTHOP)
        .map(|slot| (*slot, 0))
        .collect();
    for slot in record.buckets {
        if slot != NO_NEXTHOP {
            *by_slot.entry(slot).or_default() += 1;
        }
    }
    by_slot
        .into_iter()
        .map(|(slot, buckets)| {
            let nexthop = dp.nexthop(slot)?;
            Ok(NexthopView {
                id: nexthop.id,
                via: nexthop_via(&nexthop).to_string(),
                interface: names
                    .get(&nexthop.ifindex)
                    .cloned()
                    .unwrap_or_else(|| format!("if{}", nexthop.ifindex)),
                ifindex: nexthop.ifindex,
                mac: mac_to_string(&nexthop.dst_mac),
                resolved: nexthop.is_resolved(),
                on_link: nexthop.flags & NEXTHOP_F_CONNECTED != 0,
                mtu: nexthop.mtu,
                buckets,
            })
        })
        .collect()
}

pub fn fib(pin_dir: &Path) -> Result<FibView> {
    let dp = PinnedDatapath::open(pin_dir)?;
    let names = attached_interfaces(pin_dir);
    let mut groups: BTreeMap<u32, Vec<NexthopView>> = BTreeMap::new();
    let mut routes = Vec::new();
    for (prefix, group) in dp.routes()? {
        let nexthops = if group == GROUP_LOCAL || group == GROUP_PASS {
            Vec::new()
        } else {
            match groups.entry(group) {
                std::collections::btree_map::Entry::Occupied(known) => known.get().clone(),
                std::collections::btree_map::Entry::Vacant(new) => {
                    new.insert(group_nexthops(&dp, group, &names)?).clone()
                }
            }
        };
        routes.push(RouteView {
            prefix: prefix.to_string(),
            group,
            action: match group {
                GROUP_LOCAL => "local",
                GROUP_PASS => "kernel",
                _ => "forward",
            },
            nexthops,
        });
    }
    Ok(FibView {
        engine: engine_name(dp.engine),
        routes,
    })
}

pub fn counters(pin_dir: &Path) -> Result<CountersView> {
    let dp = PinnedDatapath::open(pin_dir)?;
    let names = attached_interfaces(pin_dir);
    let verdicts = dp
        .verdicts()?
        .into_iter()
        .zip(Verdict::ALL)
        .map(|(count, verdict)| (verdict.name(), count))
        .collect();
    // The nexthops of the groups routes use, failed ones included.
    let mut seen = BTreeMap::new();
    if dp.engine != router_common::LookupEngine::Kernel {
        let groups: std::collections::BTreeSet<u32> = dp
            .routes()?
            .into_iter()
            .map(|(_, g)| g)
            .filter(|g| *g != GROUP_LOCAL && *g != GROUP_PASS)
            .collect();
        for group in groups {
            for nexthop in group_nexthops(&dp, group, &names)? {
                seen.entry(nexthop.id).or_insert(nexthop);
            }
        }
    }
    let nexthops = seen
        .into_values()
        .map(|nexthop| {
            let stats = dp.nexthop_stats(nexthop.id)?;
            Ok(NexthopCountersView {
                id: nexthop.id,
                via: nexthop.via,
                interface: nexthop.interface,
                packets: stats.packets,
                bytes: stats.bytes,
            })
        })
        .collect::<Result<_>>()?;
    Ok(CountersView { verdicts, nexthops })
}

pub fn render_fib(view: &FibView) -> String {
    let mut out = format!("engine: {}\n", view.engine);
    let _ = writeln!(out, "{:<44} {:>6}  NEXTHOPS", "PREFIX", "GROUP");
    for route in &view.routes {
        let nexthops = if route.action == "local" {
            "local (to the kernel)".to_owned()
        } else if route.action == "kernel" {
            "passed to the kernel (it forwards)".to_owned()
        } else {
            route
                .nexthops
                .iter()
                .map(|nh| {
                    let state = match (nh.resolved, nh.on_link) {
                        (false, _) => "unresolved".to_owned(),
                        (true, true) => "neighbors".to_owned(),
                        (true, false) => nh.mac.clone(),
                    };
                    let via = if nh.on_link { "on-link" } else { &nh.via };
                    format!("{} dev {} [{}] {}/64", via, nh.interface, state, nh.buckets)
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "{:<44} {:>6}  {}", route.prefix, route.group, nexthops);
    }
    out
}

pub fn render_counters(view: &CountersView) -> String {
    let mut out = String::from("VERDICT                       PACKETS\n");
    for verdict in Verdict::ALL {
        let _ = writeln!(
            out,
            "{:<24} {:>12}",
            verdict.name(),
            view.verdicts[verdict.name()]
        );
    }
    if !view.nexthops.is_empty() {
        let _ = writeln!(
            out,
            "\n{:>5}  {:<40} {:<12} {:>12} {:>14}",
            "ID", "VIA", "DEV", "PACKETS", "BYTES"
        );
        for nh in &view.nexthops {
            let _ = writeln!(
                out,
                "{:>5}  {:<40} {:<12} {:>12} {:>14}",
                nh.id, nh.via, nh.interface, nh.packets, nh.bytes
            );
        }
    }
    out
}

/// `show neighbors` as a table.
pub fn render_neighbors(value: &serde_json::Value) -> String {
    let mut out = format!(
        "{:<40} {:>11} {:<12} {:>9} {:>8} {:>10}  LAST ERROR\n",
        "NEIGHBOR", "AS", "STATE", "UP (s)", "RCVD", "ADVERTISED"
    );
    for n in value.as_array().into_iter().flatten() {
        let text = |key: &str| match &n[key] {
            serde_json::Value::Null => "-".to_owned(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        // An unnumbered neighbor shows its interface (and its link-local address once
        // found); a dynamic one is marked.
        let mut name = match (&n["interface"], &n["address"]) {
            (serde_json::Value::String(interface), serde_json::Value::String(address)) => {
                format!("{interface} ({address})")
            }
            (serde_json::Value::String(interface), _) => interface.clone(),
            _ => text("address"),
        };
        if n["dynamic"] == serde_json::Value::Bool(true) {
            name.push_str(" (dynamic)");
        }
        let _ = writeln!(
            out,
            "{:<40} {:>11} {:<12} {:>9} {:>8} {:>10}  {}",
            name,
            text("remote_as"),
            text("state"),
            text("uptime_seconds"),
            text("prefixes_received"),
            text("prefixes_advertised"),
            text("last_error"),
        );
        let hold_down = &n["hold_down"];
        if !hold_down.is_null() {
            let reason = hold_down["reason"].as_str().unwrap_or("?");
            let _ = match hold_down["restarts_in_seconds"].as_u64() {
                Some(seconds) => writeln!(out, "  held down ({reason}): restarts in {seconds} s"),
                None => writeln!(
                    out,
                    "  held down ({reason}): until `router-agent clear neighbor {}`",
                    text("address")
                ),
            };
        }
        render_negotiated(&mut out, &n["negotiated"]);
        render_graceful_restart(&mut out, &n["graceful_restart"]);
        crate::bfd::show::render_neighbor_bfd(&mut out, &n["bfd"]);
    }
    out
}

/// What an Established session agreed, under its row (nothing when not Established).
fn render_negotiated(out: &mut String, negotiated: &serde_json::Value) {
    if negotiated.is_null() {
        return;
    }
    let capabilities: Vec<&str> = negotiated["capabilities"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    let _ = writeln!(
        out,
        "  negotiated: hold time {} s, keepalive {} s, capabilities: {}",
        negotiated["hold_time_seconds"],
        negotiated["keepalive_seconds"],
        if capabilities.is_empty() {
            "none".to_owned()
        } else {
            capabilities.join(", ")
        }
    );
}

/// A neighbor's graceful restart line(s), under its row (nothing when not negotiated).
fn render_graceful_restart(out: &mut String, gr: &serde_json::Value) {
    if gr.is_null() {
        return;
    }
    let list = |key: &str| -> String {
        let names: Vec<&str> = gr[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    let _ = writeln!(
        out,
        "  graceful restart: negotiated{}, peer restart time {} s, families {}, forwarding \
         preserved {}",
        if gr["notification"] == serde_json::Value::Bool(true) {
            " (N)"
        } else {
            ""
        },
        gr["peer_restart_time_seconds"],
        list("peer_families"),
        list("peer_forwarding"),
    );
    let restarting = &gr["restarting"];
    if !restarting.is_null() {
        let waiting = match restarting["phase"].as_str() {
            Some("restarting") => "peer restarting, session down",
            _ => "session back, waiting for End-of-RIB",
        };
        let families: Vec<&str> = restarting["families"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        let _ = writeln!(
            out,
            "  graceful restart: {waiting}: {} stale routes ({}) kept, {} s left",
            restarting["stale_routes"],
            families.join(", "),
            restarting["seconds_left"],
        );
    }
}

/// `show status`: FIB counts, then the neighbors as `show neighbors` prints them.
pub fn render_status(value: &serde_json::Value) -> String {
    let fib = &value["fib"];
    let mut out = format!(
        "FIB: {} routes, {} nexthop groups, {} nexthops\n",
        fib["routes"], fib["groups"], fib["nexthops"]
    );
    let adoption = &value["adoption"];
    if adoption["adopting"].as_bool() == Some(true) {
        out.push_str(&format!(
            "Adopting the previous run's datapath: {} adopted routes left, swept in {:.0} s at \
             the latest\n",
            adoption["adopted_routes"],
            adoption["deferral_left_secs"].as_f64().unwrap_or(0.0)
        ));
    }
    out.push_str(&render_drain(&value["drain"]));
    if value["neighbors"].as_array().is_some_and(|n| !n.is_empty()) {
        out.push('\n');
        out.push_str(&render_neighbors(&value["neighbors"]));
    }
    out
}

/// The drain line(s) of `show status`: nothing when not drained.
fn render_drain(drain: &serde_json::Value) -> String {
    let describe = |entry: &serde_json::Value| {
        let mut text = format!(
            "since {} (unix), prepend {}",
            entry["since_unix"], entry["prepend"]
        );
        if let Some(at) = entry["withdraw_at_unix"].as_u64() {
            text.push_str(&format!(", withdrawn at {at}"));
        }
        text
    };
    let mut out = String::new();
    if !drain["all"].is_null() {
        out.push_str(&format!(
            "Drained (all routes): {}\n",
            describe(&drain["all"])
        ));
    }
    for (service, entry) in drain["services"].as_object().into_iter().flatten() {
        out.push_str(&format!("Drained service {service}: {}\n", describe(entry)));
    }
    out
}

/// `show routes` as a table: one line per path, `*>` best, `*=` multipath, `S` stale (kept
/// over the peer's graceful restart).
pub fn render_routes(value: &serde_json::Value) -> String {
    let mut out = format!(
        "    {:<44} {:<40} {:<40} PATH\n",
        "PREFIX", "NEXT HOP", "FROM"
    );
    for route in value.as_array().into_iter().flatten() {
        for path in route["paths"].as_array().into_iter().flatten() {
            let mark = match path["status"].as_str().unwrap_or("") {
                "best" => "*>",
                "multipath" => "*=",
                "candidate" => "* ",
                _ => "  ",
            };
            let as_path: Vec<String> = path["as_path"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|asn| asn.to_string())
                .collect();
            let stale = if path["stale"] == serde_json::Value::Bool(true) {
                "S"
            } else {
                " "
            };
            let _ = writeln!(
                out,
                "{mark}{stale} {:<44} {:<40} {:<40} {} {}",
                route["prefix"].as_str().unwrap_or(""),
                path["next_hop"].as_str().unwrap_or(""),
                path["peer"].as_str().unwrap_or("-"),
                as_path.join(" "),
                path["origin"].as_str().unwrap_or(""),
            );
            let status = path["status"].as_str().unwrap_or("");
            // Paths kept but never used say why.
            if status.starts_with("rejected") || status.starts_with("next") {
                let _ = writeln!(out, "    ({status})");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
