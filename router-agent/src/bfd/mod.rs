//! Bidirectional Forwarding Detection: RFC 5880, single-hop over IPv4/IPv6 (RFC 5881).
//!
//! Layers, one way like BGP's: wire ([`packet`]) -> session ([`session`], sans-IO).
pub mod packet;
pub mod session;
