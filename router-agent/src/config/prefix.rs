//! Prefixes as the configuration writes them (`"10.0.0.0/24"`), parsed with errors that say
//! what is wrong: `ipnet`'s own parser says "invalid IP address syntax" for a length of 33.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, de};

/// `ADDRESS/LENGTH`, the length within the family's range.
pub fn parse(text: &str) -> Result<IpNet, String> {
    let Some((address, length)) = text.split_once('/') else {
        return Err(format!(
            "{text:?} is not a prefix: expected ADDRESS/LENGTH, e.g. \"10.0.0.0/24\""
        ));
    };
    let address: IpAddr = address
        .parse()
        .map_err(|_| format!("{text:?}: {address:?} is not an IP address"))?;
    let length: u8 = length
        .parse()
        .map_err(|_| format!("{text:?}: {length:?} is not a prefix length"))?;
    let (family, max) = match address {
        IpAddr::V4(_) => ("IPv4", 32),
        IpAddr::V6(_) => ("IPv6", 128),
    };
    if length > max {
        return Err(format!(
            "{text:?}: prefix length {length} out of range for {family} (0-{max})"
        ));
    }
    Ok(IpNet::new(address, length).expect("length checked"))
}

/// `#[serde(deserialize_with = "crate::config::prefix::deserialize")]`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<IpNet, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(de::Error::custom)
}

/// For `Option<IpNet>` fields (with `#[serde(default)]`).
pub fn deserialize_option<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<IpNet>, D::Error> {
    deserialize(deserializer).map(Some)
}

/// An IPv4-mapped IPv6 prefix (`::ffff:10.0.0.0/120`): packets never carry such addresses
/// and peers are seen as plain IPv4, so where a route, a neighbor or a range is meant it is a
/// mistake for the IPv4 form, which the error suggests.
pub fn ipv4_mapped(prefix: &IpNet) -> Option<String> {
    let IpNet::V6(v6) = prefix else {
        return None;
    };
    let v4 = v6.addr().to_ipv4_mapped()?;
    let length = v6.prefix_len().checked_sub(96)?;
    Some(format!(
        "{prefix} is an IPv4-mapped IPv6 prefix, which no packet or peer uses: write {v4}/{length}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_out_of_range_are_named() {
        assert_eq!(
            parse("10.0.0.0/33").unwrap_err(),
            "\"10.0.0.0/33\": prefix length 33 out of range for IPv4 (0-32)"
        );
        assert_eq!(
            parse("2001:db8::/129").unwrap_err(),
            "\"2001:db8::/129\": prefix length 129 out of range for IPv6 (0-128)"
        );
        assert!(
            parse("10.0.0.0/-1")
                .unwrap_err()
                .contains("not a prefix length")
        );
        assert!(
            parse("10.0.0.0/999")
                .unwrap_err()
                .contains("not a prefix length")
        );
        assert!(parse("10.0.0/8").unwrap_err().contains("not an IP address"));
        assert!(parse("10.0.0.0").unwrap_err().contains("ADDRESS/LENGTH"));
        assert_eq!(
            parse("10.0.0.0/32").unwrap(),
            "10.0.0.0/32".parse::<IpNet>().unwrap()
        );
        assert_eq!(parse("::/0").unwrap(), "::/0".parse::<IpNet>().unwrap());
    }

    #[test]
    fn mapped_prefixes_suggest_the_ipv4_form() {
        let mapped = parse("::ffff:10.0.0.0/120").unwrap();
        assert!(ipv4_mapped(&mapped).unwrap().contains("write 10.0.0.0/24"));
        assert_eq!(ipv4_mapped(&parse("10.0.0.0/24").unwrap()), None);
        assert_eq!(ipv4_mapped(&parse("2001:db8::/32").unwrap()), None);
        // Shorter than /96: not a set of mapped addresses only.
        assert_eq!(ipv4_mapped(&parse("::/0").unwrap()), None);
    }
}
