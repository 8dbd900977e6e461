//! Prefix encoding shared by the Withdrawn Routes and NLRI fields of the UPDATE (RFC 4271
//! 4.3) and by MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760 5).
//!
//! ```text
//! +---------------------------+
//! |   Length (1 octet)        |
//! +---------------------------+
//! |   Prefix (variable)       |
//! +---------------------------+
//! ```
//!
//! Length is in bits; Prefix is the fewest octets that hold them, and "the value of trailing
//! bits is irrelevant", so decoding clears host bits. RFC 7606 5.3 calls a field
//! syntactically incorrect when a Length exceeds the family's maximum or the last prefix runs
//! past the end of the field; decoding returns `Err` with the reason, and the caller picks
//! the NOTIFICATION (the field's extent is then unknown, so treat-as-withdraw cannot apply).

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::types::Afi;
use super::wire::Reader;

/// Octets a prefix of `prefix_len` bits takes on the wire, Length octet included.
pub(crate) fn wire_len(prefix_len: u8) -> usize {
    1 + usize::from(prefix_len).div_ceil(8)
}

pub(crate) fn ip_net_wire_len(net: &IpNet) -> usize {
    wire_len(net.prefix_len())
}

/// Reads one `<length, prefix>` into an `N`-octet address with the host bits cleared.
fn read_prefix<const N: usize>(reader: &mut Reader) -> Result<([u8; N], u8), String> {
    let max_len = N * 8;
    let len = reader.u8().ok_or("empty prefix")?;
    if usize::from(len) > max_len {
        return Err(format!("prefix length {len} exceeds {max_len}"));
    }
    let octets = reader
        .take(usize::from(len).div_ceil(8))
        .ok_or_else(|| format!("prefix of length {len} runs past the end of the field"))?;
    let mut address = [0u8; N];
    address[..octets.len()].copy_from_slice(octets);
    Ok((address, len))
}

pub(crate) fn decode_ipv4_prefixes(field: &[u8]) -> Result<Vec<Ipv4Net>, String> {
    let mut reader = Reader::new(field);
    let mut prefixes = Vec::new();
    while !reader.is_empty() {
        let (address, len) = read_prefix::<4>(&mut reader)?;
        let net = Ipv4Net::new(Ipv4Addr::from(address), len).map_err(|error| error.to_string())?;
        prefixes.push(net.trunc());
    }
    Ok(prefixes)
}

fn decode_ipv6_prefixes(field: &[u8]) -> Result<Vec<Ipv6Net>, String> {
    let mut reader = Reader::new(field);
    let mut prefixes = Vec::new();
    while !reader.is_empty() {
        let (address, len) = read_prefix::<16>(&mut reader)?;
        let net = Ipv6Net::new(Ipv6Addr::from(address), len).map_err(|error| error.to_string())?;
        prefixes.push(net.trunc());
    }
    Ok(prefixes)
}

/// Decodes the prefixes of an MP_REACH_NLRI / MP_UNREACH_NLRI of family `afi`.
pub(crate) fn decode_prefixes(field: &[u8], afi: Afi) -> Result<Vec<IpNet>, String> {
    Ok(match afi {
        Afi::Ipv4 => decode_ipv4_prefixes(field)?
            .into_iter()
            .map(IpNet::V4)
            .collect(),
        Afi::Ipv6 => decode_ipv6_prefixes(field)?
            .into_iter()
            .map(IpNet::V6)
            .collect(),
    })
}

pub(crate) fn encode_ipv4_prefix(net: &Ipv4Net, out: &mut BytesMut) {
    let len = net.prefix_len();
    out.put_u8(len);
    out.put_slice(&net.network().octets()[..usize::from(len).div_ceil(8)]);
}

pub(crate) fn encode_prefix(net: &IpNet, out: &mut BytesMut) {
    match net {
        IpNet::V4(net) => encode_ipv4_prefix(net, out),
        IpNet::V6(net) => {
            let len = net.prefix_len();
            out.put_u8(len);
            out.put_slice(&net.network().octets()[..usize::from(len).div_ceil(8)]);
        }
    }
}

/// Whether `net` belongs in the NLRI of family `afi`.
pub(crate) fn is_of_family(net: &IpNet, afi: Afi) -> bool {
    matches!(
        (net, afi),
        (IpNet::V4(_), Afi::Ipv4) | (IpNet::V6(_), Afi::Ipv6)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(nets: &[IpNet]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for net in nets {
            encode_prefix(net, &mut out);
        }
        out.to_vec()
    }

    #[test]
    fn golden_prefix_encoding() {
        let nets: Vec<IpNet> = [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "192.0.2.0/24",
            "198.51.100.1/32",
            "10.128.0.0/9",
        ]
        .iter()
        .map(|net| net.parse().unwrap())
        .collect();
        assert_eq!(
            encoded(&nets),
            [0, 8, 10, 24, 192, 0, 2, 32, 198, 51, 100, 1, 9, 10, 128]
        );
        assert_eq!(decode_prefixes(&encoded(&nets), Afi::Ipv4).unwrap(), nets);
    }

    #[test]
    fn ipv6_round_trip() {
        let nets: Vec<IpNet> = [
            "::/0",
            "2001:db8::/32",
            "2001:db8:1:2::/64",
            "2001:db8::1/128",
            "fe80::/10",
        ]
        .iter()
        .map(|net| net.parse().unwrap())
        .collect();
        let bytes = encoded(&nets);
        assert_eq!(bytes.len(), nets.iter().map(ip_net_wire_len).sum::<usize>());
        assert_eq!(decode_prefixes(&bytes, Afi::Ipv6).unwrap(), nets);
    }

    #[test]
    fn trailing_bits_are_cleared() {
        // 10.255.0.0/9 on the wire decodes as 10.128.0.0/9.
        assert_eq!(
            decode_ipv4_prefixes(&[9, 10, 255]).unwrap(),
            vec!["10.128.0.0/9".parse::<Ipv4Net>().unwrap()]
        );
        // Host bits of the value being encoded are not sent.
        let mut out = BytesMut::new();
        encode_ipv4_prefix(&"10.1.2.3/16".parse().unwrap(), &mut out);
        assert_eq!(&out[..], [16, 10, 1]);
    }

    #[test]
    fn syntactically_incorrect_fields() {
        assert!(decode_ipv4_prefixes(&[33, 1, 2, 3, 4, 5]).is_err());
        assert!(decode_prefixes(&[129; 17], Afi::Ipv6).is_err());
        assert!(decode_ipv4_prefixes(&[24, 10, 0]).is_err());
        assert!(decode_ipv4_prefixes(&[8, 10, 24]).is_err());
        // 32 bits is fine for IPv4, and 128 for IPv6.
        assert!(decode_ipv4_prefixes(&[32, 1, 2, 3, 4]).is_ok());
        let mut host = vec![128];
        host.extend_from_slice(&[0x20; 16]);
        assert!(decode_prefixes(&host, Afi::Ipv6).is_ok());
        assert!(decode_prefixes(&host, Afi::Ipv4).is_err());
    }
}
