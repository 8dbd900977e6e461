//! `router-agent run`: wires the sources (config, kernel state) to the FIB, the FIB to the
//! datapath and the kernel's routing table, and keeps them in step until told to stop.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::{IpAddr, Ipv6Addr},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use aya::programs::xdp::XdpMode;
use ipnet::IpNet;
use router_common::LookupEngine;
use tokio::{signal::unix::SignalKind, sync::mpsc::UnboundedReceiver};

use crate::{
    bgp::{peer::PeerEvent, speaker::Speaker},
    config::{Config, EngineChoice, RouteConfig},
    datapath::{Datapath, DatapathOptions},
    fib::{Batch, Fib, FibLimits, LinkState, NexthopKey, RouteTarget, Source},
    kernel_mirror::{self, KernelMirror},
    kernel_routes::{self, KernelRoutes, LocalRoutes},
    netlink::{AddressInfo, KernelEvent, LinkInfo, Netlink, PeerGro},
    next_hop_check::{self, Unresolved},
};

/// Datapath operations one commit gathers from queued BGP events before it applies them. The
/// datapath writes batches of this size at full speed (see BENCHMARKS.md, route programming).
pub const MAX_BGP_BATCH_OPS: usize = 32_768;

pub struct RunOptions {
    /// Leave the program attached and the maps pinned at exit.
    pub keep_datapath: bool,
    /// The configuration file, re-read on `reload` (SIGHUP, or `router-agent reload`).
    pub config_path: std::path::PathBuf,
}

pub fn lookup_engine(choice: EngineChoice) -> LookupEngine {
    match choice {
        EngineChoice::Auto | EngineChoice::LpmTrie => LookupEngine::LpmTrie,
        EngineChoice::Dir24 => LookupEngine::Dir24,
        EngineChoice::Kernel => LookupEngine::Kernel,
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
    speaker: Option<Speaker>,
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

pub async fn run(config: Config, options: RunOptions) -> Result<()> {
    let mut signals = Signals::register()?;
    ensure_bpffs(&config.datapath.pin_dir)?;
    warn_if_forwarding_disabled();
    let follow = kernel_routes::route_filter(&config.datapath)
        .map_err(|(key, reason)| anyhow::anyhow!("{key}: {reason}"))?;
    let (netlink, mut events) = Netlink::connect_following(follow)
        .await
        .context("connecting to rtnetlink")?;

    let engine = lookup_engine(config.engine());
    let datapath = Datapath::load(DatapathOptions::new(engine, &config.datapath.pin_dir))?;
    tracing::info!(?engine, "XDP program loaded");
    let mut fib = Fib::new(FibLimits::default());
    fib.reserve_routes(config.datapath.expected_ipv4_routes, 0);
    let kernel_mirror = if config.datapath.kernel_routes {
        Some(
            KernelMirror::start(config.datapath.route_protocol)
                .context("starting the kernel route writer")?,
        )
    } else {
        None
    };
    let mut agent = Agent {
        fib,
        datapath,
        netlink,
        kernel_mirror,
        interfaces: BTreeMap::new(),
        local_addresses: HashMap::new(),
        connected: BTreeMap::new(),
        link_locals: BTreeMap::new(),
        kernel_routes: KernelRoutes::default(),
        local_routes: LocalRoutes::default(),
        speaker: None,
        config,
    };

    // The kernel's view first (links, neighbors, addresses, routes), so the datapath is
    // complete before it takes traffic: nexthops resolved, local addresses and connected
    // subnets known. The interfaces first: a kernel route forwards in XDP only through them.
    agent.resolve_interfaces()?;
    let mut batch = Batch::default();
    loop {
        match events.recv().await {
            Some(KernelEvent::DumpDone) => break,
            Some(event) => agent.on_kernel_event(&mut batch, event),
            None => bail!("rtnetlink connection closed during the initial dump"),
        }
    }
    let pass = kernel_routes::pass_to_kernel_prefixes(&agent.config.datapath);
    agent.fib.set_pass_to_kernel(&mut batch, &pass);
    let routes = agent.config.routes.clone();
    // Failures are logged; the datapath forwards what could be installed.
    let _ = agent.install_static_routes(&mut batch, &routes).await;
    agent.commit(batch).await;
    if agent.config.datapath.kernel_routes {
        // A previous run (crashed, or upgraded) may have left routes this config dropped.
        let protocol = agent.config.datapath.route_protocol;
        let stale = agent
            .netlink
            .flush_routes_except(protocol, &agent.fib.mirrored_prefixes().collect())
            .await?;
        if stale > 0 {
            tracing::info!(stale, "removed kernel routes a previous run left behind");
        }
    }

    let mode = match agent.config.datapath.xdp_mode {
        crate::config::XdpMode::Native => XdpMode::Driver,
        crate::config::XdpMode::Generic => XdpMode::Skb,
    };
    for (ifindex, name) in agent.interfaces.clone() {
        // Before the program takes the interface's traffic: without its record every frame
        // on it would go to the kernel.
        agent.write_interface_record(ifindex, &name)?;
        agent.datapath.attach(&name, ifindex, mode)?;
        // Redirects into a veth are dropped unless its peer can receive them.
        match agent.netlink.enable_veth_peer_gro(ifindex).await {
            Ok(PeerGro::NotVeth) => {}
            Ok(PeerGro::AlreadyOn { peer }) => {
                tracing::debug!(interface = %name, %peer, "veth peer has GRO on")
            }
            Ok(PeerGro::Enabled { peer }) => tracing::info!(
                interface = %name, %peer,
                "turned GRO on at the veth peer so that XDP redirects into {name} are delivered"
            ),
            Err(err) => tracing::warn!(
                interface = %name,
                "cannot turn GRO on at the veth peer ({err:#}): XDP redirects into {name} are \
                 dropped unless the peer runs XDP or has GRO on (ethtool -K PEER gro on)"
            ),
        }
    }
    agent.datapath.pin_maps()?;
    tracing::info!(
        routes = agent.fib.route_count(),
        groups = agent.fib.group_count(),
        nexthops = agent.fib.nexthop_count(),
        pin_dir = %agent.config.datapath.pin_dir.display(),
        "forwarding"
    );

    let mut bgp_events = None;
    if let Some(bgp) = &agent.config.bgp {
        agent.fib.set_bgp_mirror(bgp.kernel_routes);
        let setup = bgp
            .compile()
            .map_err(|err| anyhow::anyhow!("{}: {}", err.key, err.reason))?;
        let (speaker, events) = Speaker::start(setup).await?;
        tracing::info!(neighbors = speaker.neighbors().len(), "BGP speaker started");
        agent.speaker = Some(speaker);
        bgp_events = Some(events);
    }

    let mut control = crate::control::serve(&agent.config.control.socket)?;
    agent
        .event_loop(
            &mut events,
            bgp_events.as_mut(),
            &mut control,
            &options,
            &mut signals,
        )
        .await?;
    let _ = std::fs::remove_file(&agent.config.control.socket);
    agent.shutdown(options).await
}

impl Agent {
    fn resolve_interfaces(&mut self) -> Result<()> {
        for interface in &self.config.interfaces {
            let ifindex = crate::netlink::ifindex_by_name(&interface.name)
                .with_context(|| format!("interface {:?} (from the config)", interface.name))?;
            self.interfaces.insert(ifindex, interface.name.clone());
            self.datapath.add_egress_port(ifindex)?;
        }
        Ok(())
    }

    /// Sets the configured static routes; returns the prefixes that could not be installed
    /// (each logged with why).
    async fn install_static_routes(
        &mut self,
        batch: &mut Batch,
        routes: &[RouteConfig],
    ) -> Vec<IpNet> {
        let mut failed = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let mut keys = BTreeSet::new();
            for (j, nexthop) in route.nexthops.iter().enumerate() {
                // Own addresses and subnet broadcasts: the kernel would refuse the route or
                // route to itself. Said once per (re)load.
                if let Err(Unresolved::Unusable(why)) = resolve_next_hop(
                    &self.local_addresses,
                    &self.connected,
                    &self.interfaces,
                    nexthop.via,
                ) {
                    tracing::error!(prefix = %route.prefix,
                        "route[{i}].nexthops[{j}].via: {why}; nexthop skipped");
                    continue;
                }
                let ifindex = match &nexthop.interface {
                    Some(name) => self
                        .interfaces
                        .iter()
                        .find(|(_, n)| *n == name)
                        .map(|(i, _)| *i),
                    None => match self.netlink.egress_for(nexthop.via).await {
                        Ok(ifindex) => Some(ifindex),
                        Err(err) => {
                            tracing::error!(prefix = %route.prefix, via = %nexthop.via, "nexthop skipped: {err:#}");
                            None
                        }
                    },
                };
                let Some(ifindex) = ifindex else { continue };
                if !self.interfaces.contains_key(&ifindex) {
                    tracing::error!(
                        prefix = %route.prefix, via = %nexthop.via,
                        "nexthop skipped: it is reached through {}, which is not a configured interface",
                        crate::show::interface_name(ifindex)
                    );
                    continue;
                }
                keys.insert(NexthopKey::host(nexthop.via, ifindex));
            }
            if keys.is_empty() {
                tracing::error!(prefix = %route.prefix, "route not installed: no usable nexthop");
                failed.push(route.prefix);
                continue;
            }
            if let Err(err) =
                self.fib
                    .set_route(batch, Source::Static, route.prefix, RouteTarget::Via(keys))
            {
                tracing::error!(prefix = %route.prefix, "route not installed: {err}");
                failed.push(route.prefix);
            }
        }
        failed
    }

    fn on_kernel_event(&mut self, batch: &mut Batch, event: KernelEvent) {
        match event {
            KernelEvent::Link(link) => self.on_link(batch, link),
            KernelEvent::LinkRemoved { ifindex } => self.fib.update_link(batch, ifindex, None),
            KernelEvent::Neighbor(neighbor) => {
                self.fib
                    .update_neighbor(batch, neighbor.ifindex, neighbor.addr, neighbor.mac)
            }
            KernelEvent::NeighborRemoved { ifindex, addr } => {
                self.fib.update_neighbor(batch, ifindex, addr, None)
            }
            KernelEvent::Address(address) => self.on_address(&address, true),
            KernelEvent::AddressRemoved(address) => self.on_address(&address, false),
            KernelEvent::Route(route) => {
                self.kernel_routes
                    .on_route(&mut self.fib, batch, route, &self.interfaces)
            }
            KernelEvent::RouteRemoved(key) => {
                self.kernel_routes
                    .on_route_removed(&mut self.fib, batch, key, &self.interfaces)
            }
            KernelEvent::LocalRoute(route) => {
                self.local_routes.on_route(&mut self.fib, batch, route)
            }
            KernelEvent::LocalRouteRemoved(route) => {
                self.local_routes
                    .on_route_removed(&mut self.fib, batch, route)
            }
            KernelEvent::DumpDone => {}
        }
    }

    fn on_link(&mut self, batch: &mut Batch, link: LinkInfo) {
        let state = LinkState {
            mac: link.mac.unwrap_or_default(),
            mtu: link.mtu,
            up: link.up,
        };
        if self.interfaces.contains_key(&link.ifindex) {
            tracing::info!(ifname = %link.name, up = link.up, mtu = link.mtu, "link state");
        }
        self.fib.update_link(batch, link.ifindex, Some(state));
        self.note_link_mac(&link);
    }

    /// `INTERFACES[ifindex]`: the link's MAC, the configured RPF mode, the forwarding sysctls.
    fn write_interface_record(&mut self, ifindex: u32, name: &str) -> Result<()> {
        let rpf = self
            .config
            .interfaces
            .iter()
            .find(|interface| interface.name == name)
            .map_or(router_common::RpfMode::Off, |interface| {
                interface.rpf.mode()
            });
        self.datapath
            .configure_interface(ifindex, name, rpf)
            .with_context(|| format!("interface {name}"))
    }

    /// Every link's MAC goes to the datapath; an attached interface's change rewrites its
    /// record (else the program would take its frames for another host's).
    fn note_link_mac(&mut self, link: &LinkInfo) {
        match self.datapath.update_link_mac(link.ifindex, link.mac) {
            Ok(true) => tracing::info!(ifname = %link.name, "link MAC changed; XDP updated"),
            Ok(false) => {}
            Err(err) => {
                tracing::error!(ifname = %link.name, "link MAC change not applied: {err:#}")
            }
        }
    }

    /// The host's addresses: connected subnets, link-locals and own addresses, for next hops.
    fn on_address(&mut self, address: &AddressInfo, present: bool) {
        // Link-local destinations never reach the lookup (the program passes them first).
        let link_local = match address.addr {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_unicast_link_local(),
        };
        if link_local {
            if let IpAddr::V6(v6) = address.addr {
                let held = self.link_locals.entry(address.ifindex).or_default();
                if present {
                    held.insert(v6);
                } else {
                    held.remove(&v6);
                    if held.is_empty() {
                        self.link_locals.remove(&address.ifindex);
                    }
                }
            }
            return;
        }
        if let Ok(subnet) = IpNet::new(address.addr, address.prefix_len) {
            let key = (subnet.trunc(), address.ifindex);
            let count = self.connected.entry(key).or_default();
            if present {
                *count += 1;
            } else {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.connected.remove(&key);
                }
            }
        }
        // The FIB's local routes come from the local table (LocalRoutes), not from here: these
        // are the host's own addresses for next-hop sanity.
        let mut hosts = vec![IpNet::from(address.addr)];
        if let Some(broadcast) = address.broadcast {
            hosts.push(IpNet::from(IpAddr::V4(broadcast)));
        }
        for host in hosts {
            let holders = self.local_addresses.entry(host).or_default();
            if present {
                holders.insert(address.ifindex);
            } else {
                holders.remove(&address.ifindex);
                if holders.is_empty() {
                    self.local_addresses.remove(&host);
                }
            }
        }
    }

    /// Applies a batch to the datapath, then mirrors routes into the kernel and asks it to
    /// resolve new nexthops.
    async fn commit(&mut self, batch: Batch) {
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
        control: &mut UnboundedReceiver<crate::control::ControlRequest>,
        options: &RunOptions,
        signals: &mut Signals,
    ) -> Result<()> {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
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
                    self.on_kernel_event(&mut batch, event);
                    // Drain what else is queued: one commit for a burst of changes.
                    while let Ok(event) = events.try_recv() {
                        addresses_changed |= is_address(&event);
                        self.on_kernel_event(&mut batch, event);
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
                }
                Some(request) = control.recv() => {
                    let answer = match request.query {
                        crate::control::Query::Reload => {
                            match self.reload(&options.config_path).await {
                                Ok(summary) => summary,
                                Err(error) => serde_json::json!({ "error": error }),
                            }
                            .to_string()
                        }
                        query => self.answer(query),
                    };
                    let _ = request.reply.send(answer);
                }
                _ = signals.hangup.recv() => {
                    tracing::info!("SIGHUP: reloading {}", options.config_path.display());
                    // Logged either way by reload().
                    let _ = self.reload(&options.config_path).await;
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    self.fib.release_quarantined(now);
                    self.datapath.release_quarantined(now);
                    // What waited for a slot or a group id (forwarded by the kernel meanwhile).
                    let mut batch = Batch::default();
                    self.fib.retry_deferred(&mut batch);
                    self.commit(batch).await;
                }
                _ = signals.terminate.recv() => { tracing::info!("SIGTERM"); return Ok(()); }
                _ = signals.interrupt.recv() => { tracing::info!("SIGINT"); return Ok(()); }
            }
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
            }),
            // The event loop answers it (it awaits netlink); never routed here.
            (Query::Reload, _) => serde_json::json!({ "error": "reload: internal routing error" }),
            (_, None) => serde_json::json!({ "error": "BGP is not configured" }),
            (Query::Neighbors, Some(speaker)) => serde_json::json!(speaker.neighbors()),
            (Query::Routes, Some(speaker)) => serde_json::json!(speaker.routes()),
            (Query::ClearNeighbor(address), Some(speaker)) => match speaker.clear(address) {
                Ok(()) => serde_json::json!({ "cleared": address }),
                Err(error) => serde_json::json!({ "error": error }),
            },
        };
        value.to_string()
    }

    /// Re-reads the configuration file and applies what can change at run time: static routes,
    /// `datapath.pass_to_kernel` and BGP ([`Speaker::reload`]). Any other change (datapath, interfaces, control socket,
    /// adding or removing `[bgp]`, its kernel_routes) needs a restart: then, as for an invalid
    /// file, nothing is applied and the error says why.
    async fn reload(&mut self, path: &std::path::Path) -> Result<serde_json::Value, String> {
        let result = self.try_reload(path).await;
        match &result {
            Ok(summary) => tracing::info!(%summary, "configuration reloaded"),
            Err(error) => tracing::error!("reload refused: {error}"),
        }
        result
    }

    async fn try_reload(&mut self, path: &std::path::Path) -> Result<serde_json::Value, String> {
        let new = Config::load(path).map_err(|err| format!("{err:#}"))?;
        let mut needs_restart =
            kernel_routes::datapath_restart_keys(&self.config.datapath, &new.datapath);
        if new.interfaces != self.config.interfaces {
            needs_restart.push("[[interface]]");
        }
        if new.control != self.config.control {
            needs_restart.push("[control]");
        }
        match (&self.config.bgp, &new.bgp) {
            (Some(old), Some(new)) if old.kernel_routes != new.kernel_routes => {
                needs_restart.push("bgp.kernel_routes")
            }
            (None, Some(_)) | (Some(_), None) => needs_restart.push("adding or removing [bgp]"),
            _ => {}
        }
        if !needs_restart.is_empty() {
            return Err(format!(
                "{}: changes to {} need a restart; nothing applied",
                path.display(),
                needs_restart.join(", ")
            ));
        }
        let setup = match &new.bgp {
            Some(bgp) => Some(
                bgp.compile()
                    .map_err(|err| format!("{}: {}: {}", path.display(), err.key, err.reason))?,
            ),
            None => None,
        };

        let mut batch = Batch::default();
        // BGP first: it may still refuse (changes that need a restart), and then nothing is
        // applied.
        let bgp = match (self.speaker.take(), setup) {
            (Some(mut speaker), Some(setup)) => {
                let (local, connected, interfaces) =
                    (&self.local_addresses, &self.connected, &self.interfaces);
                let resolve = |ip: IpAddr| resolve_next_hop(local, connected, interfaces, ip);
                let result = speaker.reload(setup, &mut self.fib, &mut batch, &resolve);
                self.speaker = Some(speaker);
                Some(result?)
            }
            (speaker, _) => {
                self.speaker = speaker;
                None
            }
        };
        let removed: Vec<IpNet> = self
            .config
            .routes
            .iter()
            .map(|route| route.prefix)
            .filter(|prefix| !new.routes.iter().any(|route| route.prefix == *prefix))
            .collect();
        for prefix in &removed {
            self.fib.remove_route(&mut batch, Source::Static, *prefix);
        }
        // Unchanged routes map to the same group again: nothing to write for them. A route
        // whose new version cannot be installed must not keep forwarding the old way.
        let not_installed = self.install_static_routes(&mut batch, &new.routes).await;
        for prefix in &not_installed {
            self.fib.remove_route(&mut batch, Source::Static, *prefix);
        }
        let pass = kernel_routes::pass_to_kernel_prefixes(&new.datapath);
        self.fib.set_pass_to_kernel(&mut batch, &pass);
        self.config = new;
        self.commit(batch).await;
        Ok(serde_json::json!({
            "config": path,
            "static_routes": self.config.routes.len(),
            "static_routes_removed": removed.len(),
            "static_routes_not_installed": not_installed,
            "bgp": bgp,
        }))
    }

    async fn shutdown(mut self, options: RunOptions) -> Result<()> {
        if let Some(speaker) = &self.speaker {
            speaker.stop("router-agent is shutting down");
            // Let the sessions send their Cease before the process ends.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The kernel writer stops first: nothing it still has may land after the flush below.
        // A kept datapath keeps the kernel routes too, complete.
        if let Some(mirror) = self.kernel_mirror.take() {
            let apply_queued = options.keep_datapath;
            let _ = tokio::task::spawn_blocking(move || mirror.finish(apply_queued)).await;
        }
        if options.keep_datapath {
            tracing::info!(
                "exiting; XDP program and pinned maps keep forwarding (--keep-datapath)"
            );
            return Ok(());
        }
        let names: Vec<String> = self.interfaces.values().cloned().collect();
        self.datapath.detach_and_unpin(&names)?;
        if self.config.datapath.kernel_routes {
            // What this run mirrored, by prefix and in bulk (no dump of a full table to find
            // them), then whatever else has our protocol: a previous run's leftovers.
            let protocol = self.config.datapath.route_protocol;
            let prefixes: Vec<IpNet> = self.fib.mirrored_prefixes().collect();
            let removed =
                tokio::task::spawn_blocking(move || kernel_mirror::remove(protocol, &prefixes))
                    .await
                    .context("kernel route removal")?
                    .unwrap_or_else(|err| {
                        tracing::error!("kernel routes not removed by prefix: {err:#}");
                        0
                    });
            // Also what the removal by prefix left: a flush by protocol finds every one.
            let leftovers = self.netlink.flush_routes(protocol).await?;
            tracing::info!(removed, leftovers, "kernel routes removed");
        }
        tracing::info!("detached and unpinned; bye");
        Ok(())
    }
}

/// The egress interface of a directly connected next hop, if it is a configured interface
/// (only those are in the XDP program's egress map); or why it cannot be used at all (the
/// host's own address, a connected subnet's network or broadcast address, a martian).
fn resolve_next_hop(
    local_addresses: &HashMap<IpNet, BTreeSet<u32>>,
    connected: &BTreeMap<(IpNet, u32), usize>,
    interfaces: &BTreeMap<u32, String>,
    via: IpAddr,
) -> Result<u32, Unresolved> {
    let is_own = |ip: IpAddr| local_addresses.contains_key(&IpNet::from(ip));
    let subnets = connected.keys().map(|(subnet, _)| *subnet);
    if let Some(why) = next_hop_check::classify(via, is_own, subnets) {
        return Err(Unresolved::Unusable(why));
    }
    connected
        .keys()
        .filter(|(subnet, ifindex)| subnet.contains(&via) && interfaces.contains_key(ifindex))
        .max_by_key(|(subnet, _)| subnet.prefix_len())
        .map(|(_, ifindex)| *ifindex)
        .ok_or(Unresolved::NotConnected)
}

/// Mounts bpffs on /sys/fs/bpf if nothing is mounted there and the pin directory is below it.
fn ensure_bpffs(pin_dir: &Path) -> Result<()> {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let root = Path::new("/sys/fs/bpf");
    if !pin_dir.starts_with(root) {
        return Ok(());
    }
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    let path = std::ffi::CString::new("/sys/fs/bpf").expect("no NUL");
    // SAFETY: valid C string and statfs buffer.
    let rc = unsafe { libc::statfs(path.as_ptr(), &mut stat) };
    if rc == 0 && stat.f_type as i64 == BPF_FS_MAGIC {
        return Ok(());
    }
    let bpf = std::ffi::CString::new("bpf").expect("no NUL");
    // SAFETY: valid C strings; no data argument.
    let rc = unsafe {
        libc::mount(
            bpf.as_ptr(),
            path.as_ptr(),
            bpf.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("mounting bpffs on /sys/fs/bpf");
    }
    tracing::info!("mounted bpffs on /sys/fs/bpf");
    Ok(())
}

fn warn_if_forwarding_disabled() {
    for (path, family) in [
        ("/proc/sys/net/ipv4/ip_forward", "IPv4"),
        ("/proc/sys/net/ipv6/conf/all/forwarding", "IPv6"),
    ] {
        if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "0") {
            tracing::warn!(
                "{family} forwarding is off in the kernel ({path}): packets XDP hands to the \
                 kernel (unresolved neighbor, TTL expiry, too big) will not be forwarded"
            );
        }
    }
}
