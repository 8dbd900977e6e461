//! `router-agent show redistribute`: per rule, how many prefixes are announced and how many
//! are held back by the limit.

use std::fmt::Write as _;

use serde::Serialize;

/// One rule's counts, as `show redistribute --json` gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleStatus {
    pub name: String,
    pub limit: usize,
    pub announced: usize,
    /// Candidates over the limit, not announced.
    pub held_back: usize,
    /// The announced prefixes, in prefix order.
    pub prefixes: Vec<String>,
}

/// The table `show redistribute` prints from the JSON answer.
pub fn render(value: &serde_json::Value) -> String {
    let mut out = format!(
        "{:<24} {:>10} {:>10} {:>10}\n",
        "RULE", "ANNOUNCED", "HELD BACK", "LIMIT"
    );
    let rules = value.as_array().map(Vec::as_slice).unwrap_or_default();
    if rules.is_empty() {
        out.push_str("(no [[redistribute]] rules)\n");
    }
    for rule in rules {
        let field = |key: &str| match &rule[key] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "-".to_owned(),
            other => other.to_string(),
        };
        let _ = writeln!(
            out,
            "{:<24} {:>10} {:>10} {:>10}",
            field("name"),
            field("announced"),
            field("held_back"),
            field("limit")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_per_rule() {
        let status = vec![RuleStatus {
            name: "containers".into(),
            limit: 5,
            announced: 5,
            held_back: 2,
            prefixes: vec!["10.200.0.1/32".into()],
        }];
        let text = render(&serde_json::json!(status));
        let line = text.lines().nth(1).unwrap();
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells, ["containers", "5", "2", "5"]);
        assert!(render(&serde_json::json!([])).contains("no [[redistribute]]"));
    }
}
