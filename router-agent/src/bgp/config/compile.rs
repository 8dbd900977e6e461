//! `[bgp]` as written into what the speaker runs ([`BgpSetup`]): every key checked, errors
//! naming it.

use std::net::{IpAddr, Ipv4Addr};

use super::{
    BgpConfig, BgpSetup, DynamicNeighbors, DynamicSource, Neighbor, PeerAddress, RemoteAsConfig,
    SessionSecurity, peer_checks,
};
use crate::bgp::policy::{
    ExportConfig, ExportPolicy, ImportConfig, ImportPolicy, MaxPrefix, Originated, PolicyError,
    PrefixLists,
};

impl BgpConfig {
    /// The interfaces the BGP configuration refers to, with their keys (to check against the
    /// configured `[[interface]]`s).
    pub fn interface_refs(&self) -> Vec<(String, &str)> {
        let neighbors = self.neighbors.iter().enumerate().filter_map(|(i, n)| {
            Some((
                format!("bgp.neighbor[{i}].interface"),
                n.interface.as_deref()?,
            ))
        });
        let dynamic = self
            .dynamic_neighbors
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                Some((
                    format!("bgp.dynamic_neighbor[{i}].interface"),
                    n.interface.as_deref()?,
                ))
            });
        neighbors.chain(dynamic).collect()
    }

    /// Compiles policies and checks cross-references; errors name the key.
    pub fn compile(&self) -> Result<BgpSetup, PolicyError> {
        let invalid = |key: &str, reason: String| PolicyError {
            key: key.to_owned(),
            reason,
        };
        peer_checks::local_as(self.asn)?;
        if self.router_id.is_unspecified() {
            return Err(invalid("bgp.router_id", "must not be 0.0.0.0".into()));
        }
        if let Err((key, reason)) = self.graceful_restart.validate() {
            return Err(invalid(&key, reason));
        }
        let lists = PrefixLists::compile(&self.prefix_lists)?;
        peer_checks::originated(&self.originate)?;
        let originated = Originated::from_config(&self.originate)?;
        let mut neighbors: Vec<Neighbor> = Vec::new();
        for (i, neighbor) in self.neighbors.iter().enumerate() {
            let key = format!("bgp.neighbor[{i}]");
            let address = match (neighbor.address, &neighbor.interface) {
                (Some(ip), None) => PeerAddress::Ip(ip),
                (None, Some(name)) => PeerAddress::Interface(name.clone()),
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        &format!("{key}.interface"),
                        "address and interface are exclusive: an interface neighbor's address \
                         is discovered"
                            .into(),
                    ));
                }
                (None, None) => {
                    return Err(invalid(
                        &format!("{key}.address"),
                        "either address or interface (unnumbered) is needed".into(),
                    ));
                }
            };
            peer_checks::remote_as(&key, &address, neighbor.remote_as)?;
            if let PeerAddress::Ip(ip) = address {
                peer_checks::neighbor_address(&key, ip, neighbor.passive, &neighbors)?;
            }
            if let Some(other) = neighbors.iter().find(|other| other.address == address) {
                let field = match address {
                    PeerAddress::Ip(_) => "address",
                    PeerAddress::Interface(_) => "interface",
                };
                return Err(invalid(
                    &format!("{key}.{field}"),
                    format!("{} is configured twice", other.address),
                ));
            }
            let one_hop = match &address {
                PeerAddress::Interface(_) => true,
                PeerAddress::Ip(ip) => is_link_local(*ip),
            };
            let security = SessionSecurity::from_config(
                &key,
                neighbor.password.as_deref(),
                neighbor.password_file.as_deref(),
                neighbor.ttl_security,
                one_hop,
                neighbor.tcp_ao.as_ref(),
            )?;
            let mut compiled = compile_neighbor(
                &key,
                address,
                security,
                neighbor.remote_as,
                neighbor.import.as_ref(),
                neighbor.export.as_ref(),
                neighbor.max_prefix,
                neighbor.passive,
                neighbor.hold_time,
                &lists,
            )?;
            compiled.fast_external_fallover = neighbor.fast_external_fallover.unwrap_or(true);
            neighbors.push(compiled);
        }
        let mut dynamic_neighbors: Vec<DynamicNeighbors> = Vec::new();
        for (i, dynamic) in self.dynamic_neighbors.iter().enumerate() {
            let key = format!("bgp.dynamic_neighbor[{i}]");
            let source = match (dynamic.range, &dynamic.interface) {
                (Some(range), None) => {
                    if range != range.trunc() {
                        return Err(invalid(
                            &format!("{key}.range"),
                            format!(
                                "{range} has host bits set (did you mean {}?)",
                                range.trunc()
                            ),
                        ));
                    }
                    peer_checks::dynamic_range(&key, &range)?;
                    DynamicSource::Range(range)
                }
                (None, Some(name)) => DynamicSource::Interface(name.clone()),
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        &format!("{key}.interface"),
                        "range and interface are exclusive".into(),
                    ));
                }
                (None, None) => {
                    return Err(invalid(
                        &format!("{key}.range"),
                        "either range or interface (its link-local addresses) is needed".into(),
                    ));
                }
            };
            peer_checks::remote_as(&key, &format!("range {source}"), dynamic.remote_as)?;
            if let Some(other) = dynamic_neighbors
                .iter()
                .find(|other| sources_overlap(&other.source, &source))
            {
                let field = match source {
                    DynamicSource::Range(_) => "range",
                    DynamicSource::Interface(_) => "interface",
                };
                return Err(invalid(
                    &format!("{key}.{field}"),
                    format!(
                        "{source} overlaps {} of another dynamic_neighbor",
                        other.source
                    ),
                ));
            }
            if dynamic.limit == 0 {
                return Err(invalid(
                    &format!("{key}.limit"),
                    "must be at least 1".into(),
                ));
            }
            let one_hop = match &source {
                DynamicSource::Interface(_) => true,
                DynamicSource::Range(range) => {
                    range.contains(&crate::bgp::auth::key::link_local_prefix())
                        || crate::bgp::auth::key::link_local_prefix().contains(range)
                }
            };
            let security = SessionSecurity::from_config(
                &key,
                dynamic.password.as_deref(),
                dynamic.password_file.as_deref(),
                dynamic.ttl_security,
                one_hop,
                dynamic.tcp_ao.as_ref(),
            )?;
            let mut template = compile_neighbor(
                &key,
                PeerAddress::Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                security,
                dynamic.remote_as,
                dynamic.import.as_ref(),
                dynamic.export.as_ref(),
                dynamic.max_prefix,
                true,
                dynamic.hold_time,
                &lists,
            )?;
            template.fast_external_fallover = dynamic.fast_external_fallover.unwrap_or(true);
            dynamic_neighbors.push(DynamicNeighbors {
                source,
                template,
                limit: dynamic.limit,
                third_party_next_hop: dynamic.third_party_next_hop,
            });
        }
        let setup = BgpSetup {
            asn: self.asn,
            router_id: self.router_id,
            port: self.port,
            decision: self.decision.clone(),
            originated,
            neighbors,
            dynamic_neighbors,
            graceful_restart: self.graceful_restart.clone(),
            listen: compile_listen(&self.listen)?,
        };
        Ok(setup)
    }
}

/// `bgp.listen`: distinct addresses, IPv4 ones specific (`::` already takes every IPv4
/// address, and a v4-mapped 0.0.0.0 cannot be bound beside it).
fn compile_listen(listen: &[IpAddr]) -> Result<Vec<IpAddr>, PolicyError> {
    let mut seen = Vec::new();
    for (i, &address) in listen.iter().enumerate() {
        let invalid = |reason: String| PolicyError {
            key: format!("bgp.listen[{i}]"),
            reason,
        };
        if address == IpAddr::V4(Ipv4Addr::UNSPECIFIED) {
            return Err(invalid(
                "0.0.0.0: use \"::\" (every IPv4 and IPv6 address), or the addresses".into(),
            ));
        }
        if is_link_local(address) {
            return Err(invalid(format!(
                "{address}: a link-local address needs an interface; unnumbered neighbors \
                 need \"::\""
            )));
        }
        if seen.contains(&address) {
            return Err(invalid(format!("{address} is listed twice")));
        }
        seen.push(address);
    }
    Ok(seen)
}

fn is_link_local(address: IpAddr) -> bool {
    matches!(address, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// Two dynamic sources accept a common address.
fn sources_overlap(a: &DynamicSource, b: &DynamicSource) -> bool {
    match (a, b) {
        (DynamicSource::Range(a), DynamicSource::Range(b)) => a.contains(b) || b.contains(a),
        (DynamicSource::Interface(a), DynamicSource::Interface(b)) => a == b,
        // A range of link-local addresses and an interface both take fe80::/10 peers.
        (DynamicSource::Range(range), DynamicSource::Interface(_))
        | (DynamicSource::Interface(_), DynamicSource::Range(range)) => match range {
            ipnet::IpNet::V6(v6) => {
                let link_local: ipnet::Ipv6Net = "fe80::/10".parse().expect("valid");
                v6.contains(&link_local) || link_local.contains(v6)
            }
            ipnet::IpNet::V4(_) => false,
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn compile_neighbor(
    key: &str,
    address: PeerAddress,
    security: SessionSecurity,
    remote_as: RemoteAsConfig,
    import: Option<&ImportConfig>,
    export: Option<&ExportConfig>,
    max_prefix: Option<MaxPrefix>,
    passive: bool,
    hold_time: Option<u16>,
    lists: &PrefixLists,
) -> Result<Neighbor, PolicyError> {
    if matches!(hold_time, Some(1 | 2)) {
        return Err(PolicyError {
            key: format!("{key}.hold_time"),
            reason: "must be 0 or at least 3 seconds (RFC 4271)".into(),
        });
    }
    Ok(Neighbor {
        address,
        remote_as: remote_as.0,
        import: ImportPolicy::from_config(import, max_prefix, lists, &format!("{key}.import"))?,
        export: ExportPolicy::from_config(export, lists, &format!("{key}.export"))?,
        passive,
        hold_time,
        security,
        bfd: None,
        fast_external_fallover: true,
    })
}
