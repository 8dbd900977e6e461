//! LPM trie route changes, gathered into `BPF_MAP_UPDATE_BATCH` / `DELETE_BATCH` calls.

use anyhow::{Context, Result};
use ipnet::IpNet;
use router_common::map_names;

use super::{Datapath, batch};

/// Trie updates and deletes waiting to be written in one `bpf(2)` call per kind and family.
/// A kind is flushed before the other kind of the same family is queued, and everything
/// before any non-route op, so the order of the batch is kept.
pub(super) struct TriePending {
    update_v4: batch::PendingBatch,
    delete_v4: batch::PendingBatch,
    update_v6: batch::PendingBatch,
    delete_v6: batch::PendingBatch,
}

impl Default for TriePending {
    fn default() -> Self {
        Self {
            update_v4: batch::PendingBatch::new(8),
            delete_v4: batch::PendingBatch::new(8),
            update_v6: batch::PendingBatch::new(20),
            delete_v6: batch::PendingBatch::new(20),
        }
    }
}

/// Routes per `bpf(2)` call: large enough to amortise the call, small enough to keep the
/// buffers small.
const TRIE_BATCH: usize = 4096;

impl TriePending {
    pub(super) fn set(
        &mut self,
        dp: &Datapath,
        prefix: &IpNet,
        key: &[u8],
        group: u32,
    ) -> Result<()> {
        let (map, update, other) = match prefix {
            IpNet::V4(_) => (
                map_names::ROUTES_V4,
                &mut self.update_v4,
                &mut self.delete_v4,
            ),
            IpNet::V6(_) => (
                map_names::ROUTES_V6,
                &mut self.update_v6,
                &mut self.delete_v6,
            ),
        };
        let fd = dp.map_fd(map);
        other
            .flush(fd)
            .with_context(|| format!("deleting routes from {map}"))?;
        update.push(key, group);
        if update.len() >= TRIE_BATCH {
            update
                .flush(fd)
                .with_context(|| format!("adding routes to {map}"))?;
        }
        Ok(())
    }

    pub(super) fn delete(&mut self, dp: &Datapath, prefix: &IpNet, key: &[u8]) -> Result<()> {
        let (map, delete, other) = match prefix {
            IpNet::V4(_) => (
                map_names::ROUTES_V4,
                &mut self.delete_v4,
                &mut self.update_v4,
            ),
            IpNet::V6(_) => (
                map_names::ROUTES_V6,
                &mut self.delete_v6,
                &mut self.update_v6,
            ),
        };
        let fd = dp.map_fd(map);
        other
            .flush(fd)
            .with_context(|| format!("adding routes to {map}"))?;
        delete.push_key(key);
        if delete.len() >= TRIE_BATCH {
            delete
                .flush(fd)
                .with_context(|| format!("deleting routes from {map}"))?;
        }
        Ok(())
    }

    pub(super) fn flush(&mut self, dp: &Datapath) -> Result<()> {
        for (map, pending) in [
            (map_names::ROUTES_V4, &mut self.update_v4),
            (map_names::ROUTES_V4, &mut self.delete_v4),
            (map_names::ROUTES_V6, &mut self.update_v6),
            (map_names::ROUTES_V6, &mut self.delete_v6),
        ] {
            if !pending.is_empty() {
                pending
                    .flush(dp.map_fd(map))
                    .with_context(|| format!("writing routes to {map}"))?;
            }
        }
        Ok(())
    }
}
