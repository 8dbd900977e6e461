//! Export: the host's originated routes, the export policy, and [`build_adj_rib_out`], the
//! only maker of an [`ExportTarget`] (see the never-transit notes in `mod.rs`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::bgp::packet::types::{
    AsPath, AsSegment, AsSegmentKind, GRACEFUL_SHUTDOWN, Origin, PathAttributes,
};
use crate::bgp::route_source::NextHop;

use super::*;

/// LOCAL_PREF sent to iBGP peers with originated routes (RFC 4271 5.1.5 wants one on iBGP).
pub const IBGP_LOCAL_PREF: u32 = 100;

/// A route this host originates. Deliberately carries no path attributes: the attributes
/// sent are built by [`build_adj_rib_out`] from a fixed template, so nothing learned can ride
/// along (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginatedRoute {
    prefix: IpNet,
    communities: Vec<u32>,
    large_communities: Vec<[u32; 3]>,
    /// What it is originated for (`origin.rs`).
    pub(super) source: OriginSource,
    /// MED, prepend, GRACEFUL_SHUTDOWN (`origin.rs`).
    pub(super) modifiers: ExportModifiers,
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
            source: OriginSource::Config,
            modifiers: ExportModifiers::default(),
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

    pub fn contains(&self, prefix: &IpNet) -> bool {
        self.routes.contains_key(prefix)
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

    /// Whether a session of this kind (eBGP or not) gets `prefix`.
    pub fn permits(&self, prefix: &IpNet, ebgp: bool) -> bool {
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
    pub(super) routes: BTreeMap<IpNet, Advertisement>,
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
        let modifiers = route.modifiers;
        let mut communities = route.communities.clone();
        if modifiers.graceful_shutdown {
            communities.push(GRACEFUL_SHUTDOWN);
            communities.sort_unstable();
            communities.dedup();
        }
        let attrs = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: if session.ebgp {
                AsPath {
                    segments: vec![AsSegment {
                        kind: AsSegmentKind::Sequence,
                        asns: vec![session.local_as; 1 + usize::from(modifiers.prepend)],
                    }],
                }
            } else {
                // Prepending means nothing inside our AS: iBGP compares LOCAL_PREF first.
                AsPath::default()
            },
            next_hop: match (route.prefix, next_hop.address) {
                (IpNet::V4(_), IpAddr::V4(address)) => Some(address),
                _ => None,
            },
            // No MED unless configured: it would only steer the ToRs between our own links,
            // which ECMP already balances. LOCAL_PREF is an iBGP-only attribute (RFC 4271
            // 5.1.5); a draining route gets 0 there, the receiver action RFC 8326 describes, done
            // for our iBGP peers.
            med: modifiers.med,
            local_pref: (!session.ebgp).then_some(if modifiers.graceful_shutdown {
                0
            } else {
                IBGP_LOCAL_PREF
            }),
            communities,
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
