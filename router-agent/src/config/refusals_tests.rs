//! What `router-agent check` refuses (and so `run` and `reload`, which validate the same
//! way), each error naming the key and the neighbor.

use super::*;

fn error(text: &str) -> String {
    Config::parse(text, std::path::Path::new("test.toml"))
        .unwrap_err()
        .to_string()
}

const BGP: &str = "[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n";

fn neighbor(fields: &str) -> String {
    error(&format!("{BGP}[[bgp.neighbor]]\n{fields}\n"))
}

#[test]
fn remote_as_zero_is_refused() {
    let e = neighbor("address = \"10.0.0.1\"\nremote_as = 0");
    assert!(
        e.contains("bgp.neighbor[0].remote_as: 10.0.0.1: AS 0 is reserved"),
        "{e}"
    );
    let e = error(&format!(
        "{BGP}[[bgp.dynamic_neighbor]]\nrange = \"10.0.0.0/24\"\nremote_as = 0\n"
    ));
    assert!(
        e.contains("bgp.dynamic_neighbor[0].remote_as: range 10.0.0.0/24"),
        "{e}"
    );
}

#[test]
fn as_trans_is_refused_as_local_or_remote_as() {
    let e = error("[bgp]\nasn = 23456\nrouter_id = \"192.0.2.1\"\n");
    assert!(e.contains("bgp.asn") && e.contains("AS_TRANS"), "{e}");
    let e = neighbor("address = \"10.0.0.1\"\nremote_as = 23456");
    assert!(
        e.contains("bgp.neighbor[0].remote_as: 10.0.0.1") && e.contains("AS_TRANS"),
        "{e}"
    );
    let e = error(&format!(
        "{BGP}[[bgp.dynamic_neighbor]]\nrange = \"10.0.0.0/24\"\nremote_as = 23456\n"
    ));
    assert!(e.contains("bgp.dynamic_neighbor[0].remote_as"), "{e}");
}

#[test]
fn link_local_neighbor_address_needs_an_interface() {
    let e = neighbor("address = \"fe80::1\"\nremote_as = 65002");
    assert!(
        e.contains("bgp.neighbor[0].address") && e.contains("fe80::1 is link-local"),
        "{e}"
    );
    assert!(e.contains("interface ="), "{e}");
    // Passive, it takes the connection from whichever link it comes: nothing to connect on.
    Config::parse(
        &format!(
            "{BGP}[[bgp.neighbor]]\naddress = \"fe80::1\"\nremote_as = 65002\npassive = true\n"
        ),
        std::path::Path::new("test.toml"),
    )
    .unwrap();
}

#[test]
fn ipv4_mapped_neighbors_and_ranges_are_refused() {
    let e = error(&format!(
        "{BGP}[[bgp.neighbor]]\naddress = \"10.0.0.1\"\nremote_as = 65002\n\
         [[bgp.neighbor]]\naddress = \"::ffff:10.0.0.1\"\nremote_as = 65002\n"
    ));
    assert!(
        e.contains("bgp.neighbor[1].address") && e.contains("configured twice"),
        "{e}"
    );
    let e = neighbor("address = \"::ffff:10.0.0.2\"\nremote_as = 65002");
    assert!(
        e.contains("bgp.neighbor[0].address") && e.contains("write 10.0.0.2"),
        "{e}"
    );
    let e = error(&format!(
        "{BGP}[[bgp.dynamic_neighbor]]\nrange = \"::ffff:10.0.0.0/120\"\nremote_as = 1\n"
    ));
    assert!(
        e.contains("bgp.dynamic_neighbor[0].range") && e.contains("write 10.0.0.0/24"),
        "{e}"
    );
    let e = error(
        "[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n\
         originate = [{ prefix = \"::ffff:192.0.2.1/128\" }]\n",
    );
    assert!(e.contains("bgp.originate[0].prefix"), "{e}");
    let e =
        error("[[route]]\nprefix = \"::ffff:10.0.0.0/104\"\nnexthops = [{ via = \"10.0.0.1\" }]\n");
    assert!(
        e.contains("route[0].prefix") && e.contains("10.0.0.0/8"),
        "{e}"
    );
    let e =
        error("[[route]]\nprefix = \"10.0.0.0/8\"\nnexthops = [{ via = \"::ffff:192.0.2.1\" }]\n");
    assert!(
        e.contains("route[0].nexthops[0].via") && e.contains("write 192.0.2.1"),
        "{e}"
    );
}

#[test]
fn out_of_range_prefix_lengths_are_named_everywhere() {
    let out_of_range = "prefix length 33 out of range for IPv4";
    let e = error("[[route]]\nprefix = \"10.0.0.0/33\"\nnexthops = [{ via = \"10.0.0.1\" }]\n");
    assert!(e.contains(out_of_range) && e.contains("prefix"), "{e}");
    let e = error("[datapath]\npass_to_kernel = [\"10.0.0.0/33\"]\n");
    assert!(
        e.contains("datapath.pass_to_kernel[0]") && e.contains(out_of_range),
        "{e}"
    );
    let e = error(&format!(
        "{BGP}[[bgp.dynamic_neighbor]]\nrange = \"10.0.0.0/33\"\nremote_as = 1\n"
    ));
    assert!(e.contains(out_of_range) && e.contains("range"), "{e}");
    let e = error(
        "[bgp]\nasn = 65001\nrouter_id = \"192.0.2.1\"\n\
         originate = [{ prefix = \"192.0.2.1/33\" }]\n",
    );
    assert!(e.contains(out_of_range), "{e}");
    let e = error(&format!(
        "{BGP}[bgp.prefix_list.x]\nipv6 = [{{ action = \"permit\", prefix = \"2001:db8::/129\" }}]\n"
    ));
    assert!(e.contains("prefix length 129 out of range for IPv6"), "{e}");
}
