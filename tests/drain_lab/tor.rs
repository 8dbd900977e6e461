//! The ToR's side of the drain lab: FRR or BIRD started, and what it holds for the VIP.

use std::{fs, time::Duration};

use serde_json::Value;

use super::{A, B, HOST_ASN, Host, Lab, TOR_ASN, Tor, VIP};
use crate::netns::wait_for;

impl Lab {
    /// The ToR's kernel next hops for the VIP.
    pub fn tor_vias(&self) -> Vec<String> {
        let out = self.exec("tor", &["ip", "-4", "route", "show", &format!("{VIP}/32")]);
        let mut vias: Vec<String> = out
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "via")
            .map(|w| w[1].to_owned())
            .collect();
        vias.sort();
        vias
    }

    /// The ToR's BGP paths for the VIP: (from host, tagged GRACEFUL_SHUTDOWN, AS path length).
    pub fn tor_paths(&self) -> Vec<(String, bool, usize)> {
        match self.tor {
            Tor::Frr => {
                let json = self.vtysh(&format!("show bgp ipv4 unicast {VIP}/32 json"));
                json["paths"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        let from = p["peer"]["peerId"].as_str().unwrap_or("?").to_owned();
                        let gshut = p["community"]["string"]
                            .as_str()
                            .is_some_and(|c| c.contains("graceful-shutdown"));
                        let length = p["aspath"]["length"].as_u64().unwrap_or(0) as usize;
                        (from, gshut, length)
                    })
                    .collect()
            }
            Tor::Bird => {
                // One block per route: "via X on IF", then its attributes.
                let text = self.birdc(&format!("show route for {VIP}/32 all"));
                let mut paths = Vec::new();
                for line in text.lines() {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    if let Some(at) = words.iter().position(|w| *w == "via") {
                        paths.push((words.get(at + 1).unwrap_or(&"?").to_string(), false, 0));
                    } else if let Some(last) = paths.last_mut() {
                        if line.contains("BGP.community") && line.contains("(65535,0)") {
                            last.1 = true;
                        }
                        if let Some(path) = line.trim().strip_prefix("BGP.as_path:") {
                            last.2 = path.split_whitespace().count();
                        }
                    }
                }
                paths
            }
        }
    }

    pub fn vtysh(&self, command: &str) -> Value {
        let out = std::process::Command::new("vtysh")
            .args(["--vty_socket", &self.net.path_str(""), "-c", command])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    pub fn birdc(&self, command: &str) -> String {
        let out = std::process::Command::new("birdc")
            .arg("-s")
            .arg(self.net.path("bird.ctl"))
            .args(command.split(' '))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn start_tor(&self) {
        match self.tor {
            Tor::Frr => {
                let config = format!(
                    "log file {log} debugging\nfrr defaults datacenter\n\
                     bgp community-list standard GSHUT seq 5 permit graceful-shutdown\n\
                     route-map HOSTS-IN permit 10\n match community GSHUT\n set local-preference 0\n\
                     route-map HOSTS-IN permit 20\n!\n\
                     router bgp {TOR_ASN}\n bgp router-id 10.2.0.1\n\
                     no bgp ebgp-requires-policy\n\
                     neighbor 10.2.1.2 remote-as {HOST_ASN}\n neighbor 10.2.2.2 remote-as {HOST_ASN}\n\
                     neighbor 10.2.1.2 timers 3 9\n neighbor 10.2.2.2 timers 3 9\n\
                     neighbor 10.2.1.2 timers connect 1\n neighbor 10.2.2.2 timers connect 1\n\
                     address-family ipv4 unicast\n  maximum-paths 8\n\
                       neighbor 10.2.1.2 route-map HOSTS-IN in\n\
                       neighbor 10.2.2.2 route-map HOSTS-IN in\n exit-address-family\n",
                    log = self.net.path_str("frr-bgpd.log"),
                );
                fs::write(self.net.path("bgpd.conf"), config).unwrap();
                let pathspace = format!("{}tor", self.net.name);
                let (zserv, vty) = (self.net.path_str("zserv.api"), self.net.path_str(""));
                for (program, extra) in [
                    ("/usr/lib/frr/zebra", vec!["-i", "zebra.pid"]),
                    (
                        "/usr/lib/frr/bgpd",
                        vec!["-i", "bgpd.pid", "-f", "bgpd.conf"],
                    ),
                ] {
                    let extra: Vec<String> = extra
                        .iter()
                        .map(|a| {
                            if a.ends_with(".pid") || a.ends_with(".conf") {
                                self.net.path_str(a)
                            } else {
                                a.to_string()
                            }
                        })
                        .collect();
                    let mut args = vec![program, "-d"];
                    args.extend(extra.iter().map(String::as_str));
                    args.extend(["-z", &zserv, "--vty_socket", &vty, "-N", &pathspace]);
                    self.exec("tor", &args);
                }
            }
            Tor::Bird => {
                let neighbors: String = [A, B]
                    .iter()
                    .map(|h| {
                        format!(
                            "protocol bgp host{} {{\n  local {} as {TOR_ASN};\n  \
                             neighbor {} as {HOST_ASN};\n  hold time 9;\n  connect retry time 1;\n  \
                             ipv4 {{ import all; export none; }};\n}}\n",
                            h.letter(),
                            h.tor_address(),
                            h.address()
                        )
                    })
                    .collect();
                let config = format!(
                    "log \"{log}\" all;\nrouter id 10.2.0.1;\nprotocol device {{}}\n\
                     protocol kernel {{\n  ipv4 {{ export all; }};\n  merge paths yes limit 8;\n}}\n\
                     {neighbors}",
                    log = self.net.path_str("bird-tor.log"),
                );
                fs::write(self.net.path("bird.conf"), config).unwrap();
                let (conf, ctl, pid) = (
                    self.net.path_str("bird.conf"),
                    self.net.path_str("bird.ctl"),
                    self.net.path_str("bird.pid"),
                );
                self.exec("tor", &["bird", "-c", &conf, "-s", &ctl, "-P", &pid]);
            }
        }
    }

    /// Waits until the ToR forwards the VIP to exactly `hosts`.
    pub fn wait_tor_vias(&self, what: &str, hosts: &[Host], within: Duration) {
        let mut want: Vec<String> = hosts.iter().map(|h| h.address()).collect();
        want.sort();
        wait_for(
            what,
            within,
            || self.tor_vias() == want,
            || {
                format!(
                    "tor vias {:?}, paths {:?}\n{}",
                    self.tor_vias(),
                    self.tor_paths(),
                    self.logs()
                )
            },
        );
    }

    /// A's path at the ToR: Some(tagged) while present.
    pub fn path_of(&self, host: Host) -> Option<(bool, usize)> {
        self.tor_paths()
            .into_iter()
            .find(|(from, _, _)| *from == host.address())
            .map(|(_, gshut, length)| (gshut, length))
    }
}
