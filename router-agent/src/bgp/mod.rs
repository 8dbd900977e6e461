//! The BGP speaker. Data flows one way:
//!
//! ```text
//!   wire ──> packet (codec) ──> fsm (session state, sans-IO) ──> rib (Adj-RIB-In, decision,
//!   Loc-RIB) ──> policy gates in and out ──> fib (Source::Bgp)
//! ```
pub mod fsm;
pub mod packet;
pub mod policy;
pub mod rib;
