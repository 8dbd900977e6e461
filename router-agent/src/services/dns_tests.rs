use std::time::{Duration, Instant};

use tokio::{net::UdpSocket, sync::Semaphore};

use super::*;
use crate::services::check::{Check, run_check};

#[test]
fn names() {
    assert_eq!(encode_name("a.bc.").unwrap(), b"\x01a\x02bc\x00");
    assert_eq!(encode_name("a.bc").unwrap(), b"\x01a\x02bc\x00");
    assert_eq!(encode_name(".").unwrap(), b"\x00");
    assert!(encode_name("a..b").is_err());
    assert!(encode_name(&"x".repeat(64)).is_err());
    assert!(encode_name("a b.example").is_err());
    assert!(encode_name(&["abcdefghij"; 25].join(".")).is_err());
}

/// An answer to `query` with `rcode` and `answers` A records (compressed names).
fn answer(query: &[u8], rcode: u8, answers: u16) -> Vec<u8> {
    let mut packet = query.to_vec();
    packet[2] = 0x81;
    packet[3] = 0x80 | rcode;
    packet[6..8].copy_from_slice(&answers.to_be_bytes());
    for _ in 0..answers {
        packet.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 53]);
    }
    packet
}

fn check_for(server: SocketAddr) -> DnsCheck {
    DnsCheck::from_config(&DnsCheckConfig {
        server,
        name: "health.example.".into(),
        record_type: RecordType(1),
    })
    .unwrap()
}

#[test]
fn answers() {
    let check = check_for("127.0.0.1:53".parse().unwrap());
    let query = check.query(0x1234);
    assert_eq!(parse_answer(&answer(&query, 0, 1), 0x1234), Ok(()));
    assert_eq!(
        parse_answer(&answer(&query, 0, 1), 0x4321),
        Err(Unanswered::OtherId)
    );
    assert_eq!(
        parse_answer(&answer(&query, 2, 0), 0x1234),
        Err(Unanswered::Check(CheckError::DnsRcode(2)))
    );
    assert_eq!(
        parse_answer(&answer(&query, 0, 0), 0x1234),
        Err(Unanswered::Check(CheckError::DnsNoAnswer))
    );
    let mut cut = answer(&query, 0, 1);
    cut.truncate(cut.len() - 2);
    assert!(matches!(
        parse_answer(&cut, 0x1234),
        Err(Unanswered::Check(CheckError::DnsGarbage(_)))
    ));
    // Our own query echoed back (QR clear) is no answer.
    assert!(matches!(
        parse_answer(&query, 0x1234),
        Err(Unanswered::Check(CheckError::DnsGarbage(_)))
    ));
    assert!(parse_answer(&[0x12, 0x34, 0x81], 0x1234).is_err());
    // Lying counts do not read past the end.
    let mut lying = answer(&query, 0, 1);
    lying[6..8].copy_from_slice(&500u16.to_be_bytes());
    assert!(parse_answer(&lying, 0x1234).is_err());
}

/// A UDP server answering each query with `rcode` and `answers` records; none: silent.
async fn server(reply: Option<(u8, u16)>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = [0u8; 512];
        loop {
            let (read, from) = socket.recv_from(&mut buffer).await.unwrap();
            if let Some((rcode, answers)) = reply {
                let packet = answer(&buffer[..read], rcode, answers);
                socket.send_to(&packet, from).await.unwrap();
            }
        }
    });
    address
}

async fn run(server: SocketAddr) -> Result<(), CheckError> {
    let check = Check::Dns(check_for(server));
    run_check(&check, Duration::from_millis(200), &Semaphore::new(1))
        .await
        .outcome
}

#[tokio::test]
async fn probes_against_local_servers() {
    assert_eq!(run(server(Some((0, 1))).await).await, Ok(()));
    assert_eq!(
        run(server(Some((2, 0))).await).await,
        Err(CheckError::DnsRcode(2))
    );
    assert_eq!(
        run(server(Some((0, 0))).await).await,
        Err(CheckError::DnsNoAnswer)
    );
    let started = Instant::now();
    assert_eq!(run(server(None).await).await, Err(CheckError::DnsTimeout));
    assert!(started.elapsed() < Duration::from_millis(250));
    assert_eq!(
        CheckError::DnsRcode(2).to_string(),
        "DNS rcode 2 (SERVFAIL)"
    );
}
