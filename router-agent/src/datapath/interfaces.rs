//! What the program knows of attached interfaces (`INTERFACES`: MAC, RPF mode, forwarding
//! switches) and of the hosts on their connected subnets (`NEIGHBORS`).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use anyhow::{Context, Result};
use aya::maps::{Array, HashMap, MapData, MapError};
use router_common::{
    INTERFACE_F_ACCEPT_LOCAL_V4, INTERFACE_F_FORWARD_V4, INTERFACE_F_FORWARD_V6, Interface,
    Neighbor, NeighborKey, RpfMode, map_names,
};

use super::Datapath;

/// Userspace copy of `INTERFACES` and the link MACs the agent learned, so that a MAC change
/// rewrites only what changed.
#[derive(Default)]
pub(super) struct InterfaceState {
    /// Ports the program may redirect to (`add_egress_port`): neighbors are kept for these.
    pub(super) attached: BTreeSet<u32>,
    /// Link-layer address of every link the agent was told about.
    link_macs: BTreeMap<u32, [u8; 6]>,
    /// What `INTERFACES` holds.
    written: BTreeMap<u32, Interface>,
    /// What `INTERFACES_GENERATION` holds.
    generation: u64,
}

impl Datapath {
    /// Writes `INTERFACES[ifindex]`: frames on `ifindex` are looked at only when addressed to
    /// `interface.mac`.
    pub fn set_interface(&mut self, ifindex: u32, interface: Interface) -> Result<()> {
        let mut map: HashMap<&mut MapData, u32, Interface> =
            HashMap::try_from(self.map_mut(map_names::INTERFACES))?;
        map.insert(ifindex, interface, 0)
            .with_context(|| format!("writing INTERFACES[{ifindex}]"))?;
        self.interfaces.written.insert(ifindex, interface);
        self.invalidate_interface_caches()
    }

    /// Bumps `INTERFACES_GENERATION` after a change: every CPU's cached record is stale.
    fn invalidate_interface_caches(&mut self) -> Result<()> {
        let generation = self.interfaces.generation + 1;
        let mut map: Array<&mut MapData, u64> =
            Array::try_from(self.map_mut(map_names::INTERFACES_GENERATION))?;
        map.set(0, generation, 0)
            .context("writing INTERFACES_GENERATION")?;
        self.interfaces.generation = generation;
        Ok(())
    }

    /// Removes `INTERFACES[ifindex]`: its frames all go to the kernel.
    pub fn remove_interface(&mut self, ifindex: u32) -> Result<()> {
        let mut map: HashMap<&mut MapData, u32, Interface> =
            HashMap::try_from(self.map_mut(map_names::INTERFACES))?;
        match map.remove(&ifindex) {
            Ok(()) | Err(MapError::KeyNotFound) => {}
            Err(err) => return Err(err).context(format!("removing INTERFACES[{ifindex}]")),
        }
        self.interfaces.written.remove(&ifindex);
        self.invalidate_interface_caches()
    }

    /// What `INTERFACES[ifindex]` holds, as this datapath wrote it.
    pub fn interface(&self, ifindex: u32) -> Option<Interface> {
        self.interfaces.written.get(&ifindex).copied()
    }

    /// Writes the record of an attached interface: its MAC as last learned from the kernel
    /// (`update_link_mac`), `rpf`, and the kernel's forwarding and `accept_local` switches for
    /// `ifname` now.
    pub fn configure_interface(&mut self, ifindex: u32, ifname: &str, rpf: RpfMode) -> Result<()> {
        let Some(mac) = self.interfaces.link_macs.get(&ifindex).copied() else {
            anyhow::bail!(
                "{ifname}: no link-layer address known (not an Ethernet interface?): the XDP \
                 program would take every frame on it for another host's"
            );
        };
        let interface = Interface {
            mac,
            rpf: rpf as u8,
            flags: forwarding_flags(ifname) | accept_local_flag(ifname),
        };
        self.set_interface(ifindex, interface)
    }

    /// Re-reads the kernel's forwarding and `accept_local` switches of every attached
    /// interface (`names` by ifindex) and rewrites the records whose switches changed: an
    /// operator turning forwarding off stops XDP forwarding too. Returns what changed, as
    /// (interface, old flags, new flags).
    pub fn refresh_kernel_switches(
        &mut self,
        names: &BTreeMap<u32, String>,
    ) -> Result<Vec<(String, u8, u8)>> {
        let mut changed = Vec::new();
        for (ifindex, name) in names {
            let Some(written) = self.interfaces.written.get(ifindex).copied() else {
                continue;
            };
            let flags = forwarding_flags(name) | accept_local_flag(name);
            if flags != written.flags {
                self.set_interface(*ifindex, Interface { flags, ..written })?;
                changed.push((name.clone(), written.flags, flags));
            }
        }
        Ok(changed)
    }

    /// A link's MAC, from every link the kernel reports (the dump and changes); rewrites the
    /// interface's record when an attached interface's MAC changed. Returns whether it did.
    pub fn update_link_mac(&mut self, ifindex: u32, mac: Option<[u8; 6]>) -> Result<bool> {
        let Some(mac) = mac else {
            self.interfaces.link_macs.remove(&ifindex);
            return Ok(false);
        };
        self.interfaces.link_macs.insert(ifindex, mac);
        match self.interfaces.written.get(&ifindex) {
            Some(written) if written.mac != mac => {
                let interface = Interface { mac, ..*written };
                self.set_interface(ifindex, interface)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Writes (`Some` MAC) or removes a host of a connected subnet; ignored for interfaces the
    /// program does not redirect to.
    pub(super) fn apply_neighbor(
        &mut self,
        ifindex: u32,
        addr: IpAddr,
        mac: Option<[u8; 6]>,
    ) -> Result<()> {
        // Multicast and other non-unicast entries (NOARP ones as ff02::16) are never a
        // destination the program forwards to: not worth a slot.
        if !self.interfaces.attached.contains(&ifindex) || !is_unicast(addr) {
            return Ok(());
        }
        let key = neighbor_key(ifindex, addr);
        let mut map: HashMap<&mut MapData, NeighborKey, Neighbor> =
            HashMap::try_from(self.map_mut(map_names::NEIGHBORS))?;
        match mac {
            Some(mac) => map
                .insert(
                    key,
                    Neighbor {
                        mac,
                        _reserved: [0; 2],
                    },
                    0,
                )
                .with_context(|| format!("writing NEIGHBORS[{ifindex}, {addr}]")),
            None => match map.remove(&key) {
                Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
                Err(err) => Err(err).context(format!("removing NEIGHBORS[{ifindex}, {addr}]")),
            },
        }
    }

    /// The MAC `NEIGHBORS` holds for a host (tests, `show`).
    pub fn neighbor(&self, ifindex: u32, addr: IpAddr) -> Result<Option<[u8; 6]>> {
        let map: HashMap<&MapData, NeighborKey, Neighbor> =
            HashMap::try_from(&self.maps[map_names::NEIGHBORS])?;
        match map.get(&neighbor_key(ifindex, addr), 0) {
            Ok(neighbor) => Ok(Some(neighbor.mac)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Drops the neighbors of a port that leaves (their entries would only go stale).
    pub(super) fn forget_neighbors(&mut self, ifindex: u32) -> Result<()> {
        let mut map: HashMap<&mut MapData, NeighborKey, Neighbor> =
            HashMap::try_from(self.map_mut(map_names::NEIGHBORS))?;
        let keys: Vec<NeighborKey> = map
            .keys()
            .filter_map(Result::ok)
            .filter(|key| key.ifindex == ifindex)
            .collect();
        for key in keys {
            match map.remove(&key) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(err) => return Err(err).context("removing from NEIGHBORS"),
            }
        }
        Ok(())
    }
}

fn is_unicast(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => !(v4.is_multicast() || v4.is_broadcast() || v4.is_unspecified()),
        IpAddr::V6(v6) => !(v6.is_multicast() || v6.is_unspecified()),
    }
}

fn neighbor_key(ifindex: u32, addr: IpAddr) -> NeighborKey {
    match addr {
        IpAddr::V4(v4) => NeighborKey::ipv4(ifindex, v4.octets()),
        IpAddr::V6(v6) => NeighborKey::ipv6(ifindex, v6.octets()),
    }
}

/// `INTERFACE_F_FORWARD_*` as the kernel decides them now:
/// - IPv4: `net.ipv4.conf.IF.forwarding` (`ip_route_input_slow` checks the ingress device's);
/// - IPv6: `ip6_forward` checks `net.ipv6.conf.all.forwarding`, not the interface's (that
///   one only makes the host act as a router on the link: RAs, the router flag), or since
///   Linux 6.17 the interface's `force_forwarding`.
pub fn forwarding_flags(ifname: &str) -> u8 {
    let on = |path: String| std::fs::read_to_string(&path).is_ok_and(|value| value.trim() == "1");
    let mut flags = 0;
    if on(format!("/proc/sys/net/ipv4/conf/{ifname}/forwarding")) {
        flags |= INTERFACE_F_FORWARD_V4;
    }
    if on("/proc/sys/net/ipv6/conf/all/forwarding".to_owned())
        || on(format!("/proc/sys/net/ipv6/conf/{ifname}/force_forwarding"))
    {
        flags |= INTERFACE_F_FORWARD_V6;
    }
    flags
}

/// `INTERFACE_F_ACCEPT_LOCAL_V4` as the kernel decides it now: `IN_DEV_ACCEPT_LOCAL` is the
/// `all` switch or the interface's.
pub fn accept_local_flag(ifname: &str) -> u8 {
    let on = |path: String| std::fs::read_to_string(&path).is_ok_and(|value| value.trim() == "1");
    if on("/proc/sys/net/ipv4/conf/all/accept_local".to_owned())
        || on(format!("/proc/sys/net/ipv4/conf/{ifname}/accept_local"))
    {
        INTERFACE_F_ACCEPT_LOCAL_V4
    } else {
        0
    }
}
