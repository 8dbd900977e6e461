//! gobgpd in a lab's peer namespace: one neighbor (the host, IPv4 or IPv6 unicast), driven
//! with the `gobgp` CLI over a unix socket in the lab's scratch directory.

use std::{fs, process::Command, time::Duration};

use super::{HOST_ASN, Lab};
use crate::netns::wait_for;

/// gobgpd's configuration: AS `asn` at the peer's address, the host as its one neighbor
/// (IPv4 unicast), retrying connections every `connect_retry` seconds.
pub fn config(lab: &Lab, asn: u32, connect_retry: u32) -> String {
    session_config(lab, asn, connect_retry, &lab.peer_ip, &lab.host_ip, None)
}

/// [`config`] for an IPv6 session: gobgpd at `peer`, the host at `host` (IPv6 addresses on
/// the lab link, see [`Lab::add_ipv6`]), IPv6 unicast only.
pub fn config_v6(lab: &Lab, asn: u32, connect_retry: u32, host: &str, peer: &str) -> String {
    session_config(lab, asn, connect_retry, peer, host, Some(peer))
}

/// One session: gobgpd listening at `local`, the host at `host`, the family of their
/// addresses only. `source`: the address gobgpd connects from, if not the kernel's choice.
/// The router id is the peer's IPv4 address in any case.
fn session_config(
    lab: &Lab,
    asn: u32,
    connect_retry: u32,
    local: &str,
    host: &str,
    source: Option<&str>,
) -> String {
    let afi_safi = if local.contains(':') {
        "ipv6-unicast"
    } else {
        "ipv4-unicast"
    };
    let transport = source.map_or_else(String::new, |source| {
        format!("  [neighbors.transport.config]\n    local-address = \"{source}\"\n")
    });
    format!(
        r#"[global.config]
  as = {asn}
  router-id = "{router_id}"
  local-address-list = ["{local}"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "{host}"
    peer-as = {HOST_ASN}
{transport}  [neighbors.timers.config]
    connect-retry = {connect_retry}
    hold-time = 9
    keepalive-interval = 3
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "{afi_safi}"
"#,
        router_id = lab.peer_ip,
    )
}

/// The daemon label of [`start`]'s gobgpd.
const LABEL: &str = "gobgpd";

/// Starts gobgpd (daemon label `gobgpd`) with [`config`] and waits for its API.
pub fn start(lab: &mut Lab, asn: u32, connect_retry: u32) {
    let config = config(lab, asn, connect_retry);
    spawn(lab, LABEL, &config);
}

/// [`start`] with [`config_v6`]: an IPv6 session between `host` and `peer`.
pub fn start_v6(lab: &mut Lab, asn: u32, connect_retry: u32, host: &str, peer: &str) {
    let config = config_v6(lab, asn, connect_retry, host, peer);
    spawn(lab, LABEL, &config);
}

/// Starts a gobgpd with `config` as daemon `label` (several may run in one lab: config
/// `<label>.toml`, API socket `<label>.sock`, log `<label>.log`) and waits for its API.
pub fn spawn(lab: &mut Lab, label: &str, config: &str) {
    let config_path = lab.path_str(&format!("{label}.toml"));
    fs::write(&config_path, config).unwrap();
    let _ = fs::remove_file(lab.path(&format!("{label}.sock")));
    let mut command = lab.command_in("peer", "gobgpd");
    command.args(["-f", &config_path, "--api-hosts", &api(lab, label)]);
    command.args(["--pprof-disable", "--log-plain"]);
    lab.spawn_daemon(label, command);
    wait_for(
        &format!("{label}'s API"),
        Duration::from_secs(10),
        || cli_of(lab, label, &["neighbor"]).is_ok(),
        || lab.logs(),
    );
}

fn api(lab: &Lab, label: &str) -> String {
    format!("unix://{}", lab.path_str(&format!("{label}.sock")))
}

/// The `gobgp` CLI over [`start`]'s gobgpd: its stdout, or what went wrong.
pub fn cli(lab: &Lab, args: &[&str]) -> Result<String, String> {
    cli_of(lab, LABEL, args)
}

/// The `gobgp` CLI over the API of the gobgpd `label`: its stdout, or what went wrong.
pub fn cli_of(lab: &Lab, label: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("gobgp")
        .args(["--target", &api(lab, label)])
        .args(args)
        .output()
        .map_err(|e| format!("running gobgp: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "gobgp {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
