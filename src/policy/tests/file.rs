//! Parse/render round trips, derived fields, counts and the 100,000-entry file (docs/contract.md §3).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use proptest::prelude::*;

use super::*;
use crate::policy::{
    Counts, Derived, Facts, Located, Outcome, PolicyFile, Right, Tenant, TenantRef, TrustedIp,
    VpcepSettings, decide, parse_ip_range, render_policy,
};

#[test]
fn snapshot_counts_and_lookups_match_the_fixture() {
    let snap = fixture(true, false);
    let want = Counts {
        tenants: 3,
        vpceps: 2,
        ip_ranges: 8,
        connections: 4,
        projects: 2,
    };
    assert_eq!(snap.counts(), want);
    assert_eq!(snap.tenant_for_project(P1), Some(T1));
    assert_eq!(snap.tenant_for_project("nope"), None);
    assert!(snap.has_tenant(T2));
    assert!(!snap.has_tenant("nobody"));
    assert_eq!(snap.file().tenants[0].enterprise_id, T1);
}

#[test]
fn policy_render_then_parse_round_trips() {
    let file = parse_policy(&fixture_yaml(true)).unwrap();
    let text = render_policy(&file).unwrap();
    assert_eq!(parse_policy(&text).unwrap(), file, "rendered:\n{text}");
    // Entries stay one flow map per line, as docs/contract.md §3 writes them.
    assert!(
        text.contains("  - {id: \"1999\", ip_range: 1.1.1.1-1.1.1.9, view_flag: 1, download_flag: 0, upload_flag: 0}\n"),
        "rendered:\n{text}"
    );
}

#[test]
fn policy_records_built_in_code_compile_without_positions() {
    let file = PolicyFile {
        tenants: vec![Tenant {
            enterprise_id: "t1".into(),
            vpcep: VpcepSettings::default(),
            trusted_ips: vec![TrustedIp {
                id: "1".into(),
                ip_range: "10.0.0.0/8".into(),
                view_flag: 1.into(),
                download_flag: 0.into(),
                upload_flag: 2.into(),
                remark: None,
            }],
        }],
        projects: vec![],
        endpoint_services: vec![],
    };
    let err = Snapshot::compile(&file, &CompileOptions::default()).unwrap_err();
    assert_eq!(err.position(), None);
    assert_eq!(
        err.render("policy.yaml"),
        "policy.yaml: upload_flag must be 0 or 1, not 2"
    );
}

#[test]
fn trusted_ip_derived_fields_follow_the_seed() {
    // (ip_range, ip_type, ip_start, ip_end)
    const CASES: &[(&str, u8, &str, &str)] = &[
        ("1.1.1.1", 3, "1.1.1.1", "1.1.1.1"),
        ("10.1.0.0/16", 2, "10.1.0.0", "10.1.255.255"),
        ("1.1.1.1-1.1.1.9", 1, "1.1.1.1", "1.1.1.9"),
        ("2001:db8::/126", 2, "2001:db8::", "2001:db8::3"),
        ("::ffff:10.0.0.1", 3, "10.0.0.1", "10.0.0.1"),
    ];
    for &(range, ip_type, start, end) in CASES {
        let e = TrustedIp {
            id: "x".into(),
            ip_range: range.into(),
            view_flag: Located::default(),
            download_flag: Located::default(),
            upload_flag: Located::default(),
            remark: None,
        };
        let want = Derived {
            ip_type,
            ip_start: start.into(),
            ip_end: end.into(),
        };
        assert_eq!(e.derived().unwrap(), want, "case {range}");
    }
}

// === round trip of free text ===

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,40}",
        Just(String::new()),
        Just("yes".to_string()),
        Just("null".to_string()),
        Just("~".to_string()),
        Just("0x1F".to_string()),
        Just("- a, b: {c}".to_string()),
        Just("'quoted' \"double\" # not a comment".to_string()),
        Just("line\nbreak\n".to_string()),
        "[a-z ]{100,150}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn policy_render_parse_round_trips_arbitrary_free_text(
        remark in arb_text(),
        creator in arb_text(),
        description in arb_text(),
        id in arb_text(),
    ) {
        let mut file = parse_policy(&fixture_yaml(false)).unwrap();
        file.tenants[0].trusted_ips[0].remark = Some(remark.into());
        file.tenants[0].trusted_ips[0].id = id.into();
        file.tenants[0].vpcep.endpoints[0].creator = Some(creator);
        file.endpoint_services[0].connections[0].description = Some(description);
        let text = render_policy(&file).unwrap();
        let back = parse_policy(&text);
        prop_assert_eq!(back.as_ref().ok(), Some(&file), "rendered:\n{}\nerror: {:?}", text, back.as_ref().err());
    }
}

// === 100,000 entries ===

/// Deterministic pseudo-random numbers (no rand dependency): SplitMix64.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// One entry's `ip_range`: v4 singles, CIDRs and ranges, v6 singles and CIDRs.
fn random_range(rng: &mut Mix) -> String {
    let r = rng.next();
    let v4 = Ipv4Addr::from((r >> 32) as u32);
    match r % 5 {
        0 => v4.to_string(),
        1 => {
            let p = 16 + (r >> 8) as u32 % 17;
            let net = u32::from(v4) & (u32::MAX << (32 - p));
            format!("{}/{p}", Ipv4Addr::from(net))
        }
        2 => {
            let a = u32::from(v4);
            let b = a.saturating_add((r >> 12) as u32 % 5000);
            format!("{}-{}", Ipv4Addr::from(a), Ipv4Addr::from(b))
        }
        3 => Ipv6Addr::from(u128::from(rng.next()) << 64 | u128::from(r)).to_string(),
        _ => {
            let p = 48 + (r >> 8) as u32 % 81;
            let a = u128::from(rng.next()) << 64 | u128::from(r);
            let net = if p == 128 {
                a
            } else {
                a & (u128::MAX << (128 - p))
            };
            format!("{}/{p}", Ipv6Addr::from(net))
        }
    }
}

#[test]
fn policy_with_100k_flow_map_entries_parses_compiles_and_looks_up() {
    const N: usize = 100_000;
    let mut rng = Mix(42);
    let mut yaml = String::with_capacity(N * 100);
    yaml.push_str("tenants:\n  - enterprise_id: big\n    trusted_ips:\n");
    let mut ranges = Vec::with_capacity(N);
    for i in 0..N {
        let range = random_range(&mut rng);
        let (v, d, u) = (rng.next() % 2, rng.next() % 2, rng.next() % 2);
        yaml.push_str(&format!(
            "      - {{ id: \"{i}\", ip_range: \"{range}\", view_flag: {v}, download_flag: {d}, upload_flag: {u}, remark: \"\" }}\n"
        ));
        ranges.push((parse_ip_range(&range).unwrap().range, v == 1));
    }
    let started = Instant::now();
    let file = parse_policy(&yaml).unwrap();
    let parsed = started.elapsed();
    let snap = Snapshot::compile(&file, &CompileOptions::default()).unwrap();
    let total = started.elapsed();
    eprintln!(
        "100k entries ({} bytes): parse {parsed:?}, parse+compile {total:?}",
        yaml.len()
    );
    assert_eq!(snap.counts().ip_ranges, N);
    // Probe entries' own bounds and random addresses; compare with a linear scan.
    for k in 0..300 {
        let probe: IpAddr = match k % 3 {
            0 => ranges[(rng.next() % N as u64) as usize].0.first(),
            1 => ranges[(rng.next() % N as u64) as usize].0.last(),
            _ => IpAddr::V4(Ipv4Addr::from((rng.next() >> 32) as u32)),
        };
        let containing: Vec<_> = ranges.iter().filter(|(r, _)| r.contains(probe)).collect();
        let want = match (
            containing.is_empty(),
            containing.iter().any(|(_, view)| *view),
        ) {
            (true, _) => Outcome::Deny(crate::policy::DenyReason::IpNotTrusted),
            (false, false) => Outcome::Deny(crate::policy::DenyReason::RightNotGranted),
            (false, true) => Outcome::Allow,
        };
        let facts = Facts {
            client_ip: probe,
            tenant: TenantRef::Tenant("big"),
            vpcep: None,
            right: Right::View,
        };
        assert_eq!(decide(&snap, &facts).outcome, want, "probe {probe}");
    }
}

/// docs/contract.md §3's example, verbatim: documentation must stay loadable.
const SPEC_EXAMPLE: &str = r#"
tenants:
  - enterprise_id: 389efb76b1354e4482eabeed00000000
    vpcep:
      enabled: true                  # the seeds' "config": secure access via VPC endpoint is configured
      endpoints:
        - { vpcep_id: 1234bfa39r7pg09la8msyu8vq004a1234, region: ap-southeast-3, description: VPCEP1,
            creator: user001, create_time: "2026-05-01T10:30:00Z", modify_time: "2026-05-01T10:30:00Z" }
    trusted_ips:                     # the IP address whitelist
      - { id: "1998", ip_range: "10.1.0.0/16", view_flag: 1, download_flag: 1, upload_flag: 0, remark: "" }
      - { id: "1999", ip_range: "1.1.1.1-1.1.1.9", view_flag: 1, download_flag: 0, upload_flag: 0 }
      - { id: "2000", ip_range: "2001:db8::1", view_flag: 1, download_flag: 1, upload_flag: 1 }
projects:                            # optional project-level permissions (seed: Build project permission)
  - project_id: 0f6c3a1e9b2d4c7f8a5e1d3b6c9f2a4e
    enterprise_id: 389efb76b1354e4482eabeed00000000
    project_level: true              # when true these rules replace the tenant's for this project
    vpcep: { enabled: false }        # same shape as a tenant's rules
    trusted_ips:
      - { id: "p1", ip_range: "192.168.10.0/24", view_flag: 1, download_flag: 1, upload_flag: 1 }
endpoint_services:                   # the VPC endpoint service(s) this proxy fronts (seed: accept/reject)
  - id: 4189d3c2-8882-4871-a3c2-d380272eed88
    approval_required: true
    connections:
      - { id: 705290f3-0d00-41f2-aedc-71f09844e879, marker_id: 422321321312321321,
          domain_id: 6e9dfd51d1124e8d8498dce894923a0d, status: accepted,
          created_at: "2022-04-14T09:35:47Z", updated_at: "2022-04-14T09:36:47Z", description: "" }
"#;

#[test]
fn policy_spec_section_3_example_compiles_and_round_trips() {
    let file = parse_policy(SPEC_EXAMPLE).unwrap();
    let snap = Snapshot::compile(&file, &CompileOptions::default()).unwrap();
    let want = Counts {
        tenants: 1,
        vpceps: 1,
        ip_ranges: 4,
        connections: 1,
        projects: 1,
    };
    assert_eq!(snap.counts(), want);
    assert_eq!(parse_policy(&render_policy(&file).unwrap()).unwrap(), file);
}

#[test]
fn policy_without_rules_renders_as_empty_tenant_list() {
    let file = parse_policy("tenants: []\n").unwrap();
    assert_eq!(render_policy(&file).unwrap(), "tenants: []\n");
}

#[test]
fn located_from_other_deserializers_has_value_and_no_position() {
    use serde::Deserialize;
    use serde::de::IntoDeserializer;
    let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
        "vpce-1".into_deserializer();
    let got = Located::<String>::deserialize(de).unwrap();
    assert_eq!(got, "vpce-1");
    assert_eq!(got.pos(), None);
}

#[test]
fn snapshot_is_send_and_sync_for_arc_swap() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Snapshot>();
    assert_send_sync::<PolicyFile>();
}
