//! `cargo +nightly fuzz run decode_message`: decoding a BGP message never panics, and whatever
//! decodes re-encodes into messages that decode again, identically on a second round.
//!
//! Each input is tried twice with every codec: as raw bytes (so that header checks are
//! fuzzed too) and as type octet + body behind a valid header (so that the fuzzer does not
//! have to discover the 16-octet marker before it reaches the body decoders).
#![no_main]

use libfuzzer_sys::fuzz_target;

use router_agent::bgp::packet::{Codec, MAX_MESSAGE_LEN, Message, message_length};

const CODECS: [Codec; 3] = [
    Codec {
        four_octet_as: false,
        extended_next_hop_ipv4: false,
    },
    Codec {
        four_octet_as: true,
        extended_next_hop_ipv4: false,
    },
    Codec {
        four_octet_as: true,
        extended_next_hop_ipv4: true,
    },
];

/// Decodes a stream we encoded: every message must frame and decode without a session reset.
fn decode_stream(stream: &[u8], codec: &Codec) -> Vec<Message> {
    let mut messages = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let len = match message_length(rest) {
            Ok(Some(len)) if len <= rest.len() => len,
            other => panic!("our own encoding does not frame: {other:?}"),
        };
        match Message::decode(&rest[..len], codec) {
            Ok(decoded) => messages.push(decoded.message),
            Err(error) => panic!("our own encoding does not decode: {error}"),
        }
        rest = &rest[len..];
    }
    messages
}

fn check(bytes: &[u8], codec: &Codec) {
    let _ = message_length(bytes);
    let Ok(first) = Message::decode(bytes, codec) else {
        return;
    };
    // The first round may normalise (AS4_PATH merged, unknown families dropped, mixed
    // UPDATEs split); after that, encoding and decoding must be the identity.
    let second = decode_stream(&first.message.encode(codec), codec);
    let third: Vec<Message> = second
        .iter()
        .flat_map(|message| decode_stream(&message.encode(codec), codec))
        .collect();
    assert_eq!(second, third);
}

fuzz_target!(|data: &[u8]| {
    for codec in &CODECS {
        check(data, codec);
        if let Some((&message_type, body)) = data.split_first() {
            let body = &body[..body.len().min(MAX_MESSAGE_LEN - 19)];
            let mut framed = vec![0xff; 16];
            framed.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
            framed.push(message_type);
            framed.extend_from_slice(body);
            check(&framed, codec);
        }
    }
});
