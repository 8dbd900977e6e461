//! gobgpd in a lab's peer namespace: one neighbor (the host, IPv4 unicast), driven with the
//! `gobgp` CLI over a unix socket in the lab's scratch directory.

use std::{fs, process::Command, time::Duration};

use super::{HOST_ASN, Lab};
use crate::netns::wait_for;

/// gobgpd's configuration: AS `asn` at the peer's address, the host as its one neighbor
/// (IPv4 unicast), retrying connections every `connect_retry` seconds.
pub fn config(lab: &Lab, asn: u32, connect_retry: u32) -> String {
    format!(
        r#"[global.config]
  as = {asn}
  router-id = "{peer}"
  local-address-list = ["{peer}"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "{host}"
    peer-as = {HOST_ASN}
  [neighbors.timers.config]
    connect-retry = {connect_retry}
    hold-time = 9
    keepalive-interval = 3
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
"#,
        peer = lab.peer_ip,
        host = lab.host_ip
    )
}

/// The daemon label of [`start`]'s gobgpd.
const LABEL: &str = "gobgpd";

/// Starts gobgpd (daemon label `gobgpd`) with [`config`] and waits for its API.
pub fn start(lab: &mut Lab, asn: u32, connect_retry: u32) {
    let config = config(lab, asn, connect_retry);
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
