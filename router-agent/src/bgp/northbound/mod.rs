//! The operator's side of the speaker: configuration reload and the `show` views.

mod metrics;
mod negotiated;
mod reload;
mod reload_dynamic;
mod show;

pub use metrics::NeighborMetrics;
pub use negotiated::NegotiatedStatus;
pub use reload::ReloadSummary;
pub use show::{HoldDownStatus, NeighborStatus, PathStatusView, RouteStatus};
