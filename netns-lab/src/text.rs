//! Reading what labs write: logs, terminal output, MAC addresses.

use std::{fs, path::Path};

use anyhow::{Context, Result, bail};

/// The last `lines` lines of a file (all of it if shorter; empty if unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `text` without ANSI escape sequences (ESC [ ... letter).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `02:00:ab:10:ff:01`.
pub fn mac_string(mac: &[u8; 6]) -> String {
    let hex: Vec<String> = mac.iter().map(|byte| format!("{byte:02x}")).collect();
    hex.join(":")
}

pub fn parse_mac(text: &str) -> Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next().with_context(|| format!("bad MAC {text:?}"))?;
        *byte = u8::from_str_radix(part, 16).with_context(|| format!("bad MAC {text:?}"))?;
    }
    if parts.next().is_some() {
        bail!("bad MAC {text:?}");
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip_and_refusals() {
        let mac = [0x02, 0, 0xab, 0x10, 0xff, 1];
        assert_eq!(mac_string(&mac), "02:00:ab:10:ff:01");
        assert_eq!(parse_mac("02:00:ab:10:ff:01").unwrap(), mac);
        assert!(parse_mac("02:00:ab:10:ff").is_err());
        assert!(parse_mac("02:00:ab:10:ff:01:02").is_err());
        assert!(parse_mac("02:00:ab:10:ff:zz").is_err());
    }

    #[test]
    fn ansi_sequences_are_removed() {
        assert_eq!(strip_ansi("\u{1b}[1mBGP\u{1b}[0m up"), "BGP up");
    }
}
