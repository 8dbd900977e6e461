//! The `[bgp]` section of the configuration, and its compiled form.
//!
//! ```toml
//! [bgp]
//! asn = 65101
//! router_id = "192.0.2.10"
//! originate = [{ prefix = "192.0.2.10/32" }, { prefix = "2001:db8:10::/128" }]
//!
//! [[bgp.neighbor]]
//! address = "10.0.1.1"
//! remote_as = 65001            # or "external" / "internal"
//! import = "default-only"      # or { prefix_list = "NAME" }; absent: nothing (RFC 8212)
//! export = "all"               # originated routes only, ever; absent: nothing (RFC 8212)
//! max_prefix = { limit = 100, action = "teardown", restart_after = "60s" }
//!
//! [bgp.prefix_list.NAME]
//! ipv4 = [{ action = "permit", prefix = "10.0.0.0/8", ge = 24, le = 32 }]
//! ```

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
};

use serde::Deserialize;

use super::{
    fsm::RemoteAs,
    policy::{
        ExportConfig, ExportPolicy, ImportConfig, ImportPolicy, MaxPrefix, OriginateConfig,
        Originated, PolicyError, PrefixListConfig, PrefixLists,
    },
    rib::DecisionConfig,
};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpConfig {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// TCP port to listen on and connect to (179; tests use others).
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub decision: DecisionConfig,
    #[serde(default)]
    pub originate: Vec<OriginateConfig>,
    #[serde(default, rename = "prefix_list")]
    pub prefix_lists: BTreeMap<String, PrefixListConfig>,
    #[serde(default, rename = "neighbor")]
    pub neighbors: Vec<NeighborConfig>,
    /// Which BGP routes also go to the kernel (for the host's own traffic):
    /// "all", "default-only" or "none".
    #[serde(default)]
    pub kernel_routes: crate::fib::KernelMirror,
}

fn default_port() -> u16 {
    179
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborConfig {
    pub address: IpAddr,
    pub remote_as: RemoteAsConfig,
    pub import: Option<ImportConfig>,
    pub export: Option<ExportConfig>,
    pub max_prefix: Option<MaxPrefix>,
    /// Wait for the neighbor to connect.
    #[serde(default)]
    pub passive: bool,
    /// Proposed hold time, seconds (0, or at least 3).
    pub hold_time: Option<u16>,
}

#[derive(Clone, Copy, Debug)]
pub struct RemoteAsConfig(pub RemoteAs);

impl<'de> Deserialize<'de> for RemoteAsConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u32),
            Word(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(asn) => Ok(Self(RemoteAs::Exact(asn))),
            Raw::Word(word) if word == "external" => Ok(Self(RemoteAs::External)),
            Raw::Word(word) if word == "internal" => Ok(Self(RemoteAs::Internal)),
            Raw::Word(word) => Err(serde::de::Error::custom(format!(
                "remote_as must be an AS number, \"external\" or \"internal\", not {word:?}"
            ))),
        }
    }
}

/// A neighbor, ready to run.
#[derive(Clone, Debug)]
pub struct Neighbor {
    pub address: IpAddr,
    pub remote_as: RemoteAs,
    pub import: ImportPolicy,
    pub export: ExportPolicy,
    pub passive: bool,
    pub hold_time: Option<u16>,
}

/// The compiled `[bgp]` section.
#[derive(Clone, Debug)]
pub struct BgpSetup {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub port: u16,
    pub decision: DecisionConfig,
    pub originated: Originated,
    pub neighbors: Vec<Neighbor>,
}

impl BgpConfig {
    /// Compiles policies and checks cross-references; errors name the key.
    pub fn compile(&self) -> Result<BgpSetup, PolicyError> {
        let invalid = |key: &str, reason: String| PolicyError {
            key: key.to_owned(),
            reason,
        };
        if self.asn == 0 {
            return Err(invalid("bgp.asn", "AS 0 is reserved (RFC 7607)".into()));
        }
        if self.router_id.is_unspecified() {
            return Err(invalid("bgp.router_id", "must not be 0.0.0.0".into()));
        }
        let lists = PrefixLists::compile(&self.prefix_lists)?;
        let originated = Originated::from_config(&self.originate)?;
        let mut neighbors = Vec::new();
        for (i, neighbor) in self.neighbors.iter().enumerate() {
            let key = format!("bgp.neighbor[{i}]");
            if self.neighbors[..i]
                .iter()
                .any(|other| other.address == neighbor.address)
            {
                return Err(invalid(
                    &format!("{key}.address"),
                    format!("{} is configured twice", neighbor.address),
                ));
            }
            if matches!(neighbor.hold_time, Some(1 | 2)) {
                return Err(invalid(
                    &format!("{key}.hold_time"),
                    "must be 0 or at least 3 seconds (RFC 4271)".into(),
                ));
            }
            neighbors.push(Neighbor {
                address: neighbor.address,
                remote_as: neighbor.remote_as.0,
                import: ImportPolicy::from_config(
                    neighbor.import.as_ref(),
                    neighbor.max_prefix,
                    &lists,
                    &format!("{key}.import"),
                )?,
                export: ExportPolicy::from_config(
                    neighbor.export.as_ref(),
                    &lists,
                    &format!("{key}.export"),
                )?,
                passive: neighbor.passive,
                hold_time: neighbor.hold_time,
            });
        }
        Ok(BgpSetup {
            asn: self.asn,
            router_id: self.router_id,
            port: self.port,
            decision: self.decision.clone(),
            originated,
            neighbors,
        })
    }
}
