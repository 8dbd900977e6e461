//! `[[redistribute]]` refusals: each names its key.

use crate::config::Config;

const BGP: &str = "[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n\
                   [bgp.prefix_list.workloads]\n\
                   ipv4 = [{ action = \"permit\", prefix = \"10.200.0.0/16\", le = 32 }]\n";

fn parse(rules: &str) -> Result<Config, String> {
    Config::parse(
        &format!("{rules}\n{BGP}"),
        std::path::Path::new("test.toml"),
    )
    .map_err(|err| err.to_string())
}

fn error(rules: &str) -> String {
    parse(rules).unwrap_err()
}

fn rule(fields: &str) -> String {
    format!("[[redistribute]]\nname = \"c\"\nprefix_list = \"workloads\"\n{fields}\n")
}

#[test]
fn a_full_rule_compiles() {
    let config = parse(&rule(
        "kernel_routes = { protocols = [\"boot\", 80], tables = [\"main\", 100], interfaces = [\"cali*\", \"tap?\"] }\n\
         addresses = { interfaces = [\"dummy*\", \"lo\"] }\n\
         connected = { interfaces = [\"eth2\"] }\n\
         limit = 5\ncommunities = [\"65101:53\"]\nmed = 10",
    ))
    .unwrap();
    let rules = config.redistribute_rules().unwrap();
    assert_eq!(rules.len(), 1);
    let kernel = rules[0].kernel_routes.as_ref().unwrap();
    assert_eq!(
        kernel.protocols.iter().copied().collect::<Vec<_>>(),
        [3, 80]
    );
    assert_eq!(
        kernel.tables.keys().copied().collect::<Vec<_>>(),
        [100, 254]
    );
    assert_eq!(rules[0].limit, 5);
    assert_eq!(rules[0].med, Some(10));
    assert_eq!(rules[0].patterns().count(), 5);
    assert_eq!(
        super::config::tables(&rules)
            .into_iter()
            .collect::<Vec<_>>(),
        [100, 254]
    );
}

#[test]
fn defaults_limit_1000_and_main_table() {
    let config = parse(&rule("kernel_routes = { protocols = [\"boot\"] }")).unwrap();
    let rules = config.redistribute_rules().unwrap();
    assert_eq!(rules[0].limit, 1000);
    let kernel = rules[0].kernel_routes.as_ref().unwrap();
    assert_eq!(kernel.tables.keys().copied().collect::<Vec<_>>(), [254]);
    assert!(kernel.interfaces.is_empty());
}

#[test]
fn our_own_protocol_is_refused() {
    let e = error(&rule("kernel_routes = { protocols = [\"boot\", 201] }"));
    assert!(
        e.contains("redistribute[0].kernel_routes.protocols[1]: 201")
            && e.contains("our BGP mirror: this would make learned routes transit"),
        "{e}"
    );
    // Whatever route_protocol is set to.
    let e = error(&format!(
        "[datapath]\nroute_protocol = 99\n{}",
        rule("kernel_routes = { protocols = [99] }")
    ));
    assert!(
        e.contains("redistribute[0].kernel_routes.protocols[0]: 99"),
        "{e}"
    );
}

#[test]
fn routing_daemons_protocols_are_refused() {
    for (name, number) in [
        ("zebra", 11),
        ("bird", 12),
        ("babel", 42),
        ("bgp", 186),
        ("isis", 187),
        ("ospf", 188),
        ("rip", 189),
        ("eigrp", 192),
    ] {
        for spelled in [format!("\"{name}\""), number.to_string()] {
            let e = error(&rule(&format!(
                "kernel_routes = {{ protocols = [{spelled}] }}"
            )));
            assert!(
                e.contains("redistribute[0].kernel_routes.protocols[0]")
                    && e.contains(&format!("{number} ({name}) is a routing daemon's protocol")),
                "{e}"
            );
        }
    }
}

#[test]
fn protocols_are_required_and_not_empty() {
    let e = error(&rule("kernel_routes = { tables = [\"main\"] }"));
    assert!(e.contains("protocols"), "{e}");
    let e = error(&rule("kernel_routes = { protocols = [] }"));
    assert!(
        e.contains("redistribute[0].kernel_routes.protocols: name the protocols"),
        "{e}"
    );
    // No "all": the parser points at the line.
    let e = error(&rule("kernel_routes = { protocols = \"all\" }"));
    assert!(
        e.contains("protocols = \"all\"") && e.contains("expected a sequence"),
        "{e}"
    );
    let e = error(&rule("kernel_routes = { protocols = [\"nosuch\"] }"));
    assert!(
        e.contains("redistribute[0].kernel_routes.protocols[0]: unknown protocol"),
        "{e}"
    );
}

#[test]
fn tables_are_checked() {
    let e = error(&rule(
        "kernel_routes = { protocols = [\"boot\"], tables = [255] }",
    ));
    assert!(e.contains("redistribute[0].kernel_routes.tables[0]"), "{e}");
    let e = error(&rule(
        "kernel_routes = { protocols = [\"boot\"], tables = [\"x\"] }",
    ));
    assert!(
        e.contains("redistribute[0].kernel_routes.tables[0]: unknown table"),
        "{e}"
    );
}

#[test]
fn prefix_list_must_exist() {
    let e = error(
        "[[redistribute]]\nname = \"c\"\nprefix_list = \"nope\"\naddresses = { interfaces = [\"lo\"] }\n",
    );
    assert!(
        e.contains("redistribute[0].prefix_list: unknown prefix list \"nope\""),
        "{e}"
    );
    // Without [bgp] there is no prefix list at all.
    let e = Config::parse(
        "[[redistribute]]\nname = \"c\"\nprefix_list = \"w\"\naddresses = { interfaces = [\"lo\"] }\n",
        std::path::Path::new("test.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("redistribute[0].prefix_list"), "{e}");
}

#[test]
fn a_rule_must_take_something() {
    let e = error(&rule(""));
    assert!(
        e.contains("redistribute[0]: takes nothing: give at least one of kernel_routes"),
        "{e}"
    );
}

#[test]
fn names_are_unique_and_plain() {
    let two = format!(
        "{}{}",
        rule("addresses = { interfaces = [\"lo\"] }"),
        rule("addresses = { interfaces = [\"lo\"] }")
    );
    let e = error(&two);
    assert!(
        e.contains("redistribute[1].name: \"c\" names two rules"),
        "{e}"
    );
    let e = error(
        "[[redistribute]]\nname = \"a b\"\nprefix_list = \"workloads\"\naddresses = { interfaces = [\"lo\"] }\n",
    );
    assert!(e.contains("redistribute[0].name"), "{e}");
}

#[test]
fn patterns_are_checked_with_their_keys() {
    let e = error(&rule(
        "addresses = { interfaces = [\"lo\", \"a234567890123456\"] }",
    ));
    assert!(
        e.contains("redistribute[0].addresses.interfaces[1]") && e.contains("longer"),
        "{e}"
    );
    let e = error(&rule(
        "kernel_routes = { protocols = [\"boot\"], interfaces = [\"eth[0]\"] }",
    ));
    assert!(
        e.contains("redistribute[0].kernel_routes.interfaces[0]") && e.contains("only * and ?"),
        "{e}"
    );
    let e = error(&rule("connected = { interfaces = [] }"));
    assert!(e.contains("redistribute[0].connected.interfaces"), "{e}");
}

#[test]
fn limit_range() {
    for limit in ["0", "1000001"] {
        let e = error(&rule(&format!(
            "addresses = {{ interfaces = [\"lo\"] }}\nlimit = {limit}"
        )));
        assert!(e.contains("redistribute[0].limit"), "{e}");
    }
    parse(&rule(
        "addresses = { interfaces = [\"lo\"] }\nlimit = 1000000",
    ))
    .unwrap();
}

#[test]
fn unknown_keys_are_refused() {
    let e = error(&rule(
        "addresses = { interfaces = [\"lo\"] }\nprotocols = [1]",
    ));
    assert!(e.contains("protocols"), "{e}");
}

#[test]
fn an_unobserved_table_is_restart_only() {
    let config = parse(&rule(
        "kernel_routes = { protocols = [\"boot\"], tables = [\"main\", 100] }",
    ))
    .unwrap();
    let rules = config.redistribute_rules().unwrap();
    let observed = [254].into_iter().collect();
    let (key, reason) = super::config::unobserved_table(&rules, &observed).unwrap();
    assert_eq!(key, "redistribute[0].kernel_routes.tables[1]");
    assert!(reason.contains("needs a restart"), "{reason}");
    let observed = [100, 254].into_iter().collect();
    assert!(super::config::unobserved_table(&rules, &observed).is_none());
}
