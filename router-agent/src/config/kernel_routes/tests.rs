use super::*;
use crate::config::Config;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, std::path::Path::new("t.toml")).map_err(|e| e.to_string())
}

#[test]
fn default_follows_the_main_table_except_ours() {
    let config = parse("").unwrap();
    let filter = route_filter(&config.datapath).unwrap();
    assert_eq!(filter, RouteFilter::default());
    assert!(pass_to_kernel_prefixes(&config.datapath).is_empty());
}

#[test]
fn follow_config_parses_names_and_numbers() {
    let config = parse(
        r#"
        [datapath]
        pass_to_kernel = ["10.0.0.0/8", "2001:db8::/32"]
        [datapath.follow_kernel_routes]
        tables = ["main", "default", 100]
        protocols = ["kernel", "boot", "static", "dhcp", "ra", 42]
        interfaces = ["eth0", "cali123"]
        "#,
    )
    .unwrap();
    let filter = route_filter(&config.datapath).unwrap();
    assert_eq!(
        filter.tables,
        BTreeSet::from([100, TABLE_DEFAULT, TABLE_MAIN])
    );
    assert_eq!(filter.protocols, Some(BTreeSet::from([2, 3, 4, 16, 9, 42])));
    assert_eq!(
        filter.interfaces,
        Some(BTreeSet::from(["eth0".to_owned(), "cali123".to_owned()]))
    );
    assert_eq!(
        pass_to_kernel_prefixes(&config.datapath),
        vec![
            "10.0.0.0/8".parse::<IpNet>().unwrap(),
            "2001:db8::/32".parse().unwrap()
        ]
    );
}

#[test]
fn follow_config_errors_name_the_key() {
    let follow = |body: &str| parse(&format!("[datapath.follow_kernel_routes]\n{body}\n"));
    let cases = [
        (
            "tables = [\"main\", \"mian\"]",
            "follow_kernel_routes.tables[1]",
        ),
        ("tables = [255]", "follow_kernel_routes.tables[0]"),
        ("tables = [0]", "follow_kernel_routes.tables[0]"),
        ("tables = []", "follow_kernel_routes.tables"),
        ("protocols = \"some\"", "follow_kernel_routes.protocols"),
        ("protocols = []", "follow_kernel_routes.protocols"),
        (
            "protocols = [\"kernel\", \"ospff\"]",
            "follow_kernel_routes.protocols[1]",
        ),
        ("protocols = [300]", "follow_kernel_routes.protocols[0]"),
        ("protocols = [201]", "follow_kernel_routes.protocols[0]"),
        (
            "interfaces = [\"eth0\", 3]",
            "follow_kernel_routes.interfaces[1]",
        ),
        (
            "interfaces = [\"a-name-much-too-long\"]",
            "follow_kernel_routes.interfaces[0]",
        ),
    ];
    for (body, key) in cases {
        let err = follow(body).unwrap_err();
        assert!(err.contains(key), "{body}: {err}");
    }
    assert!(
        follow("tabels = [\"main\"]")
            .unwrap_err()
            .contains("tabels")
    );
    let pass = |list: &str| parse(&format!("[datapath]\npass_to_kernel = {list}\n"));
    let err = pass("[\"10.0.0.0/8\", \"bogus\"]").unwrap_err();
    assert!(err.contains("datapath.pass_to_kernel[1]"), "{err}");
    let err = pass("[\"10.0.0.1/8\"]").unwrap_err();
    assert!(
        err.contains("datapath.pass_to_kernel[0]") && err.contains("10.0.0.0/8"),
        "{err}"
    );
    let err = pass("[\"10.0.0.0/8\", \"10.0.0.0/8\"]").unwrap_err();
    assert!(err.contains("datapath.pass_to_kernel[1]"), "{err}");
}

#[test]
fn reload_may_change_pass_to_kernel_only() {
    let old = parse("").unwrap().datapath;
    let new = parse("[datapath]\npass_to_kernel = [\"10.0.0.0/8\"]\n")
        .unwrap()
        .datapath;
    assert!(datapath_restart_keys(&old, &new).is_empty());
    let new = parse("[datapath.follow_kernel_routes]\ntables = [100]\n")
        .unwrap()
        .datapath;
    assert_eq!(
        datapath_restart_keys(&old, &new),
        vec!["datapath.follow_kernel_routes"]
    );
    let new = parse("[datapath]\nengine = \"dir24\"\n").unwrap().datapath;
    assert_eq!(datapath_restart_keys(&old, &new), vec!["[datapath]"]);
}
