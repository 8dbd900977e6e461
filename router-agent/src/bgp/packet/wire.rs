//! Bounds-checked reading of wire bytes, and the AFI/SAFI numbers.
//!
//! Every accessor returns `None` when the input is too short instead of panicking, so a
//! malformed message can only ever turn into a NOTIFICATION or an RFC 7606 outcome, never a
//! crash. (`bytes::Buf` panics on underflow, which is why decoding does not use it.)

use std::net::{Ipv4Addr, Ipv6Addr};

use super::types::{Afi, Safi};

/// A cursor over a received byte slice.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if len > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(len);
        self.buf = tail;
        Some(head)
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[byte]| byte)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn ipv4(&mut self) -> Option<Ipv4Addr> {
        self.array::<4>().map(Ipv4Addr::from)
    }

    pub(crate) fn ipv6(&mut self) -> Option<Ipv6Addr> {
        self.array::<16>().map(Ipv6Addr::from)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|bytes| bytes.try_into().ok())
    }
}

/// AFI as carried on the wire (RFC 4760, IANA "Address Family Numbers").
pub(crate) fn afi_from_wire(value: u16) -> Option<Afi> {
    match value {
        1 => Some(Afi::Ipv4),
        2 => Some(Afi::Ipv6),
        _ => None,
    }
}

/// SAFI as carried on the wire. It is one octet in MP_REACH_NLRI / MP_UNREACH_NLRI and the
/// multiprotocol capability, two octets in the extended next hop capability (RFC 8950).
pub(crate) fn safi_from_wire(value: u16) -> Option<Safi> {
    match value {
        1 => Some(Safi::Unicast),
        _ => None,
    }
}

/// Human-readable family name for logs and NOTIFICATION texts ("IPv4 unicast").
pub(crate) fn family_name(afi: Afi, safi: Safi) -> String {
    let afi = match afi {
        Afi::Ipv4 => "IPv4",
        Afi::Ipv6 => "IPv6",
    };
    let safi = match safi {
        Safi::Unicast => "unicast",
    };
    format!("{afi} {safi}")
}

/// `bytes` as lowercase hex, for reasons and logs about malformed input.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_returns_none_instead_of_panicking_on_short_input() {
        let mut reader = Reader::new(&[1, 2, 3]);
        assert_eq!(reader.u16(), Some(0x0102));
        assert_eq!(reader.u16(), None);
        assert_eq!(reader.u32(), None);
        assert_eq!(reader.take(2), None);
        assert_eq!(reader.u8(), Some(3));
        assert_eq!(reader.u8(), None);
        assert!(reader.is_empty());
    }

    #[test]
    fn afi_and_safi_numbers() {
        assert_eq!(afi_from_wire(1), Some(Afi::Ipv4));
        assert_eq!(afi_from_wire(2), Some(Afi::Ipv6));
        assert_eq!(afi_from_wire(25), None);
        assert_eq!(safi_from_wire(1), Some(Safi::Unicast));
        assert_eq!(safi_from_wire(128), None);
    }
}
