use super::*;

/// A tiny interpreter of the instructions `program` emits, over an IP header.
fn run(program: &[libc::sock_filter], header: &[u8]) -> u32 {
    let (mut a, mut pc) = (0u32, 0usize);
    let load = |k: u32, size: usize| {
        let offset = (k as i32 - NET) as usize;
        header[offset..offset + size]
            .iter()
            .fold(0u32, |acc, b| (acc << 8) | *b as u32)
    };
    loop {
        let i = program[pc];
        pc += 1;
        match i.code {
            LD_W => a = load(i.k, 4),
            LD_B => a = load(i.k, 1),
            RSH => a >>= i.k,
            AND => a &= i.k,
            JEQ => pc += if a == i.k { i.jt } else { i.jf } as usize,
            JA => pc += i.k as usize,
            RET => return i.k,
            other => panic!("unexpected instruction {other:#x}"),
        }
    }
}

fn v4(source: [u8; 4], ttl: u8) -> Vec<u8> {
    let mut header = vec![0x45, 0, 0, 40, 0, 0, 0, 0, ttl, 6, 0, 0];
    header.extend(source);
    header.extend([10, 0, 0, 2]);
    header
}

fn v6(source: &str, hop_limit: u8) -> Vec<u8> {
    let mut header = vec![0x60, 0, 0, 0, 0, 20, 6, hop_limit];
    header.extend(source.parse::<std::net::Ipv6Addr>().unwrap().octets());
    header.extend([0; 16]);
    header
}

#[test]
fn gtsm_scopes_require_255_others_pass() {
    let scopes = [
        ("10.0.1.1/32".parse().unwrap(), true),
        ("10.0.2.0/24".parse().unwrap(), true),
        ("10.0.2.7/32".parse().unwrap(), false),
        ("fe80::/10".parse().unwrap(), true),
        ("2001:db8::1/128".parse().unwrap(), false),
        ("2001:db8:5::/48".parse().unwrap(), true),
    ];
    let program = program(&scopes).unwrap();
    let cases = [
        (v4([10, 0, 1, 1], 255), ACCEPT),
        (v4([10, 0, 1, 1], 254), DROP),
        (v4([10, 0, 1, 2], 1), ACCEPT),
        (v4([10, 0, 2, 9], 64), DROP),
        (v4([10, 0, 2, 9], 255), ACCEPT),
        (v4([10, 0, 2, 7], 64), ACCEPT), // a neighbor in the range, without GTSM
        (v6("fe80::1", 255), ACCEPT),
        (v6("febf::1", 254), DROP),
        (v6("fec0::1", 1), ACCEPT),
        (v6("2001:db8::1", 3), ACCEPT),
        (v6("2001:db8:5:ffff::1", 254), DROP),
        (v6("2001:db8:6::1", 254), ACCEPT),
    ];
    for (header, expected) in cases {
        assert_eq!(run(&program, &header), expected, "{header:?}");
    }
    assert!(super::program(&[("10.0.1.1/32".parse().unwrap(), false)]).is_none());
}

/// The kernel takes the program (and the removal).
#[test]
fn the_kernel_takes_the_filter() {
    use std::os::fd::AsFd;
    let socket = tokio::net::TcpSocket::new_v6().unwrap();
    let scopes = [
        ("10.0.1.1/32".parse().unwrap(), true),
        ("fe80::/10".parse().unwrap(), true),
    ];
    attach(socket.as_fd(), &scopes).unwrap();
    attach(socket.as_fd(), &[]).unwrap();
    attach(socket.as_fd(), &[]).unwrap();
}
