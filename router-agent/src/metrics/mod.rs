//! `[metrics] listen`: the agent's state in the Prometheus text format, collected at scrape
//! time. The event loop hands a [`Snapshot`] of what it owns (the `show` views, FIB counts,
//! kernel mirror counters); the scrape reads the XDP counters from the pinned per-CPU maps
//! and the process's own numbers from /proc, off the event loop.
//!
//! ```text
//!   GET /metrics ──> http.rs ──SnapshotRequest──> event loop ──Snapshot──> render()
//!                                   pinned maps (xdp.rs), /proc (process.rs) ──┘
//! ```
//! Every scrape builds a fresh registry: a neighbor or nexthop that went away leaves no
//! series behind.

mod bfd;
mod bgp;
mod config;
mod exposition;
mod fib;
mod http;
mod process;
mod services;
mod text_format;
mod xdp;

use std::path::Path;

pub use config::MetricsConfig;
pub use http::{Endpoint, serve};

use crate::{
    bfd::show::SessionStatus, bgp::northbound::NeighborMetrics, fib::FibCensus,
    services::show::ServiceView,
};

/// What the event loop owns, as a scrape needs it.
#[derive(Default)]
pub struct Snapshot {
    /// Empty without `[bgp]`.
    pub neighbors: Vec<NeighborMetrics>,
    pub fib: FibCensus,
    /// Batches of FIB changes written to the datapath.
    pub batches_applied: u64,
    /// None: `datapath.kernel_routes` is off.
    pub kernel_mirror: Option<KernelMirrorCounts>,
    pub bfd: Vec<SessionStatus>,
    pub services: Vec<ServiceView>,
    /// The FIB's nexthops: whose XDP counters to read, and their labels.
    pub nexthops: Vec<NexthopLabel>,
}

/// A nexthop as its series are labelled.
#[derive(Clone, Debug)]
pub struct NexthopLabel {
    /// Its index in `NEXTHOP_STATS`.
    pub id: u32,
    pub via: std::net::IpAddr,
    pub interface: String,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct KernelMirrorCounts {
    pub queued_changes: u64,
    pub applied_changes: u64,
    pub failed_changes: u64,
}

/// The exposition of `snapshot` plus the XDP counters of the datapath pinned in `pin_dir`
/// and this process's numbers, in the Prometheus text format (0.0.4, which `promtool check
/// metrics` reads; Prometheus reads it too).
pub fn render(snapshot: &Snapshot, pin_dir: &Path) -> String {
    render_with(snapshot, xdp::read(pin_dir, &snapshot.nexthops).as_ref())
}

/// [`render`] with the XDP counters already read (None: unreadable).
fn render_with(snapshot: &Snapshot, xdp_counters: Option<&xdp::XdpCounters>) -> String {
    let mut exposition = exposition::Exposition::default();
    bgp::record(&mut exposition, &snapshot.neighbors);
    fib::record(&mut exposition, snapshot);
    xdp::record(&mut exposition, xdp_counters, snapshot);
    bfd::record(&mut exposition, &snapshot.bfd);
    services::record(&mut exposition, &snapshot.services);
    process::record(&mut exposition);
    exposition.build_info();
    text_format::openmetrics_to_prometheus(&exposition.encode())
}

#[cfg(test)]
mod tests;
