//! The example configuration, configuration errors, durations and communities.

use super::*;

/// The neighbor table is integrated elsewhere; this mirrors its policy keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestNeighbor {
    address: IpAddr,
    import: Option<ImportConfig>,
    export: Option<ExportConfig>,
    max_prefix: Option<MaxPrefix>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBgp {
    #[serde(default)]
    neighbor: Vec<TestNeighbor>,
    #[serde(default)]
    prefix_list: BTreeMap<String, PrefixListConfig>,
    #[serde(default)]
    originate: Vec<OriginateConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestConfig {
    bgp: TestBgp,
}

const EXAMPLE: &str = r#"
[[bgp.neighbor]]
address = "10.0.0.1"
import = { prefix_list = "from-tor" }
export = { prefix_list = "ours" }
max_prefix = { limit = 100, action = "teardown", restart_after = "60s" }

[[bgp.neighbor]]
address = "fe80::1"
import = "default-only"
export = "all"
max_prefix = { limit = 10, action = "warn" }

[[bgp.neighbor]]
address = "10.0.0.3"

[bgp.prefix_list.from-tor]
ipv4 = [ { action = "permit", prefix = "0.0.0.0/0" }, { action = "permit", prefix = "10.0.0.0/8", ge = 24, le = 32 } ]

[bgp.prefix_list.ours]
ipv4 = [ { action = "permit", prefix = "192.0.2.0/24", le = 32 } ]
ipv6 = [ { action = "permit", prefix = "2001:db8::/32", le = 128 } ]

[[bgp.originate]]
prefix = "192.0.2.10/32"
communities = ["65000:100", "graceful-shutdown"]
large_communities = ["4200000000:1:2"]

[[bgp.originate]]
prefix = "198.51.100.0/24"
"#;

#[test]
fn example_configuration_parses_and_compiles() {
    let config: TestConfig = toml::from_str(EXAMPLE).unwrap();
    let lists = PrefixLists::compile(&config.bgp.prefix_list).unwrap();
    let [first, second, third] = &config.bgp.neighbor[..] else {
        panic!("three neighbors");
    };
    assert_eq!(first.address, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    let import =
        ImportPolicy::from_config(first.import.as_ref(), first.max_prefix, &lists, "n0").unwrap();
    assert!(matches!(&import.filter, Filter::PrefixList(list) if list.name == "from-tor"));
    assert_eq!(
        import.max_prefix,
        Some(MaxPrefix {
            limit: 100,
            action: MaxPrefixAction::Teardown {
                restart_after: Some(Duration::from_secs(60))
            }
        })
    );
    let tor = peer(1, true);
    let attrs = path_from(&[65101]);
    assert!(import.evaluate(&net("0.0.0.0/0"), &attrs, &tor).is_ok());
    assert!(import.evaluate(&net("10.1.1.0/24"), &attrs, &tor).is_ok());
    assert!(import.evaluate(&net("10.1.0.0/16"), &attrs, &tor).is_err());

    assert_eq!(
        second.import,
        Some(PolicyRef::Preset(ImportPreset::DefaultOnly))
    );
    assert_eq!(second.export, Some(PolicyRef::Preset(ExportPreset::All)));
    assert_eq!(
        second.max_prefix.map(|m| m.action),
        Some(MaxPrefixAction::Warn)
    );
    // Nothing configured is kept apart from anything configured.
    assert!(third.import.is_none() && third.export.is_none());
    let unconfigured =
        ImportPolicy::from_config(third.import.as_ref(), None, &lists, "n2").unwrap();
    assert_eq!(unconfigured.filter, Filter::NotConfigured);

    let export = ExportPolicy::from_config(first.export.as_ref(), &lists, "n0").unwrap();
    let originated = Originated::from_config(&config.bgp.originate).unwrap();
    let target = build_adj_rib_out(&originated, &session(true), &export);
    // 198.51.100.0/24 is originated but not in "ours".
    let prefixes: Vec<IpNet> = target.iter().map(|(prefix, _)| *prefix).collect();
    assert_eq!(prefixes, vec![net("192.0.2.10/32")]);
    let (_, advertisement) = target.iter().next().unwrap();
    // Sorted, so that equal sets compare equal whatever the configured order.
    assert_eq!(
        advertisement.attrs.communities,
        vec![(65000 << 16) | 100, 0xFFFF_0000]
    );
    assert_eq!(
        advertisement.attrs.large_communities,
        vec![[4_200_000_000, 1, 2]]
    );
}

#[test]
fn configuration_errors_are_clear() {
    let parse_error = |text: &str| match toml::from_str::<TestConfig>(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(err) => err.to_string(),
    };
    let neighbor = |line: &str| format!("[[bgp.neighbor]]\naddress = \"10.0.0.1\"\n{line}\n");

    let err = parse_error(&neighbor("import = \"default\""));
    assert!(err.contains("unknown policy \"default\""), "{err}");
    assert!(err.contains("\"default-only\""), "{err}");
    let err = parse_error(&neighbor("import = { prefix-list = \"x\" }"));
    assert!(err.contains("unknown field `prefix-list`"), "{err}");
    let err = parse_error(&neighbor("export = \"default-only\""));
    assert!(err.contains("expected one of \"all\", \"none\""), "{err}");
    let err = parse_error(&neighbor(
        "max_prefix = { limit = 5, action = \"warn\", restart_after = \"1m\" }",
    ));
    assert!(err.contains("restart_after only applies"), "{err}");
    let err = parse_error(&neighbor(
        "max_prefix = { limit = 5, restart_after = \"60\" }",
    ));
    assert!(err.contains("unit must be"), "{err}");
    let err = parse_error(&neighbor("max_prefix = { limit = 0 }"));
    assert!(err.contains("at least 1"), "{err}");
    let err = parse_error(&neighbor("max_prefix = { limit = 5, action = \"drop\" }"));
    assert!(err.contains("unknown variant `drop`"), "{err}");
    let err = parse_error(
        "[bgp.prefix_list.x]\nipv4 = [ { action = \"permit\", prefix = \"10.0.0.0/8\", lt = 9 } ]\n",
    );
    assert!(err.contains("unknown field `lt`"), "{err}");
    let err =
        parse_error("[[bgp.originate]]\nprefix = \"192.0.2.1/32\"\ncommunities = [\"65536:1\"]\n");
    assert!(err.contains("invalid community"), "{err}");

    // Errors found once everything is parsed name the key.
    let config: TestConfig =
        toml::from_str(&neighbor("import = { prefix_list = \"from-tor\" }")).unwrap();
    let err = ImportPolicy::from_config(
        config.bgp.neighbor[0].import.as_ref(),
        None,
        &PrefixLists::default(),
        "bgp.neighbor[0].import",
    )
    .unwrap_err();
    assert_eq!(err.key, "bgp.neighbor[0].import.prefix_list");
    assert!(
        err.reason.contains("unknown prefix list \"from-tor\""),
        "{err}"
    );

    let default_route = OriginateConfig {
        prefix: net("0.0.0.0/0"),
        communities: Vec::new(),
        large_communities: Vec::new(),
    };
    let err = Originated::from_config(&[default_route]).unwrap_err();
    assert_eq!(err.key, "bgp.originate[0].prefix");
    assert!(
        err.reason.contains("must not originate a default route"),
        "{err}"
    );
    let twice = OriginateConfig {
        prefix: net("192.0.2.1/32"),
        communities: Vec::new(),
        large_communities: Vec::new(),
    };
    assert!(Originated::from_config(&[twice.clone(), twice]).is_err());
}

#[test]
fn durations_and_communities() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("1.5s").is_err());
    assert_eq!("65000:100".parse(), Ok(Community((65000 << 16) | 100)));
    assert_eq!("no-export".parse(), Ok(Community(0xFFFF_FF01)));
    assert!("65000".parse::<Community>().is_err());
    assert!("1:2:3".parse::<Community>().is_err());
    assert_eq!("1:2:3".parse(), Ok(LargeCommunity([1, 2, 3])));
    assert!("1:2".parse::<LargeCommunity>().is_err());
}
