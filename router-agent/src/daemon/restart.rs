//! Restarts without losing a packet: adopting the previous run's datapath at start, ending
//! the adoption, and the planned restart (`--keep-datapath` SIGTERM, `router-agent restart`).
//!
//! ```text
//!   planned restart: GR stop of the sessions, queued kernel writes done, STAMP = restarting,
//!                    exit (or re-exec) leaving program, maps and kernel routes forwarding
//!   next start:      STAMP ok -> previous BGP routes adopted (same layouts, same seed),
//!                    no flush of our kernel routes; peers' End-of-RIBs sweep them
//!   adoption over:   no adopted route left, or the selection deferral ran out (the rest swept):
//!                    kernel routes of our protocol the FIB does not mirror are flushed
//! ```

use std::{
    ffi::OsString,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Result;

use super::Agent;
use crate::{
    datapath::adopt::{Adoption, PreviousDatapath},
    fib::{Batch, KernelChange},
};

/// How the event loop ended, and so what shutdown does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Sessions closed with a Cease, program detached, maps unpinned, kernel routes removed.
    Stop,
    /// Everything left forwarding for the next run to adopt.
    PlannedRestart,
    /// A planned restart, then this process becomes the new agent (`router-agent restart`).
    ReExec,
}

/// The command line the agent was started with, resolved at start: a restart runs the binary
/// at that path (an upgraded one if it was replaced since) with the same arguments.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub exe: PathBuf,
    pub args: Vec<OsString>,
}

impl Invocation {
    pub fn current() -> Result<Self> {
        Ok(Self {
            exe: std::env::current_exe()?,
            args: std::env::args_os().skip(1).collect(),
        })
    }

    /// Replaces this process with a new agent (same PID: a service manager keeps tracking
    /// it). Returns only on failure.
    pub fn exec(&self) -> anyhow::Error {
        use std::os::unix::process::CommandExt;
        tracing::info!(exe = %self.exe.display(), "restarting: executing the agent again");
        let err = std::process::Command::new(&self.exe)
            .args(&self.args)
            .exec();
        anyhow::anyhow!("executing {} again: {err}", self.exe.display())
    }
}

/// An adoption in progress: adopted routes wait for their peers' End-of-RIB until `deadline`.
pub(super) struct AdoptionProgress {
    started: Instant,
    deadline: Instant,
}

/// What the pin directory allows: an adoption, or a cold start (logged once, with why).
pub(super) fn previous_datapath(pin_dir: &std::path::Path) -> Option<Adoption> {
    match crate::datapath::adopt::read_previous(pin_dir) {
        PreviousDatapath::None => {
            tracing::info!(
                pin_dir = %pin_dir.display(),
                "no previous datapath pinned: cold start"
            );
            None
        }
        PreviousDatapath::Refused(reason) => {
            tracing::warn!(
                pin_dir = %pin_dir.display(),
                "cold start: not adopting the previous datapath: {reason}"
            );
            None
        }
        PreviousDatapath::Adoptable(adoption) => Some(adoption),
    }
}

impl Agent {
    /// Puts the previous run's BGP routes into the FIB (after the kernel's links and
    /// neighbors, so that their groups start with the previous layout over resolved
    /// nexthops), and starts the adoption's clock.
    pub(super) fn adopt(&mut self, batch: &mut Batch, adoption: &Adoption, deferral: Duration) {
        let mut by_group: Vec<Vec<ipnet::IpNet>> = vec![Vec::new(); adoption.groups.len()];
        for (prefix, group) in &adoption.routes {
            by_group[*group].push(*prefix);
        }
        let mut failed = 0;
        let mut first_error = None;
        for (group, prefixes) in adoption.groups.iter().zip(&by_group) {
            let before = self.fib.adopted_route_count();
            if let Err(err) = self.fib.adopt_routes(batch, group, prefixes) {
                failed += prefixes.len() - (self.fib.adopted_route_count() - before);
                first_error.get_or_insert(err);
            }
        }
        if let Some(err) = first_error {
            // The kernel still holds those routes: it forwards them until the peers are back.
            tracing::error!(
                failed,
                "adopted routes left to the kernel (first: {err}); logged once"
            );
        }
        tracing::info!(
            adopted = self.fib.adopted_route_count(),
            groups = adoption.groups.len(),
            rebuilt = adoption.not_bgp,
            previous = adoption.previous_state(),
            flow_hash_seed = adoption.stamp.flow_hash_seed,
            "adopted the previous datapath"
        );
        let now = Instant::now();
        self.adoption = Some(AdoptionProgress {
            started: now,
            deadline: now + deferral,
        });
    }

    /// Ends the adoption once no adopted route is left, or at the selection deferral
    /// (sweeping what is left): then the kernel routes of our protocol the FIB does not
    /// mirror (the previous run's) are flushed.
    pub(super) async fn check_adoption(&mut self, now: Instant) {
        let Some((started, deadline)) = self.adoption.as_ref().map(|p| (p.started, p.deadline))
        else {
            return;
        };
        if self.fib.adopted_route_count() > 0 {
            if now < deadline {
                return;
            }
            let mut batch = Batch::default();
            let swept = self.fib.sweep_adopted(&mut batch, None, None);
            tracing::warn!(
                swept,
                "selection deferral over: the adopted routes left are swept"
            );
            self.commit(batch).await;
        }
        let took = now.duration_since(started);
        self.adoption = None;
        tracing::info!(took = ?took, "adoption over");
        if self.config.datapath.kernel_routes {
            self.find_kernel_leftovers();
        }
    }

    /// Starts listing our protocol's kernel routes in the background: with a full table the
    /// dump takes seconds, which the event loop must not wait for. What it finds arrives in
    /// [`Agent::remove_kernel_leftovers`].
    fn find_kernel_leftovers(&mut self) {
        let (found, receiver) = tokio::sync::oneshot::channel();
        let netlink = self.netlink.clone();
        let protocol = self.config.datapath.route_protocol;
        tokio::spawn(async move {
            let _ = found.send(netlink.route_prefixes_of(protocol).await);
        });
        self.kernel_leftovers = Some(receiver);
    }

    /// Deletes the kernel routes of our protocol the FIB does not hold there (the previous
    /// run's), judged now rather than when they were listed, and through the kernel writer's
    /// queue: after what it applies before, before what it applies after, so a route this run
    /// installed meanwhile is never deleted.
    pub(super) async fn remove_kernel_leftovers(&mut self, found: Result<Vec<ipnet::IpNet>>) {
        let prefixes = match found {
            Ok(prefixes) => prefixes,
            Err(err) => {
                tracing::error!("listing a previous run's kernel routes: {err:#}");
                return;
            }
        };
        let deletes: Vec<KernelChange> = prefixes
            .into_iter()
            .filter(|prefix| !self.fib.holds_in_kernel(prefix))
            .map(|prefix| KernelChange::Delete { prefix })
            .collect();
        if deletes.is_empty() {
            return;
        }
        tracing::info!(
            stale = deletes.len(),
            "removing kernel routes a previous run left behind"
        );
        match &self.kernel_mirror {
            Some(mirror) => mirror.submit(deletes).await,
            // Nothing of this run is written to the kernel: no order to keep.
            None => self.flush_kernel_leftovers().await,
        }
    }

    /// Removes the kernel routes of our protocol that the FIB does not mirror: a previous
    /// run's (crashed, upgraded, or a config that dropped them).
    pub(super) async fn flush_kernel_leftovers(&mut self) {
        let protocol = self.config.datapath.route_protocol;
        let mirrored = self.fib.mirrored_prefixes().collect();
        match self.netlink.flush_routes_except(protocol, &mirrored).await {
            Ok(0) => {}
            Ok(stale) => tracing::info!(stale, "removed kernel routes a previous run left behind"),
            Err(err) => tracing::error!("flushing a previous run's kernel routes: {err:#}"),
        }
    }

    /// `show status`'s view of the adoption.
    pub(super) fn adoption_status(&self) -> serde_json::Value {
        match &self.adoption {
            None => serde_json::json!({ "adopting": false, "adopted_routes": 0 }),
            Some(progress) => serde_json::json!({
                "adopting": true,
                "adopted_routes": self.fib.adopted_route_count(),
                "deferral_left_secs": progress
                    .deadline
                    .saturating_duration_since(Instant::now())
                    .as_secs_f64(),
            }),
        }
    }

    /// A planned restart: sessions end the graceful restart way, the kernel writer finishes
    /// what is queued, and the stamp tells the next run to adopt. Program, maps and kernel
    /// routes stay.
    pub(super) async fn leave_for_restart(&mut self) {
        if let Some(speaker) = &self.speaker {
            speaker.graceful_stop();
            // Let the sessions send what ends them before the process ends.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if let Some(mirror) = self.kernel_mirror.take() {
            let _ = tokio::task::spawn_blocking(move || mirror.finish(true)).await;
        }
        match self.datapath.mark_restarting() {
            Ok(()) => tracing::info!(
                "planned restart: the XDP program, pinned maps and kernel routes keep \
                 forwarding; the next start adopts them"
            ),
            // The stamp still says running: the next start adopts all the same.
            Err(err) => tracing::error!("planned restart: stamp not updated: {err:#}"),
        }
    }
}
