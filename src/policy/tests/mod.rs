//! Tests of the policy module as a whole: decisions (docs/contract.md §4/§5), validation errors with
//! positions (docs/contract.md §3), parse/render round trips and a 100,000-entry file.

mod decide;
mod errors;
mod file;

use super::{CompileOptions, Snapshot, parse_policy};

/// Tenant with VPCEP access configured (docs/contract.md §3's example tenant id).
pub const T1: &str = "389efb76b1354e4482eabeed00000000";
/// Tenant with no rules at all: everything allowed.
pub const T2: &str = "t2-open";
/// Tenant without VPCEP but with a whitelist exercising every IP case.
pub const T3: &str = "t3_whitelist";
/// Project of T1 with `project_level: true`.
pub const P1: &str = "0f6c3a1e9b2d4c7f8a5e1d3b6c9f2a4e";
/// Project of T1 with `project_level: false`.
pub const P2: &str = "1F6C3A1E9B2D4C7F8A5E1D3B6C9F2A4E";
/// Accepted connection (docs/contract.md §3 example), listed as one of T1's endpoints.
pub const CONN_OK: &str = "705290f3-0d00-41f2-aedc-71f09844e879";
pub const MARKER_OK: u64 = 422_321_321_312_321_321;
pub const CONN_REJECTED: &str = "conn-rejected";
pub const MARKER_REJECTED: u64 = 2;
pub const CONN_PENDING: &str = "conn-pending";
pub const MARKER_PENDING: u64 = 3;
/// Accepted connection made by T2.
pub const CONN_OTHER: &str = "conn-other";
pub const MARKER_OTHER: u64 = 4;
pub const SERVICE: &str = "4189d3c2-8882-4871-a3c2-d380272eed88";

/// The decision fixture; `approval` sets the service's `approval_required`.
pub fn fixture_yaml(approval: bool) -> String {
    format!(
        r#"# decision fixture
tenants:
  - enterprise_id: {T1}
    vpcep:
      enabled: true
      endpoints:
        - {{ vpcep_id: vpce-good, region: ap-southeast-3, description: VPCEP1 }}
        - {{ vpcep_id: {CONN_OK} }}
    trusted_ips:
      - {{ id: "a1", ip_range: "10.1.0.0/16", view_flag: 1, download_flag: 1, upload_flag: 1 }}
  - enterprise_id: {T2}
  - enterprise_id: {T3}
    vpcep: {{ enabled: false }}
    trusted_ips:
      - {{ id: "1998", ip_range: "10.1.0.0/16", view_flag: 1, download_flag: 1, upload_flag: 0, remark: "" }}
      - {{ id: "1999", ip_range: "1.1.1.1-1.1.1.9", view_flag: 1, download_flag: 0, upload_flag: 0 }}
      - {{ id: "2000", ip_range: "2001:db8::1", view_flag: 1, download_flag: 1, upload_flag: 1 }}
      - {{ id: "2001", ip_range: "10.1.2.0/24", view_flag: 0, download_flag: 0, upload_flag: 1 }}
      - {{ id: "2002", ip_range: "192.0.2.7" }}
projects:
  - project_id: {P1}
    enterprise_id: {T1}
    project_level: true
    vpcep: {{ enabled: false }}
    trusted_ips:
      - {{ id: "p1", ip_range: "192.168.10.0/24", view_flag: 1, download_flag: 1, upload_flag: 1 }}
  - project_id: {P2}
    enterprise_id: {T1}
    project_level: false
    trusted_ips:
      - {{ id: "p2", ip_range: "0.0.0.0/0", view_flag: 1, download_flag: 1, upload_flag: 1 }}
endpoint_services:
  - id: {SERVICE}
    approval_required: {approval}
    connections:
      - {{ id: {CONN_OK}, marker_id: {MARKER_OK},
          domain_id: {T1}, status: accepted,
          created_at: "2022-04-14T09:35:47Z", updated_at: "2022-04-14T09:36:47Z", description: "" }}
      - {{ id: {CONN_REJECTED}, marker_id: {MARKER_REJECTED}, status: rejected }}
      - {{ id: {CONN_PENDING}, marker_id: {MARKER_PENDING}, status: pendingAcceptance }}
      - {{ id: {CONN_OTHER}, marker_id: {MARKER_OTHER}, domain_id: {T2}, status: accepted }}
"#
    )
}

/// Compiles the fixture.
pub fn fixture(approval: bool, unknown_tenant_allow: bool) -> Snapshot {
    let file = parse_policy(&fixture_yaml(approval)).unwrap();
    let opts = CompileOptions {
        unknown_tenant_allow,
        ..CompileOptions::default()
    };
    Snapshot::compile(&file, &opts).unwrap()
}
