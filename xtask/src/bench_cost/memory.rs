//! The memory an engine holds with the table in.

use anyhow::Result;
use router_common::map_names;

use super::{
    Bench, Engine,
    report::Memory,
    sys::{self, Rss},
    table::Table,
};

/// The maps' memlock, the RSS change, the engine's bookkeeping (meminfo: the caller's).
pub fn measure(
    bench: &mut Bench,
    engine: Engine,
    table: &Table,
    rss: (Rss, Rss),
) -> Result<Memory> {
    let datapath = &mut bench.datapath;
    let maps = sys::map_memory(datapath.program_mut())?;
    let is_route_map = |name: &str| {
        [
            map_names::ROUTES_V4,
            map_names::ROUTES_V6,
            map_names::DIR24_TBL24,
            map_names::DIR24_TBL8,
            map_names::DIR24_DEFAULT,
            map_names::DXR4_DIRECT,
            map_names::DXR4_RANGES,
            map_names::DXR6_DIRECT,
            map_names::DXR6_RANGES,
            map_names::DXR6_EXT,
            map_names::DXR6_XRANGES,
            map_names::DXR6_SUB,
            map_names::DXR_DEFAULT,
        ]
        .contains(&name)
    };
    let dir24 = engine == Engine::Dir24;
    Ok(Memory {
        kernel_maps_bytes: maps.iter().map(|m| m.memlock).sum(),
        route_maps_bytes: maps
            .iter()
            .filter(|m| is_route_map(&m.name))
            .map(|m| m.memlock)
            .sum(),
        program_bytes: u64::from(datapath.program_mut().info()?.memory_locked()?),
        maps,
        meminfo_delta_bytes: 0,
        rss_delta_bytes: rss.1.total as i64 - rss.0.total as i64,
        rss_anon_delta_bytes: rss.1.anon as i64 - rss.0.anon as i64,
        bookkeeping_bytes: datapath.dir24_bookkeeping_bytes()
            + datapath.dxr().map_or(0, |dxr| dxr.bookkeeping_bytes()),
        live_bytes: datapath.dxr().map(|dxr| dxr.memory_bytes() as u64),
        dxr_fixed_bytes: datapath.dxr().map(|dxr| dxr.fixed_bytes() as u64),
        dxr_degraded_chunks: datapath.dxr().map(|dxr| dxr.degraded_chunks()),
        dir24_tbl8_groups: if dir24 { table.tbl8_groups() } else { 0 },
        dir24_tbl8_capacity: if dir24 {
            router_common::MAX_DIR24_TBL8_GROUPS
        } else {
            0
        },
    })
}
