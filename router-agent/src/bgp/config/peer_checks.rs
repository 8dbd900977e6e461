//! Checks of AS numbers and neighbor addresses that `check` (and so `run` and `reload`)
//! refuses with the key, instead of a session that can never come up.

use std::net::IpAddr;

use super::{Neighbor, PeerAddress, RemoteAsConfig};
use crate::bgp::{fsm::RemoteAs, policy::PolicyError};

/// RFC 6793: what a 2-octet speaker sees in place of a 4-octet AS; nobody's real AS.
pub const AS_TRANS: u32 = 23456;

fn refuse(key: String, reason: String) -> PolicyError {
    PolicyError { key, reason }
}

/// `bgp.asn`: neither 0 nor AS_TRANS.
pub fn local_as(asn: u32) -> Result<(), PolicyError> {
    match asn {
        0 => Err(refuse(
            "bgp.asn".into(),
            "AS 0 is reserved (RFC 7607)".into(),
        )),
        AS_TRANS => Err(refuse("bgp.asn".into(), as_trans_reason())),
        _ => Ok(()),
    }
}

/// `<key>.remote_as` of a neighbor or a dynamic range (`key` names it, `who` says which:
/// its address, interface or range).
pub fn remote_as(
    key: &str,
    who: &dyn std::fmt::Display,
    remote_as: RemoteAsConfig,
) -> Result<(), PolicyError> {
    let key = format!("{key}.remote_as");
    match remote_as.0 {
        RemoteAs::Exact(0) => Err(refuse(
            key,
            format!("{who}: AS 0 is reserved and cannot be peered with (RFC 7607)"),
        )),
        RemoteAs::Exact(AS_TRANS) => Err(refuse(key, format!("{who}: {}", as_trans_reason()))),
        _ => Ok(()),
    }
}

fn as_trans_reason() -> String {
    format!(
        "AS {AS_TRANS} is AS_TRANS (RFC 6793), a placeholder for 4-octet ASes, nobody's real \
         AS: configure the real one"
    )
}

/// `<key>.address` of a configured neighbor, against the neighbors compiled before it: not
/// IPv4-mapped (peers are seen as plain IPv4, so it would never match, and may be another
/// neighbor written twice), not link-local unless passive (connecting needs an interface;
/// a passive one takes the connection from whichever link it comes).
pub fn neighbor_address(
    key: &str,
    ip: IpAddr,
    passive: bool,
    earlier: &[Neighbor],
) -> Result<(), PolicyError> {
    let key = format!("{key}.address");
    if let IpAddr::V6(v6) = ip
        && let Some(v4) = v6.to_ipv4_mapped()
    {
        let twice = earlier
            .iter()
            .any(|other| other.address == PeerAddress::Ip(IpAddr::V4(v4)));
        let reason = if twice {
            format!("{ip} is neighbor {v4} again (IPv4-mapped): configured twice")
        } else {
            format!("{ip} is IPv4-mapped; peers are seen as plain IPv4: write {v4}")
        };
        return Err(refuse(key, reason));
    }
    if let IpAddr::V6(v6) = ip
        && v6.segments()[0] & 0xffc0 == 0xfe80
        && !passive
    {
        return Err(refuse(
            key,
            format!(
                "{ip} is link-local and needs an interface to connect on: configure \
                 interface = \"NAME\" instead of address (the neighbor's link-local address \
                 is then discovered), a global address, or passive = true"
            ),
        ));
    }
    Ok(())
}

/// `<key>.range` of a dynamic neighbor: not IPv4-mapped (connections from IPv4 peers are
/// seen as IPv4: it would never match).
pub fn dynamic_range(key: &str, range: &ipnet::IpNet) -> Result<(), PolicyError> {
    match crate::config::prefix::ipv4_mapped(range) {
        Some(reason) => Err(refuse(format!("{key}.range"), reason)),
        None => Ok(()),
    }
}

/// `bgp.originate[i].prefix`: not IPv4-mapped.
pub fn originated(originate: &[crate::bgp::policy::OriginateConfig]) -> Result<(), PolicyError> {
    for (i, entry) in originate.iter().enumerate() {
        if let Some(reason) = crate::config::prefix::ipv4_mapped(&entry.prefix) {
            return Err(refuse(format!("bgp.originate[{i}].prefix"), reason));
        }
    }
    Ok(())
}
