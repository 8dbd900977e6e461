//! A prefix's route in the datapath and in the kernel mirror.
//!
//! Two things make the datapath route differ from the FIB's group:
//! - a route that cannot be installed in full (no group id, slot or nexthop id free, more
//!   nexthops than a group holds) is installed as `GROUP_PASS`, never left on its old version
//!   or on a covering route, and its real route still goes to the kernel mirror so the kernel
//!   forwards it. It is retried when ids or slots are released;
//! - `pass_to_kernel` prefixes: every route equal to or inside one is written as `GROUP_PASS`
//!   (the FIB keeps its real group, the mirror gets the real route), and the prefix itself is
//!   in the datapath as `GROUP_PASS`.
//!
//! Shortages are logged once per cause, then as counts, not once per prefix.

use ipnet::IpNet;
use router_common::{GROUP_LOCAL, GROUP_PASS, NEXTHOP_BUCKETS};

use super::{
    Batch, Candidate, Fib, FibError, FibOp, KernelChange, KernelMirror, NexthopSet, Source,
    is_reserved, routes::RouteEntry,
};

/// Why a route was left to the kernel (log lines start with it).
const TOO_MANY_NEXTHOPS: &str = "route with more nexthops than a group holds (64)";

fn cause_of(err: &FibError) -> &'static str {
    match err {
        FibError::Full {
            what: "nexthop groups",
            ..
        } => "no free nexthop group id",
        FibError::Full {
            what: "nexthop slots",
            ..
        } => "no free nexthop slot",
        FibError::Full {
            what: "nexthop ids",
            ..
        } => "no free nexthop id",
        FibError::Full { .. } => "FIB table full",
        FibError::TooManyNexthops { .. } => TOO_MANY_NEXTHOPS,
        FibError::NoNexthops { .. } => "route without nexthops",
    }
}

impl Fib {
    /// Whether `source`'s route for `prefix` is mirrored by policy.
    pub(super) fn mirrored(&self, source: Source, prefix: &IpNet) -> bool {
        match source {
            // Adopted routes: the kernel still holds the previous run's.
            Source::Local | Source::KernelPreferred | Source::KernelFallback | Source::Adopted => {
                false
            }
            Source::Static => true,
            Source::Bgp => match self.bgp_mirror {
                KernelMirror::All => true,
                KernelMirror::DefaultOnly => prefix.prefix_len() == 0,
                KernelMirror::None => false,
            },
        }
    }

    /// Whether the kernel holds our route for `prefix`, installed from `source`: mirrored by
    /// policy, or left to the kernel because it could not be installed here.
    pub(super) fn in_kernel(&self, source: Source, prefix: &IpNet) -> bool {
        self.mirrored(source, prefix)
            || (!self.unplaced.is_empty()
                && !source.is_kernel()
                && source != Source::Local
                && source != Source::Adopted
                && self.unplaced.contains_key(prefix))
    }

    /// What an installed prefix forwards to: its group's nexthop set, or the host, or the
    /// kernel (with the nexthops it asked for when it could not be installed).
    pub(super) fn candidate_of(&self, installed: RouteEntry, prefix: &IpNet) -> Candidate {
        match installed.group() {
            GROUP_LOCAL => Candidate::Local,
            GROUP_PASS => match self.unplaced.get(prefix) {
                Some((set, _)) => Candidate::Via(set.clone()),
                None => Candidate::Pass,
            },
            group => Candidate::Via(self.groups[&group].set.clone()),
        }
    }

    /// Whether `prefix` is inside a `pass_to_kernel` prefix.
    pub(super) fn passed(&self, prefix: &IpNet) -> bool {
        !self.pass.is_empty() && self.pass.iter().any(|pass| pass.contains(prefix))
    }

    /// The datapath op pointing `prefix` at `group`.
    pub(super) fn route_op(&self, prefix: IpNet, group: u32) -> FibOp {
        let group = if self.passed(&prefix) {
            GROUP_PASS
        } else {
            group
        };
        FibOp::SetRoute { prefix, group }
    }

    /// Points `prefix` at `source`'s `candidate`, in place of what it was installed as
    /// (`old`): the group first (make before break), then the route, then the old group's
    /// release. A candidate that cannot be had is installed as `GROUP_PASS` and mirrored.
    pub(super) fn install(
        &mut self,
        batch: &mut Batch,
        prefix: IpNet,
        source: Source,
        candidate: &Candidate,
        old: Option<RouteEntry>,
    ) {
        let was_in_kernel = old.is_some_and(|old| self.in_kernel(old.source(), &prefix));
        let old_group = old.map(RouteEntry::group);
        let leaving = old_group.filter(|group| !is_reserved(*group));
        let placed = match candidate {
            Candidate::Local => Ok(GROUP_LOCAL),
            Candidate::Pass => Ok(GROUP_PASS),
            Candidate::Via(set) if set.len() > NEXTHOP_BUCKETS => Err(TOO_MANY_NEXTHOPS),
            Candidate::Via(set) => self
                .acquire_group(batch, set, leaving)
                .map_err(|err| cause_of(&err)),
        };
        if !self.unplaced.is_empty() {
            self.unplaced.remove(&prefix);
        }
        let group = match (placed, candidate) {
            (Ok(group), _) => group,
            (Err(cause), Candidate::Via(set)) => {
                self.unplaced.insert(prefix, (set.clone(), cause));
                self.shortage(cause);
                GROUP_PASS
            }
            (Err(_), _) => unreachable!("only nexthop sets can fail"),
        };
        if old_group == Some(group) {
            // The same group: it counted this route twice now.
            if let Some(group) = leaving {
                self.release_group(batch, group);
            }
        } else {
            batch.routes.push(self.route_op(prefix, group));
            if let Some(group) = leaving {
                self.release_group(batch, group);
            }
        }
        self.routes.set(prefix, RouteEntry::new(group, source));
        match candidate {
            Candidate::Via(set) if self.in_kernel(source, &prefix) => {
                batch.kernel.push(KernelChange::Replace {
                    prefix,
                    nexthops: set.clone(),
                });
            }
            // The route the kernel held came from us and is gone now.
            _ if was_in_kernel => batch.kernel.push(KernelChange::Delete { prefix }),
            _ => {}
        }
    }

    pub(super) fn uninstall(&mut self, batch: &mut Batch, prefix: IpNet) {
        let Some(installed) = self.routes.get(&prefix) else {
            return;
        };
        let in_kernel = self.in_kernel(installed.source(), &prefix);
        self.routes.remove(&prefix);
        if !self.unplaced.is_empty() {
            self.unplaced.remove(&prefix);
        }
        // A `pass_to_kernel` prefix stays in the datapath (as GROUP_PASS already).
        if self.pass.binary_search(&prefix).is_err() {
            batch.routes.push(FibOp::DeleteRoute { prefix });
        }
        if in_kernel {
            batch.kernel.push(KernelChange::Delete { prefix });
        }
        if !is_reserved(installed.group()) {
            self.release_group(batch, installed.group());
        }
    }

    /// Tries again to install the routes left to the kernel.
    pub(super) fn retry_unplaced(&mut self, batch: &mut Batch) {
        let waiting: Vec<(IpNet, NexthopSet)> = self
            .unplaced
            .iter()
            .map(|(prefix, (set, _))| (*prefix, set.clone()))
            .collect();
        for (prefix, set) in waiting {
            let installed = self
                .routes
                .get(&prefix)
                .expect("unplaced routes are installed");
            let kernel = batch.kernel.len();
            self.install(
                batch,
                prefix,
                installed.source(),
                &Candidate::Via(set),
                Some(installed),
            );
            if self.unplaced.contains_key(&prefix) {
                // Still waiting: the kernel has that route already.
                batch.kernel.truncate(kernel);
            }
        }
    }

    /// Records a shortage: logged the first time, counted after.
    pub(super) fn shortage(&mut self, cause: &'static str) {
        let reported = self.shortages.entry(cause).or_insert(0);
        if *reported == 0 {
            tracing::error!(
                "{cause}: what it affects is left to the kernel (routes as GROUP_PASS and \
                 mirrored; stale nexthops out of their groups) and retried as ids and slots \
                 are released; logged once, counts follow"
            );
            *reported = 1;
        }
    }

    /// Logs, per cause, how many routes or nexthops wait now (when that changed), and the end
    /// of each shortage.
    pub(super) fn report_shortages(&mut self) {
        if self.shortages.is_empty() {
            return;
        }
        let mut waiting: std::collections::BTreeMap<&'static str, usize> = Default::default();
        for (_, cause) in self.unplaced.values() {
            *waiting.entry(cause).or_default() += 1;
        }
        if self.stale_nexthops > 0 {
            waiting.insert(super::nexthops::SLOTS_FOR_UPDATES, self.stale_nexthops);
        }
        self.shortages.retain(
            |cause, reported| match waiting.get(cause).copied().unwrap_or(0) {
                0 => {
                    tracing::info!("{cause}: over, nothing waits any more");
                    false
                }
                now if now != *reported => {
                    tracing::warn!("{cause}: {now} route(s) or nexthop(s) waiting");
                    *reported = now;
                    true
                }
                _ => true,
            },
        );
    }

    /// Ids or slots were freed: deferred work may fit now.
    pub(super) fn note_freed(&mut self) {
        if self.stale_nexthops > 0 || !self.unplaced.is_empty() {
            self.retry_due = true;
        }
    }

    /// Replaces the `pass_to_kernel` list, rewriting the prefixes whose datapath route changes.
    pub(super) fn change_pass(&mut self, batch: &mut Batch, prefixes: &[IpNet]) {
        let mut new: Vec<IpNet> = prefixes.iter().map(IpNet::trunc).collect();
        new.sort_unstable();
        new.dedup();
        if new == self.pass {
            return;
        }
        let old = std::mem::replace(&mut self.pass, new);
        let covered = |list: &[IpNet], prefix: &IpNet| list.iter().any(|p| p.contains(prefix));
        for (prefix, installed) in self.routes.iter() {
            let (was, now) = (covered(&old, &prefix), covered(&self.pass, &prefix));
            if was != now {
                let group = if now { GROUP_PASS } else { installed.group() };
                batch.routes.push(FibOp::SetRoute { prefix, group });
            }
        }
        // The prefixes themselves, where no route holds them.
        for prefix in &self.pass {
            if old.binary_search(prefix).is_err() && self.routes.get(prefix).is_none() {
                batch.routes.push(FibOp::SetRoute {
                    prefix: *prefix,
                    group: GROUP_PASS,
                });
            }
        }
        for prefix in &old {
            if self.pass.binary_search(prefix).is_err() && self.routes.get(prefix).is_none() {
                batch.routes.push(FibOp::DeleteRoute { prefix: *prefix });
            }
        }
    }
}
