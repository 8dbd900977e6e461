//! Start-up: the kernel's view dumped into the FIB, static routes, the program attached and
//! the BGP speaker started, before the event loop takes over.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use aya::programs::xdp::XdpMode;
use tokio::sync::mpsc::UnboundedReceiver;

use super::{Agent, lookup_engine};
use crate::{
    bgp::{graceful_restart::RestartState, peer::PeerEvent, speaker::Speaker},
    config::{
        Config,
        kernel_routes::{pass_to_kernel_prefixes, route_filter},
    },
    datapath::{Datapath, DatapathOptions},
    fib::{Batch, Fib, FibLimits},
    kernel_mirror::KernelMirror,
    kernel_routes::{KernelRoutes, LocalRoutes},
    netlink::{KernelEvent, Netlink, PeerGro},
};

/// The agent, forwarding, and the event streams its loop serves.
pub(super) struct Started {
    pub agent: Agent,
    pub events: UnboundedReceiver<KernelEvent>,
    pub bgp_events: Option<UnboundedReceiver<PeerEvent>>,
}

pub(super) async fn start(config: Config) -> Result<Started> {
    ensure_bpffs(&config.datapath.pin_dir)?;
    warn_if_forwarding_disabled();
    // Before anything is loaded or attached: a neighbor's TCP-AO needs the kernel's.
    if let Some(bgp) = &config.bgp {
        let setup =
            (bgp.compile()).map_err(|err| anyhow::anyhow!("{}: {}", err.key, err.reason))?;
        crate::bgp::tcp_ao::check_kernel(&setup)
            .map_err(|err| anyhow::anyhow!("{}: {}", err.key, err.reason))?;
    }
    let mut follow = route_filter(&config.datapath)
        .map_err(|(key, reason)| anyhow::anyhow!("{key}: {reason}"))?;
    let redistribute_rules = config
        .redistribute_rules()
        .map_err(|(key, reason)| anyhow::anyhow!("{key}: {reason}"))?;
    // Observed from the start: a reload cannot widen the netlink filter.
    follow.observe_tables = crate::redistribute::config::tables(&redistribute_rules);
    let observed_tables: std::collections::BTreeSet<u32> = follow
        .tables
        .union(&follow.observe_tables)
        .copied()
        .collect();
    let (netlink, mut events) = Netlink::connect_following(follow)
        .await
        .context("connecting to rtnetlink")?;

    // Read before anything is loaded: the new maps replace the pins only once complete.
    let adoption = super::restart::previous_datapath(&config.datapath.pin_dir);
    let engine = lookup_engine(config.engine());
    let mut options = DatapathOptions::new(engine, &config.datapath.pin_dir);
    options.dxr = crate::datapath::DxrSizes::for_routes(
        config.datapath.expected_ipv4_routes,
        config.datapath.expected_ipv6_routes,
    );
    if let Some(adoption) = &adoption {
        // The same seed: every flow hashes to the bucket it used before the restart.
        options.flow_hash_seed = adoption.stamp.flow_hash_seed;
    }
    options.xdp_log = config.datapath.log == crate::config::XdpLogLevel::Debug;
    let mut datapath = Datapath::load(options)?;
    tracing::info!(?engine, "XDP program loaded");
    if let Some(xdp_log) = datapath.xdp_log()? {
        // Ends with the runtime, when the agent exits.
        xdp_log.spawn()?;
        tracing::info!("XDP debug events on: why frames are passed or dropped, target `xdp`");
    }
    let mut fib = Fib::new(FibLimits::default());
    fib.reserve_routes(
        config.datapath.expected_ipv4_routes,
        config.datapath.expected_ipv6_routes,
    );
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
        unconfirmed_neighbors: Vec::new(),
        speaker: None,
        adoption: None,
        kernel_leftovers: None,
        bfd: super::bfd::BfdClient::new(),
        redistributor: crate::redistribute::Redistributor::new(
            redistribute_rules,
            config.datapath.route_protocol,
        ),
        observed_tables,
        redistribute_pacing: Default::default(),
        services: None,
        config,
        metrics: None,
        batches_applied: 0,
    };
    let adopting = adoption.is_some();
    match bring_up(&mut agent, &mut events, adoption).await {
        Ok(bgp_events) => Ok(Started {
            agent,
            events,
            bgp_events,
        }),
        Err(err) => {
            agent.abandon_start(adopting).await;
            Err(err)
        }
    }
}

/// Everything after the agent exists: the FIB filled, the program attached, the maps pinned,
/// BGP started. A failure here is undone by [`Agent::abandon_start`].
async fn bring_up(
    agent: &mut Agent,
    events: &mut UnboundedReceiver<KernelEvent>,
    adoption: Option<crate::datapath::adopt::Adoption>,
) -> Result<Option<UnboundedReceiver<PeerEvent>>> {
    // The kernel's view first (links, neighbors, addresses, routes), so the datapath is
    // complete before it takes traffic: nexthops resolved, local addresses and connected
    // subnets known. The interfaces first: a kernel route forwards in XDP only through them.
    agent.resolve_interfaces()?;
    let mut batch = Batch::default();
    loop {
        match events.recv().await {
            Some(KernelEvent::DumpDone) => {
                agent.redistributor.on_event(&KernelEvent::DumpDone);
                let attached = agent.config.interfaces.iter().map(|i| i.name.as_str());
                agent.redistributor.warn_unattached(attached);
                break;
            }
            Some(event) => agent.on_kernel_event(&mut batch, event),
            None => bail!("rtnetlink connection closed during the initial dump"),
        }
    }
    if let Some(adoption) = &adoption {
        // Without BGP no peer sends them again: they go at the first tick.
        let deferral = agent.config.bgp.as_ref().map_or(Duration::ZERO, |bgp| {
            bgp.graceful_restart.selection_deferral
        });
        agent.adopt(&mut batch, adoption, deferral);
    }
    let pass = pass_to_kernel_prefixes(&agent.config.datapath);
    agent.fib.set_pass_to_kernel(&mut batch, &pass);
    let routes = agent.config.routes.clone();
    // Failures are logged; the datapath forwards what could be installed.
    let _ = agent.install_static_routes(&mut batch, &routes).await;
    agent.commit(batch).await;
    // A previous run (crashed, or upgraded) may have left routes this config dropped. While
    // its routes are adopted, the kernel keeps its routes too: flushed when adoption is over.
    if agent.config.datapath.kernel_routes && agent.adoption.is_none() {
        agent.flush_kernel_leftovers().await;
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
            .compile_with_bfd(&agent.config.bfd)
            .map_err(|err| anyhow::anyhow!("{}: {}", err.key, err.reason))?;
        let restart = RestartState {
            restarted: adoption.is_some(),
            forwarding_preserved: adoption.is_some(),
        };
        let (mut speaker, events) = Speaker::start(setup, restart).await?;
        // Before the event loop runs, so before any session is up: the first UPDATE after a
        // restart or a reboot is already drained.
        speaker.set_drain(super::drain::load_at_start(&agent.config));
        tracing::info!(neighbors = speaker.neighbors().len(), "BGP speaker started");
        agent.speaker = Some(speaker);
        // What the first dump found, announced once sessions come up.
        agent.redistribute();
        bgp_events = Some(events);
    }
    Ok(bgp_events)
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
