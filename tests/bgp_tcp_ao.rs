//! TCP-AO (RFC 5925) between two hostrouter agents, one per namespace (`interop::Lab`: the
//! host's agent, and a second agent in the peer namespace with its own pin directory and
//! control socket), each reading its key from a `key_file` (mode 0600).
//!
//! On a kernel with TCP-AO (Linux 6.7+ built with CONFIG_TCP_AO): the right key establishes
//! (both agents' logs say so, neither shows the key), a wrong key never does (10 s), and a key
//! on one side only never does. On a kernel without it (as this project's CI machine: 6.18
//! without CONFIG_TCP_AO), each test checks instead that an agent configured with `tcp_ao`
//! refuses to start, with an error naming the neighbor's `tcp_ao` and the missing kernel
//! option, and never the key. The two-agent lab itself is checked on every kernel by the same
//! scenarios with TCP MD5 (which such kernels have).
//!
//! Needs root. `HRGX_KEEP_LOGS=1` keeps each lab's directory.

mod interop;
mod netns;

use std::{
    fs,
    os::{fd::FromRawFd, unix::fs::PermissionsExt},
    path::PathBuf,
    time::{Duration, Instant},
};

use interop::{HOST_ASN, HOST_LOOPBACK, Lab};
use netns::{AGENT, wait_for};

const SESSION: Duration = Duration::from_secs(20);
/// How long a session that must not come up is watched.
const NEVER: Duration = Duration::from_secs(10);
const PEER_ASN: u32 = 65050;
const PEER_LOOPBACK: &str = "192.0.2.21";
const KEY: &str = "hostrouter-AO-key";

/// What protects the session in a scenario.
#[derive(Clone, Copy)]
enum Auth {
    Ao,
    Md5,
}

/// The neighbor line(s) for `key` (None: unprotected), writing its key file as `file`.
fn security(lab: &Lab, auth: Auth, key: Option<&str>, file: &str) -> String {
    let Some(key) = key else {
        return String::new();
    };
    let path = lab.path(file);
    fs::write(&path, format!("{key}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    match auth {
        Auth::Ao => format!(
            "tcp_ao = {{ key_id = 7, algorithm = \"hmac(sha256)\", key_file = \"{}\" }}",
            path.display()
        ),
        Auth::Md5 => format!("password_file = \"{}\"", path.display()),
    }
}

fn bgp(asn: u32, router_id: &str, neighbor: &str, remote_as: u32, security: &str) -> String {
    format!(
        "[bgp]\nasn = {asn}\nrouter_id = \"{router_id}\"\n\
         originate = [{{ prefix = \"{router_id}/32\" }}]\n\n\
         [[bgp.neighbor]]\naddress = \"{neighbor}\"\nremote_as = {remote_as}\n\
         import = \"all\"\nexport = \"all\"\nhold_time = 9\n{security}\n"
    )
}

/// An agent's pin directory beside the lab's (`<lab>-<role>`), removed on Drop (or by the
/// next lab, as a stale lab's, if the test process died).
struct AgentPins {
    pin_dir: PathBuf,
}

impl Drop for AgentPins {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.pin_dir);
    }
}

/// An agent's config file in `role`'s namespace, on that namespace's end of the link, with a
/// pin directory and control socket of its own.
fn agent_config(lab: &Lab, role: &str, bgp: &str) -> (PathBuf, AgentPins) {
    let pin_dir = PathBuf::from(format!("{}-{role}", lab.net.pin_dir.display()));
    let interface = if role == "peer" {
        &lab.peer_if
    } else {
        &lab.host_if
    };
    let config = format!(
        "[datapath]\npin_dir = \"{}\"\n[control]\nsocket = \"{}\"\n[[interface]]\nname = \"{}\"\n\n{bgp}",
        pin_dir.display(),
        lab.path_str(&format!("{role}-agent.sock")),
        interface
    );
    let path = lab.path(&format!("{role}-agent.toml"));
    fs::write(&path, config).unwrap();
    (path, AgentPins { pin_dir })
}

/// Starts the peer's agent (logging to `peer-agent.log`).
fn start_peer_agent(lab: &mut Lab, bgp: &str) -> AgentPins {
    let (path, guard) = agent_config(lab, "peer", bgp);
    let mut command = lab.command_in("peer", AGENT);
    command
        .args(["run", "-c", path.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info,router_agent::bgp=debug");
    lab.spawn_daemon("peer-agent", command);
    guard
}

fn peer_log(lab: &Lab) -> String {
    fs::read_to_string(lab.path("peer-agent.log")).unwrap_or_default()
}

/// Sessions the peer's agent reported established with the host.
fn peer_established(lab: &Lab) -> usize {
    let host = format!("peer={}:179", lab.host_ip);
    peer_log(lab)
        .lines()
        .filter(|line| line.contains("session established") && line.contains(&host))
        .count()
}

/// A lab with both agents, the host's key `host_key` and the peer's `peer_key`.
fn two_agents(
    tag: &str,
    subnet: u8,
    auth: Auth,
    host_key: Option<&str>,
    peer_key: Option<&str>,
) -> (Lab, AgentPins) {
    let mut lab = Lab::new(tag, &format!("h{tag}"), &format!("p{tag}"), subnet);
    let peer_security = security(&lab, auth, peer_key, "peer.key");
    let peer_bgp = bgp(
        PEER_ASN,
        PEER_LOOPBACK,
        &lab.host_ip.clone(),
        HOST_ASN,
        &peer_security,
    );
    let guard = start_peer_agent(&mut lab, &peer_bgp);
    let host_security = security(&lab, auth, host_key, "host.key");
    // The host's agent originates HOST_PREFIX (its loopback /32).
    let host_bgp = bgp(
        HOST_ASN,
        HOST_LOOPBACK,
        &lab.peer_ip.clone(),
        PEER_ASN,
        &host_security,
    );
    lab.start_agent(&host_bgp);
    (lab, guard)
}

fn logs(lab: &Lab) -> String {
    format!("{}\n--- peer agent:\n{}", lab.logs(), peer_log(lab))
}

fn assert_established_and_key_unseen(lab: &Lab, key: &str) {
    wait_for(
        "the host agent's session",
        SESSION,
        || lab.agent_established() >= 1,
        || logs(lab),
    );
    wait_for(
        "the peer agent's session",
        SESSION,
        || peer_established(lab) >= 1,
        || logs(lab),
    );
    let neighbors = lab.show("neighbors");
    assert!(!neighbors.is_null(), "show neighbors failed\n{}", logs(lab));
    assert!(!neighbors.to_string().contains(key), "{neighbors}");
    assert!(
        !lab.agent_log().contains(key),
        "the key is in the host's log"
    );
    assert!(!peer_log(lab).contains(key), "the key is in the peer's log");
}

/// Neither agent establishes for [`NEVER`], and both keep running.
fn assert_never_established(lab: &mut Lab) {
    let until = Instant::now() + NEVER;
    while Instant::now() < until {
        assert_eq!(lab.agent_established(), 0, "established:\n{}", logs(lab));
        assert_eq!(peer_established(lab), 0, "established:\n{}", logs(lab));
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(lab.agent_running(), "{}", logs(lab));
    assert!(lab.daemon_running("peer-agent"), "{}", logs(lab));
}

/// Whether this kernel takes a TCP-AO key (TCP_AO_ADD_KEY, Linux 6.7+ with CONFIG_TCP_AO):
/// ENOPROTOOPT says it has no TCP-AO; the key is a valid hmac(sha1) one for 10.0.0.1/32.
fn kernel_has_tcp_ao() -> bool {
    const TCP_AO_ADD_KEY: libc::c_int = 38;
    // struct tcp_ao_add: addr (sockaddr_storage), alg_name[64], ifindex, flags, reserved2,
    // prefix, sndid, rcvid, maclen, keyflags, keylen, key[80]; 288 bytes.
    let mut add = [0u64; 36];
    // SAFETY: [u64; 36] is 288 plain bytes, 8-aligned as struct tcp_ao_add.
    let bytes = unsafe { std::slice::from_raw_parts_mut(add.as_mut_ptr() as *mut u8, 288) };
    bytes[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    bytes[4..8].copy_from_slice(&[10, 0, 0, 1]);
    bytes[128..138].copy_from_slice(b"hmac(sha1)");
    bytes[202..208].copy_from_slice(&[32, 1, 1, 12, 0, 3]);
    bytes[208..211].copy_from_slice(b"key");
    // SAFETY: socket has no preconditions; the descriptor is owned by `socket` below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: fd is a new descriptor nobody else owns.
    let socket = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    use std::os::fd::AsRawFd;
    // SAFETY: add outlives the call and holds 288 bytes.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            TCP_AO_ADD_KEY,
            add.as_ptr() as *const libc::c_void,
            288,
        )
    };
    if rc == 0 {
        return true;
    }
    let err = std::io::Error::last_os_error();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ENOPROTOOPT),
        "TCP_AO_ADD_KEY failed otherwise: {err}"
    );
    false
}

/// Without TCP-AO in the kernel: the agent whose neighbor has `tcp_ao` (`role`: host or peer)
/// exits before it loads XDP, with an error naming the neighbor's `tcp_ao`, the kernel option,
/// and not the key; the configuration itself is valid (`check` accepts it).
fn assert_refused_without_kernel_support(tag: &str, subnet: u8, role: &str) {
    let lab = Lab::new(tag, &format!("h{tag}"), &format!("p{tag}"), subnet);
    let neighbor = if role == "host" {
        lab.peer_ip.clone()
    } else {
        lab.host_ip.clone()
    };
    let key = security(&lab, Auth::Ao, Some(KEY), "ao.key");
    let (config, _guard) = agent_config(
        &lab,
        role,
        &bgp(PEER_ASN, PEER_LOOPBACK, &neighbor, HOST_ASN, &key),
    );
    let config = config.to_str().unwrap();
    let check = lab
        .command_in(role, AGENT)
        .args(["check", "-c", config])
        .output()
        .unwrap();
    assert!(check.status.success(), "check: {check:?}");
    let mut agent = lab
        .command_in(role, AGENT)
        .args(["run", "-c", config])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while agent.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = agent.kill();
            panic!("the agent started with tcp_ao on a kernel without TCP-AO");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = agent.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("bgp.neighbor[0].tcp_ao"), "{text}");
    assert!(text.contains(&neighbor), "names the neighbor: {text}");
    assert!(text.contains("CONFIG_TCP_AO"), "{text}");
    assert!(!text.contains(KEY), "the key is in the output: {text}");
    // Refused before the datapath is touched: nothing to undo.
    assert!(!text.contains("XDP program loaded"), "{text}");
    eprintln!("this kernel has no TCP-AO: checked the agent's refusal to start only:\n{text}");
}

#[test]
fn ao_right_key_establishes_and_is_never_shown() {
    if !kernel_has_tcp_ao() {
        return assert_refused_without_kernel_support("aook", 61, "host");
    }
    let (lab, _peer) = two_agents("aook", 61, Auth::Ao, Some(KEY), Some(KEY));
    assert_established_and_key_unseen(&lab, KEY);
}

#[test]
fn ao_wrong_key_never_establishes() {
    if !kernel_has_tcp_ao() {
        return assert_refused_without_kernel_support("aobad", 62, "peer");
    }
    let (mut lab, _peer) = two_agents("aobad", 62, Auth::Ao, Some(KEY), Some("not-the-key"));
    assert_never_established(&mut lab);
}

#[test]
fn ao_key_on_one_side_only_never_establishes() {
    if !kernel_has_tcp_ao() {
        return assert_refused_without_kernel_support("aoone", 63, "host");
    }
    let (mut lab, peer) = two_agents("aoours", 63, Auth::Ao, Some(KEY), None);
    assert_never_established(&mut lab);
    drop((lab, peer));
    let (mut lab, _peer) = two_agents("aotheirs", 64, Auth::Ao, None, Some(KEY));
    assert_never_established(&mut lab);
}

/// The same scenarios with TCP MD5, on every kernel: the two-agent lab works (and two
/// hostrouter agents interoperate with MD5).
#[test]
fn md5_between_two_agents() {
    let (lab, peer) = two_agents("aomd5", 65, Auth::Md5, Some(KEY), Some(KEY));
    assert_established_and_key_unseen(&lab, KEY);
    drop((lab, peer));
    let (mut lab, peer) = two_agents("aomd5bad", 66, Auth::Md5, Some(KEY), Some("not-the-key"));
    assert_never_established(&mut lab);
    drop((lab, peer));
    let (mut lab, _peer) = two_agents("aomd5one", 67, Auth::Md5, Some(KEY), None);
    assert_never_established(&mut lab);
}
