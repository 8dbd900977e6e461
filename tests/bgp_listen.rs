//! `[bgp] listen` and connections from non-neighbors, with GoBGP as a TCP MD5 neighbor (see
//! `interop/mod.rs` for the lab). The agent listens on one of its two addresses on the lab
//! link only; its neighbor is passive, so the session comes up through that listener, with
//! the neighbor's MD5 key on it. A connection to the other address is refused by the kernel
//! (nothing listens there); connections from a non-neighbor source are refused by the agent
//! and logged once, with the count of the others at the next log.
//! Needs root and gobgpd.

mod interop;
mod netns;

use std::{
    fs,
    net::{IpAddr, SocketAddr},
    os::fd::AsRawFd,
    thread,
    time::Duration,
};

use interop::{HOST_ASN, HOST_LOOPBACK, HOST_PREFIX, Lab};
use netns::wait_for;

const GOBGP_ASN: u32 = 65060;
const KEY: &str = "hostrouter-listen-Key";
const SUBNET: u8 = 84;

/// Connects to `to`:179 from `from`, inside `role`'s namespace: what connect() said.
fn connect_from(lab: &Lab, role: &str, from: &str, to: &str) -> std::io::Result<()> {
    let netns = fs::File::open(format!("/run/netns/{}", lab.net.ns(role))).unwrap();
    let from: IpAddr = from.parse().unwrap();
    let to: IpAddr = to.parse().unwrap();
    thread::spawn(move || {
        // SAFETY: setns on this thread only; it ends right after.
        assert_eq!(
            unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(from, 0))?;
            let stream = tokio::time::timeout(
                Duration::from_secs(3),
                socket.connect(SocketAddr::new(to, 179)),
            )
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            // Until the agent closes it (refused) or 1 s.
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.readable()).await;
            Ok(())
        })
    })
    .join()
    .unwrap()
}

#[test]
fn the_agent_listens_only_where_configured_and_logs_refusals_once() {
    let mut lab = Lab::new("listen", "lh", "lp", SUBNET);
    let other_host = format!("10.0.{SUBNET}.3");
    let stranger = format!("10.0.{SUBNET}.9");
    lab.exec(
        "host",
        &[
            "ip",
            "addr",
            "add",
            &format!("{other_host}/24"),
            "dev",
            "lh",
        ],
    );
    lab.exec(
        "peer",
        &["ip", "addr", "add", &format!("{stranger}/24"), "dev", "lp"],
    );
    let gobgp = format!(
        r#"[global.config]
  as = {GOBGP_ASN}
  router-id = "{peer}"
  local-address-list = ["{peer}"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "{host}"
    peer-as = {HOST_ASN}
    auth-password = "{KEY}"
  [neighbors.transport.config]
    local-address = "{peer}"
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
"#,
        peer = lab.peer_ip,
        host = lab.host_ip,
    );
    interop::gobgp::spawn(&mut lab, "gobgpd", &gobgp);
    let bgp = format!(
        r#"[bgp]
asn = {HOST_ASN}
router_id = "{HOST_LOOPBACK}"
originate = [{{ prefix = "{HOST_PREFIX}" }}]
listen = ["{host}"]

[[bgp.neighbor]]
address = "{peer}"
remote_as = {GOBGP_ASN}
import = "all"
export = "all"
passive = true
hold_time = 9
password = "{KEY}"
"#,
        host = lab.host_ip,
        peer = lab.peer_ip,
    );
    lab.start_agent(&bgp);
    wait_for(
        "the session through the listener, with MD5",
        Duration::from_secs(30),
        || lab.agent_established() >= 1,
        || lab.logs(),
    );
    let listening = lab.exec("host", &["ss", "-Hltn", "sport = :179"]);
    let sockets: Vec<&str> = listening.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(sockets.len(), 1, "{listening}");
    assert!(
        sockets[0].contains(&format!("{}]:179", lab.host_ip)),
        "{listening}"
    );

    let refused = connect_from(&lab, "peer", &lab.peer_ip, &other_host).unwrap_err();
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "nothing listens at {other_host}"
    );

    let from_stranger = format!("address={stranger}");
    for _ in 0..5 {
        connect_from(&lab, "peer", &stranger, &lab.host_ip).unwrap();
    }
    wait_for(
        "the agent to log the refusal",
        Duration::from_secs(5),
        || lab.agent_log_count(&["refused a BGP connection from a non-neighbor"]) > 0,
        || lab.logs(),
    );
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        lab.agent_log_count(&[
            "refused a BGP connection from a non-neighbor",
            &from_stranger
        ]),
        1,
        "five refusals, one log line\n{}",
        lab.logs()
    );
    // The session is unaffected.
    assert_eq!(lab.agent_established(), 1, "{}", lab.logs());
}
