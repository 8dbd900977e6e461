//! Routing policy: what a host accepts from its ToRs, and what it tells them.
//!
//! # Import
//!
//! [`ImportPolicy`] decides, per received route, whether it enters the decision process.
//! AS_PATH loop detection (our own AS in the path) is always on. The filter is a preset or a
//! prefix list; an eBGP session whose import policy is *not configured* imports nothing
//! (RFC 8212), which is distinct from a policy configured to deny everything (no log line, an
//! explicit choice). A max-prefix limit bounds what a peer can make the host store.
//!
//! # Export: never transit, by construction
//!
//! A host must never carry traffic between its ToRs, so it must never advertise a route it
//! learned. This is enforced by types, not by a filter someone could misconfigure:
//!
//! * The only way to fill an [`AdjRibOut`] is an [`ExportTarget`], and the only way to make one
//!   is [`build_adj_rib_out`] (its field is private to `policy`: `export.rs` makes it,
//!   `adj_rib_out.rs` reads it).
//! * [`build_adj_rib_out`] takes the host's [`Originated`] table, the session and the export
//!   policy. None of them can hold a learned route: an [`OriginatedRoute`] is a prefix plus
//!   communities from the configuration, with no `PathAttributes`, no `Path`, no peer; the
//!   attributes sent are built here from a fixed template (ORIGIN IGP, AS_PATH = our AS only,
//!   NEXT_HOP = our session address). Nothing of a received AS_PATH, MED or community can leak.
//! * Nothing in this module reads the RIB, and the RIB has no way to produce an
//!   `ExportTarget`. Passing a learned path where originated routes are expected does not
//!   compile:
//!
//! ```compile_fail,E0308
//! use router_agent::bgp::policy::{build_adj_rib_out, ExportPolicy, ExportSession};
//! use router_agent::bgp::rib::{Path, Rib};
//!
//! fn leak(rib: &Rib, session: &ExportSession, policy: &ExportPolicy) {
//!     let learned: Vec<Path> = rib.routes().flat_map(|r| r.paths).map(|p| p.path).collect();
//!     // Expected `&Originated`, found `&Vec<Path>`: a learned route cannot be exported.
//!     let _ = build_adj_rib_out(&learned, session, policy);
//! }
//! ```
//!
//! (Stable rustdoc does not check the error code of a `compile_fail` example; the test
//! `compile_fail_example_twin_compiles` keeps the same calls compiling with an `&Originated`,
//! so the example fails for the leak and nothing else.)
//!
//! What types cannot stop is someone writing a learned *prefix* into an `OriginatedRoute` on
//! purpose; `OriginatedRoute`s come from the origination configuration (loopbacks, service
//! VIPs), and code that builds one from a RIB route would stand out in review. A default route
//! can never be originated (it would pull every ToR's traffic through the host).
//!
//! Redistribution (`[[redistribute]]`) is the one source fed by run-time state, so it takes a
//! [`HostPrefix`], which only netlink's parsed kernel state can make: an address, a connected
//! subnet, or a kernel route that our BGP mirror did not install (`origin.rs` has the
//! `compile_fail` example). The routes we install for learned paths carry our own route
//! protocol and are refused there. A learned route with the same prefix as a host prefix is
//! still never exported: only our own origination of that prefix is, with our attributes.

mod adj_rib_out;
mod config;
mod export;
mod import;
mod origin;
#[cfg(test)]
mod origin_tests;
mod origins;
mod prefix_list;
#[cfg(test)]
mod tests;

pub use adj_rib_out::*;
pub use config::*;
pub use export::*;
pub use import::*;
pub use origin::*;
pub use origins::*;
pub use prefix_list::*;

/// A configuration error, naming the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct PolicyError {
    pub key: String,
    pub reason: String,
}

impl PolicyError {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}
