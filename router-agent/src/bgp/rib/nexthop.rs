//! BGP next hops: the table routes point into and the reachability hook of the decision
//! process (the translation into the FIB's nexthop keys is `bgp/southbound.rs`).

use std::collections::{BTreeSet, HashMap};
use std::mem::size_of;
use std::net::IpAddr;

use super::NextHop;
use crate::next_hop_check::Unusable;

/// What the caller knows of a next hop address (the decision process's step 0 and (e)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHopState {
    pub reachable: bool,
    /// Interior cost to reach it. All 0 on a host (every next hop is on a connected link);
    /// kept so that the step exists and can be fed later.
    pub igp_cost: u32,
    /// Never usable (the host's own address, a broadcast address, ...: RFC 4271 9.1.2.1).
    pub unusable: Option<Unusable>,
}

impl NextHopState {
    /// Whether paths through it may take part in the decision process.
    pub fn usable(&self) -> bool {
        self.reachable && self.unusable.is_none()
    }
}

impl Default for NextHopState {
    fn default() -> Self {
        Self {
            reachable: true,
            igp_cost: 0,
            unusable: None,
        }
    }
}

/// Index of a next hop in the [`NextHopTable`]; 4 bytes per route instead of the 34 of a
/// [`NextHop`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct NextHopId(u32);

#[derive(Debug)]
struct Slot {
    hop: NextHop,
    /// Routes pointing at it; the slot is freed at zero.
    refs: u32,
    state: NextHopState,
}

/// Reference-counted next hops, plus the state the caller set per address. Few distinct next
/// hops exist (one or two per peer), so the per-route cost is the 4-byte id.
#[derive(Debug, Default)]
pub(super) struct NextHopTable {
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    by_hop: HashMap<NextHop, NextHopId>,
    /// Addresses whose state is not the default; kept even while no route uses them, so a
    /// next hop marked down before its routes arrive starts down.
    states: HashMap<IpAddr, NextHopState>,
    /// The last next hop acquired: every prefix of an UPDATE has the same one, so this skips
    /// hashing it per prefix.
    last: Option<(NextHop, NextHopId)>,
}

impl NextHopTable {
    /// Takes a reference to `hop`'s id, allocating it if new.
    pub fn acquire(&mut self, hop: NextHop) -> NextHopId {
        let known = match self.last {
            Some((last, id)) if last == hop => Some(id),
            _ => self.by_hop.get(&hop).copied(),
        };
        if let Some(id) = known {
            self.slot_mut(id).refs += 1;
            self.last = Some((hop, id));
            return id;
        }
        let state = self.state_of(&hop);
        let slot = Slot {
            hop,
            refs: 1,
            state,
        };
        let id = match self.free.pop() {
            Some(index) => {
                self.slots[index as usize] = Some(slot);
                NextHopId(index)
            }
            None => {
                let index = u32::try_from(self.slots.len()).expect("fewer than 2^32 next hops");
                self.slots.push(Some(slot));
                NextHopId(index)
            }
        };
        self.by_hop.insert(hop, id);
        self.last = Some((hop, id));
        id
    }

    pub fn release(&mut self, id: NextHopId) {
        let slot = self.slot_mut(id);
        slot.refs -= 1;
        if slot.refs == 0 {
            let hop = slot.hop;
            self.slots[id.0 as usize] = None;
            self.by_hop.remove(&hop);
            self.free.push(id.0);
            if self.last.is_some_and(|(_, last)| last == id) {
                self.last = None;
            }
        }
    }

    pub fn get(&self, id: NextHopId) -> NextHop {
        self.slot(id).hop
    }

    pub fn state(&self, id: NextHopId) -> NextHopState {
        self.slot(id).state
    }

    /// Records `address`'s state; returns whether a next hop in use changed.
    pub fn set_state(&mut self, address: IpAddr, state: NextHopState) -> bool {
        let previous = if state == NextHopState::default() {
            self.states.remove(&address)
        } else {
            self.states.insert(address, state)
        };
        if previous.unwrap_or_default() == state {
            return false;
        }
        let mut changed = false;
        for index in 0..self.slots.len() {
            let Some(slot) = &self.slots[index] else {
                continue;
            };
            let uses_address =
                slot.hop.address == address || slot.hop.link_local.map(IpAddr::V6) == Some(address);
            if uses_address {
                let new_state = self.state_of(&slot.hop);
                let slot = self.slots[index].as_mut().expect("checked above");
                changed |= slot.state != new_state;
                slot.state = new_state;
            }
        }
        changed
    }

    /// The state of a next hop: unreachable if either of its addresses is; the global
    /// address's IGP cost; unusable as the address forwarded to is: the link-local one when
    /// sent (a global `::` beside it is what BIRD sends over link-local sessions).
    fn state_of(&self, hop: &NextHop) -> NextHopState {
        let global = self.states.get(&hop.address).copied().unwrap_or_default();
        let link_local = hop
            .link_local
            .and_then(|address| self.states.get(&IpAddr::V6(address)).copied())
            .unwrap_or_default();
        NextHopState {
            reachable: global.reachable && link_local.reachable,
            igp_cost: global.igp_cost,
            unusable: match hop.link_local {
                Some(_) => link_local.unusable,
                None => global.unusable,
            },
        }
    }

    /// The state recorded for `address` (default when none was set).
    pub fn address_state(&self, address: IpAddr) -> NextHopState {
        self.states.get(&address).copied().unwrap_or_default()
    }

    /// Every address a route uses or a state was recorded for: what to re-check when the
    /// host's addresses change.
    pub fn addresses(&self) -> BTreeSet<IpAddr> {
        let in_use = self
            .by_hop
            .keys()
            .flat_map(|hop| std::iter::once(hop.address).chain(hop.link_local.map(IpAddr::V6)));
        in_use.chain(self.states.keys().copied()).collect()
    }

    pub fn len(&self) -> usize {
        self.by_hop.len()
    }

    pub fn memory_estimate(&self) -> usize {
        self.slots.capacity() * size_of::<Option<Slot>>()
            + self.free.capacity() * size_of::<u32>()
            + self.by_hop.capacity() * (size_of::<(NextHop, NextHopId)>() + 1)
            + self.states.capacity() * (size_of::<(IpAddr, NextHopState)>() + 1)
    }

    fn slot(&self, id: NextHopId) -> &Slot {
        self.slots[id.0 as usize]
            .as_ref()
            .expect("next hop id in use")
    }

    fn slot_mut(&mut self, id: NextHopId) -> &mut Slot {
        self.slots[id.0 as usize]
            .as_mut()
            .expect("next hop id in use")
    }
}
