//! DNS check: one hand-rolled query over a `connect()`ed UDP socket (only the server's answers
//! reach it), a random ID; passes on RCODE NOERROR with at least one answer.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer, de};

use super::error::CheckError;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DnsCheckConfig {
    pub server: SocketAddr,
    pub name: String,
    #[serde(rename = "type", default)]
    pub record_type: RecordType,
}

/// A query type, by its number (`type = "AAAA"` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordType(pub u16);

const TYPES: [(&str, u16); 9] = [
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("PTR", 12),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
    ("SRV", 33),
];

impl Default for RecordType {
    fn default() -> Self {
        RecordType(1)
    }
}

impl RecordType {
    pub fn name(self) -> String {
        TYPES
            .iter()
            .find(|(_, n)| *n == self.0)
            .map_or_else(|| format!("TYPE{}", self.0), |(name, _)| (*name).to_owned())
    }
}

impl<'de> Deserialize<'de> for RecordType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        TYPES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&text))
            .map(|(_, n)| RecordType(*n))
            .ok_or_else(|| {
                let known: Vec<&str> = TYPES.iter().map(|(name, _)| *name).collect();
                de::Error::custom(format!("{text:?}: one of {}", known.join(", ")))
            })
    }
}

/// `name` in wire form (labels, then the root); at most 255 bytes, labels 1-63.
pub fn encode_name(name: &str) -> Result<Vec<u8>, String> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let mut wire = Vec::with_capacity(trimmed.len() + 2);
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(format!("{name:?}: labels are 1-63 characters"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            {
                return Err(format!("{name:?}: not a host name"));
            }
            wire.push(label.len() as u8);
            wire.extend_from_slice(label.as_bytes());
        }
    }
    wire.push(0);
    if wire.len() > 255 {
        return Err(format!("{name:?}: longer than 255 bytes"));
    }
    Ok(wire)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsCheck {
    pub server: SocketAddr,
    pub name: String,
    pub record_type: RecordType,
    wire_name: Vec<u8>,
}

impl DnsCheck {
    pub fn from_config(config: &DnsCheckConfig) -> Result<Self, String> {
        Ok(DnsCheck {
            server: config.server,
            name: config.name.clone(),
            record_type: config.record_type,
            wire_name: encode_name(&config.name)?,
        })
    }

    pub async fn probe(&self) -> Result<(), CheckError> {
        let local: SocketAddr = if self.server.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let socket = tokio::net::UdpSocket::bind(local)
            .await
            .map_err(CheckError::connect)?;
        socket
            .connect(self.server)
            .await
            .map_err(CheckError::connect)?;
        let id: u16 = rand::random();
        socket
            .send(&self.query(id))
            .await
            .map_err(CheckError::connect)?;
        let mut buffer = [0u8; 1500];
        loop {
            let read = socket
                .recv(&mut buffer)
                .await
                .map_err(CheckError::connect)?;
            match parse_answer(&buffer[..read], id) {
                // A late answer to someone else's query: keep waiting for ours.
                Err(Unanswered::OtherId) => continue,
                Err(Unanswered::Check(error)) => return Err(error),
                Ok(()) => return Ok(()),
            }
        }
    }

    fn query(&self, id: u16) -> Vec<u8> {
        let mut query = Vec::with_capacity(12 + self.wire_name.len() + 4);
        query.extend_from_slice(&id.to_be_bytes());
        query.extend_from_slice(&[0x01, 0x00]); // RD
        query.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1
        query.extend_from_slice(&self.wire_name);
        query.extend_from_slice(&self.record_type.0.to_be_bytes());
        query.extend_from_slice(&[0, 1]); // IN
        query
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Unanswered {
    OtherId,
    Check(CheckError),
}

fn garbage(what: &str) -> Unanswered {
    Unanswered::Check(CheckError::DnsGarbage(what.to_owned()))
}

/// Judges a datagram as the answer to query `id`: only enough of it is parsed to tell an
/// answer from garbage (header, the question echoed, each answer record's bounds).
pub fn parse_answer(packet: &[u8], id: u16) -> Result<(), Unanswered> {
    if packet.len() < 12 {
        return Err(garbage("shorter than a header"));
    }
    if u16::from_be_bytes([packet[0], packet[1]]) != id {
        return Err(Unanswered::OtherId);
    }
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    if flags & 0x8000 == 0 {
        return Err(garbage("a query, not a response"));
    }
    let rcode = (flags & 0x000f) as u8;
    if rcode != 0 {
        return Err(Unanswered::Check(CheckError::DnsRcode(rcode)));
    }
    let count = |at: usize| u16::from_be_bytes([packet[at], packet[at + 1]]);
    let (questions, answers) = (count(4), count(6));
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(packet, at).ok_or_else(|| garbage("question name"))? + 4;
        if at > packet.len() {
            return Err(garbage("question cut short"));
        }
    }
    if answers == 0 {
        return Err(Unanswered::Check(CheckError::DnsNoAnswer));
    }
    // TC with answers present: what came is an answer; the check asks for no more.
    for _ in 0..answers {
        at = skip_name(packet, at).ok_or_else(|| garbage("answer name"))?;
        if at + 10 > packet.len() {
            return Err(garbage("answer cut short"));
        }
        let length = count(at + 8) as usize;
        at += 10 + length;
        if at > packet.len() {
            return Err(garbage("answer data cut short"));
        }
    }
    Ok(())
}

/// Past a (possibly compressed) name starting at `at`.
fn skip_name(packet: &[u8], mut at: usize) -> Option<usize> {
    for _ in 0..128 {
        let length = *packet.get(at)? as usize;
        match length {
            0 => return Some(at + 1),
            // A pointer ends the name here (where it points is not needed).
            l if l & 0xc0 == 0xc0 => return (at + 2 <= packet.len()).then_some(at + 2),
            l if l & 0xc0 != 0 => return None,
            l => at += 1 + l,
        }
    }
    None
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
