//! The ToR of the restart lab: FRR, BIRD 2 or GoBGP (AS 65001), each with graceful restart
//! enabled in its own configuration, announcing 198.18.0.0/24 to the host and installing the
//! host's 10.1.0.0/24 into its kernel (GoBGP installs nothing: a static kernel route stands
//! in, its RIB is still checked).

use std::{
    fs,
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command},
    time::Duration,
};

use crate::interop::{bird::Bird, frr::Frr};
use crate::netns::{Namespaces, spawn_logged, stop, wait_for};

use super::{HOST_LINK, HOST_PREFIX, TOR_LINK, TOR_PREFIX};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TorKind {
    Frr,
    Bird,
    Gobgp,
}

impl TorKind {
    /// Why this ToR cannot run on this machine, if it cannot.
    pub fn missing(self) -> Option<String> {
        let needed: &[&str] = match self {
            TorKind::Frr => &["/usr/lib/frr/bgpd", "/usr/lib/frr/zebra", "/usr/bin/vtysh"],
            TorKind::Bird => &["/usr/sbin/bird", "/usr/sbin/birdc"],
            TorKind::Gobgp => &["/usr/bin/gobgpd", "/usr/bin/gobgp"],
        };
        let missing: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|path| !Path::new(path).exists())
            .collect();
        (!missing.is_empty()).then(|| format!("{self:?} is not installed ({missing:?} missing)"))
    }
}

/// What the ToR's RIB says of the host's prefix.
#[derive(Clone, Debug, Default)]
pub struct TorView {
    pub present: bool,
    /// Marked stale (kept for a restarting peer).
    pub stale: bool,
    pub raw: String,
}

pub enum Tor {
    Frr(Frr),
    Bird(Bird),
    Gobgp { child: Option<Child>, api: String },
}

impl Tor {
    pub fn start(kind: TorKind, net: &Namespaces) -> Self {
        match kind {
            TorKind::Frr => Tor::Frr(Frr::start(net, "tor", &frr_config())),
            TorKind::Bird => Tor::Bird(Bird::start(net, "tor", &bird_config())),
            TorKind::Gobgp => start_gobgp(net),
        }
    }

    pub fn kind(&self) -> TorKind {
        match self {
            Tor::Frr(_) => TorKind::Frr,
            Tor::Bird(_) => TorKind::Bird,
            Tor::Gobgp { .. } => TorKind::Gobgp,
        }
    }

    pub fn frr(&self) -> Option<&Frr> {
        match self {
            Tor::Frr(frr) => Some(frr),
            _ => None,
        }
    }

    /// The host's prefix in the ToR's BGP RIB.
    pub fn host_route(&self) -> TorView {
        match self {
            Tor::Frr(frr) => {
                let json = frr.vtysh(&format!("show bgp ipv4 unicast {HOST_PREFIX} json"));
                let paths = json["paths"].as_array().cloned().unwrap_or_default();
                TorView {
                    present: !paths.is_empty(),
                    stale: paths.iter().any(|p| p["stale"] == true),
                    raw: json.to_string(),
                }
            }
            Tor::Bird(bird) => {
                let route = bird.birdc(&format!("show route {HOST_PREFIX} all"));
                let protocol = bird.birdc("show protocols all host");
                TorView {
                    present: route.contains(HOST_PREFIX),
                    // BIRD marks the peer, not the routes: "Neighbor graceful restart active"
                    // while it keeps a restarting neighbor's routes.
                    stale: protocol.contains("Neighbor graceful restart active"),
                    raw: format!("{route}\n{protocol}"),
                }
            }
            Tor::Gobgp { api, .. } => {
                let out = Command::new("gobgp")
                    .args(["--target", api, "global", "rib", "-a", "ipv4", HOST_PREFIX])
                    .arg("-j")
                    .output()
                    .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
                    .unwrap_or_default();
                let compact: String = out.chars().filter(|c| !c.is_whitespace()).collect();
                TorView {
                    present: compact.contains(HOST_PREFIX),
                    stale: compact.contains("\"stale\":true"),
                    raw: out,
                }
            }
        }
    }

    /// The host's prefix in the ToR's kernel table (where its traffic to the host goes).
    pub fn kernel_has_host_route(&self, net: &Namespaces) -> bool {
        net.exec("tor", &["ip", "-4", "route", "show", HOST_PREFIX])
            .contains(HOST_LINK)
    }
}

impl Drop for Tor {
    fn drop(&mut self) {
        if let Tor::Gobgp { child, .. } = self
            && let Some(child) = child.take()
        {
            stop(child, libc::SIGTERM);
        }
    }
}

fn frr_config() -> String {
    format!(
        "hostname tor
router bgp 65001
 bgp router-id {TOR_LINK}
 bgp graceful-restart
 bgp graceful-restart preserve-fw-state
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor {HOST_LINK} remote-as 65101
 neighbor {HOST_LINK} timers 3 9
 neighbor {HOST_LINK} timers connect 1
 address-family ipv4 unicast
  network {TOR_PREFIX}
 exit-address-family
!
"
    )
}

fn bird_config() -> String {
    format!(
        "router id {TOR_LINK};
protocol device {{}}
protocol static tor_routes {{
  ipv4;
  route {TOR_PREFIX} blackhole;
}}
protocol kernel {{
  ipv4 {{ import none; export filter {{ if source = RTS_BGP then accept; reject; }}; }};
}}
protocol bgp host {{
  local {TOR_LINK} as 65001;
  neighbor {HOST_LINK} as 65101;
  hold time 9;
  connect retry time 1;
  graceful restart on;
  ipv4 {{ import all; export where proto = \"tor_routes\"; }};
}}
"
    )
}

fn start_gobgp(net: &Namespaces) -> Tor {
    let config = format!(
        r#"[global.config]
  as = 65001
  router-id = "{TOR_LINK}"
  local-address-list = ["{TOR_LINK}"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "{HOST_LINK}"
    peer-as = 65101
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
"#
    );
    let path = net.path_str("gobgpd.toml");
    fs::write(&path, config).unwrap();
    let api = format!("unix://{}", net.path_str("gobgpd.sock"));
    let mut command = net.command_in("tor", "gobgpd");
    command.args(["-f", &path, "--api-hosts", &api]);
    command.args(["--pprof-disable", "--log-plain"]);
    command.process_group(0);
    let child = spawn_logged(command, &net.path("gobgpd.log"));
    let cli = |args: &[&str]| {
        Command::new("gobgp")
            .args(["--target", &api])
            .args(args)
            .output()
            .is_ok_and(|out| out.status.success())
    };
    wait_for(
        "gobgpd's API",
        Duration::from_secs(10),
        || cli(&["neighbor"]),
        || crate::netns::tail(&net.path("gobgpd.log"), 30),
    );
    assert!(
        cli(&[
            "global", "rib", "add", "-a", "ipv4", TOR_PREFIX, "origin", "igp"
        ]),
        "gobgp global rib add {TOR_PREFIX}"
    );
    // GoBGP does not install routes: the kernel route its RIB would give.
    net.exec(
        "tor",
        &["ip", "route", "add", HOST_PREFIX, "via", HOST_LINK],
    );
    Tor::Gobgp {
        child: Some(child),
        api,
    }
}
