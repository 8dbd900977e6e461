//! prometheus-client writes OpenMetrics text, whose counter families are named without
//! `_total` (`# TYPE x counter`, sample `x_total`) and which ends in `# EOF`. The Prometheus
//! text format 0.0.4 names the family as its samples; `promtool check metrics` and older
//! scrapers read only that. The samples are the same in both: only the metadata lines change.

/// Renames counter families to their samples' name, drops `# UNIT` and `# EOF`.
pub fn openmetrics_to_prometheus(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // A family's HELP comes before its TYPE: held until the TYPE says whether it is a counter.
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush_help(&mut out, help.take(), "");
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let suffix = if kind == "counter" { "_total" } else { "" };
            match help.take() {
                Some(held) if held.0 == name => flush_help(&mut out, Some(held), suffix),
                other => flush_help(&mut out, other, ""),
            }
            out.push_str(&format!("# TYPE {name}{suffix} {kind}\n"));
            continue;
        }
        flush_help(&mut out, help.take(), "");
        out.push_str(line);
        out.push('\n');
    }
    flush_help(&mut out, help, "");
    out
}

fn flush_help(out: &mut String, help: Option<(&str, &str)>, suffix: &str) {
    if let Some((name, text)) = help {
        out.push_str(&format!("# HELP {name}{suffix} {text}\n"));
    }
}

/// The content type of [`openmetrics_to_prometheus`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_take_their_samples_name_and_eof_goes() {
        let openmetrics = "# HELP a_packets Packets.\n# TYPE a_packets counter\n\
                           a_packets_total{verdict=\"forwarded\"} 3\n\
                           # HELP a_routes Routes.\n# TYPE a_routes gauge\n# UNIT a_routes x\n\
                           a_routes 2\n# EOF\n";
        assert_eq!(
            openmetrics_to_prometheus(openmetrics),
            "# HELP a_packets_total Packets.\n# TYPE a_packets_total counter\n\
             a_packets_total{verdict=\"forwarded\"} 3\n\
             # HELP a_routes Routes.\n# TYPE a_routes gauge\na_routes 2\n"
        );
    }
}
