//! Prefix lists: exact and ge/le matches, first match, validation.

use super::*;

#[test]
fn prefix_list_entry_without_ge_le_matches_exactly() {
    let list = list_v4(vec![entry(Permit, "10.0.0.0/8", None, None)]);
    assert!(list.permits(&net("10.0.0.0/8")));
    assert!(!list.permits(&net("10.0.0.0/9")));
    assert!(!list.permits(&net("10.1.0.0/16")));
    assert!(!list.permits(&net("0.0.0.0/0")));
}

#[test]
fn prefix_list_ge_le_bounds_are_inclusive() {
    let list = list_v4(vec![entry(Permit, "10.0.0.0/8", Some(24), Some(32))]);
    assert!(
        !list.permits(&net("10.0.0.0/8")),
        "the covering prefix itself is below ge"
    );
    assert!(!list.permits(&net("10.1.2.0/23")));
    assert!(list.permits(&net("10.1.2.0/24")));
    assert!(list.permits(&net("10.255.255.255/32")));
    assert!(
        !list.permits(&net("11.0.0.0/24")),
        "outside the covering prefix"
    );

    // ge alone: up to the family's maximum.
    let ge_only = list_v4(vec![entry(Permit, "10.0.0.0/8", Some(16), None)]);
    assert!(!ge_only.permits(&net("10.0.0.0/15")));
    assert!(ge_only.permits(&net("10.0.0.0/16")));
    assert!(ge_only.permits(&net("10.0.0.1/32")));

    // le alone: from the entry's own length.
    let le_only = list_v4(vec![entry(Permit, "10.0.0.0/8", None, Some(16))]);
    assert!(le_only.permits(&net("10.0.0.0/8")));
    assert!(le_only.permits(&net("10.3.0.0/16")));
    assert!(!le_only.permits(&net("10.3.0.0/17")));

    // ge = le = length: the same as exact.
    let exact = list_v4(vec![entry(Permit, "10.0.0.0/8", Some(8), Some(8))]);
    assert!(exact.permits(&net("10.0.0.0/8")));
    assert!(!exact.permits(&net("10.0.0.0/9")));

    // 0.0.0.0/0 le 32: every IPv4 prefix, and no IPv6 one (per-family lists).
    let any = list_v4(vec![entry(Permit, "0.0.0.0/0", None, Some(32))]);
    assert!(any.permits(&net("0.0.0.0/0")));
    assert!(any.permits(&net("203.0.113.7/32")));
    assert!(!any.permits(&net("::/0")));
    assert!(!any.permits(&net("2001:db8::/32")));
}

#[test]
fn prefix_list_first_match_wins_and_no_match_denies() {
    let list = list_v4(vec![
        entry(Deny, "10.1.0.0/16", None, Some(32)),
        entry(Permit, "10.0.0.0/8", None, Some(32)),
    ]);
    assert_eq!(list.evaluate(&net("10.1.2.0/24")), Deny);
    assert_eq!(list.evaluate(&net("10.2.0.0/16")), Permit);
    assert_eq!(list.evaluate(&net("192.168.0.0/16")), Deny);
    let empty = list_v4(Vec::new());
    assert_eq!(empty.evaluate(&net("10.0.0.0/8")), Deny);
}

#[test]
fn prefix_list_validation_names_the_entry() {
    let compile = |e: PrefixListEntryConfig| {
        PrefixList::compile(
            "bad",
            &PrefixListConfig {
                ipv4: vec![entry(Permit, "192.0.2.0/24", None, None), e],
                ipv6: Vec::new(),
            },
        )
        .unwrap_err()
    };
    let err = compile(entry(Permit, "10.0.0.1/8", None, None));
    assert_eq!(err.key, "bgp.prefix_list.bad.ipv4[1]");
    assert!(err.reason.contains("did you mean 10.0.0.0/8"), "{err}");
    assert!(
        compile(entry(Permit, "10.0.0.0/8", Some(7), None))
            .reason
            .contains("ge = 7")
    );
    assert!(
        compile(entry(Permit, "10.0.0.0/8", None, Some(33)))
            .reason
            .contains("le = 33")
    );
    assert!(
        compile(entry(Permit, "10.0.0.0/8", None, Some(7)))
            .reason
            .contains("le = 7")
    );
    assert!(
        compile(entry(Permit, "10.0.0.0/8", Some(25), Some(24)))
            .reason
            .contains("greater than le")
    );
    assert!(
        compile(entry(Permit, "2001:db8::/32", None, None))
            .reason
            .contains("not an IPv4")
    );
}
