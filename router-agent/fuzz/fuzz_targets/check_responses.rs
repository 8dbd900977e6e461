//! `cargo +nightly fuzz run check_responses`: what a health-check target sends back (an HTTP
//! response, a DNS answer) never panics the parsers, however it arrives.
//!
//! The first byte picks a split point: the HTTP parser is fed the prefix first (as a partial
//! read), then the whole, as the prober does.
#![no_main]

use libfuzzer_sys::fuzz_target;

use router_agent::services::{dns, http};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(rest.len());
    let _ = http::parse_response(&rest[..split], false);
    for eof in [false, true] {
        if let Ok(Some(response)) = http::parse_response(rest, eof) {
            // A decoded body is never longer than what arrived.
            assert!(response.body.len() <= rest.len());
            assert!((100..=599).contains(&response.status));
        }
    }
    let id = u16::from_be_bytes([
        rest.first().copied().unwrap_or(0),
        rest.get(1).copied().unwrap_or(0),
    ]);
    let _ = dns::parse_answer(rest, id);
});
