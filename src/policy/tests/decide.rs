use super::*;
use crate::policy::{
    Decision, DenyReason, Facts, Outcome, PendingConnection, Right, Scope, TenantRef, VpcepRef,
    decide,
};

use DenyReason::*;
use Outcome::{Allow, Deny};
use Right::{Download, Upload, View};
use TenantRef::{Project, Tenant};

/// Which snapshot a case runs against.
#[derive(Clone, Copy)]
enum Fx {
    /// The service has `approval_required: true`; unknown tenants denied.
    Approval,
    /// The service auto-accepts; unknown tenants denied.
    Auto,
    /// Approval required; `unknown_tenant: allow`.
    AllowUnknown,
}

struct Case {
    name: &'static str,
    fx: Fx,
    ip: &'static str,
    tenant: TenantRef<'static>,
    vpcep: Option<VpcepRef<'static>>,
    right: Right,
    outcome: Outcome,
    scope: Scope,
    vpcep_id: Option<&'static str>,
    config: bool,
    entry: Option<&'static str>,
}

const ID_GOOD: Option<VpcepRef<'static>> = Some(VpcepRef::Id("vpce-good"));

#[rustfmt::skip]
const CASES: &[Case] = &[
    // §4 step 1: the connection must be accepted.
    Case { name: "marker_accepted_listed_endpoint_allows", fx: Fx::Approval, ip: "10.1.0.5", tenant: Tenant(T1), vpcep: Some(VpcepRef::Marker(MARKER_OK)), right: Upload, outcome: Allow, scope: Scope::Tenant, vpcep_id: Some(CONN_OK), config: true, entry: Some("a1") },
    Case { name: "marker_rejected_denies_not_accepted", fx: Fx::Approval, ip: "10.1.0.5", tenant: Tenant(T1), vpcep: Some(VpcepRef::Marker(MARKER_REJECTED)), right: View, outcome: Deny(VpcepNotAccepted), scope: Scope::Tenant, vpcep_id: Some(CONN_REJECTED), config: true, entry: Some("a1") },
    Case { name: "marker_pending_acceptance_denies_not_accepted", fx: Fx::Auto, ip: "10.1.0.5", tenant: Tenant(T2), vpcep: Some(VpcepRef::Marker(MARKER_PENDING)), right: View, outcome: Deny(VpcepNotAccepted), scope: Scope::Tenant, vpcep_id: Some(CONN_PENDING), config: false, entry: None },
    Case { name: "marker_unknown_with_approval_denies_not_accepted", fx: Fx::Approval, ip: "10.1.0.5", tenant: Tenant(T2), vpcep: Some(VpcepRef::Marker(77)), right: View, outcome: Deny(VpcepNotAccepted), scope: Scope::Tenant, vpcep_id: None, config: false, entry: None },
    Case { name: "marker_unknown_without_approval_open_tenant_allows", fx: Fx::Auto, ip: "10.1.0.5", tenant: Tenant(T2), vpcep: Some(VpcepRef::Marker(77)), right: Upload, outcome: Allow, scope: Scope::Tenant, vpcep_id: None, config: false, entry: None },
    Case { name: "marker_unknown_without_approval_vpcep_tenant_denies_not_authorized", fx: Fx::Auto, ip: "10.1.0.5", tenant: Tenant(T1), vpcep: Some(VpcepRef::Marker(77)), right: View, outcome: Deny(VpcepNotAuthorized), scope: Scope::Tenant, vpcep_id: None, config: true, entry: Some("a1") },
    Case { name: "vpcep_id_of_rejected_connection_denies_not_accepted", fx: Fx::Auto, ip: "10.1.0.5", tenant: Tenant(T1), vpcep: Some(VpcepRef::Id(CONN_REJECTED)), right: View, outcome: Deny(VpcepNotAccepted), scope: Scope::Tenant, vpcep_id: Some(CONN_REJECTED), config: true, entry: Some("a1") },
    Case { name: "rejected_marker_beats_unknown_tenant", fx: Fx::Approval, ip: "10.1.0.5", tenant: Tenant("nobody"), vpcep: Some(VpcepRef::Marker(MARKER_REJECTED)), right: View, outcome: Deny(VpcepNotAccepted), scope: Scope::None, vpcep_id: Some(CONN_REJECTED), config: false, entry: None },
    Case { name: "rejected_marker_beats_unknown_tenant_allow", fx: Fx::AllowUnknown, ip: "10.1.0.5", tenant: TenantRef::None, vpcep: Some(VpcepRef::Marker(MARKER_REJECTED)), right: View, outcome: Deny(VpcepNotAccepted), scope: Scope::None, vpcep_id: Some(CONN_REJECTED), config: false, entry: None },
    // §4 step 2: a connection's domain_id binds it to its tenant; conflicting tenant claims.
    Case { name: "marker_of_another_tenants_connection_denies_wrong_tenant", fx: Fx::Approval, ip: "10.1.0.5", tenant: Tenant(T1), vpcep: Some(VpcepRef::Marker(MARKER_OTHER)), right: View, outcome: Deny(VpcepWrongTenant), scope: Scope::Tenant, vpcep_id: Some(CONN_OTHER), config: true, entry: Some("a1") },
    Case { name: "marker_of_own_connection_allows", fx: Fx::Approval, ip: "10.1.0.5", tenant: Tenant(T2), vpcep: Some(VpcepRef::Marker(MARKER_OTHER)), right: Upload, outcome: Allow, scope: Scope::Tenant, vpcep_id: Some(CONN_OTHER), config: false, entry: None },
    Case { name: "vpcep_id_of_another_tenants_connection_denies_wrong_tenant", fx: Fx::Auto, ip: "10.1.0.5", tenant: Tenant(T1), vpcep: Some(VpcepRef::Id(CONN_OTHER)), right: View, outcome: Deny(VpcepWrongTenant), scope: Scope::Tenant, vpcep_id: Some(CONN_OTHER), config: true, entry: Some("a1") },
    Case { name: "wrong_tenant_connection_with_unknown_tenant_denies_unknown", fx: Fx::Approval, ip: "10.1.0.5", tenant: Tenant("nobody"), vpcep: Some(VpcepRef::Marker(MARKER_OTHER)), right: View, outcome: Deny(UnknownTenant), scope: Scope::None, vpcep_id: Some(CONN_OTHER), config: false, entry: None },
    Case { name: "project_of_named_tenant_brings_project_rules", fx: Fx::Approval, ip: "192.168.10.5", tenant: TenantRef::Both { tenant: T1, project: P1 }, vpcep: None, right: Upload, outcome: Allow, scope: Scope::Project, vpcep_id: None, config: false, entry: Some("p1") },
    Case { name: "project_of_another_tenant_denies_conflict", fx: Fx::Approval, ip: "192.168.10.5", tenant: TenantRef::Both { tenant: T2, project: P1 }, vpcep: None, right: View, outcome: Deny(TenantConflict), scope: Scope::None, vpcep_id: None, config: false, entry: None },
    Case { name: "unknown_project_beside_known_tenant_denies_conflict", fx: Fx::Approval, ip: "10.1.0.5", tenant: TenantRef::Both { tenant: T2, project: "ffffffffffffffffffffffffffffffff" }, vpcep: None, right: View, outcome: Deny(TenantConflict), scope: Scope::None, vpcep_id: None, config: false, entry: None },
    Case { name: "unknown_project_and_tenant_denies_unknown", fx: Fx::Approval, ip: "10.1.0.5", tenant: TenantRef::Both { tenant: "nobody", project: "ffffffffffffffffffffffffffffffff" }, vpcep: None, right: View, outcome: Deny(UnknownTenant), scope: Scope::None, vpcep_id: None, config: false, entry: None },
    Case { name: "conflict_with_unknown_tenant_allow_still_denies", fx: Fx::AllowUnknown, ip: "10.1.0.5", tenant: TenantRef::Both { tenant: T2, project: P1 }, vpcep: None, right: View, outcome: Deny(TenantConflict), scope: Scope::None, vpcep_id: None, config: false, entry: None },
    // §4 step 3: unknown tenant.
    Case { name: "tenant_unknown_denies_unknown_tenant", fx: Fx::Approval, ip: "10.1.0.5", tenant: Tenant("nobody"), vpcep: None, right: View, outcome: Deny(UnknownTenant), scope: Scope::None, vpcep_id: None, config: false, entry: None },
    Case { name: "tenant_none_denies_unknown_tenant", fx: Fx::Approval, ip: "10.1.0.5", tenant: TenantRef::None, vpcep: None, right: View, outcome: Deny(UnknownTenant), scope: Scope::None, vpcep_id: None, config: false, entry: None },
    Case { name: "project_unknown_denies_unknown_tenant", fx: Fx::Approval, ip: "10.1.0.5", tenant: Project("ffffffffffffffffffffffffffffffff"), vpcep: None, right: View, outcome: Deny(UnknownTenant), scope: Scope::None, vpcep_id: None, config: false, entry: None },
    Case { name: "tenant_unknown_with_allow_allows_without_rules", fx: Fx::AllowUnknown, ip: "203.0.113.1", tenant: Tenant("nobody"), vpcep: Some(VpcepRef::Id("vpce-any")), right: Upload, outcome: Allow, scope: Scope::None, vpcep_id: Some("vpce-any"), config: false, entry: None },
    // §4 step 3: project-level rules replace the tenant's; otherwise the tenant's apply.
    Case { name: "project_level_rules_replace_tenant_rules_allows", fx: Fx::Approval, ip: "192.168.10.5", tenant: Project(P1), vpcep: None, right: Upload, outcome: Allow, scope: Scope::Project, vpcep_id: None, config: false, entry: Some("p1") },
    Case { name: "project_level_rules_ignore_tenant_whitelist_denies_ip", fx: Fx::Approval, ip: "10.1.0.5", tenant: Project(P1), vpcep: None, right: View, outcome: Deny(IpNotTrusted), scope: Scope::Project, vpcep_id: None, config: false, entry: None },
    Case { name: "project_level_false_uses_tenant_rules_denies_vpcep", fx: Fx::Approval, ip: "10.1.0.5", tenant: Project(P2), vpcep: None, right: View, outcome: Deny(VpcepNotAuthorized), scope: Scope::Tenant, vpcep_id: None, config: true, entry: Some("a1") },
    Case { name: "project_level_false_uses_tenant_rules_allows", fx: Fx::Approval, ip: "10.1.0.5", tenant: Project(P2), vpcep: ID_GOOD, right: View, outcome: Allow, scope: Scope::Tenant, vpcep_id: Some("vpce-good"), config: true, entry: Some("a1") },
    // §4 step 4: VPCEP configured.
    Case { name: "vpcep_id_listed_allows", fx: Fx::Approval, ip: "10.1.0.5", tenant: Tenant(T1), vpcep: ID_GOOD, right: Download, outcome: Allow, scope: Scope::Tenant, vpcep_id: Some("vpce-good"), config: true, entry: Some("a1") },
    Case { name: "vpcep_id_unlisted_denies_not_authorized", fx: Fx::Approval, ip: "10.1.0.5", tenant: Tenant(T1), vpcep: Some(VpcepRef::Id("vpce-other")), right: View, outcome: Deny(VpcepNotAuthorized), scope: Scope::Tenant, vpcep_id: Some("vpce-other"), config: true, entry: Some("a1") },
    Case { name: "vpcep_missing_denies_not_authorized", fx: Fx::Approval, ip: "10.1.0.5", tenant: Tenant(T1), vpcep: None, right: View, outcome: Deny(VpcepNotAuthorized), scope: Scope::Tenant, vpcep_id: None, config: true, entry: Some("a1") },
    Case { name: "vpcep_unauthorized_beats_untrusted_ip", fx: Fx::Approval, ip: "203.0.113.1", tenant: Tenant(T1), vpcep: None, right: View, outcome: Deny(VpcepNotAuthorized), scope: Scope::Tenant, vpcep_id: None, config: true, entry: None },
    Case { name: "vpcep_disabled_ignores_endpoint_allows", fx: Fx::Approval, ip: "10.1.0.5", tenant: Tenant(T3), vpcep: Some(VpcepRef::Id("vpce-whatever")), right: View, outcome: Allow, scope: Scope::Tenant, vpcep_id: Some("vpce-whatever"), config: false, entry: Some("1998") },
    // §4 steps 5–6: whitelist and rights.
    Case { name: "ip_in_cidr_with_right_allows", fx: Fx::Approval, ip: "10.1.0.5", tenant: Tenant(T3), vpcep: None, right: Download, outcome: Allow, scope: Scope::Tenant, vpcep_id: None, config: false, entry: Some("1998") },
    Case { name: "ip_outside_whitelist_denies_not_trusted", fx: Fx::Approval, ip: "10.2.0.1", tenant: Tenant(T3), vpcep: None, right: View, outcome: Deny(IpNotTrusted), scope: Scope::Tenant, vpcep_id: None, config: false, entry: None },
    Case { name: "ip_in_range_without_right_denies_right", fx: Fx::Approval, ip: "1.1.1.9", tenant: Tenant(T3), vpcep: None, right: Download, outcome: Deny(RightNotGranted), scope: Scope::Tenant, vpcep_id: None, config: false, entry: Some("1999") },
    Case { name: "ip_just_past_range_denies_not_trusted", fx: Fx::Approval, ip: "1.1.1.10", tenant: Tenant(T3), vpcep: None, right: View, outcome: Deny(IpNotTrusted), scope: Scope::Tenant, vpcep_id: None, config: false, entry: None },
    Case { name: "ip_in_entry_with_no_flags_denies_right", fx: Fx::Approval, ip: "192.0.2.7", tenant: Tenant(T3), vpcep: None, right: View, outcome: Deny(RightNotGranted), scope: Scope::Tenant, vpcep_id: None, config: false, entry: Some("2002") },
    Case { name: "ip_in_overlap_upload_from_second_entry_allows", fx: Fx::Approval, ip: "10.1.2.3", tenant: Tenant(T3), vpcep: None, right: Upload, outcome: Allow, scope: Scope::Tenant, vpcep_id: None, config: false, entry: Some("2001") },
    Case { name: "ip_in_overlap_download_from_first_entry_allows", fx: Fx::Approval, ip: "10.1.2.3", tenant: Tenant(T3), vpcep: None, right: Download, outcome: Allow, scope: Scope::Tenant, vpcep_id: None, config: false, entry: Some("1998") },
    Case { name: "ip_outside_overlap_upload_denies_right", fx: Fx::Approval, ip: "10.1.3.3", tenant: Tenant(T3), vpcep: None, right: Upload, outcome: Deny(RightNotGranted), scope: Scope::Tenant, vpcep_id: None, config: false, entry: Some("1998") },
    Case { name: "ipv6_single_address_allows", fx: Fx::Approval, ip: "2001:db8::1", tenant: Tenant(T3), vpcep: None, right: Upload, outcome: Allow, scope: Scope::Tenant, vpcep_id: None, config: false, entry: Some("2000") },
    Case { name: "ipv6_neighbour_denies_not_trusted", fx: Fx::Approval, ip: "2001:db8::2", tenant: Tenant(T3), vpcep: None, right: View, outcome: Deny(IpNotTrusted), scope: Scope::Tenant, vpcep_id: None, config: false, entry: None },
    Case { name: "ipv4_mapped_client_matches_ipv4_entry_allows", fx: Fx::Approval, ip: "::ffff:10.1.0.5", tenant: Tenant(T3), vpcep: None, right: View, outcome: Allow, scope: Scope::Tenant, vpcep_id: None, config: false, entry: Some("1998") },
    Case { name: "ipv4_mapped_client_outside_denies_not_trusted", fx: Fx::Approval, ip: "::ffff:10.2.0.5", tenant: Tenant(T3), vpcep: None, right: View, outcome: Deny(IpNotTrusted), scope: Scope::Tenant, vpcep_id: None, config: false, entry: None },
    Case { name: "empty_whitelist_allows_any_ip_any_right", fx: Fx::Approval, ip: "2001:db8::99", tenant: Tenant(T2), vpcep: None, right: Upload, outcome: Allow, scope: Scope::Tenant, vpcep_id: None, config: false, entry: None },
];

fn snapshots() -> [Snapshot; 3] {
    [
        fixture(true, false),
        fixture(false, false),
        fixture(true, true),
    ]
}

#[test]
fn decide_table_matches_spec_order_and_fields() {
    let snaps = snapshots();
    for c in CASES {
        let snap = &snaps[c.fx as usize];
        let facts = Facts {
            client_ip: c.ip.parse().unwrap(),
            tenant: c.tenant,
            vpcep: c.vpcep,
            right: c.right,
        };
        let d = decide(snap, &facts);
        let name = c.name;
        assert_eq!(d.outcome, c.outcome, "case {name}");
        assert_eq!(d.rules_scope, c.scope, "case {name}");
        assert_eq!(d.vpcep_id, c.vpcep_id, "case {name}");
        assert_eq!(d.vpcep_config, c.config, "case {name}");
        assert_eq!(d.matched_ip_entry, c.entry, "case {name}");
        let want_tenant = match c.scope {
            Scope::None => None,
            _ => [T1, T2, T3].into_iter().find(|t| match c.tenant {
                Tenant(x) => x == *t,
                Project(_) => *t == T1,
                TenantRef::Both { tenant, .. } => tenant == *t,
                TenantRef::None => false,
            }),
        };
        assert_eq!(d.tenant, want_tenant, "case {name}");
    }
}

#[test]
fn decide_unknown_marker_with_approval_reports_pending_connection() {
    let snap = fixture(true, false);
    let facts = Facts {
        client_ip: "10.1.0.5".parse().unwrap(),
        tenant: Tenant(T1),
        vpcep: Some(VpcepRef::Marker(77)),
        right: View,
    };
    let d = decide(&snap, &facts);
    assert_eq!(d.outcome, Deny(VpcepNotAccepted));
    assert_eq!(
        d.pending,
        Some(PendingConnection {
            service_id: SERVICE,
            marker_id: 77
        })
    );
}

#[test]
fn decide_unknown_marker_without_approval_reports_no_pending() {
    let snap = fixture(false, false);
    let facts = Facts {
        client_ip: "10.1.0.5".parse().unwrap(),
        tenant: Tenant(T2),
        vpcep: Some(VpcepRef::Marker(77)),
        right: View,
    };
    assert_eq!(decide(&snap, &facts).pending, None);
}

#[test]
fn decide_project_request_reports_project_and_owning_tenant() {
    let snap = fixture(true, false);
    let facts = Facts {
        client_ip: "192.168.10.1".parse().unwrap(),
        tenant: Project(P1),
        vpcep: None,
        right: View,
    };
    let d = decide(&snap, &facts);
    let want = Decision {
        outcome: Allow,
        tenant: Some(T1),
        project: Some(P1),
        rules_scope: Scope::Project,
        vpcep_id: None,
        vpcep_config: false,
        matched_ip_entry: Some("p1"),
        pending: None,
    };
    assert_eq!(d, want);
}

#[test]
fn right_names_round_trip_and_unknown_is_rejected() {
    for r in Right::ALL {
        assert_eq!(r.as_str().parse::<Right>(), Ok(r));
    }
    assert!("write".parse::<Right>().is_err());
    assert!("View".parse::<Right>().is_err());
}
