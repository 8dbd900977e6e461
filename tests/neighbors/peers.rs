//! The peer daemons the cases start: GoBGP and FRR.

use super::*;

pub(crate) const GOBGP_ASN: u32 = 65010;

pub(crate) struct GoBgp;

impl GoBgp {
    pub(crate) fn cli(lab: &Lab, args: &[&str]) -> Option<String> {
        interop::gobgp::cli_of(lab, "gobgp", args).ok()
    }

    /// gobgpd active towards `neighbors` (address, our AS as they see it), listening or not.
    pub(crate) fn start_with(
        lab: &mut Lab,
        label: &str,
        router_id: &str,
        neighbors: &[&str],
        listen: bool,
    ) {
        let mut config = format!(
            "[global.config]\n  as = {GOBGP_ASN}\n  router-id = \"{router_id}\"\n  \
             local-address-list = [\"{router_id}\"]\n{}",
            if listen { "" } else { "  port = -1\n" }
        );
        for neighbor in neighbors {
            config.push_str(&format!(
                r#"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{neighbor}"
    peer-as = {HOST_ASN}
  [neighbors.transport.config]
    local-address = "{router_id}"
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
"#
            ));
        }
        interop::gobgp::spawn(lab, label, &config);
    }
}

pub(crate) const FRR_ASN: u32 = 65030;
/// Higher than the agent's 192.0.2.20: FRR's connection wins.
pub(crate) const FRR_ROUTER_ID: &str = "203.0.113.1";

pub(crate) struct Frr;

impl Frr {
    /// zebra (once, with `zebra_config`) and bgpd (with `bgpd.conf`) in the peer namespace,
    /// in the foreground so that the lab stops them.
    pub(crate) fn launch(lab: &mut Lab, zebra_config: &str) {
        // The pathspace (`-N`) the lab's Drop knows: `<lab><role>`.
        let pathspace = format!("{}peer", lab.net.name);
        let (zserv, dir) = (lab.path_str("zserv.api"), lab.path_str(""));
        if lab.daemon_pid("zebra").is_none() {
            fs::write(lab.path("zebra.conf"), zebra_config).unwrap();
            let mut zebra = lab.command_in("peer", "/usr/lib/frr/zebra");
            zebra
                .args(["-i", &lab.path_str("zebra.pid"), "-z", &zserv])
                .args(["-f", &lab.path_str("zebra.conf")])
                .args(["--vty_socket", &dir, "-N", &pathspace]);
            lab.spawn_daemon("zebra", zebra);
            wait_for(
                "zebra's API socket",
                Duration::from_secs(10),
                || lab.path("zserv.api").exists(),
                || lab.logs(),
            );
        }
        let mut bgpd = lab.command_in("peer", "/usr/lib/frr/bgpd");
        bgpd.args([
            "-i",
            &lab.path_str("bgpd.pid"),
            "-f",
            &lab.path_str("bgpd.conf"),
        ])
        .args(["-z", &zserv, "--vty_socket", &dir, "-N", &pathspace]);
        lab.spawn_daemon("bgpd", bgpd);
        wait_for(
            "bgpd's vty",
            Duration::from_secs(10),
            || !Frr::vtysh(lab, "show bgp summary json").is_null(),
            || lab.logs(),
        );
    }

    pub(crate) fn vtysh(lab: &Lab, command: &str) -> Value {
        Command::new("vtysh")
            .args(["--vty_socket", &lab.path_str(""), "-c", command])
            .output()
            .ok()
            .and_then(|out| serde_json::from_slice(&out.stdout).ok())
            .unwrap_or(Value::Null)
    }
}
