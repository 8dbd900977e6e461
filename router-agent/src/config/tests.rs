use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, std::path::Path::new("test.toml"))
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn full_example_parses() {
    let config = parse(
        r#"
        [datapath]
        pin_dir = "/sys/fs/bpf/hr"
        engine = "dir24"
        xdp_mode = "generic"
        kernel_routes = false

        [[interface]]
        name = "eth0"
        [[interface]]
        name = "eth1"

        [[route]]
        prefix = "0.0.0.0/0"
        nexthops = [{ via = "192.0.2.1" }, { via = "fe80::1", interface = "eth1" }]
        [[route]]
        prefix = "2001:db8::/32"
        nexthops = [{ via = "2001:db8:ffff::1", interface = "eth0" }]
        "#,
    )
    .unwrap();
    assert_eq!(config.engine(), EngineChoice::Dir24);
    assert_eq!(config.datapath.xdp_mode, XdpMode::Generic);
    assert!(!config.datapath.kernel_routes);
    assert_eq!(config.routes[0].nexthops.len(), 2);
    assert_eq!(config.datapath.route_protocol, DEFAULT_ROUTE_PROTOCOL);
}

#[test]
fn defaults_and_auto_engine() {
    let config = parse("").unwrap();
    assert_eq!(
        config.datapath.pin_dir,
        PathBuf::from("/sys/fs/bpf/hostrouter")
    );
    assert_eq!(config.engine(), EngineChoice::LpmTrie);
    let big = parse("[datapath]\nexpected_ipv4_routes = 1000000\n").unwrap();
    assert_eq!(big.engine(), EngineChoice::Dxr);
    let v6 = parse("[datapath]\nexpected_ipv6_routes = 200000\n").unwrap();
    assert_eq!(v6.engine(), EngineChoice::Dxr);
    let dxr = parse("[datapath]\nengine = \"dxr\"\n").unwrap();
    assert_eq!(dxr.engine(), EngineChoice::Dxr);
}

const BGP: &str = "[[interface]]\nname = \"eth0\"\n[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n";

#[test]
fn neighbors_by_interface_and_dynamic_ranges() {
    let config = parse(&format!(
        r#"{BGP}
        [[bgp.neighbor]]
        interface = "eth0"
        remote_as = "external"
        [[bgp.neighbor]]
        address = "10.0.0.7"
        remote_as = 65002
        [[bgp.dynamic_neighbor]]
        range = "10.0.0.0/24"
        remote_as = "external"
        import = "all"
        limit = 3
        [[bgp.dynamic_neighbor]]
        interface = "eth0"
        remote_as = "internal"
        "#
    ))
    .unwrap();
    let setup = config.bgp.unwrap().compile().unwrap();
    assert_eq!(
        setup.neighbors[0].address,
        crate::bgp::config::PeerAddress::Interface("eth0".into())
    );
    assert_eq!(setup.dynamic_neighbors.len(), 2);
    assert_eq!(setup.dynamic_neighbors[0].limit, 3);
    assert_eq!(setup.dynamic_neighbors[1].limit, 100, "default");
    let vm = setup.dynamic_neighbors[0].neighbor("10.0.0.9".parse().unwrap());
    assert!(vm.passive);
}

#[test]
fn neighbor_and_dynamic_errors_name_the_key() {
    let bgp = |rest: &str| error(&format!("{BGP}{rest}"));
    let e = bgp("[[bgp.neighbor]]\naddress = \"10.0.0.1\"\ninterface = \"eth0\"\nremote_as = 1\n");
    assert!(
        e.contains("bgp.neighbor[0].interface") && e.contains("exclusive"),
        "{e}"
    );
    let e = bgp("[[bgp.neighbor]]\nremote_as = 1\n");
    assert!(e.contains("bgp.neighbor[0].address"), "{e}");
    let e = bgp("[[bgp.neighbor]]\ninterface = \"eth9\"\nremote_as = 1\n");
    assert!(
        e.contains("bgp.neighbor[0].interface") && e.contains("not one of the configured"),
        "{e}"
    );
    let e = bgp("[[bgp.neighbor]]\ninterface = \"eth0\"\nremote_as = 1\n\
         [[bgp.neighbor]]\ninterface = \"eth0\"\nremote_as = 2\n");
    assert!(
        e.contains("bgp.neighbor[1].interface") && e.contains("twice"),
        "{e}"
    );
    let e = bgp(
        "[[bgp.dynamic_neighbor]]\nrange = \"10.0.0.0/16\"\nremote_as = 1\n\
         [[bgp.dynamic_neighbor]]\nrange = \"10.0.3.0/24\"\nremote_as = 1\n",
    );
    assert!(
        e.contains("bgp.dynamic_neighbor[1].range") && e.contains("overlaps"),
        "{e}"
    );
    let e = bgp(
        "[[bgp.dynamic_neighbor]]\nrange = \"fe80::/64\"\nremote_as = 1\n\
         [[bgp.dynamic_neighbor]]\ninterface = \"eth0\"\nremote_as = 1\n",
    );
    assert!(e.contains("bgp.dynamic_neighbor[1].interface"), "{e}");
    let e = bgp("[[bgp.dynamic_neighbor]]\nrange = \"10.0.0.1/24\"\nremote_as = 1\n");
    assert!(
        e.contains("bgp.dynamic_neighbor[0].range") && e.contains("10.0.0.0/24"),
        "{e}"
    );
    let e = bgp("[[bgp.dynamic_neighbor]]\ninterface = \"vms\"\nremote_as = 1\n");
    assert!(e.contains("bgp.dynamic_neighbor[0].interface"), "{e}");
    let e = bgp("[[bgp.dynamic_neighbor]]\nremote_as = 1\n");
    assert!(e.contains("bgp.dynamic_neighbor[0].range"), "{e}");
    let e = bgp("[[bgp.dynamic_neighbor]]\nrange = \"10.0.0.0/24\"\nremote_as = 1\nlimit = 0\n");
    assert!(e.contains("bgp.dynamic_neighbor[0].limit"), "{e}");
    // A configured neighbor inside a range is fine (it wins).
    parse(&format!(
        "{BGP}[[bgp.neighbor]]\naddress = \"10.0.0.5\"\nremote_as = 1\n\
         [[bgp.dynamic_neighbor]]\nrange = \"10.0.0.0/24\"\nremote_as = 1\n"
    ))
    .unwrap();
}

#[test]
fn errors_name_the_key() {
    assert!(error("[datapath]\nengin = \"dir24\"\n").contains("unknown field `engin`"));
    assert!(error("[datapath]\nengine = \"fast\"\n").contains("unknown variant `fast`"));
    let e = error("[[route]]\nprefix = \"10.0.0.1/8\"\nnexthops = [{ via = \"10.0.0.1\" }]\n");
    assert!(
        e.contains("route[0].prefix") && e.contains("10.0.0.0/8"),
        "{e}"
    );
    let e = error("[[route]]\nprefix = \"10.0.0.0/8\"\nnexthops = []\n");
    assert!(e.contains("route[0].nexthops"), "{e}");
    let e = error("[[route]]\nprefix = \"10.0.0.0/8\"\nnexthops = [{ via = \"fe80::1\" }]\n");
    assert!(e.contains("route[0].nexthops[0].interface"), "{e}");
    let e = error(
        "[[route]]\nprefix = \"10.0.0.0/8\"\nnexthops = [{ via = \"10.0.0.1\", interface = \"eth9\" }]\n",
    );
    assert!(e.contains("not one of the configured interfaces"), "{e}");
    let e = error("[[route]]\nprefix = \"10.0.0.0/8\"\nnexthops = [{ via = \"224.0.0.1\" }]\n");
    assert!(e.contains("route[0].nexthops[0].via"), "{e}");
    // Martian gateways, each named by its key and why.
    for (via, why) in [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("0.0.0.0", "0.0.0.0 is an unspecified address"),
        ("255.255.255.255", "255.255.255.255 is reserved"),
        ("240.0.0.1", "240.0.0.1 is reserved"),
        ("::1", "::1 is a loopback address"),
        ("ff02::2", "ff02::2 is a multicast address"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1 is a loopback address"),
    ] {
        let e = error(&format!(
            "[[route]]\nprefix = \"10.0.0.0/8\"\nnexthops = [{{ via = \"192.0.2.1\" }}, {{ via = \"{via}\" }}]\n"
        ));
        assert!(
            e.contains(&format!(
                "route[0].nexthops[1].via: next hop unusable: {why}"
            )),
            "{e}"
        );
    }
    let e = error("[[interface]]\nname = \"eth0\"\n[[interface]]\nname = \"eth0\"\n");
    assert!(e.contains("interface[1].name"), "{e}");
    let e = error("[[interface]]\nname = \"eth0\"\nrpf = \"sometimes\"\n");
    assert!(
        e.contains("rpf") && e.contains("unknown variant `sometimes`"),
        "{e}"
    );
    let e =
        error("[datapath]\nengine = \"kernel\"\n[[interface]]\nname = \"eth0\"\nrpf = \"loose\"\n");
    assert!(
        e.contains("interface[0].rpf") && e.contains("kernel"),
        "{e}"
    );
    let e = error("[datapath]\npin_dir = \"relative\"\n");
    assert!(e.contains("datapath.pin_dir"), "{e}");
    let e = error("[[route]]\nprefix = \"not-a-prefix\"\nnexthops = []\n");
    assert!(e.contains("prefix"), "{e}");
}
