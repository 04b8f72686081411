//! One test per `PolicyError` variant: the smallest YAML that triggers it, asserting the variant
//! (and its kind where it has one) and the line/column it points at.

use crate::policy::{CompileOptions, IdKind, PolicyError, Snapshot, parse_policy};

/// Parses and compiles `yaml` with a limit of 2 endpoints, returning the error.
fn error_of(yaml: &str) -> PolicyError {
    let opts = CompileOptions {
        unknown_tenant_allow: false,
        max_vpceps_per_tenant: 2,
    };
    match parse_policy(yaml).and_then(|f| Snapshot::compile(&f, &opts)) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e,
    }
}

/// Runs `(name, yaml, line, column)` cases, checking the variant with `is`.
fn check(cases: &[(&str, &str, u32, u32)], is: impl Fn(&PolicyError) -> bool) {
    for &(name, yaml, line, column) in cases {
        let err = error_of(yaml);
        assert!(is(&err), "case {name}: wrong variant {err:?}");
        assert_eq!(err.position(), Some((line, column)), "case {name}: {err}");
    }
}

const T: &str = "tenants:\n  - enterprise_id: t1\n";

#[test]
fn policy_empty_document_is_rejected_as_empty() {
    for yaml in ["", "\n\n", "# nothing here\n", "---\n", "~\n"] {
        let err = error_of(yaml);
        assert_eq!(err, PolicyError::Empty, "case {yaml:?}");
        assert_eq!(err.position(), None, "case {yaml:?}");
    }
}

#[test]
fn policy_bad_yaml_or_shape_is_rejected_as_yaml() {
    check(
        &[
            ("syntax", "tenants: [ {enterprise_id: a ]\n", 1, 12),
            ("unknown_top_field", "tenants: []\ntenant: []\n", 2, 1),
            ("missing_tenants", "projects: []\n", 1, 1),
            (
                "unknown_entry_field",
                "tenants:\n  - { enterprise_id: a, vpcep_ids: [] }\n",
                2,
                25,
            ),
            (
                "flag_not_u8",
                "tenants:\n  - enterprise_id: a\n    trusted_ips:\n      - { id: x, ip_range: 1.1.1.1, view_flag: 300 }\n",
                4,
                48,
            ),
            (
                "duplicate_key",
                "tenants:\n  - enterprise_id: a\n    enterprise_id: b\n",
                3,
                5,
            ),
            (
                "marker_not_u64",
                "tenants: []\nendpoint_services:\n  - id: s\n    connections:\n      - { id: c, marker_id: -1, status: accepted }\n",
                5,
                29,
            ),
        ],
        |e| matches!(e, PolicyError::Yaml { .. }),
    );
}

#[test]
fn policy_bad_ip_range_is_rejected_at_the_value() {
    let entry =
        |range: &str| format!("{T}    trusted_ips:\n      - {{ id: x, ip_range: \"{range}\" }}\n");
    let cases = [
        ("host_bits", entry("10.1.0.1/16")),
        ("start_after_end", entry("1.1.1.9-1.1.1.1")),
        ("mixed_families", entry("1.1.1.1-2001:db8::1")),
        ("garbage", entry("10.0.0.300")),
        ("spaces", entry("1.1.1.1 - 1.1.1.9")),
    ];
    for (name, yaml) in &cases {
        let err = error_of(yaml);
        assert!(
            matches!(err, PolicyError::InvalidIpRange { .. }),
            "case {name}: {err:?}"
        );
        assert_eq!(err.position(), Some((4, 28)), "case {name}: {err}");
    }
    let err = error_of(&cases[0].1);
    assert!(
        err.to_string().contains("did you mean 10.1.0.0/16"),
        "{err}"
    );
}

#[test]
fn policy_flag_other_than_0_or_1_is_rejected_at_the_flag() {
    let yaml = format!(
        "{T}    trusted_ips:\n      - {{ id: x, ip_range: 1.1.1.1, view_flag: 1, download_flag: 2 }}\n"
    );
    let err = error_of(&yaml);
    assert!(
        matches!(
            err,
            PolicyError::InvalidFlag {
                field: "download_flag",
                value: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.position(), Some((4, 66)), "{err}");
}

#[test]
fn policy_id_outside_seed_rules_is_rejected_as_invalid_id() {
    let long41 = "a".repeat(41);
    let cases: Vec<(&str, String, IdKind, u32, u32)> = vec![
        ("enterprise_id_too_long", format!("tenants:\n  - enterprise_id: {long41}\n"), IdKind::EnterpriseId, 2, 20),
        ("enterprise_id_bad_char", "tenants:\n  - enterprise_id: \"a.b\"\n".into(), IdKind::EnterpriseId, 2, 20),
        ("enterprise_id_empty", "tenants:\n  - enterprise_id: \"\"\n".into(), IdKind::EnterpriseId, 2, 20),
        ("vpcep_id_uppercase", format!("{T}    vpcep:\n      endpoints: [ {{ vpcep_id: VPCE-1 }} ]\n"), IdKind::VpcepId, 4, 32),
        ("region_bad_char", format!("{T}    vpcep:\n      endpoints: [ {{ vpcep_id: v1, region: ap_east }} ]\n"), IdKind::Region, 4, 44),
        ("description_bad_char", format!("{T}    vpcep:\n      endpoints: [ {{ vpcep_id: v1, description: \"a/b\" }} ]\n"), IdKind::Description, 4, 49),
        ("trusted_ip_id_slash", format!("{T}    trusted_ips:\n      - {{ id: \"a/b\", ip_range: 1.1.1.1 }}\n"), IdKind::TrustedIpId, 4, 15),
        ("remark_too_long", format!("{T}    trusted_ips:\n      - {{ id: x, ip_range: 1.1.1.1, remark: {} }}\n", "r".repeat(201)), IdKind::Remark, 4, 45),
        ("project_id_31_chars", format!("{T}projects:\n  - {{ project_id: {}, enterprise_id: t1 }}\n", "a".repeat(31)), IdKind::ProjectId, 4, 19),
        ("service_id_bad_char", "tenants: []\nendpoint_services:\n  - id: \"s s\"\n".into(), IdKind::ServiceId, 3, 9),
        ("connection_id_uppercase", "tenants: []\nendpoint_services:\n  - id: s\n    connections:\n      - { id: C1, marker_id: 1, status: accepted }\n".into(), IdKind::ConnectionId, 5, 15),
        ("domain_id_bad_char", "tenants: []\nendpoint_services:\n  - id: s\n    connections:\n      - { id: c1, marker_id: 1, domain_id: \"d:1\", status: accepted }\n".into(), IdKind::DomainId, 5, 44),
    ];
    for (name, yaml, kind, line, column) in &cases {
        let err = error_of(yaml);
        assert!(
            matches!(&err, PolicyError::InvalidId { kind: k, .. } if k == kind),
            "case {name}: {err:?}"
        );
        assert_eq!(err.position(), Some((*line, *column)), "case {name}: {err}");
    }
}

#[test]
fn policy_unknown_connection_status_is_rejected_at_the_status() {
    let yaml = "tenants: []\nendpoint_services:\n  - id: s\n    connections:\n      - { id: c1, marker_id: 1, status: Accepted }\n";
    let err = error_of(yaml);
    assert!(matches!(err, PolicyError::InvalidStatus { .. }), "{err:?}");
    assert_eq!(err.position(), Some((5, 41)), "{err}");
}

#[test]
fn policy_duplicate_ids_are_rejected_at_the_repetition() {
    let svc = "tenants: []\nendpoint_services:\n  - id: s\n    connections:\n";
    let cases: Vec<(&str, String, IdKind, u32, u32)> = vec![
        ("tenant", "tenants:\n  - enterprise_id: t1\n  - enterprise_id: t1\n".into(), IdKind::EnterpriseId, 3, 20),
        ("trusted_ip_in_tenant", format!("{T}    trusted_ips:\n      - {{ id: x, ip_range: 1.1.1.1 }}\n      - {{ id: x, ip_range: 1.1.1.2 }}\n"), IdKind::TrustedIpId, 5, 15),
        ("vpcep_in_tenant", format!("{T}    vpcep:\n      endpoints: [ {{ vpcep_id: v1 }}, {{ vpcep_id: v1 }} ]\n"), IdKind::VpcepId, 4, 50),
        ("project", format!("{T}projects:\n  - {{ project_id: {p}, enterprise_id: t1 }}\n  - {{ project_id: {p}, enterprise_id: t1 }}\n", p = "a".repeat(32)), IdKind::ProjectId, 5, 19),
        ("service", "tenants: []\nendpoint_services:\n  - id: s\n  - id: s\n".into(), IdKind::ServiceId, 4, 9),
        ("connection_across_services", "tenants: []\nendpoint_services:\n  - id: s\n    connections: [ { id: c1, marker_id: 1, status: accepted } ]\n  - id: s2\n    connections: [ { id: c1, marker_id: 2, status: accepted } ]\n".into(), IdKind::ConnectionId, 6, 26),
        ("marker", format!("{svc}      - {{ id: c1, marker_id: 7, status: accepted }}\n      - {{ id: c2, marker_id: 7, status: accepted }}\n"), IdKind::MarkerId, 6, 30),
    ];
    for (name, yaml, kind, line, column) in &cases {
        let err = error_of(yaml);
        assert!(
            matches!(&err, PolicyError::DuplicateId { kind: k, .. } if k == kind),
            "case {name}: {err:?}"
        );
        assert_eq!(err.position(), Some((*line, *column)), "case {name}: {err}");
    }
    // The same trusted_ips id in two tenants is fine: ids are unique per rules set.
    let ok = "tenants:\n  - { enterprise_id: t1, trusted_ips: [ { id: x, ip_range: 1.1.1.1 } ] }\n  - { enterprise_id: t2, trusted_ips: [ { id: x, ip_range: 1.1.1.1 } ] }\n";
    assert!(
        parse_policy(ok)
            .and_then(|f| Snapshot::compile(&f, &CompileOptions::default()))
            .is_ok()
    );
}

#[test]
fn policy_project_of_unknown_tenant_is_rejected_at_its_enterprise_id() {
    let yaml = format!(
        "{T}projects:\n  - {{ project_id: {}, enterprise_id: t2 }}\n",
        "a".repeat(32)
    );
    let err = error_of(&yaml);
    assert!(
        matches!(err, PolicyError::UnknownProjectTenant { .. }),
        "{err:?}"
    );
    assert_eq!(err.position(), Some((4, 68)), "{err}");
}

#[test]
fn policy_endpoints_over_limit_are_rejected_at_the_first_excess() {
    let yaml = format!(
        "{T}    vpcep:\n      endpoints:\n        - {{ vpcep_id: v1 }}\n        - {{ vpcep_id: v2 }}\n        - {{ vpcep_id: v3 }}\n"
    );
    let err = error_of(&yaml);
    assert!(
        matches!(
            err,
            PolicyError::TooManyEndpoints {
                count: 3,
                max: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.position(), Some((7, 23)), "{err}");
}

#[test]
fn policy_error_render_prefixes_file_line_and_column() {
    let err = error_of("tenants:\n  - enterprise_id: t1\n  - enterprise_id: t1\n");
    assert_eq!(
        err.render("policy.yaml"),
        "policy.yaml:3:20: duplicate enterprise_id \"t1\" (first defined at 2:20)"
    );
    assert_eq!(
        PolicyError::Empty.render("p.yaml"),
        "p.yaml: policy file is empty; write `tenants: []` for a policy without rules"
    );
}

#[test]
fn policy_render_error_has_no_position() {
    // serde-saphyr renders every valid record set; the variant exists for its error type.
    assert_eq!(PolicyError::Render("x".into()).position(), None);
}
