//! `router-agent run`: wires the sources (config, kernel state) to the FIB, the FIB to the
//! datapath and the kernel's routing table, and keeps them in step until told to stop.

mod bfd;
mod drain;
mod failed_start;
mod kernel_events;
mod redistribute;
mod reload;
mod restart;
mod service_status;
mod services;
mod startup;
mod static_routes;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::{IpAddr, Ipv6Addr},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use ipnet::IpNet;
use router_common::LookupEngine;
use tokio::{signal::unix::SignalKind, sync::mpsc::UnboundedReceiver};

use crate::{
    bgp::{peer::PeerEvent, speaker::Speaker},
    config::{Config, EngineChoice},
    datapath::Datapath,
    fib::{Batch, Fib},
    kernel_mirror::{self, KernelMirror},
    kernel_routes::{KernelRoutes, LocalRoutes},
    netlink::{KernelEvent, Netlink},
};

pub use restart::{Exit, Invocation};
use static_routes::resolve_next_hop;

/// Datapath operations one commit gathers from queued BGP events before it applies them. The
/// datapath writes batches of this size at full speed (see BENCHMARKS.md, route programming).
pub const MAX_BGP_BATCH_OPS: usize = 32_768;

pub struct RunOptions {
    /// SIGTERM / SIGINT is a planned restart: program, maps and kernel routes are left
    /// forwarding, for the next start to adopt.
    pub keep_datapath: bool,
    /// The configuration file, re-read on `reload` (SIGHUP, or `router-agent reload`).
    pub config_path: std::path::PathBuf,
}

pub fn lookup_engine(choice: EngineChoice) -> LookupEngine {
    match choice {
        EngineChoice::Auto | EngineChoice::LpmTrie => LookupEngine::LpmTrie,
        EngineChoice::Dir24 => LookupEngine::Dir24,
        EngineChoice::Kernel => LookupEngine::Kernel,
        EngineChoice::Dxr => LookupEngine::Dxr,
    }
}

/// Everything the running agent owns.
struct Agent {
    config: Config,
    fib: Fib,
    datapath: Datapath,
    netlink: Netlink,
    /// Writes our routes into the kernel's FIB (`datapath.kernel_routes`).
    kernel_mirror: Option<KernelMirror>,
    /// Configured interfaces by ifindex.
    interfaces: BTreeMap<u32, String>,
    /// Local addresses by (ifindex, address): several interfaces may carry one address.
    local_addresses: HashMap<IpNet, BTreeSet<u32>>,
    /// Connected subnets and their interface: where directly connected next hops are.
    connected: BTreeMap<(IpNet, u32), usize>,
    /// Our IPv6 link-local addresses by interface: the link-local next hop BGP sends there.
    link_locals: BTreeMap<u32, BTreeSet<Ipv6Addr>>,
    /// The kernel's own routes (`datapath.follow_kernel_routes`).
    kernel_routes: KernelRoutes,
    /// The kernel's local table: the FIB's local routes.
    local_routes: LocalRoutes,
    /// STALE neighbors on attached interfaces XDP sends to: the kernel is asked to confirm
    /// them at the next commit.
    unconfirmed_neighbors: Vec<(u32, IpAddr)>,
    speaker: Option<Speaker>,
    /// The previous run's routes still being adopted (`restart.rs`).
    adoption: Option<restart::AdoptionProgress>,
    /// Our protocol's kernel routes, being listed once an adoption is over (see
    /// `restart.rs`).
    kernel_leftovers: Option<tokio::sync::oneshot::Receiver<Result<Vec<IpNet>>>>,
    /// The BFD thread and its sessions (`bfd.rs`).
    bfd: bfd::BfdClient,
    /// `[[redistribute]]`: the host's routes and addresses to announce (`redistribute.rs`).
    redistributor: crate::redistribute::Redistributor,
    /// The kernel tables netlink observes (set at start; a reload cannot widen them).
    observed_tables: BTreeSet<u32>,
    /// When redistributed changes may next go to the speaker (`redistribute.rs`).
    redistribute_pacing: redistribute::Pacing,
    /// `[[service]]`: the checks thread and the VIPs assigned (`services.rs`).
    services: Option<services::Services>,
}

/// The signals the daemon acts on, registered first thing: one arriving during start-up
/// (a service manager's reload right after start) is acted on once the event loop runs,
/// instead of killing the process by its default action.
struct Signals {
    hangup: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> Result<Self> {
        let signal = |kind| tokio::signal::unix::signal(kind).context("registering signals");
        Ok(Self {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }
}

/// Runs the agent until it is told to stop or restart; says which (`Exit::ReExec`: the
/// caller executes the agent again).
pub async fn run(config: Config, options: RunOptions) -> Result<Exit> {
    let mut signals = Signals::register()?;
    // Before anything is touched: a second agent on the same socket must not take over.
    let claim = crate::control::claim(&config.control)?;
    let startup::Started {
        mut agent,
        mut events,
        mut bgp_events,
    } = startup::start(config).await?;

    let mut control = match crate::control::serve(&agent.config.control.socket, &claim) {
        Ok(control) => control,
        Err(err) => {
            let adopting = agent.adoption.is_some();
            agent.abandon_start(adopting).await;
            return Err(err);
        }
    };
    let mut bfd_changes = agent.bfd.take_changes();
    agent.sync_bfd();
    if let Err(err) = agent.start_services().await {
        let adopting = agent.adoption.is_some();
        agent.abandon_start(adopting).await;
        return Err(err);
    }
    // Only now, not before: XDP attached, FIB programmed, control socket up (systemd.rs).
    crate::systemd::ready(&agent.ready_status());
    let exit = agent
        .event_loop(
            &mut events,
            bgp_events.as_mut(),
            &mut bfd_changes,
            &mut control,
            &options,
            &mut signals,
        )
        .await?;
    match exit {
        // The new process (same PID) says READY=1 once it has adopted the datapath.
        Exit::ReExec => crate::systemd::reloading("restarting in place"),
        Exit::PlannedRestart => crate::systemd::stopping("planned restart: datapath kept"),
        Exit::Stop => crate::systemd::stopping("stopping: datapath removed"),
    }
    let _ = std::fs::remove_file(&agent.config.control.socket);
    agent.shutdown(exit).await?;
    Ok(exit)
}

impl Agent {
    /// Applies a batch to the datapath, then mirrors routes into the kernel and asks it to
    /// resolve new nexthops.
    async fn commit(&mut self, batch: Batch) {
        for (ifindex, addr) in std::mem::take(&mut self.unconfirmed_neighbors) {
            // Gone meanwhile (ENOENT) is fine: nothing to confirm.
            if let Err(err) = self.netlink.confirm_neighbor(ifindex, addr).await {
                tracing::debug!(%addr, ifindex, "neighbor confirmation: {err:#}");
            }
        }
        if batch.is_empty() {
            return;
        }
        if let Err(err) = self.datapath.apply(&batch) {
            tracing::error!("datapath update incomplete: {err:#}");
        }
        if let Some(mirror) = &self.kernel_mirror {
            mirror.submit(batch.kernel).await;
        }
        for key in &batch.resolve {
            if let Err(err) = self.netlink.resolve(key.ifindex, key.via).await {
                tracing::warn!(via = %key.via, "neighbor resolution: {err:#}");
            }
        }
    }

    async fn event_loop(
        &mut self,
        events: &mut UnboundedReceiver<KernelEvent>,
        mut bgp_events: Option<&mut UnboundedReceiver<PeerEvent>>,
        bfd_changes: &mut UnboundedReceiver<crate::bfd::runtime::StateChange>,
        control: &mut UnboundedReceiver<crate::control::ControlRequest>,
        options: &RunOptions,
        signals: &mut Signals,
    ) -> Result<Exit> {
        let mut service_events = self.take_service_events();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        // The kernel's forwarding switches are re-read every second (no notification needed).
        let mut switches_checked = Instant::now();
        loop {
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else {
                        bail!("rtnetlink connection closed");
                    };
                    let mut batch = Batch::default();
                    let is_address = |event: &KernelEvent| {
                        matches!(event, KernelEvent::Address(_) | KernelEvent::AddressRemoved(_))
                    };
                    let mut addresses_changed = is_address(&event);
                    let mut links_down: Vec<_> = self.link_down(&event).into_iter().collect();
                    self.on_kernel_event(&mut batch, event);
                    // Drain what else is queued: one commit for a burst of changes.
                    while let Ok(event) = events.try_recv() {
                        addresses_changed |= is_address(&event);
                        links_down.extend(self.link_down(&event));
                        self.on_kernel_event(&mut batch, event);
                    }
                    // Once per burst: a whole burst of workload routes is one re-export.
                    self.redistribute_paced();
                    if let Some(speaker) = self.speaker.as_mut() {
                        for link in &links_down {
                            speaker.link_down(link);
                        }
                    }
                    if addresses_changed && let Some(speaker) = self.speaker.as_mut() {
                        // BGP next hops may have become (or stopped being) our own addresses.
                        let (local, connected, interfaces) =
                            (&self.local_addresses, &self.connected, &self.interfaces);
                        let resolve = |ip: IpAddr| resolve_next_hop(local, connected, interfaces, ip);
                        speaker.host_addresses_changed(&mut self.fib, &mut batch, &resolve);
                    }
                    self.commit(batch).await;
                }
                Some(event) = async { bgp_events.as_mut()?.recv().await }, if bgp_events.is_some() => {
                    let mut batch = Batch::default();
                    let mut speaker = self.speaker.take().expect("bgp events come with a speaker");
                    let (local, connected, interfaces) = (&self.local_addresses, &self.connected, &self.interfaces);
                    let resolve = |ip: IpAddr| resolve_next_hop(local, connected, interfaces, ip);
                    let link_locals = &self.link_locals;
                    let link_local = |ifindex: u32| {
                        link_locals.get(&ifindex).and_then(|held| held.first().copied())
                    };
                    speaker.on_event(event, &mut self.fib, &mut batch, &resolve, &link_local);
                    if let Some(queue) = bgp_events.as_mut() {
                        // Drain what else is queued into one commit, up to a bound: a full
                        // table arriving at once would otherwise make one batch of a million
                        // operations (memory that is all transient), and no route would reach
                        // the datapath before the last one is processed.
                        while batch.len() < MAX_BGP_BATCH_OPS
                            && let Ok(event) = queue.try_recv()
                        {
                            speaker.on_event(event, &mut self.fib, &mut batch, &resolve, &link_local);
                        }
                    }
                    self.speaker = Some(speaker);
                    self.commit(batch).await;
                    // Neighbours found, connected or gone: their BFD sessions follow.
                    self.sync_bfd();
                }
                Some(change) = bfd_changes.recv() => self.on_bfd_change(change).await,
                Some(request) = control.recv() => {
                    let exit = match request.query {
                        crate::control::Query::Stop => Some(Exit::Stop),
                        crate::control::Query::Restart => Some(Exit::ReExec),
                        _ => None,
                    };
                    // The new process reads the file again: one it would refuse would
                    // leave no agent at all.
                    let invalid = (exit == Some(Exit::ReExec))
                        .then(|| Config::load(&options.config_path).err())
                        .flatten();
                    if let Some(err) = invalid {
                        let error = format!("restart refused, the configuration is invalid: {err:#}");
                        tracing::error!("{error}");
                        let _ = request.reply.send(serde_json::json!({ "error": error }).to_string());
                        continue;
                    }
                    if let Some(exit) = exit {
                        tracing::info!(?exit, "asked over the control socket");
                        let answer = serde_json::json!({ "exit": format!("{exit:?}"), "pid": std::process::id() });
                        let _ = request.reply.send(answer.to_string());
                        // Let the connection write the answer before the process goes.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        return Ok(exit);
                    }
                    let answer = match request.query {
                        crate::control::Query::Reload => {
                            match self.reload(&options.config_path).await {
                                Ok(summary) => {
                                    self.sync_bfd();
                                    summary
                                }
                                Err(error) => serde_json::json!({ "error": error }),
                            }
                            .to_string()
                        }
                        crate::control::Query::Drain(drain) => {
                            // Answered by the drain (later, with --wait).
                            self.drain(drain, request.reply);
                            continue;
                        }
                        crate::control::Query::Undrain(undrain) => self.undrain(undrain),
                        query => self.answer(query),
                    };
                    let _ = request.reply.send(answer);
                }
                _ = signals.hangup.recv() => {
                    tracing::info!("SIGHUP: reloading {}", options.config_path.display());
                    // Logged either way by reload().
                    let _ = self.reload(&options.config_path).await;
                    self.sync_bfd();
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    self.fib.release_quarantined(now);
                    self.datapath.release_quarantined(now);
                    // What waited for a slot or a group id (forwarded by the kernel meanwhile).
                    let mut batch = Batch::default();
                    self.fib.retry_deferred(&mut batch);
                    if let Some(speaker) = self.speaker.as_mut() {
                        // Graceful restart timers (restart time, stale routes, deferral).
                        let (local, connected, interfaces) =
                            (&self.local_addresses, &self.connected, &self.interfaces);
                        let resolve = |ip: IpAddr| resolve_next_hop(local, connected, interfaces, ip);
                        speaker.on_tick(now, &mut self.fib, &mut batch, &resolve);
                    }
                    self.commit(batch).await;
                    self.check_adoption(now).await;
                    if now.duration_since(switches_checked) >= Duration::from_secs(1) {
                        switches_checked = now;
                        self.refresh_kernel_switches();
                    }
                }
                listed = async { self.kernel_leftovers.as_mut().expect("guarded").await },
                    if self.kernel_leftovers.is_some() =>
                {
                    self.kernel_leftovers = None;
                    // A dropped sender (the listing task panicked) is a failure like another.
                    let found = listed.unwrap_or_else(|_| Err(anyhow::anyhow!("the listing task ended")));
                    self.remove_kernel_leftovers(found).await;
                }
                _ = signals.terminate.recv() => {
                    tracing::info!("SIGTERM");
                    return Ok(Self::signalled_exit(options));
                }
                _ = signals.interrupt.recv() => {
                    tracing::info!("SIGINT");
                    return Ok(Self::signalled_exit(options));
                }
                _ = tokio::time::sleep_until(
                    self.redistribute_pacing.due.map_or_else(tokio::time::Instant::now, Into::into),
                ), if self.redistribute_pacing.due.is_some() => self.redistribute(),
                Some(event) = service_events.recv() => self.on_service_event(event).await,
            }
        }
    }

    /// SIGTERM / SIGINT: a planned restart under `--keep-datapath`, else a full stop.
    fn signalled_exit(options: &RunOptions) -> Exit {
        if options.keep_datapath {
            Exit::PlannedRestart
        } else {
            Exit::Stop
        }
    }

    /// Follows changes of the kernel's forwarding and `accept_local` switches into the XDP
    /// program's interface records, logged once per change.
    fn refresh_kernel_switches(&mut self) {
        match self.datapath.refresh_kernel_switches(&self.interfaces) {
            Ok(changed) => {
                use router_common::{
                    INTERFACE_F_ACCEPT_LOCAL_V4 as ACCEPT_LOCAL, INTERFACE_F_FORWARD_V4 as V4,
                    INTERFACE_F_FORWARD_V6 as V6,
                };
                for (interface, old, new) in changed {
                    tracing::info!(
                        %interface,
                        ipv4_forwarding = new & V4 != 0,
                        ipv6_forwarding = new & V6 != 0,
                        accept_local = new & ACCEPT_LOCAL != 0,
                        was = old,
                        "kernel forwarding switches changed"
                    );
                }
            }
            Err(err) => tracing::error!("interface records not updated: {err:#}"),
        }
    }

    /// The JSON answer to a control query.
    fn answer(&mut self, query: crate::control::Query) -> String {
        use crate::control::Query;
        let value = match (query, &mut self.speaker) {
            // Answered between two commits, so the FIB counts are what the maps hold.
            (Query::Status, speaker) => serde_json::json!({
                "fib": {
                    "routes": self.fib.route_count(),
                    "groups": self.fib.group_count(),
                    "nexthops": self.fib.nexthop_count(),
                },
                "neighbors": speaker.as_ref().map(|s| s.neighbors()).unwrap_or_default(),
                "adoption": self.adoption_status(),
                "drain": self.speaker.as_ref().map(|s| serde_json::json!(s.drain_state())),
            }),
            // The event loop answers these (they await); never routed here.
            (
                Query::Reload | Query::Stop | Query::Restart | Query::Drain(_) | Query::Undrain(_),
                _,
            ) => {
                serde_json::json!({ "error": "internal routing error" })
            }
            (_, None) => serde_json::json!({ "error": "BGP is not configured" }),
            (Query::Bfd, _) => serde_json::json!(self.bfd.sessions()),
            (Query::Neighbors, Some(speaker)) => {
                Self::neighbors_with_bfd(&self.bfd, speaker.neighbors())
            }
            (Query::Routes, Some(speaker)) => serde_json::json!(speaker.routes()),
            (Query::ClearNeighbor(address), Some(speaker)) => match speaker.clear(address) {
                Ok(()) => serde_json::json!({ "cleared": address }),
                Err(error) => serde_json::json!({ "error": error }),
            },
            (Query::Redistribute, _) => serde_json::json!(self.redistributor.status()),
            (Query::Services, Some(_)) => Self::services_json(&self.services),
        };
        value.to_string()
    }

    async fn shutdown(mut self, exit: Exit) -> Result<()> {
        if exit == Exit::Stop {
            // `[drain] on_stop`: the network moves the traffic first (RFC 8326).
            self.drain_on_stop().await;
        }
        // AdminDown to the BFD peers first: neither a restart nor a stop is a path failure,
        // and a peer must not fail our session (nor, in a restart, the graceful one) for it.
        self.bfd.shutdown().await;
        self.stop_services(exit).await;
        if exit != Exit::Stop {
            self.leave_for_restart().await;
            return Ok(());
        }
        let started = Instant::now();
        if let Some(speaker) = &self.speaker {
            // The sessions send their Cease while the datapath and kernel routes go (their
            // tasks run whenever this one awaits); the exit waits for them at the end.
            speaker.stop("router-agent is shutting down");
        }
        // The kernel writer stops first: nothing it still has may land after the removal below.
        // What it had not applied yet may be in the kernel (a withdrawn route's delete):
        // removed below too.
        let mut unapplied = Vec::new();
        if let Some(mirror) = self.kernel_mirror.take() {
            unapplied = tokio::task::spawn_blocking(move || mirror.finish(false))
                .await
                .unwrap_or_default();
        }
        let names: Vec<String> = self.interfaces.values().cloned().collect();
        self.datapath.detach_and_unpin(&names)?;
        if self.config.datapath.kernel_routes {
            // What this run may have put in the kernel, by prefix and in bulk (no dump of a
            // full table to find them), then whatever else has our protocol: a previous run's
            // leftovers, found by a dump of what is left (small by then).
            let protocol = self.config.datapath.route_protocol;
            let mut prefixes: Vec<IpNet> = self.fib.mirrored_prefixes().collect();
            prefixes.extend(unapplied);
            let removed =
                tokio::task::spawn_blocking(move || kernel_mirror::remove(protocol, &prefixes))
                    .await
                    .context("kernel route removal")?
                    .unwrap_or_else(|err| {
                        tracing::error!("kernel routes not removed by prefix: {err:#}");
                        0
                    });
            let leftovers = self.netlink.flush_routes(protocol).await?;
            tracing::info!(
                removed,
                leftovers,
                seconds = started.elapsed().as_secs_f64(),
                "kernel routes removed"
            );
        }
        // Let the sessions send their Cease before the process ends.
        tokio::time::sleep_until((started + Duration::from_millis(200)).into()).await;
        tracing::info!("detached and unpinned; bye");
        Ok(())
    }
}
