//! The benchmark's route tables, destinations and frames.
//!
//! Tables come from `router_agent::fib::synthetic` (shaped like the Internet's, all in
//! forwardable unicast space, so that every destination drawn inside a prefix is one the XDP
//! program forwards). Same seed, same table.

use std::net::{Ipv4Addr, Ipv6Addr};

pub use router_agent::fib::synthetic::Table;

pub const INGRESS_DST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0xaa, 0x01];
const SENDER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x55, 0x01];
/// UDP payload: the IPv4 frame is 60 bytes, the smallest Ethernet frame (without FCS).
const PAYLOAD: usize = 18;

/// Ethernet + IPv4 (valid checksum) + UDP: what a sender would put on the wire.
pub fn ipv4_udp(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, ports: (u16, u16)) -> Vec<u8> {
    let total = 20 + 8 + PAYLOAD;
    let mut frame = Vec::with_capacity(14 + total);
    frame.extend_from_slice(&INGRESS_DST_MAC);
    frame.extend_from_slice(&SENDER_MAC);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&[0x45, 0x00]);
    frame.extend_from_slice(&(total as u16).to_be_bytes());
    // Identification, don't fragment, TTL, UDP, checksum (filled below).
    frame.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, ttl, 17, 0, 0]);
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(&dst.octets());
    let checksum = ipv4_checksum(&frame[14..34]);
    frame[24..26].copy_from_slice(&checksum.to_be_bytes());
    frame.extend_from_slice(&ports.0.to_be_bytes());
    frame.extend_from_slice(&ports.1.to_be_bytes());
    frame.extend_from_slice(&((8 + PAYLOAD) as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.resize(14 + total, 0xab);
    frame
}

/// Ethernet + IPv6 + UDP.
pub fn ipv6_udp(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, ports: (u16, u16)) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + 40 + 8 + PAYLOAD);
    frame.extend_from_slice(&INGRESS_DST_MAC);
    frame.extend_from_slice(&SENDER_MAC);
    frame.extend_from_slice(&[0x86, 0xdd]);
    frame.extend_from_slice(&[0x60, 0x01, 0x23, 0x45]);
    frame.extend_from_slice(&((8 + PAYLOAD) as u16).to_be_bytes());
    frame.push(17);
    frame.push(hop_limit);
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(&dst.octets());
    frame.extend_from_slice(&ports.0.to_be_bytes());
    frame.extend_from_slice(&ports.1.to_be_bytes());
    frame.extend_from_slice(&((8 + PAYLOAD) as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.resize(14 + 40 + 8 + PAYLOAD, 0xcd);
    frame
}

/// A broadcast ARP request: the program's cheapest path (not IP: straight to the kernel).
pub fn arp() -> Vec<u8> {
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&SENDER_MAC);
    frame.extend_from_slice(&[0x08, 0x06]);
    frame.resize(60, 0);
    frame
}

/// RFC 1071 checksum of an IPv4 header (checksum field zero).
fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_well_formed() {
        let frame = ipv4_udp(
            "10.0.0.1".parse().unwrap(),
            "198.51.100.9".parse().unwrap(),
            64,
            (1, 2),
        );
        assert_eq!(frame.len(), 60);
        assert_eq!(ipv4_checksum(&frame[14..34]), 0);
        let frame = ipv6_udp(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            64,
            (1, 2),
        );
        assert_eq!(frame.len(), 14 + 40 + 8 + PAYLOAD);
    }
}
