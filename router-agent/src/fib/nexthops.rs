//! Nexthop records: what the datapath knows of a nexthop (egress, MACs, MTU, state), kept
//! copy-on-write in slots.
//!
//! A changed record goes to a fresh slot and the groups holding it are repointed; the old
//! slot is quarantined. When no slot is free the record in its slot is *stale*: the groups
//! stop using it at once (its buckets go to the members that are current, or to the kernel)
//! and the update is retried when slots are released. A stale record never forwards.

use std::net::IpAddr;

use router_common::{NEXTHOP_F_CONNECTED, NEXTHOP_F_RESOLVED, NEXTHOP_F_VIA_IPV6, Nexthop};

use super::{Batch, Fib, FibError, FibOp, NexthopKey, ecmp::NexthopId};

pub(super) struct NexthopEntry {
    pub(super) key: NexthopKey,
    /// Slot holding `record`, once written.
    pub(super) slot: u32,
    /// What `slot` holds.
    pub(super) record: Nexthop,
    /// Groups holding this nexthop.
    pub(super) groups: usize,
    /// `record` is outdated (no slot was free for the new one): no bucket may point at it.
    pub(super) stale: bool,
}

/// Why nexthop updates wait (logged once until it clears).
pub(super) const SLOTS_FOR_UPDATES: &str = "no free nexthop slot for an updated nexthop record";

impl Fib {
    /// The nexthop for `key`, created (and written to a slot) if needed; takes one reference.
    pub(super) fn acquire_nexthop(
        &mut self,
        batch: &mut Batch,
        key: NexthopKey,
    ) -> Result<u32, FibError> {
        if let Some(&id) = self.nexthop_by_key.get(&key) {
            self.nexthops.get_mut(&id).expect("indexed").groups += 1;
            return Ok(id);
        }
        let id = self.nexthop_ids.allocate("nexthop ids")?;
        let slot = match self.slots.allocate(batch.serial) {
            Ok(slot) => slot,
            Err(err) => {
                self.nexthop_ids.release(id);
                return Err(err);
            }
        };
        let record = self.record(id, key);
        if !record.is_resolved() && !key.is_on_link() {
            batch.resolve.push(key);
        }
        batch.nexthops.push(FibOp::ResetNexthopStats { id });
        batch.nexthops.push(FibOp::WriteNexthop {
            slot,
            nexthop: record,
            owner: self.owner_record(key.owner),
        });
        self.nexthops.insert(
            id,
            NexthopEntry {
                key,
                slot,
                record,
                groups: 1,
                stale: false,
            },
        );
        self.nexthop_by_key.insert(key, id);
        Ok(id)
    }

    /// Drops one reference; the last one frees the id and quarantines the slot. `batch`: the
    /// serial of the batch whose groups stopped using it.
    pub(super) fn release_nexthop(&mut self, batch: u64, id: NexthopId) {
        let entry = self.nexthops.get_mut(&id).expect("released nexthop exists");
        entry.groups -= 1;
        if entry.groups > 0 {
            return;
        }
        let entry = self.nexthops.remove(&id).expect("present");
        if entry.stale {
            self.stale_nexthops -= 1;
        }
        self.nexthop_by_key.remove(&entry.key);
        self.nexthop_ids.release(id);
        self.slots.release(batch, entry.slot);
        self.note_freed();
    }

    /// The datapath record for a nexthop from what we know of its link and neighbor.
    pub(super) fn record(&self, id: NexthopId, key: NexthopKey) -> Nexthop {
        let link = self.links.get(&key.ifindex);
        let mut flags = 0;
        let mut via = [0u8; 16];
        match key.via {
            IpAddr::V4(addr) => via[..4].copy_from_slice(&addr.octets()),
            IpAddr::V6(addr) => {
                via = addr.octets();
                flags |= NEXTHOP_F_VIA_IPV6;
            }
        }
        let link_up = link.is_some_and(|link| link.up);
        // On link: the destination is the neighbor, found per packet in NEIGHBORS.
        let neighbor = if key.is_on_link() {
            flags |= NEXTHOP_F_CONNECTED;
            None
        } else {
            self.neighbors.get(&(key.ifindex, key.via))
        };
        let usable = link_up
            && (key.is_on_link() || neighbor.is_some())
            && !self.failed_gateways.contains(&(key.owner, key.via));
        if usable {
            flags |= NEXTHOP_F_RESOLVED;
        }
        Nexthop {
            id,
            ifindex: key.ifindex,
            mtu: link.map_or(0, |link| link.mtu.min(u32::from(u16::MAX)) as u16),
            flags,
            dst_mac: neighbor.copied().unwrap_or_default(),
            src_mac: link.map_or([0; 6], |link| link.mac),
            via,
        }
    }

    /// Rewrites changed nexthop records into fresh slots and repoints the groups using them.
    /// A record that finds no free slot turns stale: its groups stop using it.
    pub(super) fn refresh_nexthops(&mut self, batch: &mut Batch, ids: &[NexthopId]) {
        let mut changed = Vec::new();
        for &id in ids {
            let entry = &self.nexthops[&id];
            let record = self.record(id, entry.key);
            if record == entry.record {
                // Back to what its slot holds: current again.
                if entry.stale {
                    self.set_stale(id, false);
                    changed.push(id);
                }
                continue;
            }
            // Copy-on-write: never modify a slot a bucket may point at.
            let Ok(slot) = self.slots.allocate(batch.serial) else {
                if !self.nexthops[&id].stale {
                    self.set_stale(id, true);
                    self.shortage(SLOTS_FOR_UPDATES);
                    changed.push(id);
                }
                continue;
            };
            batch.nexthops.push(FibOp::WriteNexthop {
                slot,
                nexthop: record,
                owner: self.owner_record(self.nexthops[&id].key.owner),
            });
            let entry = self.nexthops.get_mut(&id).expect("present");
            let old_slot = std::mem::replace(&mut entry.slot, slot);
            entry.record = record;
            self.slots.release(batch.serial, old_slot);
            if self.nexthops[&id].stale {
                self.set_stale(id, false);
            }
            changed.push(id);
        }
        if !changed.is_empty() {
            self.rewrite_groups_holding(batch, &changed);
        }
    }

    fn set_stale(&mut self, id: NexthopId, stale: bool) {
        self.nexthops.get_mut(&id).expect("present").stale = stale;
        if stale {
            self.stale_nexthops += 1;
        } else {
            self.stale_nexthops -= 1;
        }
    }

    /// Retries the updates of stale nexthops.
    pub(super) fn refresh_stale_nexthops(&mut self, batch: &mut Batch) {
        if self.stale_nexthops == 0 {
            return;
        }
        let stale: Vec<NexthopId> = self
            .nexthops
            .iter()
            .filter(|(_, entry)| entry.stale)
            .map(|(id, _)| *id)
            .collect();
        self.refresh_nexthops(batch, &stale);
    }
}
