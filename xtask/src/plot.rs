//! SVG line charts for the benches' `--plot` (plotters, SVG backend only: no font or bitmap
//! dependencies, so it builds fast in CI).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

/// One line of a chart: a value per category (None: not measured, the line skips it).
pub struct Line {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

const WIDTH: u32 = 960;
const HEIGHT: u32 = 540;

/// Draws `lines` over the categories `x_names` (evenly spaced) into the SVG file `path`.
pub fn lines(
    path: &Path,
    title: &str,
    y_label: &str,
    x_label: &str,
    x_names: &[String],
    lines: &[Line],
) -> Result<()> {
    let y_max = lines
        .iter()
        .flat_map(|line| line.values.iter().flatten())
        .copied()
        .fold(0.0f64, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.15 } else { 1.0 };
    let count = x_names.len().max(1);
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    let draw = |e: DrawingAreaErrorKind<_>| anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(draw)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..count as f64 - 0.5, 0.0..y_max)
        .map_err(draw)?;
    let name_at = |x: &f64| {
        let index = x.round();
        if (x - index).abs() < 0.01 && index >= 0.0 {
            x_names.get(index as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_labels(count * 2 + 1)
        .x_label_formatter(&name_at)
        .x_desc(x_label)
        .y_desc(y_label)
        .disable_x_mesh()
        .draw()
        .map_err(draw)?;
    for (index, line) in lines.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        let points: Vec<(f64, f64)> = line
            .values
            .iter()
            .enumerate()
            .filter_map(|(x, y)| y.map(|y| (x as f64, y)))
            .collect();
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(draw)?
            .label(&line.name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|point| Circle::new(point, 4, color.filled())),
            )
            .map_err(draw)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(draw)?;
    root.present().map_err(draw)?;
    Ok(())
}

/// 1000000 -> "1M", 200000 -> "200k", 20 -> "20".
pub fn short(n: usize) -> String {
    if n >= 1_000_000 && n.is_multiple_of(100_000) {
        format!("{}M", n as f64 / 1e6)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers() {
        assert_eq!(short(1_000_000), "1M");
        assert_eq!(short(1_200_000), "1.2M");
        assert_eq!(short(200_000), "200k");
        assert_eq!(short(1), "1");
        assert_eq!(short(1_234), "1234");
    }

    #[test]
    fn draws_an_svg_with_every_line() {
        let path = std::env::temp_dir().join(format!("xtask-plot-{}.svg", std::process::id()));
        let names = vec!["1".to_owned(), "10k".to_owned()];
        let data = [
            Line {
                name: "engine-a v4".into(),
                values: vec![Some(10.0), Some(40.0)],
            },
            Line {
                name: "engine-b v6".into(),
                values: vec![None, Some(90.0)],
            },
        ];
        lines(&path, "title", "ns", "table", &names, &data).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(svg.contains("engine-a v4") && svg.contains("engine-b v6"));
        assert!(svg.contains("10k"));
    }
}
