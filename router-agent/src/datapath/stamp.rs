//! The pin directory's stamp (`STAMP`): who wrote the maps, in which layout, with which flow
//! hash seed, and whether the agent left them for a planned restart.

use std::path::Path;

use anyhow::{Context, Result};
use aya::maps::{Array, MapData};
use router_common::{DatapathStamp, LAYOUT_VERSION, STAMP_MAGIC, STAMP_RESTARTING, map_names};

use super::Datapath;

impl Datapath {
    /// Writes this datapath's stamp with `state` (`STAMP_RUNNING` / `STAMP_RESTARTING`).
    pub(super) fn write_stamp(&mut self, state: u32) -> Result<()> {
        let stamp = DatapathStamp {
            magic: STAMP_MAGIC,
            layout_version: LAYOUT_VERSION,
            state,
            flow_hash_seed: self.options.flow_hash_seed,
            engine: self.options.engine as u32,
            pid: std::process::id(),
            _reserved: 0,
        };
        let mut array: Array<&mut MapData, DatapathStamp> =
            Array::try_from(self.map_mut(map_names::STAMP))?;
        array.set(0, stamp, 0).context("writing the STAMP map")
    }

    /// A planned restart: the maps stay pinned and forwarding, and say so to the next run.
    pub fn mark_restarting(&mut self) -> Result<()> {
        self.write_stamp(STAMP_RESTARTING)
    }
}

/// The stamp pinned in `pin_dir`, if there is a STAMP map of the right shape there.
pub fn read_stamp(pin_dir: &Path) -> Result<DatapathStamp> {
    let path = pin_dir.join(map_names::STAMP);
    let data = MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
    let map = aya::maps::Map::from_map_data(data)?;
    // `try_from` checks the value size: a map of another layout is refused, not misread.
    let array: Array<_, DatapathStamp> = Array::try_from(map)
        .with_context(|| format!("{} is not an array of stamps", path.display()))?;
    Ok(array.get(&0, 0)?)
}
