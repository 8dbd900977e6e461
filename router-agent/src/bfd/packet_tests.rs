//! Golden packets built by hand from the RFC 5880 4.1 layout, in the shapes FRR's bfdd and
//! BIRD send, and malformed inputs.

use rand::{Rng, SeedableRng, rngs::SmallRng};

use super::*;

/// FRR bfdd, session Down, before it knows us: slow 1 s TX (6.8.3), its 300 ms RX, its
/// advertised 50 ms echo RX, Detect Mult 3, Your Discriminator 0.
const FRR_DOWN: [u8; 24] = [
    0x20, 0x40, 0x03, 0x18, // v1 diag 0 | Down, no flags | mult 3 | length 24
    0x2a, 0x3b, 0x4c, 0x5d, // My Discriminator
    0x00, 0x00, 0x00, 0x00, // Your Discriminator
    0x00, 0x0f, 0x42, 0x40, // Desired Min TX 1,000,000 us
    0x00, 0x04, 0x93, 0xe0, // Required Min RX 300,000 us
    0x00, 0x00, 0xc3, 0x50, // Required Min Echo RX 50,000 us
];

/// FRR bfdd, Up, polling to its 300 ms TX after coming up.
const FRR_UP_POLL: [u8; 24] = [
    0x20, 0xe0, 0x03, 0x18, // Up | P
    0x2a, 0x3b, 0x4c, 0x5d, //
    0x00, 0x00, 0x00, 0x07, //
    0x00, 0x04, 0x93, 0xe0, // 300,000
    0x00, 0x04, 0x93, 0xe0, // 300,000
    0x00, 0x00, 0xc3, 0x50, //
];

/// BIRD, Init, answering FRR: multiplier 5, 10 ms RX, no echo.
const BIRD_INIT: [u8; 24] = [
    0x20, 0x80, 0x05, 0x18, // Init
    0x00, 0x00, 0x00, 0x07, //
    0x2a, 0x3b, 0x4c, 0x5d, //
    0x00, 0x0f, 0x42, 0x40, // 1,000,000
    0x00, 0x00, 0x27, 0x10, // 10,000
    0x00, 0x00, 0x00, 0x00, //
];

/// BIRD, AdminDown with diag 7 (Administratively Down).
const BIRD_ADMIN_DOWN: [u8; 24] = [
    0x27, 0x00, 0x05, 0x18, //
    0x00, 0x00, 0x00, 0x07, //
    0x2a, 0x3b, 0x4c, 0x5d, //
    0x00, 0x0f, 0x42, 0x40, //
    0x00, 0x00, 0x27, 0x10, //
    0x00, 0x00, 0x00, 0x00, //
];

fn with(bytes: &[u8; 24], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = bytes.to_vec();
    edit(&mut v);
    v
}

#[test]
fn frr_down_decodes_field_by_field() {
    let p = ControlPacket::decode(&FRR_DOWN).unwrap();
    assert_eq!(
        p,
        ControlPacket {
            diag: Diagnostic::NoDiagnostic,
            state: State::Down,
            flags: Flags::default(),
            detect_mult: 3,
            my_discriminator: 0x2a3b_4c5d,
            your_discriminator: 0,
            desired_min_tx_us: 1_000_000,
            required_min_rx_us: 300_000,
            required_min_echo_rx_us: 50_000,
            auth: None,
        }
    );
    assert_eq!(p.encode(), FRR_DOWN);
}

#[test]
fn frr_poll_bird_init_and_admin_down_round_trip() {
    let poll = ControlPacket::decode(&FRR_UP_POLL).unwrap();
    assert_eq!(poll.state, State::Up);
    assert!(poll.flags.poll && !poll.flags.final_);
    assert_eq!(poll.your_discriminator, 7);
    assert_eq!(poll.encode(), FRR_UP_POLL);

    let init = ControlPacket::decode(&BIRD_INIT).unwrap();
    assert_eq!((init.state, init.detect_mult), (State::Init, 5));
    assert_eq!(init.required_min_rx_us, 10_000);
    assert_eq!(init.encode(), BIRD_INIT);

    let admin = ControlPacket::decode(&BIRD_ADMIN_DOWN).unwrap();
    assert_eq!(admin.state, State::AdminDown);
    assert_eq!(admin.diag, Diagnostic::AdministrativelyDown);
    assert_eq!(admin.encode(), BIRD_ADMIN_DOWN);
}

#[test]
fn every_flag_bit_is_its_own() {
    let cases = [
        (
            0x20,
            Flags {
                poll: true,
                ..Flags::default()
            },
        ),
        (
            0x10,
            Flags {
                final_: true,
                ..Flags::default()
            },
        ),
        (
            0x08,
            Flags {
                control_plane_independent: true,
                ..Flags::default()
            },
        ),
        (
            0x02,
            Flags {
                demand: true,
                ..Flags::default()
            },
        ),
    ];
    for (bit, flags) in cases {
        let bytes = with(&FRR_UP_POLL, |b| b[1] = 0xc0 | bit);
        let p = ControlPacket::decode(&bytes).unwrap();
        assert_eq!(p.flags, flags, "bit {bit:#x}");
        assert_eq!(p.encode()[..], bytes[..]);
    }
}

#[test]
fn reserved_diagnostics_are_kept() {
    let bytes = with(&FRR_DOWN, |b| b[0] = 0x20 | 0x1f);
    let p = ControlPacket::decode(&bytes).unwrap();
    assert_eq!(p.diag, Diagnostic::Reserved(31));
    assert_eq!(p.encode()[0], 0x3f);
    for code in 0..32 {
        assert_eq!(Diagnostic::from_code(code).code(), code);
    }
}

#[test]
fn bytes_past_length_are_ignored() {
    let mut bytes = FRR_DOWN.to_vec();
    bytes.extend_from_slice(&[0xde, 0xad]);
    assert_eq!(
        ControlPacket::decode(&bytes).unwrap(),
        ControlPacket::decode(&FRR_DOWN).unwrap()
    );
}

#[test]
fn layout_errors() {
    assert_eq!(ControlPacket::decode(&[]), Err(Discard::Truncated(0)));
    assert_eq!(
        ControlPacket::decode(&FRR_DOWN[..23]),
        Err(Discard::Truncated(23))
    );
    for version in [0u8, 2, 7] {
        let bytes = with(&FRR_DOWN, |b| b[0] = version << 5);
        assert_eq!(
            ControlPacket::decode(&bytes),
            Err(Discard::Version(version))
        );
    }
    let short = with(&FRR_DOWN, |b| b[3] = 23);
    assert_eq!(
        ControlPacket::decode(&short),
        Err(Discard::LengthTooSmall {
            length: 23,
            minimum: 24
        })
    );
    let long = with(&FRR_DOWN, |b| b[3] = 25);
    assert_eq!(
        ControlPacket::decode(&long),
        Err(Discard::LengthExceedsPayload {
            length: 25,
            received: 24
        })
    );
    // A bit with no room for the section.
    let auth_no_room = with(&FRR_DOWN, |b| b[1] |= 0x04);
    assert_eq!(
        ControlPacket::decode(&auth_no_room),
        Err(Discard::LengthTooSmall {
            length: 24,
            minimum: 26
        })
    );
}

/// Simple Password (type 1, RFC 5880 4.2): Auth Len 3 + password length, key ID first.
fn with_simple_password(auth_len: u8, length: u8) -> Vec<u8> {
    with(&FRR_DOWN, |b| {
        b[1] |= 0x04;
        b[3] = length;
        b.extend_from_slice(&[1, auth_len, 0x01, b's', b'e', b'c', b'r', b'e', b't']);
    })
}

#[test]
fn authentication_is_framed_then_refused() {
    assert_eq!(
        ControlPacket::decode(&with_simple_password(9, 33)),
        Err(Discard::AuthenticationNotConfigured(1))
    );
    let framed = ControlPacket::decode_layout(&with_simple_password(9, 33)).unwrap();
    assert_eq!(
        framed.auth,
        Some(AuthSection {
            auth_type: 1,
            data: b"\x01secret".to_vec()
        })
    );
    assert_eq!(
        ControlPacket::decode(&with_simple_password(10, 33)),
        Err(Discard::BadAuthLength {
            auth_len: 10,
            length: 33
        })
    );
    assert_eq!(
        ControlPacket::decode(&with_simple_password(1, 33)),
        Err(Discard::BadAuthLength {
            auth_len: 1,
            length: 33
        })
    );
    // What we send never claims authentication.
    assert_eq!(framed.encode()[1] & 0x04, 0);
    assert_eq!(framed.encode()[3], 24);
}

#[test]
fn reception_checks_of_6_8_6() {
    let cases: [(Vec<u8>, Discard); 6] = [
        (with(&FRR_DOWN, |b| b[2] = 0), Discard::DetectMultZero),
        (with(&FRR_DOWN, |b| b[1] |= 0x01), Discard::Multipoint),
        (
            with(&FRR_DOWN, |b| b[4..8].fill(0)),
            Discard::MyDiscriminatorZero,
        ),
        (
            with(&FRR_UP_POLL, |b| b[8..12].fill(0)),
            Discard::YourDiscriminatorZero(State::Up),
        ),
        (
            with(&BIRD_INIT, |b| b[8..12].fill(0)),
            Discard::YourDiscriminatorZero(State::Init),
        ),
        (with(&FRR_UP_POLL, |b| b[1] |= 0x10), Discard::PollAndFinal),
    ];
    for (bytes, discard) in cases {
        assert_eq!(ControlPacket::decode(&bytes), Err(discard));
    }
    // Your Discriminator 0 is fine in Down (FRR_DOWN) and AdminDown.
    let admin = with(&BIRD_ADMIN_DOWN, |b| b[8..12].fill(0));
    assert!(ControlPacket::decode(&admin).is_ok());
}

#[test]
fn random_and_mutated_inputs_never_panic() {
    let mut rng = SmallRng::seed_from_u64(5880);
    let mut accepted = 0;
    for _ in 0..200_000 {
        let len = rng.random_range(0..48);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if rng.random_bool(0.5) && bytes.len() >= 24 {
            // Mostly valid headers, so that the later checks are reached too.
            bytes[0] = 0x20 | (bytes[0] & 0x1f);
            bytes[3] = rng.random_range(20..=len.min(255) as u8 + 2);
        }
        if let Ok(p) = ControlPacket::decode(&bytes) {
            accepted += 1;
            assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
        }
    }
    assert!(accepted > 0, "the generator never reached a valid packet");
}
