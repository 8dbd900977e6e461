use std::{
    mem::{align_of, offset_of, size_of},
    net::{IpAddr, Ipv4Addr},
    os::{fd::AsFd, unix::fs::PermissionsExt},
};

use super::*;
use crate::bgp::config::{BgpConfig, BgpSetup};

const SECRET: &str = "ao-Secret-Key!";

fn compile(neighbors: &str) -> Result<BgpSetup, PolicyError> {
    let config: BgpConfig = toml::from_str(&format!(
        "asn = 65101\nrouter_id = \"10.255.0.1\"\n{neighbors}"
    ))
    .map_err(|err| PolicyError {
        key: "toml".into(),
        reason: err.to_string(),
    })?;
    let setup = config.compile()?;
    crate::bgp::check_listener_keys(&setup)?;
    Ok(setup)
}

fn neighbor(tcp_ao: &str) -> String {
    format!("[[neighbor]]\naddress = \"10.0.1.1\"\nremote_as = 65001\ntcp_ao = {{ {tcp_ao} }}\n")
}

fn key(send_id: u8, recv_id: u8) -> AoKey {
    AoKey {
        send_id,
        recv_id,
        algorithm: AoAlgorithm::HmacSha256,
        secret: SECRET.as_bytes().to_vec(),
    }
}

fn bytes<T>(value: &T) -> &[u8] {
    // SAFETY: T is a repr(C) struct of integers and byte arrays, fully initialised (zeroed
    // or written field by field, with no padding in TcpAoAdd / TcpAoDel: see the layout test).
    unsafe { std::slice::from_raw_parts(value as *const T as *const u8, size_of::<T>()) }
}

/// The offsets gcc gives struct tcp_ao_add and struct tcp_ao_del of include/uapi/linux/tcp.h
/// (Linux 6.7+) on x86_64: what the kernel copies from the socket option.
#[test]
fn sockopt_structs_have_the_kernel_layout() {
    assert_eq!(size_of::<TcpAoAdd>(), 288);
    assert_eq!(align_of::<TcpAoAdd>(), 8);
    let add = [
        (offset_of!(TcpAoAdd, alg_name), 128),
        (offset_of!(TcpAoAdd, ifindex), 192),
        (offset_of!(TcpAoAdd, flags), 196),
        (offset_of!(TcpAoAdd, reserved2), 200),
        (offset_of!(TcpAoAdd, prefix), 202),
        (offset_of!(TcpAoAdd, sndid), 203),
        (offset_of!(TcpAoAdd, rcvid), 204),
        (offset_of!(TcpAoAdd, maclen), 205),
        (offset_of!(TcpAoAdd, keyflags), 206),
        (offset_of!(TcpAoAdd, keylen), 207),
        (offset_of!(TcpAoAdd, key), 208),
    ];
    for (ours, kernel) in add {
        assert_eq!(ours, kernel);
    }
    assert_eq!(size_of::<TcpAoDel>(), 144);
    assert_eq!(align_of::<TcpAoDel>(), 8);
    let del = [
        (offset_of!(TcpAoDel, ifindex), 128),
        (offset_of!(TcpAoDel, flags), 132),
        (offset_of!(TcpAoDel, reserved2), 136),
        (offset_of!(TcpAoDel, prefix), 138),
        (offset_of!(TcpAoDel, sndid), 139),
        (offset_of!(TcpAoDel, rcvid), 140),
        (offset_of!(TcpAoDel, current_key), 141),
        (offset_of!(TcpAoDel, rnext), 142),
        (offset_of!(TcpAoDel, keyflags), 143),
    ];
    for (ours, kernel) in del {
        assert_eq!(ours, kernel);
    }
}

#[test]
fn add_key_encodes_a_v4_peer_on_the_dual_stack_listener() {
    let scope = KeyScope::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)));
    let add = encode_add(Family::V6, scope, &key(3, 7), false).unwrap();
    let b = bytes(&add);
    assert_eq!(u16::from_ne_bytes([b[0], b[1]]), libc::AF_INET6 as u16);
    assert_eq!(&b[2..8], &[0; 6], "port and flow info");
    assert_eq!(
        &b[8..24],
        &Ipv4Addr::new(10, 0, 1, 1).to_ipv6_mapped().octets()
    );
    assert_eq!(&b[128..141], b"hmac(sha256)\0");
    assert!(b[141..192].iter().all(|&x| x == 0));
    assert_eq!(&b[192..202], &[0; 10], "ifindex, flags, reserved");
    // prefix (v4 length for a mapped address), sndid, rcvid, maclen, keyflags, keylen
    assert_eq!(&b[202..208], &[32, 3, 7, 12, 0, SECRET.len() as u8]);
    assert_eq!(&b[208..208 + SECRET.len()], SECRET.as_bytes());
    assert!(b[208 + SECRET.len()..].iter().all(|&x| x == 0));
}

#[test]
fn add_key_encodes_outgoing_sockets_prefixes_and_algorithms() {
    // An outgoing v4 socket: AF_INET, and the key becomes current and RNext (bits 0 and 1).
    let peer = KeyScope::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)));
    let add = encode_add(Family::V4, peer, &key(1, 1), true).unwrap();
    let b = bytes(&add);
    assert_eq!(u16::from_ne_bytes([b[0], b[1]]), libc::AF_INET as u16);
    assert_eq!(&b[4..8], &[10, 0, 1, 1]);
    assert_eq!(u32::from_ne_bytes(b[196..200].try_into().unwrap()), 0b11);
    assert_eq!(b[202], 32);
    assert!(encode_add(Family::V4, scope_v6("2001:db8::1/128"), &key(1, 1), true).is_err());

    for (scope, prefix) in [
        (scope_v6("10.0.2.0/24"), 24),
        (scope_v6("2001:db8:2::/64"), 64),
        (KeyScope::Prefix(link_local_prefix()), 10),
        (KeyScope::Address("2001:db8::1".parse().unwrap()), 128),
    ] {
        let add = encode_add(Family::V6, scope, &key(1, 1), false).unwrap();
        assert_eq!(add.prefix, prefix, "{scope}");
    }
    for (algorithm, name) in [
        (AoAlgorithm::HmacSha1, &b"hmac(sha1)\0"[..]),
        (AoAlgorithm::CmacAes128, b"cmac(aes128)\0"),
    ] {
        let mut k = key(1, 1);
        k.algorithm = algorithm;
        let add = encode_add(Family::V6, peer, &k, false).unwrap();
        assert_eq!(&add.alg_name[..name.len()], name);
    }
}

fn scope_v6(net: &str) -> KeyScope {
    KeyScope::Prefix(net.parse().unwrap())
}

#[test]
fn del_key_names_the_key_by_address_prefix_and_ids() {
    let del = encode_del(Family::V6, scope_v6("10.0.2.0/24"), &key(5, 6)).unwrap();
    let b = bytes(&del);
    assert_eq!(u16::from_ne_bytes([b[0], b[1]]), libc::AF_INET6 as u16);
    assert_eq!(
        &b[8..24],
        &Ipv4Addr::new(10, 0, 2, 0).to_ipv6_mapped().octets()
    );
    assert_eq!(&b[128..138], &[0; 10], "ifindex, flags, reserved");
    assert_eq!(&b[138..144], &[24, 5, 6, 0, 0, 0]);
}

#[test]
fn config_ids_algorithm_and_key() {
    let setup = compile(&neighbor(&format!(
        "key_id = 4, algorithm = \"hmac(sha1)\", key = \"{SECRET}\""
    )))
    .unwrap();
    let ao = setup.neighbors[0].security.ao.as_ref().unwrap();
    assert_eq!((ao.send_id, ao.recv_id), (4, 4));
    assert_eq!(ao.algorithm, AoAlgorithm::HmacSha1);
    assert_eq!(ao.secret, SECRET.as_bytes());
    assert!(setup.neighbors[0].security.md5.is_none());
    let config = toml_config(&neighbor(&format!(
        "key_id = 4, algorithm = \"hmac(sha1)\", key = \"{SECRET}\""
    )));
    let printed = format!("{setup:?} {config:?}");
    assert!(!printed.contains(SECRET), "{printed}");

    let setup = compile(&neighbor(&format!(
        "send_id = 1, recv_id = 2, algorithm = \"cmac(aes128)\", key = \"{SECRET}\""
    )))
    .unwrap();
    let ao = setup.neighbors[0].security.ao.as_ref().unwrap();
    assert_eq!((ao.send_id, ao.recv_id), (1, 2));

    for (tcp_ao, field) in [
        (
            "key_id = 1, send_id = 2, algorithm = \"hmac(sha1)\", key = \"k\"",
            "key_id",
        ),
        (
            "send_id = 2, algorithm = \"hmac(sha1)\", key = \"k\"",
            "send_id",
        ),
        ("key_id = 1, algorithm = \"hmac(sha1)\"", "key"),
        ("key_id = 1, algorithm = \"hmac(sha1)\", key = \"\"", "key"),
        (
            "key_id = 1, algorithm = \"hmac(sha1)\", key = \"k\", key_file = \"/x\"",
            "key_file",
        ),
        (
            "key_id = 1, algorithm = \"hmac(sha1)\", key_file = \"/nonexistent\"",
            "key_file",
        ),
    ] {
        let err = compile(&neighbor(tcp_ao)).unwrap_err();
        assert_eq!(
            err.key,
            format!("bgp.neighbor[0].tcp_ao.{field}"),
            "{tcp_ao}"
        );
    }
    let long = "k".repeat(81);
    let err = compile(&neighbor(&format!(
        "key_id = 1, algorithm = \"hmac(sha1)\", key = \"{long}\""
    )))
    .unwrap_err();
    assert!(err.reason.contains("81 bytes") && !err.reason.contains(&long));
    let err = compile(&neighbor(
        "key_id = 1, algorithm = \"hmac(md5)\", key = \"k\"",
    ))
    .unwrap_err();
    assert!(err.reason.contains("hmac(sha256)"), "{}", err.reason);
    assert!(
        compile(&neighbor(
            "key_id = 256, algorithm = \"hmac(sha1)\", key = \"k\""
        ))
        .is_err()
    );
}

fn toml_config(text: &str) -> BgpConfig {
    toml::from_str(&format!("asn = 65101\nrouter_id = \"10.255.0.1\"\n{text}")).unwrap()
}

#[test]
fn md5_and_ao_on_one_neighbor_are_refused() {
    let err = compile(&format!(
        "{}\npassword = \"md5\"\n",
        neighbor("key_id = 1, algorithm = \"hmac(sha1)\", key = \"k\"").trim_end()
    ))
    .unwrap_err();
    assert_eq!(err.key, "bgp.neighbor[0].tcp_ao");
    assert!(err.reason.contains("exclusive"), "{}", err.reason);
    let err = compile(
        "[[dynamic_neighbor]]\nrange = \"10.0.2.0/24\"\nremote_as = 65001\npassword = \"m\"\n\
         tcp_ao = { key_id = 1, algorithm = \"hmac(sha1)\", key = \"k\" }\n",
    )
    .unwrap_err();
    assert_eq!(err.key, "bgp.dynamic_neighbor[0].tcp_ao");
}

#[test]
fn key_file_must_be_private() {
    let dir = std::env::temp_dir().join(format!("hr-ao-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ao.key");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = neighbor(&format!(
        "key_id = 1, algorithm = \"hmac(sha256)\", key_file = \"{}\"",
        path.display()
    ));
    let err = compile(&config).unwrap_err();
    assert_eq!(err.key, "bgp.neighbor[0].tcp_ao.key_file");
    assert!(err.reason.contains("0644") && !err.reason.contains(SECRET));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let setup = compile(&config).unwrap();
    let ao = setup.neighbors[0].security.ao.as_ref().unwrap();
    assert_eq!(ao.secret, SECRET.as_bytes(), "trailing newline stripped");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn listener_keys_cover_neighbors_and_ranges_and_link_local_clashes_are_refused() {
    let ao = "tcp_ao = { key_id = 1, algorithm = \"hmac(sha256)\", key = \"a\" }";
    let setup = compile(&format!(
        "[[neighbor]]\naddress = \"10.0.1.1\"\nremote_as = 65001\n{ao}\n\
         [[neighbor]]\naddress = \"10.0.1.2\"\nremote_as = 65001\npassword = \"m\"\n\
         [[dynamic_neighbor]]\nrange = \"10.0.2.0/24\"\nremote_as = 65001\n{ao}\n"
    ))
    .unwrap();
    let scopes: Vec<String> = listener_keys(&setup)
        .unwrap()
        .keys()
        .map(ToString::to_string)
        .collect();
    assert_eq!(scopes, ["10.0.1.1", "10.0.2.0/24"]);

    // Link-local peers share fe80::/10: an AO key beside an MD5 key or none is refused.
    let err = compile(&format!(
        "[[neighbor]]\ninterface = \"eth1\"\nremote_as = 65001\n{ao}\n\
         [[neighbor]]\ninterface = \"eth2\"\nremote_as = 65001\n"
    ))
    .unwrap_err();
    assert_eq!(err.key, "bgp.neighbor[1].tcp_ao");
    let err = compile(&format!(
        "[[neighbor]]\ninterface = \"eth1\"\nremote_as = 65001\npassword = \"m\"\n\
         [[neighbor]]\ninterface = \"eth2\"\nremote_as = 65001\n{ao}\n"
    ))
    .unwrap_err();
    assert!(err.key.starts_with("bgp.neighbor[1]."), "{}", err.key);
}

/// The kernel refuses an AO key for a peer an MD5 key covers: a configured neighbor with
/// TCP-AO inside a dynamic range with MD5 (or the other way round) is refused by `check`.
#[test]
fn ao_and_md5_keys_over_overlapping_addresses_are_refused() {
    let ao = "tcp_ao = { key_id = 1, algorithm = \"hmac(sha256)\", key = \"a\" }";
    let err = compile(&format!(
        "[[neighbor]]\naddress = \"10.0.2.7\"\nremote_as = 65001\n{ao}\n\
         [[dynamic_neighbor]]\nrange = \"10.0.2.0/24\"\nremote_as = 65001\npassword = \"m\"\n"
    ))
    .unwrap_err();
    assert_eq!(err.key, "bgp.neighbor[0].tcp_ao");
    assert!(err.reason.contains("10.0.2.0/24"), "{}", err.reason);
    let err = compile(&format!(
        "[[neighbor]]\naddress = \"10.0.2.7\"\nremote_as = 65001\npassword = \"m\"\n\
         [[dynamic_neighbor]]\nrange = \"10.0.2.0/24\"\nremote_as = 65001\n{ao}\n"
    ))
    .unwrap_err();
    assert_eq!(err.key, "bgp.dynamic_neighbor[0].tcp_ao");
    // Disjoint addresses are accepted.
    compile(&format!(
        "[[neighbor]]\naddress = \"10.0.3.7\"\nremote_as = 65001\npassword = \"m\"\n\
         [[dynamic_neighbor]]\nrange = \"10.0.2.0/24\"\nremote_as = 65001\n{ao}\n"
    ))
    .unwrap();
}

/// On a kernel with TCP-AO every key we install goes in and comes out again; on one without
/// (as the CI machine's, 6.18 without CONFIG_TCP_AO), the start-up check names the neighbor.
#[test]
fn the_kernel_takes_our_keys_or_the_error_names_the_neighbor() {
    let setup = compile(&neighbor(&format!(
        "key_id = 1, algorithm = \"hmac(sha256)\", key = \"{SECRET}\""
    )))
    .unwrap();
    let v6 = scratch_v6_socket().unwrap();
    let add = encode_add(Family::V6, scope_v6("10.0.9.0/24"), &key(1, 1), false).unwrap();
    let raw = setsockopt(v6.as_fd(), TCP_AO_ADD_KEY, &add);
    match raw {
        Err(err) if err.raw_os_error() == Some(libc::ENOPROTOOPT) => {
            let err = check_kernel(&setup).unwrap_err();
            assert_eq!(err.key, "bgp.neighbor[0].tcp_ao");
            assert!(
                err.reason.contains("10.0.1.1") && err.reason.contains("CONFIG_TCP_AO"),
                "{}",
                err.reason
            );
            assert!(!err.reason.contains(SECRET));
            eprintln!("this kernel has no TCP-AO: checked the start-up error only");
        }
        Err(err) => panic!("TCP_AO_ADD_KEY: {err}"),
        Ok(()) => {
            check_kernel(&setup).unwrap();
            del_key(v6.as_fd(), Family::V6, scope_v6("10.0.9.0/24"), &key(1, 1)).unwrap();
            let keys: ListenerAoKeys = [
                KeyScope::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1))),
                KeyScope::Address("2001:db8::1".parse().unwrap()),
                scope_v6("10.0.2.0/24"),
                scope_v6("2001:db8:2::/64"),
                KeyScope::Prefix(link_local_prefix()),
            ]
            .into_iter()
            .map(|scope| (scope, key(1, 1)))
            .collect();
            assert_eq!(sync_listener(v6.as_fd(), &ListenerAoKeys::new(), &keys), 0);
            // A changed key (same IDs) is replaced: removed first, as the kernel wants.
            let mut changed = keys.clone();
            changed
                .values_mut()
                .for_each(|k| k.secret = b"other".to_vec());
            assert_eq!(sync_listener(v6.as_fd(), &keys, &changed), 0);
            assert_eq!(
                sync_listener(v6.as_fd(), &changed, &ListenerAoKeys::new()),
                0
            );
            del_key(v6.as_fd(), Family::V6, scope_v6("10.0.2.0/24"), &key(1, 1)).unwrap();
        }
    }
}
