//! Reading the previous run's datapath back at start (a restart, an upgrade, or a crash), so
//! that its BGP routes keep forwarding, with the same flows on the same nexthops, until the
//! peers have sent them again.
//!
//! Nothing is adopted that this agent did not write in this very layout: the pin directory's
//! `STAMP` must carry hostrouter's magic and `LAYOUT_VERSION`, and every map must have the
//! key and value sizes this agent expects. Anything else is a cold start, with the reason in
//! one line. Only routes whose every nexthop a BGP session owned are adopted: local, static
//! and kernel routes come back from the kernel and the configuration, as on a cold start.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use anyhow::{Context, Result, anyhow, bail};
use aya::maps::{Array, MapData};
use ipnet::IpNet;
use router_common::{
    DatapathStamp, FIRST_GROUP, LAYOUT_VERSION, LookupEngine, NEXTHOP_BUCKETS, NO_NEXTHOP, Nexthop,
    NexthopGroup, NexthopOwner, OWNER_BGP, OWNER_F_PEER_IPV6, OWNER_F_PEER_UNKNOWN, OWNER_HOST,
    STAMP_MAGIC, STAMP_RESTARTING, STAMP_RUNNING, map_names,
};

use super::pinned::{PinnedDatapath, nexthop_via, open_map};
use crate::fib::{AdoptedGroup, NexthopKey, Owner};

/// What the previous run left that this one takes over.
#[derive(Debug)]
pub struct Adoption {
    pub stamp: DatapathStamp,
    /// The previous run's BGP groups, as nexthops and bucket layouts.
    pub groups: Vec<AdoptedGroup>,
    /// BGP routes: prefix and index in `groups`.
    pub routes: Vec<(IpNet, usize)>,
    /// Routes left to rebuild from the kernel and the config (local, static, kernel-followed,
    /// `pass_to_kernel`).
    pub not_bgp: usize,
}

impl Adoption {
    /// The stamp's state, for the log.
    pub fn previous_state(&self) -> &'static str {
        match self.stamp.state {
            STAMP_RESTARTING => "planned restart",
            _ => "still running, or crashed",
        }
    }
}

/// The start this pin directory allows.
#[derive(Debug)]
pub enum PreviousDatapath {
    /// Nothing pinned there: a first start, or the previous run stopped cleanly.
    None,
    /// Something is pinned there that this agent will not read: why.
    Refused(String),
    Adoptable(Adoption),
}

/// Reads the datapath pinned in `pin_dir`. Never fails: whatever cannot be read is a reason
/// for a cold start.
pub fn read_previous(pin_dir: &Path) -> PreviousDatapath {
    if !pin_dir.join(map_names::STAMP).exists() {
        return if map_names::ALL
            .iter()
            .any(|name| pin_dir.join(name).exists())
        {
            PreviousDatapath::Refused(format!(
                "{} holds maps without a stamp (an older agent's, or another program's)",
                pin_dir.display()
            ))
        } else {
            PreviousDatapath::None
        };
    }
    match read(pin_dir) {
        Ok(adoption) => PreviousDatapath::Adoptable(adoption),
        Err(err) => PreviousDatapath::Refused(format!("{err:#}")),
    }
}

fn read(pin_dir: &Path) -> Result<Adoption> {
    let stamp = super::stamp::read_stamp(pin_dir)?;
    check_stamp(&stamp)?;
    let engine = LookupEngine::from_u32(stamp.engine).expect("checked");
    let pinned = PinnedDatapath::open(pin_dir)?;
    if pinned.engine != engine {
        bail!(
            "the stamp says engine {engine:?} but the route tables are sized for {:?}",
            pinned.engine
        );
    }
    let maps = Maps::open(pin_dir)?;
    let routes = pinned.routes().context("reading the route tables")?;
    let mut adoption = Adoption {
        stamp,
        groups: Vec::new(),
        routes: Vec::new(),
        not_bgp: 0,
    };
    // Previous group id -> index in `adoption.groups`, or None when not all BGP.
    let mut seen: BTreeMap<u32, Option<usize>> = BTreeMap::new();
    for (prefix, id) in routes {
        if id < FIRST_GROUP {
            adoption.not_bgp += 1;
            continue;
        }
        let index = match seen.get(&id) {
            Some(index) => *index,
            None => {
                let group = maps
                    .bgp_group(id)
                    .with_context(|| format!("route {prefix}: nexthop group {id}"))?;
                let index = group.map(|group| {
                    adoption.groups.push(group);
                    adoption.groups.len() - 1
                });
                seen.insert(id, index);
                index
            }
        };
        match index {
            Some(index) => adoption.routes.push((prefix, index)),
            None => adoption.not_bgp += 1,
        }
    }
    Ok(adoption)
}

/// Layouts whose maps this agent reads back. Version 2 is version 3 without `DXR6_SUB` and
/// without split DXR nodes (its largest block could not reach the count that now marks one):
/// its routes read back the same, so an upgrade from it adopts.
const ADOPTABLE_LAYOUTS: [u32; 2] = [2, LAYOUT_VERSION];

fn check_stamp(stamp: &DatapathStamp) -> Result<()> {
    if stamp.magic != STAMP_MAGIC {
        bail!(
            "the stamp's magic is {:#018x}, not hostrouter's (another program's maps, or \
             corrupted)",
            stamp.magic
        );
    }
    if !ADOPTABLE_LAYOUTS.contains(&stamp.layout_version) {
        bail!(
            "the maps are in layout version {}, this agent reads versions {ADOPTABLE_LAYOUTS:?}",
            stamp.layout_version
        );
    }
    if !matches!(stamp.state, STAMP_RUNNING | STAMP_RESTARTING) {
        bail!("the stamp's state {} is unknown (corrupted)", stamp.state);
    }
    if LookupEngine::from_u32(stamp.engine).is_none() {
        bail!("the stamp's engine {} is unknown (corrupted)", stamp.engine);
    }
    Ok(())
}

/// The group and nexthop maps, opened once (each read checks its index).
struct Maps {
    groups: Array<MapData, NexthopGroup>,
    nexthops: Array<MapData, Nexthop>,
    owners: Array<MapData, NexthopOwner>,
}

impl Maps {
    fn open(pin_dir: &Path) -> Result<Self> {
        // `try_from` checks key and value sizes against this agent's types.
        let array = |name: &str| open_map(pin_dir, name).map(|map| (name.to_owned(), map));
        let (name, map) = array(map_names::NEXTHOP_GROUPS)?;
        let groups = Array::try_from(map).with_context(|| format!("map {name}"))?;
        let (name, map) = array(map_names::NEXTHOPS)?;
        let nexthops: Array<MapData, Nexthop> =
            Array::try_from(map).with_context(|| format!("map {name}"))?;
        let (name, map) = array(map_names::NEXTHOP_OWNERS)?;
        let owners: Array<MapData, NexthopOwner> =
            Array::try_from(map).with_context(|| format!("map {name}"))?;
        if owners.len() < nexthops.len() {
            bail!(
                "{} holds {} entries for {} nexthop slots",
                map_names::NEXTHOP_OWNERS,
                owners.len(),
                nexthops.len()
            );
        }
        Ok(Self {
            groups,
            nexthops,
            owners,
        })
    }

    /// Group `id` as an adopted group if every member is a BGP session's nexthop (None if
    /// one is not). An inconsistent record is an error: the maps are not what we wrote.
    fn bgp_group(&self, id: u32) -> Result<Option<AdoptedGroup>> {
        let record = self.groups.get(&id, 0)?;
        let mut members = Vec::new();
        let mut slots = Vec::new();
        for &slot in record
            .members
            .iter()
            .take_while(|slot| **slot != NO_NEXTHOP)
        {
            let nexthop = self
                .nexthops
                .get(&slot, 0)
                .with_context(|| format!("member slot {slot}"))?;
            let owner = self.owners.get(&slot, 0)?;
            let peer = match owner.kind {
                OWNER_BGP => owner_peer(&owner),
                OWNER_HOST => return Ok(None),
                kind => bail!("slot {slot}: unknown owner kind {kind}"),
            };
            members.push(NexthopKey {
                via: nexthop_via(&nexthop),
                ifindex: nexthop.ifindex,
                owner: Owner::Adopted(peer),
            });
            slots.push(slot);
        }
        if members.is_empty() {
            bail!("no members");
        }
        if members.iter().collect::<BTreeSet<_>>().len() != members.len() {
            bail!("a nexthop listed twice");
        }
        let mut buckets = [None; NEXTHOP_BUCKETS];
        for (bucket, slot) in buckets.iter_mut().zip(record.buckets) {
            if slot == NO_NEXTHOP {
                continue;
            }
            let index = slots
                .iter()
                .position(|member| *member == slot)
                .ok_or_else(|| anyhow!("a bucket points at slot {slot}, not a member"))?;
            *bucket = Some(index as u8);
        }
        Ok(Some(AdoptedGroup { members, buckets }))
    }
}

/// The peer address an owner record names (`::` when it was not known).
fn owner_peer(owner: &NexthopOwner) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    if owner.flags & OWNER_F_PEER_UNKNOWN != 0 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else if owner.flags & OWNER_F_PEER_IPV6 != 0 {
        IpAddr::V6(Ipv6Addr::from(owner.peer))
    } else {
        let [a, b, c, d, ..] = owner.peer;
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> DatapathStamp {
        DatapathStamp {
            magic: STAMP_MAGIC,
            layout_version: LAYOUT_VERSION,
            state: STAMP_RESTARTING,
            flow_hash_seed: 7,
            engine: LookupEngine::Dir24 as u32,
            pid: 1,
            _reserved: 0,
        }
    }

    #[test]
    fn only_our_stamp_in_our_layout_is_accepted() {
        assert!(check_stamp(&stamp()).is_ok());
        let foreign = DatapathStamp {
            magic: 0x1234,
            ..stamp()
        };
        assert!(format!("{:#}", check_stamp(&foreign).unwrap_err()).contains("magic"));
        let upgrade = DatapathStamp {
            layout_version: 2,
            ..stamp()
        };
        assert!(
            check_stamp(&upgrade).is_ok(),
            "layout 2 reads back the same"
        );
        for version in [1, LAYOUT_VERSION + 1] {
            let other = DatapathStamp {
                layout_version: version,
                ..stamp()
            };
            let err = format!("{:#}", check_stamp(&other).unwrap_err());
            assert!(err.contains("layout version"), "{err}");
        }
        let garbled = DatapathStamp {
            state: 77,
            ..stamp()
        };
        assert!(check_stamp(&garbled).is_err());
        let engine = DatapathStamp {
            engine: 9,
            ..stamp()
        };
        assert!(check_stamp(&engine).is_err());
    }

    #[test]
    fn owner_records_name_their_peer() {
        let mut owner = NexthopOwner {
            kind: OWNER_BGP,
            flags: 0,
            peer: [0; 16],
        };
        owner.peer[..4].copy_from_slice(&[192, 0, 2, 1]);
        assert_eq!(owner_peer(&owner).to_string(), "192.0.2.1");
        owner.flags = OWNER_F_PEER_IPV6;
        owner.peer = "2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        assert_eq!(owner_peer(&owner).to_string(), "2001:db8::1");
        owner.flags = OWNER_F_PEER_UNKNOWN;
        assert!(owner_peer(&owner).is_unspecified());
    }

    #[test]
    fn an_empty_pin_dir_is_a_first_start() {
        let dir = std::env::temp_dir().join(format!("hostrouter-adopt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(read_previous(&dir), PreviousDatapath::None));
        // A file named like a map, but no stamp: not ours to read.
        std::fs::write(dir.join(map_names::NEXTHOPS), b"x").unwrap();
        let refused = read_previous(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(refused, PreviousDatapath::Refused(reason) if reason.contains("stamp")));
    }
}
