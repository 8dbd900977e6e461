//! `--plot`: the lookup's cost per engine, family and table size, as an SVG line chart.

use std::path::Path;

use anyhow::Result;

use super::report::Report;

/// Spread p50 - floor per engine and family (a line each) over the table sizes.
pub fn plot(path: &Path, report: &Report) -> Result<()> {
    let mut sizes: Vec<(usize, usize)> = Vec::new();
    for run in &report.runs {
        if !sizes.contains(&(run.v4_routes, run.v6_routes)) {
            sizes.push((run.v4_routes, run.v6_routes));
        }
    }
    let names: Vec<String> = sizes
        .iter()
        .map(|&(v4, v6)| format!("{} + {} v6", crate::plot::short(v4), crate::plot::short(v6)))
        .collect();
    let mut lines = Vec::new();
    for &engine in &report.settings.engines {
        for family in ["v4", "v6"] {
            let values: Vec<Option<f64>> = sizes
                .iter()
                .map(|&size| {
                    let run = report
                        .runs
                        .iter()
                        .find(|r| r.engine == engine && (r.v4_routes, r.v6_routes) == size)?;
                    let packets = match family {
                        "v4" => Some(&run.packets.v4),
                        _ => run.packets.v6.as_ref(),
                    }?;
                    Some(packets.spread_p50_over_floor_ns as f64)
                })
                .collect();
            lines.push(crate::plot::Line {
                name: format!("{engine} {family}"),
                values,
            });
        }
    }
    crate::plot::lines(
        path,
        "Lookup cost over the whole table (BPF_PROG_TEST_RUN, spread p50 - floor)",
        "ns/packet",
        "table (IPv4 + IPv6 routes)",
        &names,
        &lines,
    )
}
