//! The routing daemons of `bench workloads`: the FRR ToR, and the anchors in the host's place
//! (FRR and BIRD 2, redistributing the kernel's routes), started like the ToR.

use std::{fs, os::unix::fs::PermissionsExt, path::PathBuf};

use anyhow::Result;
use netns_lab::Namespaces;

/// The ToR's bgpd config: an eBGP neighbor, no policy (it accepts everything).
pub const TOR_BGPD: &str = "hostname tor
router bgp 65001
 bgp router-id 10.0.11.1
 no bgp ebgp-requires-policy
 neighbor 10.0.11.2 remote-as 65101
 neighbor 10.0.11.2 timers 3 9
!
";

/// The FRR anchor on the host: zebra learns the `proto boot` routes as kernel routes
/// (`redistribute kernel` alone announces them all), bgpd announces those in 10.200/16.
pub const HOST_BGPD: &str = "hostname host
ip prefix-list workloads seq 5 permit 10.200.0.0/16 le 32
route-map workloads permit 10
 match ip address prefix-list workloads
!
router bgp 65101
 bgp router-id 192.0.2.10
 no bgp ebgp-requires-policy
 neighbor 10.0.11.1 remote-as 65001
 neighbor 10.0.11.1 timers 3 9
 address-family ipv4 unicast
  redistribute kernel route-map workloads
 exit-address-family
!
";

/// The BIRD anchor on the host: the kernel protocol learns the `proto boot` routes (`learn`),
/// BGP announces those in 10.200/16. Default scan time (60 s): with 10,000 routes at once,
/// BIRD misses some of the kernel's notifications and learns the rest at the next scan (with
/// `scan time 2`, the add took 0.26 s and the delete 2.7 s in one run).
pub const HOST_BIRD: &str = "router id 192.0.2.10;
protocol device {}
protocol kernel {
  ipv4 { import filter { if net ~ [10.200.0.0/16+] then accept; reject; }; export none; };
  learn;
}
protocol bgp tor {
  local 10.0.11.2 as 65101;
  neighbor 10.0.11.1 as 65001;
  hold time 9;
  ipv4 { import none; export filter { if net ~ [10.200.0.0/16+] then accept; reject; }; };
}
";

/// zebra + bgpd (`bgpd_config`) in `role`'s namespace, each daemon's files in a directory of
/// its own (`frr-ROLE/`): zserv socket, vty sockets, pid files (returned), `-N` path space.
pub fn start_frr(net: &Namespaces, role: &str, bgpd_config: &str) -> Result<Vec<PathBuf>> {
    let dir = net.path(&format!("frr-{role}"));
    fs::create_dir_all(&dir)?;
    // FRR drops privileges and writes its sockets there.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777))?;
    let path = |name: &str| str_of(&dir.join(name));
    fs::write(dir.join("bgpd.conf"), bgpd_config)?;
    let (zserv, vty, pathspace) = (path("zserv.api"), path(""), format!("{}{role}", net.name));
    let mut pidfiles = Vec::new();
    for (program, pid, config) in [
        ("/usr/lib/frr/zebra", "zebra.pid", None),
        ("/usr/lib/frr/bgpd", "bgpd.pid", Some(path("bgpd.conf"))),
    ] {
        let pidfile = path(pid);
        let mut args = vec![program, "-d", "-i", &pidfile];
        if let Some(config) = &config {
            args.extend(["-f", config]);
        }
        args.extend(["-z", &zserv, "--vty_socket", &vty, "-N", &pathspace]);
        net.exec(role, &args);
        pidfiles.push(pidfile.into());
    }
    Ok(pidfiles)
}

/// BIRD 2 (`config`) in `role`'s namespace; returns its pid file.
pub fn start_bird(net: &Namespaces, role: &str, config: &str) -> Result<PathBuf> {
    let conf = net.path_str("bird.conf");
    fs::write(&conf, config)?;
    let (ctl, pid) = (net.path_str("bird.ctl"), net.path_str("bird.pid"));
    net.exec(role, &["bird", "-c", &conf, "-s", &ctl, "-P", &pid]);
    Ok(pid.into())
}

fn str_of(path: &std::path::Path) -> String {
    path.to_str().expect("UTF-8 path").to_owned()
}
