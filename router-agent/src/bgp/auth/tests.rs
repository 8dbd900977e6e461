use std::{
    net::{IpAddr, Ipv4Addr},
    os::{fd::AsFd, unix::fs::PermissionsExt},
};

use super::*;
use crate::bgp::config::{BgpConfig, BgpSetup};

const SECRET: &str = "s3cret-Key!";

fn compile(neighbors: &str) -> Result<BgpSetup, PolicyError> {
    let config: BgpConfig = toml::from_str(&format!(
        "asn = 65101\nrouter_id = \"10.255.0.1\"\n{neighbors}"
    ))
    .unwrap();
    let setup = config.compile()?;
    crate::bgp::check_listener_keys(&setup)?;
    Ok(setup)
}

/// A key file in its own temporary directory, with this mode.
fn key_file(contents: &str, mode: u32) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "hr-auth-test-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("key");
    std::fs::write(&path, contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    (dir, path)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn password_is_compiled_and_never_printed() {
    let setup = compile(&format!(
        "[[neighbor]]\naddress = \"10.0.1.1\"\nremote_as = 65001\npassword = \"{SECRET}\"\n"
    ))
    .unwrap();
    let security = &setup.neighbors[0].security;
    assert_eq!(security.md5.as_ref().unwrap().bytes(), SECRET.as_bytes());
    assert!(
        !security.ttl_security,
        "off by default for a numbered neighbor"
    );
    let printed = format!("{:?} {:#?}", setup.neighbors[0], setup);
    assert!(!printed.contains(SECRET), "{printed}");
    assert!(printed.contains("<redacted>"));
}

#[test]
fn password_and_password_file_are_exclusive() {
    let err = compile(
        "[[neighbor]]\naddress = \"10.0.1.1\"\nremote_as = 65001\npassword = \"a\"\n\
         password_file = \"/nonexistent\"\n",
    )
    .unwrap_err();
    assert_eq!(err.key, "bgp.neighbor[0].password_file");
}

#[test]
fn keys_longer_than_80_bytes_are_refused_without_showing_them() {
    let long = "k".repeat(81);
    let err = compile(&format!(
        "[[dynamic_neighbor]]\nrange = \"10.0.2.0/24\"\nremote_as = 65001\npassword = \"{long}\"\n"
    ))
    .unwrap_err();
    assert_eq!(err.key, "bgp.dynamic_neighbor[0].password");
    assert!(err.reason.contains("81 bytes"), "{}", err.reason);
    assert!(!err.reason.contains(&long));
    let max = "k".repeat(80);
    compile(&format!(
        "[[neighbor]]\naddress = \"10.0.1.1\"\nremote_as = 65001\npassword = \"{max}\"\n"
    ))
    .unwrap();
    let err = compile("[[neighbor]]\naddress = \"10.0.1.1\"\nremote_as = 65001\npassword = \"\"\n")
        .unwrap_err();
    assert_eq!(err.key, "bgp.neighbor[0].password");
}

#[test]
fn password_file_must_be_private() {
    let (dir, path) = key_file(&format!("{SECRET}\n"), 0o644);
    let neighbor = format!(
        "[[neighbor]]\naddress = \"10.0.1.1\"\nremote_as = 65001\npassword_file = \"{}\"\n",
        path.display()
    );
    let err = compile(&neighbor).unwrap_err();
    assert_eq!(err.key, "bgp.neighbor[0].password_file");
    assert!(err.reason.contains("0644"), "{}", err.reason);
    assert!(!err.reason.contains(SECRET));

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(compile(&neighbor).is_err(), "group-readable");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let setup = compile(&neighbor).unwrap();
    let key = setup.neighbors[0].security.md5.as_ref().unwrap();
    assert_eq!(key.bytes(), SECRET.as_bytes(), "trailing newline stripped");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    compile(&neighbor).unwrap();
    std::fs::remove_dir_all(dir).unwrap();

    let err = compile(
        "[[neighbor]]\naddress = \"10.0.1.1\"\nremote_as = 65001\n\
         password_file = \"/nonexistent/key\"\n",
    )
    .unwrap_err();
    assert_eq!(err.key, "bgp.neighbor[0].password_file");
    assert!(err.reason.contains("/nonexistent/key"), "{}", err.reason);
}

#[test]
fn password_file_owned_by_someone_else_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: chown needs root");
        return;
    }
    let (dir, path) = key_file(SECRET, 0o600);
    std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
    let err = compile(&format!(
        "[[neighbor]]\naddress = \"10.0.1.1\"\nremote_as = 65001\npassword_file = \"{}\"\n",
        path.display()
    ))
    .unwrap_err();
    assert!(err.reason.contains("uid 65534"), "{}", err.reason);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ttl_security_defaults_on_for_one_hop_peers_only() {
    let setup = compile(
        "[[neighbor]]\ninterface = \"eth1\"\nremote_as = \"external\"\n\
         [[neighbor]]\naddress = \"10.0.1.1\"\nremote_as = 65001\n\
         [[neighbor]]\naddress = \"fe80::1\"\nremote_as = 65001\npassive = true\n\
         [[neighbor]]\naddress = \"10.0.1.2\"\nremote_as = 65001\nttl_security = true\n\
         [[neighbor]]\ninterface = \"eth2\"\nremote_as = 65001\nttl_security = false\n\
         [[dynamic_neighbor]]\nrange = \"fe80::/64\"\nremote_as = \"external\"\n\
         [[dynamic_neighbor]]\nrange = \"10.0.2.0/24\"\nremote_as = \"external\"\n",
    )
    .unwrap();
    let neighbors: Vec<bool> = setup
        .neighbors
        .iter()
        .map(|n| n.security.ttl_security)
        .collect();
    assert_eq!(neighbors, [true, false, true, true, false]);
    let dynamic: Vec<bool> = setup
        .dynamic_neighbors
        .iter()
        .map(|d| d.template.security.ttl_security)
        .collect();
    assert_eq!(dynamic, [true, false]);
    let setup = compile("[[dynamic_neighbor]]\ninterface = \"vms\"\nremote_as = 65001\n").unwrap();
    assert!(setup.dynamic_neighbors[0].template.security.ttl_security);
    assert!(setup.all_ttl_security(), "the listener can require 255");
    let mixed = compile(
        "[[neighbor]]\ninterface = \"eth1\"\nremote_as = 65001\n\
         [[neighbor]]\naddress = \"10.0.1.1\"\nremote_as = 65001\n",
    )
    .unwrap();
    assert!(!mixed.all_ttl_security());
    assert!(!compile("").unwrap().all_ttl_security());
}

#[test]
fn listener_keys_cover_neighbors_ranges_and_link_local() {
    let setup = compile(
        "[[neighbor]]\naddress = \"10.0.1.1\"\nremote_as = 65001\npassword = \"a\"\n\
         [[neighbor]]\naddress = \"10.0.1.2\"\nremote_as = 65001\n\
         [[neighbor]]\ninterface = \"eth1\"\nremote_as = 65001\npassword = \"b\"\n\
         [[dynamic_neighbor]]\nrange = \"10.0.2.0/24\"\nremote_as = 65001\npassword = \"c\"\n",
    )
    .unwrap();
    let keys = listener_keys(&setup).unwrap();
    let scopes: Vec<String> = keys.keys().map(ToString::to_string).collect();
    assert_eq!(scopes, ["10.0.1.1", "10.0.2.0/24", "fe80::/10"]);
}

#[test]
fn link_local_peers_with_different_keys_are_an_error() {
    let err = compile(
        "[[neighbor]]\ninterface = \"eth1\"\nremote_as = 65001\npassword = \"a\"\n\
         [[neighbor]]\ninterface = \"eth2\"\nremote_as = 65001\npassword = \"b\"\n",
    )
    .unwrap_err();
    assert_eq!(err.key, "bgp.neighbor[1].password");
    let err = compile(
        "[[neighbor]]\ninterface = \"eth1\"\nremote_as = 65001\npassword = \"a\"\n\
         [[dynamic_neighbor]]\ninterface = \"vms\"\nremote_as = 65001\n",
    )
    .unwrap_err();
    assert_eq!(err.key, "bgp.dynamic_neighbor[0].password");
    compile(
        "[[neighbor]]\ninterface = \"eth1\"\nremote_as = 65001\npassword = \"a\"\n\
         [[neighbor]]\ninterface = \"eth2\"\nremote_as = 65001\npassword = \"a\"\n",
    )
    .unwrap();
}

/// The kernel takes every kind of key we install on the dual-stack listener and on outgoing
/// sockets, and removing them (also twice) works.
#[test]
fn the_kernel_takes_our_keys() {
    let key = Md5Key(SECRET.as_bytes().to_vec());
    let v6 = tokio::net::TcpSocket::new_v6().unwrap();
    let v4 = tokio::net::TcpSocket::new_v4().unwrap();
    let scopes = [
        KeyScope::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1))),
        KeyScope::Address("2001:db8::1".parse().unwrap()),
        KeyScope::Prefix("10.0.2.0/24".parse().unwrap()),
        KeyScope::Prefix("2001:db8:2::/64".parse().unwrap()),
        KeyScope::Prefix(link_local_prefix()),
    ];
    for scope in scopes {
        set_key(v6.as_fd(), Family::V6, scope, Some(&key))
            .unwrap_or_else(|e| panic!("{scope}: {e}"));
        set_key(v6.as_fd(), Family::V6, scope, None).unwrap();
        set_key(v6.as_fd(), Family::V6, scope, None).unwrap();
    }
    let v4_peer = KeyScope::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)));
    set_key(v4.as_fd(), Family::V4, v4_peer, Some(&key)).unwrap();
    assert!(set_key(v4.as_fd(), Family::V4, scopes[1], Some(&key)).is_err());

    let new: ListenerKeys = scopes.iter().map(|s| (*s, key.clone())).collect();
    assert_eq!(sync_listener(v6.as_fd(), &ListenerKeys::new(), &new), 0);
    assert_eq!(sync_listener(v6.as_fd(), &new, &ListenerKeys::new()), 0);
}
