//! The agent's TOML configuration.
//!
//! ```toml
//! [datapath]
//! pin_dir = "/sys/fs/bpf/hostrouter"   # where maps (and the XDP link) are pinned
//! engine = "auto"                      # auto | lpm-trie | dir24 | kernel
//! xdp_mode = "native"                  # native | generic
//! kernel_routes = true                 # mirror routes into the kernel FIB (own protocol)
//!
//! [[interface]]
//! name = "eth0"
//! rpf = "off"                          # off | loose | strict (not with engine = "kernel")
//!
//! [[route]]
//! prefix = "0.0.0.0/0"
//! nexthops = [{ via = "192.0.2.1" }, { via = "fe80::1", interface = "eth1" }]
//! ```
//!
//! Unknown keys are errors: a typo must not silently change what the host forwards.

pub mod kernel_routes;
pub mod prefix;
#[cfg(test)]
mod reference_tests;
#[cfg(test)]
mod refusals_tests;

use std::{collections::BTreeSet, net::IpAddr, path::PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

/// Routes (both families) above which `engine = "auto"` picks DXR over the LPM trie.
pub const AUTO_TABLE_THRESHOLD: usize = 10_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub datapath: DatapathConfig,
    #[serde(default, rename = "interface")]
    pub interfaces: Vec<InterfaceConfig>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// The BGP speaker; absent: no BGP.
    pub bgp: Option<crate::bgp::config::BgpConfig>,
    #[serde(default)]
    pub control: ControlConfig,
    /// BFD's default intervals and profiles (`bfd/config.rs`); neighbours opt in.
    #[serde(default)]
    pub bfd: crate::bfd::config::BfdConfig,
    /// `[drain]`: the drain state file and drain defaults (`drain/config.rs`).
    #[serde(default)]
    pub drain: crate::drain::DrainConfig,
    /// `[[redistribute]]`: the host's kernel routes and addresses announced over BGP.
    #[serde(default)]
    pub redistribute: Vec<crate::redistribute::config::RedistributeConfig>,
    /// Health-checked anycast services (`services/config.rs`).
    #[serde(default)]
    pub service: Vec<crate::services::ServiceConfig>,
    /// `[metrics]`: the Prometheus endpoint (`metrics/`); off by default.
    #[serde(default)]
    pub metrics: crate::metrics::MetricsConfig,
}

/// `[control]`: the daemon's Unix socket for `show neighbors|routes`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    #[serde(default = "default_control_socket")]
    pub socket: PathBuf,
    /// A group whose members may `show` (read-only queries) over the socket.
    #[serde(default)]
    pub show_group: Option<String>,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            socket: default_control_socket(),
            show_group: None,
        }
    }
}

/// Where the control socket is unless `[control] socket` says otherwise.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/hostrouter/router-agent.sock";

fn default_control_socket() -> PathBuf {
    PathBuf::from(DEFAULT_CONTROL_SOCKET)
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatapathConfig {
    #[serde(default = "default_pin_dir")]
    pub pin_dir: PathBuf,
    #[serde(default)]
    pub engine: EngineChoice,
    #[serde(default)]
    pub xdp_mode: XdpMode,
    #[serde(default = "default_true")]
    pub kernel_routes: bool,
    /// Protocol number of the kernel routes we install (`ip route show proto 201`).
    #[serde(default = "default_route_protocol")]
    pub route_protocol: u8,
    /// IPv4 routes to plan for: picks the engine when `engine = "auto"` (BGP tables arrive
    /// after start), and sizes the FIB's route map up front.
    #[serde(default)]
    pub expected_ipv4_routes: usize,
    /// IPv6 routes to plan for, as `expected_ipv4_routes` (DXR sizes its arenas for the
    /// larger of these and a full table).
    #[serde(default)]
    pub expected_ipv6_routes: usize,
    /// Which of the kernel's own routes go into the XDP FIB (see `kernel_routes.rs`).
    #[serde(default)]
    pub follow_kernel_routes: kernel_routes::FollowConfig,
    /// Prefixes always handed to the kernel (XDP_PASS), whatever routes cover them. Checked by
    /// `kernel_routes::pass_to_kernel_prefixes`; changes apply on reload.
    #[serde(default)]
    pub pass_to_kernel: Vec<String>,
    /// `"debug"`: the XDP program logs why it passes or drops frames (`datapath/xdp_log.rs`);
    /// `"off"` (default): it carries no trace of that. Read at load, not on reload.
    #[serde(default)]
    pub log: XdpLogLevel,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum XdpLogLevel {
    #[default]
    Off,
    Debug,
}

impl Default for DatapathConfig {
    fn default() -> Self {
        Self {
            pin_dir: default_pin_dir(),
            engine: EngineChoice::default(),
            xdp_mode: XdpMode::default(),
            kernel_routes: true,
            route_protocol: default_route_protocol(),
            expected_ipv4_routes: 0,
            expected_ipv6_routes: 0,
            follow_kernel_routes: Default::default(),
            pass_to_kernel: Vec::new(),
            log: XdpLogLevel::Off,
        }
    }
}

fn default_pin_dir() -> PathBuf {
    PathBuf::from("/sys/fs/bpf/hostrouter")
}

fn default_true() -> bool {
    true
}

/// Protocol number of our kernel routes (see `netlink::RTPROT_HOSTROUTER`).
pub const DEFAULT_ROUTE_PROTOCOL: u8 = crate::netlink::RTPROT_HOSTROUTER;

fn default_route_protocol() -> u8 {
    DEFAULT_ROUTE_PROTOCOL
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EngineChoice {
    #[default]
    Auto,
    LpmTrie,
    Dir24,
    Kernel,
    Dxr,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum XdpMode {
    #[default]
    Native,
    Generic,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InterfaceConfig {
    pub name: String,
    /// Unicast reverse-path filtering of packets the fast path forwards from this interface.
    #[serde(default)]
    pub rpf: RpfChoice,
}

/// `[[interface]] rpf`: as the kernel's `rp_filter` 0 / 2 / 1, applied by the XDP program to
/// the IPv4 and IPv6 packets it forwards.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RpfChoice {
    #[default]
    Off,
    /// The source must have a route, not to a local address.
    Loose,
    /// The source's route must go out of the interface the packet came in on.
    Strict,
}

impl RpfChoice {
    pub fn mode(self) -> router_common::RpfMode {
        match self {
            RpfChoice::Off => router_common::RpfMode::Off,
            RpfChoice::Loose => router_common::RpfMode::Loose,
            RpfChoice::Strict => router_common::RpfMode::Strict,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(deserialize_with = "prefix::deserialize")]
    pub prefix: IpNet,
    pub nexthops: Vec<NexthopConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct NexthopConfig {
    pub via: IpAddr,
    /// Required for link-local gateways; otherwise the kernel is asked which interface
    /// reaches `via`.
    pub interface: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key}: {reason}")]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

impl Config {
    /// The compiled `[[redistribute]]` rules (also their validation, for `check`, `run` and
    /// `reload` alike).
    pub fn redistribute_rules(&self) -> Result<Vec<crate::redistribute::Rule>, (String, String)> {
        crate::redistribute::config::compile(
            &self.redistribute,
            self.bgp.as_ref().map(|bgp| &bgp.prefix_lists),
            self.datapath.route_protocol,
        )
    }

    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates; errors name the offending key.
    pub fn parse(text: &str, path: &std::path::Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: path.to_owned(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        config
            .validate()
            .map_err(|(key, reason)| ConfigError::Invalid {
                path: path.to_owned(),
                key,
                reason,
            })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let mut names = BTreeSet::new();
        for (i, interface) in self.interfaces.iter().enumerate() {
            let key = format!("interface[{i}].name");
            if interface.name.is_empty() || interface.name.len() >= libc::IFNAMSIZ {
                return Err((
                    key,
                    format!("{:?} is not a valid interface name", interface.name),
                ));
            }
            if interface.rpf != RpfChoice::Off && self.engine() == EngineChoice::Kernel {
                return Err((
                    format!("interface[{i}].rpf"),
                    "needs the agent's own FIB to look sources up; engine = \"kernel\" \
                     forwards by the kernel's FIB, whose rp_filter sysctl does this there"
                        .to_owned(),
                ));
            }
            if !names.insert(interface.name.as_str()) {
                return Err((
                    key,
                    format!("interface {:?} is listed twice", interface.name),
                ));
            }
        }
        let setup = match &self.bgp {
            Some(bgp) => Some(
                bgp.compile_with_bfd(&self.bfd)
                    .map_err(|err| (err.key, err.reason))?,
            ),
            None => None,
        };
        if let (Some(bgp), Some(setup)) = (&self.bgp, &setup) {
            crate::bgp::check_listener_keys(setup).map_err(|err| (err.key, err.reason))?;
            for (key, name) in bgp.interface_refs() {
                if !names.contains(name) {
                    return Err((
                        key,
                        format!("{name:?} is not one of the configured interfaces"),
                    ));
                }
            }
        }
        self.bfd.validate()?;
        kernel_routes::validate(&self.datapath)?;
        self.redistribute_rules()?;
        if !self.datapath.pin_dir.is_absolute() {
            return Err((
                "datapath.pin_dir".into(),
                "must be an absolute path under a bpffs mount".into(),
            ));
        }
        let mut prefixes = BTreeSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let key = format!("route[{i}]");
            if route.prefix != route.prefix.trunc() {
                return Err((
                    format!("{key}.prefix"),
                    format!(
                        "{} has host bits set (did you mean {}?)",
                        route.prefix,
                        route.prefix.trunc()
                    ),
                ));
            }
            if let Some(why) = prefix::ipv4_mapped(&route.prefix) {
                return Err((format!("{key}.prefix"), why));
            }
            if !prefixes.insert(route.prefix) {
                return Err((
                    format!("{key}.prefix"),
                    format!("{} is configured twice", route.prefix),
                ));
            }
            if route.nexthops.is_empty() {
                return Err((
                    format!("{key}.nexthops"),
                    "a route needs at least one nexthop".into(),
                ));
            }
            let mut seen = BTreeSet::new();
            for (j, nexthop) in route.nexthops.iter().enumerate() {
                let key = format!("{key}.nexthops[{j}]");
                if !seen.insert(nexthop) {
                    return Err((key, format!("nexthop {} is listed twice", nexthop.via)));
                }
                if let Some(why) = crate::next_hop_check::martian(nexthop.via) {
                    return Err((format!("{key}.via"), why.to_string()));
                }
                if let IpAddr::V6(v6) = nexthop.via
                    && let Some(v4) = v6.to_ipv4_mapped()
                {
                    return Err((
                        format!("{key}.via"),
                        format!("{v6} is IPv4-mapped, which no neighbor answers to: write {v4}"),
                    ));
                }
                match &nexthop.interface {
                    None if is_link_local(nexthop.via) => {
                        return Err((
                            format!("{key}.interface"),
                            format!("link-local nexthop {} needs an interface", nexthop.via),
                        ));
                    }
                    Some(name) if !names.contains(name.as_str()) => {
                        return Err((
                            format!("{key}.interface"),
                            format!("{name:?} is not one of the configured interfaces"),
                        ));
                    }
                    _ => {}
                }
            }
        }
        self.drain.validate()?;
        self.validate_services(setup.as_ref())?;
        Ok(())
    }

    /// `setup`: the compiled `[bgp]`, if any (a service prefix no neighbor is sent is a
    /// mistake to name).
    fn validate_services(
        &self,
        setup: Option<&crate::bgp::config::BgpSetup>,
    ) -> Result<(), (String, String)> {
        let originated: Vec<(String, IpNet)> = self
            .bgp
            .iter()
            .flat_map(|bgp| bgp.originate.iter().enumerate())
            .map(|(k, o)| (format!("bgp.originate[{k}]"), o.prefix))
            .collect();
        crate::services::config::validate(&self.service, &originated)?;
        if self.service.is_empty() {
            return Ok(());
        }
        for (i, service) in self.service.iter().enumerate() {
            for (m, prefix) in service.prefixes.iter().enumerate() {
                if !setup.is_some_and(|s| s.exported_anywhere(prefix)) {
                    return Err((
                        format!("service[{i}].prefixes[{m}]"),
                        format!(
                            "{prefix} is exported to no neighbor: no neighbor's or dynamic \
                             range's export policy permits it{}",
                            if setup.is_none() {
                                " (there is no [bgp])"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The engine `auto` stands for, given the table size we plan for.
    pub fn engine(&self) -> EngineChoice {
        match self.datapath.engine {
            EngineChoice::Auto => {
                let expected =
                    self.datapath.expected_ipv4_routes + self.datapath.expected_ipv6_routes;
                if self.routes.len().max(expected) > AUTO_TABLE_THRESHOLD {
                    EngineChoice::Dxr
                } else {
                    EngineChoice::LpmTrie
                }
            }
            chosen => chosen,
        }
    }
}

fn is_link_local(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

#[cfg(test)]
mod tests;
