//! The admin REST API's JSON request bodies, through `vpcguard::admin::router` and
//! `tower::ServiceExt::oneshot`: the body types and their validation (`admin/api/*.rs`,
//! `params::json_body`) are private to the crate, so the router is the public way in. The state
//! behind it is the real one (`config::load`, `Shared`, the `Writer` task), over a config and
//! policy written once to a directory in /dev/shm, so a successful write costs no disk flush.
//!
//! Input: `route selector byte, body`. The selector picks one of the seven body-taking routes
//! (POST/DELETE `/v2/vpceps`, PUT `/v2/vpceps/settings`, POST `…/connections/action`, POST and PUT
//! `/v4/tenant/trusted-ip-addresses`, POST `/v1/job/project/permission`); the body is sent as is,
//! as `application/json`, with a write token.
//!
//! Beyond "no panic" (a panic in a handler or in the writer's blocking thread aborts the process):
//! - never a 5xx: a body can be refused, but nothing it says is an internal error;
//! - the response is JSON, and an error is in the route's documented shape (flat
//!   `{error_code, error_msg}`, or nested `{error: {code, message}}` for the connections API);
//! - a refused request leaves the policy file byte for byte as it was; an accepted write leaves a
//!   file that parses and compiles.
//!
//! After an accepted write the original policy is written back and reloaded, so every input runs
//! against the same state and a crash reproduces from its input alone.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Instant;

use axum::body::Body;
use http::{Method, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower::ServiceExt;
use vpcguard::admin::{AdminState, router};
use vpcguard::metrics::Metrics;
use vpcguard::policy::{CompileOptions, Snapshot, parse_policy};
use vpcguard::reload::{Outcome, Trigger, Writer, compile_options};
use vpcguard::state::Shared;

const TOKEN: &str = "fuzz-write-token";

const POLICY: &str = r#"tenants:
  - enterprise_id: 389efb76b1354e4482eabeed00000000
    vpcep:
      enabled: false
      endpoints:
        - { vpcep_id: vpce-0001, region: ap-southeast-3, description: VPCEP1, creator: user001,
            create_time: "2026-05-01T10:30:00Z", modify_time: "2026-05-01T10:30:00Z" }
    trusted_ips:
      - { id: "1998", ip_range: "127.0.0.0/8", view_flag: 1, download_flag: 1, upload_flag: 1, remark: "loopback" }
      - { id: "1999", ip_range: "10.1.0.0/16", view_flag: 1, download_flag: 1, upload_flag: 0 }
  - enterprise_id: tenant-b
projects:
  - { project_id: 0123456789abcdef0123456789abcdef, enterprise_id: 389efb76b1354e4482eabeed00000000, project_level: false }
endpoint_services:
  - id: 4189d3c2-8882-4871-a3c2-d380272eed88
    approval_required: true
    connections:
      - { id: 705290f3-0d00-41f2-aedc-71f09844e879, marker_id: 422321321312321321,
          domain_id: 6e9dfd51d1124e8d8498dce894923a0d, status: pendingAcceptance }
      - { id: vpce-0002, marker_id: 7, status: accepted }
"#;

/// (method, path and query, nested error shape). The ids are the fixture's: the first tenant,
/// its endpoint service, its trusted-IP entry `1998`.
const ROUTES: [(Method, &str, bool); 7] = [
    (Method::POST, "/v2/vpceps", false),
    (Method::DELETE, "/v2/vpceps", false),
    (Method::PUT, "/v2/vpceps/settings", false),
    (
        Method::POST,
        "/v1/p0/vpc-endpoint-services/4189d3c2-8882-4871-a3c2-d380272eed88/connections/action",
        true,
    ),
    (
        Method::POST,
        "/v4/tenant/trusted-ip-addresses?enterprise_id=389efb76b1354e4482eabeed00000000",
        false,
    ),
    (
        Method::PUT,
        "/v4/tenant/trusted-ip-addresses/1998?enterprise_id=389efb76b1354e4482eabeed00000000",
        false,
    ),
    (Method::POST, "/v1/job/project/permission", false),
];

struct Harness {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    writer: Writer,
    policy_path: PathBuf,
    opts: CompileOptions,
}

fn sha256_hex(s: &str) -> String {
    vpcguard::config::load::sha256_hex(s.as_bytes())
}

const SCRATCH_PREFIX: &str = "vpcguard-fuzz-admin-";

/// libFuzzer has no teardown hook: remove the scratch directories of runs that have exited.
fn remove_stale_scratch() {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(SCRATCH_PREFIX) else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    remove_stale_scratch();
    let dir = PathBuf::from(format!("/dev/shm/{SCRATCH_PREFIX}{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let config = format!(
        "listen: {{ address: \"127.0.0.1:1\" }}\n\
         admin:\n  address: \"127.0.0.1:2\"\n  tokens:\n    - {{ name: fuzz, hash: \"sha256:{}\", role: write }}\n\
         policy: {{ path: policy.yaml }}\n\
         log: {{ level: error }}\n",
        sha256_hex(TOKEN)
    );
    let config_path = dir.join("vpcguard.yaml");
    std::fs::write(&config_path, config).expect("write config");
    let policy_path = dir.join("policy.yaml");
    std::fs::write(&policy_path, POLICY).expect("write policy");
    let loaded = vpcguard::config::load(&config_path).expect("fixture config loads");
    let opts = compile_options(&loaded.config);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let registry = prometheus::Registry::new();
    let metrics = Metrics::register(&registry).expect("metrics");
    let shared = Shared::new(loaded, None, metrics, registry);
    let writer = {
        let _in_rt = rt.enter();
        Writer::spawn(shared.clone(), config_path)
    };
    let router = router(AdminState {
        shared,
        writer: writer.clone(),
        started: Instant::now(),
    });
    Harness {
        rt,
        router,
        writer,
        policy_path,
        opts,
    }
});

fn error_shape_ok(v: &Value, nested: bool) -> bool {
    if nested {
        v["error"]["code"].is_string() && v["error"]["message"].is_string()
    } else {
        v["error_code"].is_string() && v["error_msg"].is_string()
    }
}

fuzz_target!(|data: &[u8]| {
    let h = &*HARNESS;
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let (method, uri, nested) = ROUTES[usize::from(sel) % ROUTES.len()].clone();
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-auth-token", TOKEN)
        .header("content-type", "application/json")
        .header("region", "ap-southeast-3")
        .body(Body::from(body.to_vec()))
        .expect("request");
    let (status, bytes) = h.rt.block_on(async {
        let resp = h.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, bytes)
    });
    let text = String::from_utf8_lossy(&bytes);
    assert!(!status.is_server_error(), "{uri}: {status} {text}");
    let json: Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {text}"));
    if status != StatusCode::OK {
        assert!(error_shape_ok(&json, nested), "{uri}: {status} {text}");
    }

    let on_disk = std::fs::read_to_string(&h.policy_path).expect("policy readable");
    if on_disk == POLICY {
        return;
    }
    assert_eq!(
        status,
        StatusCode::OK,
        "refused but the file changed: {text}"
    );
    let file = parse_policy(&on_disk).unwrap_or_else(|e| panic!("written policy: {e}\n{on_disk}"));
    Snapshot::compile(&file, &h.opts).unwrap_or_else(|e| panic!("written policy: {e}\n{on_disk}"));

    // Put the original back so the next input sees the same state.
    std::fs::write(&h.policy_path, POLICY).expect("restore policy");
    match h.rt.block_on(h.writer.reload(Trigger::Admin)) {
        Outcome::Published { .. } => {}
        other => panic!("restoring the policy: {other:?}"),
    }
});
