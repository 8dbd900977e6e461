//! The FIB per family, the batches written to the datapath, and the kernel mirror's queue.

use super::{
    Snapshot,
    exposition::{Exposition, count, set},
};

const FAMILIES: [&str; 2] = ["ipv4", "ipv6"];

pub fn record(out: &mut Exposition, snapshot: &Snapshot) {
    let routes = out.gauge(
        "hostrouter_fib_routes",
        "Routes in the FIB, by address family of the prefix",
    );
    let groups = out.gauge(
        "hostrouter_fib_groups",
        "Nexthop groups, by address family of their next hops",
    );
    let nexthops = out.gauge(
        "hostrouter_fib_nexthops",
        "Nexthops, by address family of the next hop",
    );
    let unplaced = out.gauge(
        "hostrouter_fib_unplaced_routes",
        "Routes left to the kernel because they did not fit the datapath's tables",
    );
    let batches = out.counter(
        "hostrouter_fib_batches_applied",
        "Batches of FIB changes written to the datapath",
    );
    let fib = &snapshot.fib;
    for (i, family) in FAMILIES.iter().enumerate() {
        let labels = || vec![("family", (*family).to_owned())];
        set(&routes, labels(), fib.routes[i] as f64);
        set(&groups, labels(), fib.groups[i] as f64);
        set(&nexthops, labels(), fib.nexthops[i] as f64);
    }
    set(&unplaced, Vec::new(), fib.unplaced as f64);
    count(&batches, Vec::new(), snapshot.batches_applied as f64);

    let enabled = out.gauge(
        "hostrouter_kernel_mirror_enabled",
        "1 when routes are mirrored into the kernel's table (datapath.kernel_routes)",
    );
    let queued = out.gauge(
        "hostrouter_kernel_mirror_queue_depth",
        "Route changes waiting to be written into the kernel's table",
    );
    let applied = out.counter(
        "hostrouter_kernel_mirror_changes_applied",
        "Route changes written into the kernel's table (refused ones included)",
    );
    let failed = out.counter(
        "hostrouter_kernel_mirror_failures",
        "Route changes the kernel refused, or that a failed write left out",
    );
    let mirror = snapshot.kernel_mirror.unwrap_or_default();
    let on = snapshot.kernel_mirror.is_some();
    set(&enabled, Vec::new(), f64::from(u8::from(on)));
    set(&queued, Vec::new(), mirror.queued_changes as f64);
    count(&applied, Vec::new(), mirror.applied_changes as f64);
    count(&failed, Vec::new(), mirror.failed_changes as f64);
}
