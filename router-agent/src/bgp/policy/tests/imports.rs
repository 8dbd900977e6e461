//! Import: default-only, RFC 8212 for unconfigured eBGP peers, AS path loops.

use super::*;

#[test]
fn default_only_permits_exactly_the_default_routes() {
    let policy = ImportPolicy::default_only();
    let tor = peer(1, true);
    let attrs = path_from(&[65101]);
    for prefix in ["0.0.0.0/0", "::/0"] {
        assert_eq!(
            policy.evaluate(&net(prefix), &attrs, &tor),
            Ok(()),
            "{prefix}"
        );
    }
    for prefix in ["0.0.0.0/1", "128.0.0.0/1", "10.0.0.0/8", "::/1", "2000::/3"] {
        assert_eq!(
            policy.evaluate(&net(prefix), &attrs, &tor),
            Err(ImportRejection::Denied),
            "{prefix}"
        );
    }
}

#[test]
fn rfc8212_unconfigured_ebgp_imports_and_exports_nothing() {
    let attrs = path_from(&[65101]);
    let unconfigured = ImportPolicy::not_configured();
    assert_eq!(
        unconfigured.evaluate(&net("0.0.0.0/0"), &attrs, &peer(1, true)),
        Err(ImportRejection::NotConfigured)
    );
    // RFC 8212 is about eBGP: an iBGP session without policy takes everything.
    assert_eq!(
        unconfigured.evaluate(&net("0.0.0.0/0"), &path_from(&[65101]), &peer(2, false)),
        Ok(())
    );
    // Configured to deny is a different thing (and says so).
    let lists = PrefixLists::compile(&BTreeMap::from([(
        "empty".to_owned(),
        PrefixListConfig::default(),
    )]))
    .unwrap();
    let empty = ImportPolicy::from_config(
        Some(&PolicyRef::PrefixList("empty".into())),
        None,
        &lists,
        "bgp.neighbor[0].import",
    )
    .unwrap();
    assert_ne!(empty, unconfigured);
    assert_eq!(
        empty.evaluate(&net("0.0.0.0/0"), &attrs, &peer(1, true)),
        Err(ImportRejection::Denied)
    );

    // Export side.
    let originated = originated(&["192.0.2.1/32"]);
    let ebgp = session(true);
    assert!(build_adj_rib_out(&originated, &ebgp, &ExportPolicy::not_configured()).is_empty());
    let ibgp = session(false);
    assert_eq!(
        build_adj_rib_out(&originated, &ibgp, &ExportPolicy::not_configured()).len(),
        1
    );
}

#[test]
fn as_path_loop_is_rejected_whatever_the_filter() {
    let looped = path_from(&[65101, LOCAL_AS, 65200]);
    let all = ImportPolicy {
        filter: Filter::All,
        max_prefix: None,
    };
    for tor in [peer(1, true), peer(2, false)] {
        assert_eq!(
            all.evaluate(&net("0.0.0.0/0"), &looped, &tor),
            Err(ImportRejection::AsPathLoop(LOCAL_AS))
        );
    }
    // Inside an AS_SET too.
    let mut in_set = path_from(&[65101]);
    in_set.as_path.segments.push(AsSegment {
        kind: AsSegmentKind::Set,
        asns: vec![1, LOCAL_AS],
    });
    assert!(
        all.evaluate(&net("0.0.0.0/0"), &in_set, &peer(1, true))
            .is_err()
    );
}
