//! The session hardening keys: `listen`, `fast_external_fallover`, explicit hold time 0.

use super::*;

fn compile(extra: &str, neighbor: &str) -> Result<BgpSetup, PolicyError> {
    let config: BgpConfig = toml::from_str(&format!(
        "asn = 65101\nrouter_id = \"10.255.0.1\"\n{extra}\n\
         [[neighbor]]\naddress = \"10.0.0.1\"\nremote_as = 65001\n{neighbor}\n\
         [[dynamic_neighbor]]\nrange = \"10.0.2.0/24\"\nremote_as = 65001\n{neighbor}\n"
    ))
    .unwrap();
    config.compile()
}

#[test]
fn listen_defaults_to_everywhere_and_takes_distinct_addresses() {
    assert!(compile("", "").unwrap().listen.is_empty());
    let setup = compile("listen = [\"10.0.0.2\", \"2001:db8::2\", \"::\"]", "").unwrap();
    assert_eq!(setup.listen.len(), 3);
    let error = |listen: &str| compile(&format!("listen = {listen}"), "").unwrap_err();
    let twice = error("[\"10.0.0.2\", \"10.0.0.2\"]");
    assert_eq!(twice.key, "bgp.listen[1]");
    assert!(twice.reason.contains("twice"), "{}", twice.reason);
    let any_v4 = error("[\"0.0.0.0\"]");
    assert_eq!(any_v4.key, "bgp.listen[0]");
    assert!(any_v4.reason.contains("\"::\""), "{}", any_v4.reason);
    assert_eq!(error("[\"fe80::1\"]").key, "bgp.listen[0]");
}

#[test]
fn fast_external_fallover_is_on_unless_turned_off() {
    let setup = compile("", "").unwrap();
    assert!(setup.neighbors[0].fast_external_fallover);
    assert!(setup.dynamic_neighbors[0].template.fast_external_fallover);
    let off = compile("", "fast_external_fallover = false").unwrap();
    assert!(!off.neighbors[0].fast_external_fallover);
    assert!(!off.dynamic_neighbors[0].template.fast_external_fallover);
}

#[test]
fn hold_time_zero_is_kept_as_configured() {
    // An explicit 0 reaches the session config (which then accepts a peer's 0).
    let setup = compile("", "hold_time = 0").unwrap();
    assert_eq!(setup.neighbors[0].hold_time, Some(0));
    assert_eq!(compile("", "").unwrap().neighbors[0].hold_time, None);
}
