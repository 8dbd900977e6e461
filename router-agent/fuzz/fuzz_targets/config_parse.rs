//! `cargo +nightly fuzz run -s none config_parse fuzz/corpus/config_parse fuzz/seeds/config_parse`
//! (the first directory made beforehand: new inputs go there, not into the seeds): the agent's
//! configuration (config.rs: TOML, then the checks of every section, BGP's compiled form
//! included) from any text never panics; it is accepted or refused with an error that names a
//! key. Seeds: fuzz/seeds/config_parse (the README's examples, and both combined).
#![no_main]

use libfuzzer_sys::fuzz_target;
use router_agent::config::{Config, ConfigError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, std::path::Path::new("fuzz.toml")) {
        Ok(_) => {}
        Err(ConfigError::Invalid { key, .. }) => assert!(!key.is_empty(), "an error names no key"),
        Err(_) => {}
    }
});
