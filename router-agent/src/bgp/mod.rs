//! The BGP speaker. Data flows one way:
//!
//! ```text
//!   wire ──> packet (codec) ──> fsm (session state, sans-IO) ──> rib (Adj-RIB-In, decision,
//!   Loc-RIB) ──> policy gates in and out ──> fib (Source::Bgp)
//! ```
pub mod auth;
pub mod config;
mod convert;
pub mod discovery;
pub mod drain;
pub mod fsm;
pub mod graceful_restart;
pub mod gtsm_filter;
pub mod next_hop_out;
pub mod northbound;
pub mod packet;
pub mod peer;
pub mod policy;
pub mod rib;
pub mod route_source;
pub mod session_socket;
pub mod southbound;
pub mod speaker;
pub mod tcp_ao;
pub mod ttl_security;
mod unusable_log;
pub mod updates_out;

/// Refuses session keys the listening socket could not hold together (overlapping scopes,
/// TCP MD5 beside TCP-AO for the same peer, link-local peers with different keys): part of
/// `check`, beside [`config::BgpConfig::compile`], which knows nothing of sockets.
pub fn check_listener_keys(setup: &config::BgpSetup) -> Result<(), policy::PolicyError> {
    auth::listener_keys(setup)?;
    tcp_ao::listener_keys(setup)?;
    Ok(())
}
