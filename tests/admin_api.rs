//! The admin REST API (SPEC §7 table, the seeds' shapes and codes): every endpoint's happy path
//! and validation errors, authentication, persistence (a 200 is on disk and enforced, published
//! once, hand edits kept), serialized concurrent writes, and the data plane's reaction to
//! connection actions, endpoint deletion and the other writes.
//!
//! Three ways in, by what a test is about:
//! - **router** — the handlers: `vpcguard::admin::router` over a running proxy's own `Shared` and
//!   `Writer`, called in-process with `oneshot` ([`AdminHarness`]). No admin socket.
//! - **router + data plane** — an admin change made through the router, then enforced on real
//!   data-plane connections through a real upstream.
//! - **socket** — one test per concern the socket itself carries: authentication over TCP, a
//!   write through the admin socket enforced on a kept-alive data-plane connection, `/metrics`.
//!
//! Data-plane requests come from 127.0.0.1, a trusted proxy, so `X-Forwarded-For`, `x-vpcep-id`
//! and `x-vpcep-marker-id` say who they are and how they came.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};

use common::admin::{AdminHarness, AdminResponse, flat_code, nested_code};
use common::upstream::Upstream;
use common::{READ_TOKEN, TestProxy, WRITE_TOKEN, admin_block, config_plain, within};

use common::{TENANT as A, TENANT_B as B};
const PROJECT: &str = "0f6c3a1e9b2d4c7f8a5e1d3b6c9f2a4e";
const CONN: &str = "705290f3-0d00-41f2-aedc-71f09844e879";
const SVC: &str = "/v1/p1/vpc-endpoint-services/svc-1";

/// Tenant A: only through `vpce-1` or the marker-111 connection, from 10.1/16 (view+download) or
/// 192.0.2.0/24 (everything). Tenant B: no rules; its project has its own whitelist (off).
/// Service svc-1 requires approval: marker 111 accepted, 222 pending.
const POLICY: &str = r#"tenants:
  - enterprise_id: 389efb76b1354e4482eabeed00000000
    vpcep:
      enabled: true
      endpoints:
        - { vpcep_id: vpce-1, region: r1, description: one, creator: ops, create_time: "2026-05-01T10:30:00Z", modify_time: "2026-05-01T10:30:00Z" }
        - { vpcep_id: 705290f3-0d00-41f2-aedc-71f09844e879 }
    trusted_ips:
      - { id: "1", ip_range: "10.1.0.0/16", view_flag: 1, download_flag: 1, upload_flag: 0 }
      - { id: "2", ip_range: "192.0.2.0/24", view_flag: 1, download_flag: 1, upload_flag: 1 }
  - enterprise_id: tenant-b
projects:
  - project_id: 0f6c3a1e9b2d4c7f8a5e1d3b6c9f2a4e
    enterprise_id: tenant-b
    trusted_ips:
      - { id: "p1", ip_range: "192.168.10.0/24", view_flag: 1, download_flag: 1, upload_flag: 1 }
endpoint_services:
  - id: svc-1
    approval_required: true
    connections:
      - { id: 705290f3-0d00-41f2-aedc-71f09844e879, marker_id: 111, domain_id: 389efb76b1354e4482eabeed00000000, status: accepted, created_at: "2022-04-14T09:35:47Z", updated_at: "2022-04-14T09:36:47Z" }
      - { id: vpce-pending, marker_id: 222, status: pendingAcceptance }
"#;

const EXTRA: &str = "client_ip:\n  trusted_proxies: [\"127.0.0.1/32\"]\ntenant:\n  - { header: \"x-domain-id\" }\nlimits:\n  max_vpceps_per_tenant: 3\n";

// === harnesses ===

/// Router tests: no upstream is configured (nothing here reaches the data plane).
async fn admin() -> AdminHarness {
    AdminHarness::start(&format!("{}{EXTRA}", admin_block(EXTRA)), POLICY).await
}

/// Router + data plane tests: the same proxy, with a real upstream behind its data plane.
async fn admin_and_data_plane() -> (Upstream, AdminHarness) {
    let up = Upstream::start().await;
    let h = AdminHarness::start(&config_plain(up.addr, EXTRA), POLICY).await;
    (up, h)
}

/// Socket tests: a proxy and upstream, called only over TCP.
async fn socket_setup() -> (Upstream, TestProxy) {
    let up = Upstream::start().await;
    let proxy = TestProxy::start(&config_plain(up.addr, EXTRA), POLICY, false).await;
    (up, proxy)
}

/// GET with the read token, through the router.
async fn read(h: &AdminHarness, path: &str) -> AdminResponse {
    h.call(Method::GET, path, Some(READ_TOKEN), &[], None).await
}

/// A JSON body with the write token, through the router: (status, JSON body).
async fn write(h: &AdminHarness, method: Method, path: &str, body: Value) -> (u16, Value) {
    let tok = Some(WRITE_TOKEN);
    match method {
        Method::POST => h.post(path, tok, &body).await,
        Method::PUT => h.put(path, tok, &body).await,
        Method::DELETE => h.delete(path, tok, &body).await,
        other => panic!("not a write: {other}"),
    }
}

/// A raw admin call over the admin socket: `body` is sent as is.
async fn socket_call(
    proxy: &TestProxy,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> AdminResponse {
    let url = format!("http://{}{}", proxy.app.admin_addr, path);
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        req = req.header("X-Auth-Token", t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    let r = within(30, req.send()).await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    AdminResponse {
        status,
        headers,
        body: r.text().await.unwrap(),
    }
}

/// How a data-plane request arrives.
#[derive(Clone, Copy, Debug)]
enum Via<'a> {
    Direct,
    Endpoint(&'a str),
    Marker(u64),
}

/// One data-plane request from `ip` for `tenant`: (status, error_code or "").
async fn through(
    client: &reqwest::Client,
    proxy: &TestProxy,
    method: Method,
    tenant: &str,
    ip: &str,
    via: Via<'_>,
) -> (u16, String) {
    let mut req = client
        .request(method, format!("{}/repo/x", proxy.base()))
        .header("x-domain-id", tenant)
        .header("x-forwarded-for", ip);
    req = match via {
        Via::Direct => req,
        Via::Endpoint(id) => req.header("x-vpcep-id", id),
        Via::Marker(m) => req.header("x-vpcep-marker-id", m.to_string()),
    };
    let r = within(30, req.send()).await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    let code = match status {
        200 => String::new(),
        _ => common::error_code(&body),
    };
    (status, code)
}

/// The `name{…} value` lines of a Prometheus text page.
fn metric_lines<'t>(text: &'t str, name: &str) -> Vec<&'t str> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .collect()
}

// === /v2/vpceps (router + data plane) ===

#[tokio::test]
async fn vpceps_list_add_delete_and_settings_answer_seed_shapes_and_take_effect() {
    let (_up, h) = admin_and_data_plane().await;
    let (status, body) = h
        .get(&format!("/v2/vpceps?enterprise_id={A}"), Some(READ_TOKEN))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "ok", "data": {"enterprise_id": A, "vpceps": [
            {"vpcep_id": CONN, "description": "", "creator": "", "create_time": "",
             "modify_time": "", "region": ""},
            {"vpcep_id": "vpce-1", "description": "one", "creator": "ops",
             "create_time": "2026-05-01T10:30:00Z", "modify_time": "2026-05-01T10:30:00Z",
             "region": "r1"}]},
            "offset": 0, "limit": 10, "total": 2})
    );
    let v = read(
        &h,
        &format!("/v2/vpceps?enterprise_id={A}&sort=desc&offset=0&limit=1"),
    )
    .await
    .json();
    assert_eq!((&v["total"], &v["limit"]), (&json!(2), &json!(1)));
    assert_eq!(v["data"]["vpceps"][0]["vpcep_id"], "vpce-1");
    let r = read(
        &h,
        &format!("/v2/vpceps?enterprise_id={A}&vpcep_ids=vpce-1,nope"),
    )
    .await;
    assert_eq!(r.json()["total"], 1);

    // POST: on disk and in force when it answers, one generation, creator = the token's name.
    let g = h.generation();
    let got = write(
        &h,
        Method::POST,
        "/v2/vpceps",
        json!({"enterprise_id": A, "vpceps": [{"vpcep_id": "vpce-new", "region": "ap-southeast-3", "description": "VPCEP (new)"}]}),
    )
    .await;
    assert_eq!(got, (200, json!({"status": "ok", "total": 1})));
    assert_eq!(h.generation(), g + 1);
    assert!(h.policy_file().contains("vpcep_id: vpce-new"));
    let r = read(
        &h,
        &format!("/v2/vpceps?enterprise_id={A}&vpcep_ids=vpce-new"),
    )
    .await;
    let e = &r.json()["data"]["vpceps"][0];
    assert_eq!(
        (&e["creator"], &e["region"]),
        (&json!("w"), &json!("ap-southeast-3"))
    );
    assert!(e["create_time"].as_str().unwrap().ends_with('Z'), "{e}");

    // DELETE answers with how many were removed.
    let got = write(
        &h,
        Method::DELETE,
        "/v2/vpceps",
        json!({"enterprise_id": A, "vpceps": [{"vpcep_id": "vpce-new"}, {"vpcep_id": "not-there"}]}),
    )
    .await;
    assert_eq!(got, (200, json!({"status": "ok", "total": 1})));
    assert!(!h.policy_file().contains("vpce-new"));

    // Settings: enforcement off lets a direct request in.
    let client = h.proxy.client(false);
    let direct = through(&client, &h.proxy, Method::GET, A, "10.1.2.3", Via::Direct).await;
    assert_eq!(direct, (403, "VG.00040301".to_owned()));
    let got = write(
        &h,
        Method::PUT,
        "/v2/vpceps/settings",
        json!({"enterprise_id": A, "enabled": false}),
    )
    .await;
    assert_eq!(got, (200, json!({"status": "ok"})));
    let direct = through(&client, &h.proxy, Method::GET, A, "10.1.2.3", Via::Direct).await;
    assert_eq!(direct, (200, String::new()));
}

// === /v2/vpceps (router) ===

#[tokio::test]
async fn vpceps_invalid_requests_answer_seed_codes_and_write_nothing() {
    let h = admin().await;
    let before = h.policy_file();
    let q = |s: &str| format!("/v2/vpceps?{s}");
    // (query, status, code)
    let gets: &[(&str, u16, &str)] = &[
        ("", 400, "UC.00011002"),
        ("enterprise_id=bad%20id", 400, "UC.00011002"),
        (
            &format!("enterprise_id={}", "a".repeat(41)),
            400,
            "UC.00011002",
        ),
        (&format!("enterprise_id={A}&limit=0"), 400, "UC.00011002"),
        (&format!("enterprise_id={A}&limit=101"), 400, "UC.00011002"),
        (&format!("enterprise_id={A}&limit=abc"), 400, "UC.00011002"),
        (
            &format!("enterprise_id={A}&offset=10000"),
            400,
            "UC.00011002",
        ),
        (&format!("enterprise_id={A}&offset=-1"), 400, "UC.00011002"),
        (&format!("enterprise_id={A}&sort=up"), 400, "UC.00011002"),
        (
            &format!("enterprise_id={A}&vpcep_ids=Upper"),
            400,
            "UC.00011002",
        ),
        ("enterprise_id=nobody", 404, "UC.00011005"),
        (&format!("enterprise_id={A}&offset=9999&limit=100"), 200, ""),
    ];
    for (query, status, code) in gets {
        let r = read(&h, &q(query)).await;
        assert_eq!(r.status, *status, "GET {query}: {}", r.body);
        if !code.is_empty() {
            assert_eq!(r.flat_code(), *code, "GET {query}");
        }
    }
    // (method, path, body, status, code)
    let vpcep = |id: &str| json!({"enterprise_id": A, "vpceps": [{"vpcep_id": id}]});
    let writes: Vec<(Method, &str, String, u16, &str)> = vec![
        (Method::POST, "/v2/vpceps", "{".into(), 400, "UC.00011002"),
        (Method::POST, "/v2/vpceps", "".into(), 400, "UC.00011002"),
        (Method::POST, "/v2/vpceps", json!({"enterprise_id": A, "vpceps": "x"}).to_string(), 400, "UC.00011002"),
        (Method::POST, "/v2/vpceps", json!({"enterprise_id": A, "vpceps": [], "x": 1}).to_string(), 400, "UC.00011002"),
        (Method::POST, "/v2/vpceps", vpcep("UPPER").to_string(), 400, "UC.00011002"),
        (Method::POST, "/v2/vpceps", vpcep(&"a".repeat(41)).to_string(), 400, "UC.00011002"),
        (Method::POST, "/v2/vpceps", json!({"enterprise_id": A, "vpceps": [{"vpcep_id": "ok-1", "description": "no/slash"}]}).to_string(), 400, "UC.00011002"),
        (Method::POST, "/v2/vpceps", json!({"enterprise_id": "nobody", "vpceps": [{"vpcep_id": "x"}]}).to_string(), 404, "UC.00011005"),
        (Method::POST, "/v2/vpceps", vpcep("vpce-1").to_string(), 409, "UC.00011009"),
        (Method::POST, "/v2/vpceps", json!({"enterprise_id": A, "vpceps": [{"vpcep_id": "x1"}, {"vpcep_id": "x2"}]}).to_string(), 400, "UC.00011036"),
        (Method::DELETE, "/v2/vpceps", vpcep("not-there").to_string(), 404, "UC.00011005"),
        (Method::DELETE, "/v2/vpceps", json!({"vpceps": [{"vpcep_id": "vpce-1"}]}).to_string(), 400, "UC.00011002"),
        (Method::DELETE, "/v2/vpceps", json!({"enterprise_id": "nobody", "vpceps": [{"vpcep_id": "vpce-1"}]}).to_string(), 404, "UC.00011005"),
        (Method::DELETE, "/v2/vpceps", json!({"enterprise_id": A, "vpceps": []}).to_string(), 400, "UC.00011002"),
        (Method::PUT, "/v2/vpceps/settings", json!({"enterprise_id": A}).to_string(), 400, "UC.00011002"),
        (Method::PUT, "/v2/vpceps/settings", json!({"enterprise_id": A, "enabled": "yes"}).to_string(), 400, "UC.00011002"),
        (Method::PUT, "/v2/vpceps/settings", json!({"enterprise_id": "nobody", "enabled": true}).to_string(), 404, "UC.00011005"),
    ];
    for (method, path, body, status, code) in writes {
        let r = h
            .call(method.clone(), path, Some(WRITE_TOKEN), &[], Some(&body))
            .await;
        assert_eq!(r.status, status, "{method} {path} {body}: {}", r.body);
        assert_eq!(r.flat_code(), code, "{method} {path} {body}");
    }
    // Nothing was written by any of them.
    assert_eq!(h.policy_file(), before);
}

// === authentication (router) ===

#[tokio::test]
async fn admin_routes_without_a_valid_token_answer_401_and_write_nothing() {
    let h = admin().await;
    let svc_conns = format!("{SVC}/connections");
    let svc_action = format!("{SVC}/connections/action");
    // (method, path, is a read)
    let routes: Vec<(Method, String, bool)> = vec![
        (Method::GET, format!("/v2/vpceps?enterprise_id={A}"), true),
        (Method::POST, "/v2/vpceps".into(), false),
        (Method::DELETE, "/v2/vpceps".into(), false),
        (Method::PUT, "/v2/vpceps/settings".into(), false),
        (
            Method::GET,
            format!("/v1/vpcep-authorization?enterprise_id={A}&ip=10.1.2.3"),
            true,
        ),
        (Method::GET, svc_conns, true),
        (Method::POST, svc_action, false),
        (
            Method::GET,
            format!("/v4/tenant/trusted-ip-addresses?enterprise_id={A}"),
            true,
        ),
        (
            Method::POST,
            "/v4/tenant/trusted-ip-addresses".into(),
            false,
        ),
        (
            Method::PUT,
            "/v4/tenant/trusted-ip-addresses/1".into(),
            false,
        ),
        (
            Method::DELETE,
            "/v4/tenant/trusted-ip-addresses/1".into(),
            false,
        ),
        (Method::POST, "/v1/job/project/permission".into(), false),
    ];
    let before = h.policy_file();
    for (method, path, is_read) in &routes {
        let nested = path.contains("/vpc-endpoint-services/");
        let mut refusals = vec![(None, "missing"), (Some("wrong-token"), "invalid")];
        if !is_read {
            refusals.push((Some(READ_TOKEN), "read-only"));
        }
        for (token, why) in refusals {
            let r = h.call(method.clone(), path, token, &[], Some("{}")).await;
            assert_eq!(r.status, 401, "{why} {method} {path}: {}", r.body);
            let code = if nested {
                r.nested_code()
            } else {
                r.flat_code()
            };
            assert_eq!(code, "UC.00010002", "{why} {method} {path}");
        }
        if *is_read {
            let r = read(&h, path).await;
            assert_eq!(r.status, 200, "read {method} {path}: {}", r.body);
        }
    }
    assert_eq!(h.policy_file(), before);
}

// === /v4/tenant/trusted-ip-addresses (router + data plane) ===

#[tokio::test]
async fn trusted_ips_create_update_delete_answer_seed_dtos_and_take_effect() {
    let (_up, h) = admin_and_data_plane().await;
    let base = "/v4/tenant/trusted-ip-addresses";
    let r = read(&h, &format!("{base}?enterprise_id={A}&limit=1")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["x-total"], "2");
    assert_eq!(
        r.json(),
        json!([{"id": "1", "domain_id": A, "ip_range": "10.1.0.0/16", "ip_type": 2,
                "ip_start": "10.1.0.0", "ip_end": "10.1.255.255", "view_flag": 1,
                "download_flag": 1, "upload_flag": 0, "remark": ""}])
    );
    // The tenant may come from X-Domain-Id instead.
    let r = h
        .call(
            Method::GET,
            &format!("{base}?offset=1"),
            Some(READ_TOKEN),
            &[("x-domain-id", A)],
            None,
        )
        .await;
    assert_eq!((r.status, r.json()[0]["id"].clone()), (200, json!("2")));

    // A client at 198.51.100.9 (through vpce-1) is not trusted until an entry is created for it.
    let client = h.proxy.client(false);
    let via = Via::Endpoint("vpce-1");
    let got = through(&client, &h.proxy, Method::POST, A, "198.51.100.9", via).await;
    assert_eq!(got, (403, "VG.00040302".to_owned()));
    let (status, created) = write(
        &h,
        Method::POST,
        &format!("{base}?enterprise_id={A}"),
        json!({"ip_range": "198.51.100.0-198.51.100.20", "view_flag": 1, "remark": "office"}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(
        created,
        json!({"id": "3", "domain_id": A, "ip_range": "198.51.100.0-198.51.100.20", "ip_type": 1,
               "ip_start": "198.51.100.0", "ip_end": "198.51.100.20", "view_flag": 1,
               "download_flag": 0, "upload_flag": 0, "remark": "office"})
    );
    let got = through(&client, &h.proxy, Method::POST, A, "198.51.100.9", via).await;
    assert_eq!(got, (403, "VG.00040303".to_owned()));

    // PUT changes only the given fields; the GET result can be sent back as is.
    let mut dto = created;
    dto["upload_flag"] = json!(1);
    let (status, updated) =
        write(&h, Method::PUT, &format!("{base}/3?enterprise_id={A}"), dto).await;
    assert_eq!(
        (status, &updated["upload_flag"], &updated["remark"]),
        (200, &json!(1), &json!("office")),
        "{updated}"
    );
    let got = through(&client, &h.proxy, Method::POST, A, "198.51.100.9", via).await;
    assert_eq!(got, (200, String::new()));

    // DELETE answers with the removed entry, and its clients are refused again.
    let r = h
        .call(
            Method::DELETE,
            &format!("{base}/3"),
            Some(WRITE_TOKEN),
            &[("x-domain-id", A)],
            None,
        )
        .await;
    assert_eq!(
        (r.status, &r.json()["id"]),
        (200, &json!("3")),
        "{}",
        r.body
    );
    let got = through(&client, &h.proxy, Method::POST, A, "198.51.100.9", via).await;
    assert_eq!(got, (403, "VG.00040302".to_owned()));
    let r = read(&h, &format!("{base}?enterprise_id={A}")).await;
    assert_eq!(r.headers["x-total"], "2");
}

// === /v4/tenant/trusted-ip-addresses (router) ===

#[tokio::test]
async fn trusted_ips_invalid_requests_answer_seed_codes_and_write_nothing() {
    let h = admin().await;
    let before = h.policy_file();
    let base = "/v4/tenant/trusted-ip-addresses";
    let gets: &[(&str, u16, &str)] = &[
        ("", 400, "UC.00011002"),
        ("enterprise_id=nobody", 404, "UC.00011005"),
        ("enterprise_id=bad%21", 400, "UC.00011002"),
        (&format!("enterprise_id={A}&limit=0"), 400, "UC.00011002"),
        (&format!("enterprise_id={A}&limit=101"), 400, "UC.00011002"),
        (&format!("enterprise_id={A}&offset=-1"), 400, "UC.00011002"),
        (&format!("enterprise_id={A}&offset=x"), 400, "UC.00011002"),
        (&format!("enterprise_id={A}&offset=10000"), 200, ""),
    ];
    for (query, status, code) in gets {
        let r = read(&h, &format!("{base}?{query}")).await;
        assert_eq!(r.status, *status, "GET {query}: {}", r.body);
        if !code.is_empty() {
            assert_eq!(r.flat_code(), *code, "GET {query}");
        }
    }
    let at = |rest: &str| format!("{base}{rest}?enterprise_id={A}");
    let writes: Vec<(Method, String, String, u16, &str)> = vec![
        (Method::POST, at(""), "{".into(), 400, "UC.00011002"),
        (
            Method::POST,
            at(""),
            json!({"view_flag": 1}).to_string(),
            400,
            "UC.00011002",
        ),
        (
            Method::POST,
            at(""),
            json!({"ip_range": "10.0.0.0/40"}).to_string(),
            400,
            "UC.00011002",
        ),
        (
            Method::POST,
            at(""),
            json!({"ip_range": "10.0.0.9-10.0.0.1"}).to_string(),
            400,
            "UC.00011002",
        ),
        (
            Method::POST,
            at(""),
            json!({"ip_range": "10.0.0.1", "view_flag": 2}).to_string(),
            400,
            "UC.00011002",
        ),
        (
            Method::POST,
            at(""),
            json!({"ip_range": "10.0.0.1", "id": "a/b"}).to_string(),
            400,
            "UC.00011002",
        ),
        (
            Method::POST,
            at(""),
            json!({"ip_range": "10.0.0.1", "id": "x".repeat(65)}).to_string(),
            400,
            "UC.00011002",
        ),
        (
            Method::POST,
            at(""),
            json!({"ip_range": "10.0.0.1", "bogus": 1}).to_string(),
            400,
            "UC.00011002",
        ),
        (
            Method::POST,
            at(""),
            json!({"ip_range": "10.0.0.1", "id": 1}).to_string(),
            409,
            "UC.00011009",
        ),
        (
            Method::POST,
            format!("{base}?enterprise_id=nobody"),
            json!({"ip_range": "10.0.0.1"}).to_string(),
            404,
            "UC.00011005",
        ),
        (
            Method::POST,
            base.to_owned(),
            json!({"ip_range": "10.0.0.1"}).to_string(),
            400,
            "UC.00011002",
        ),
        (
            Method::PUT,
            at("/9"),
            json!({"view_flag": 1}).to_string(),
            404,
            "UC.00011005",
        ),
        (
            Method::PUT,
            at("/1"),
            json!({"id": "2"}).to_string(),
            400,
            "UC.00011002",
        ),
        (
            Method::PUT,
            at("/1"),
            json!({"upload_flag": 7}).to_string(),
            400,
            "UC.00011002",
        ),
        (
            Method::PUT,
            at("/a%2Fb"),
            json!({"view_flag": 1}).to_string(),
            400,
            "UC.00011002",
        ),
        (Method::DELETE, at("/9"), String::new(), 404, "UC.00011005"),
        (
            Method::DELETE,
            at("/bad%21"),
            String::new(),
            400,
            "UC.00011002",
        ),
    ];
    for (method, path, body, status, code) in writes {
        let r = h
            .call(method.clone(), &path, Some(WRITE_TOKEN), &[], Some(&body))
            .await;
        assert_eq!(r.status, status, "{method} {path} {body}: {}", r.body);
        assert_eq!(r.flat_code(), code, "{method} {path} {body}");
    }
    assert_eq!(h.policy_file(), before);
}

// === connections (router) ===

#[tokio::test]
async fn connections_list_filters_and_invalid_requests_answer_nested_seed_codes() {
    let h = admin().await;
    let r = read(&h, &format!("{SVC}/connections")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"connections": [
            {"id": CONN, "marker_id": 111, "domain_id": A,
             "status": "accepted", "created_at": "2022-04-14T09:35:47Z",
             "updated_at": "2022-04-14T09:36:47Z", "description": ""},
            {"id": "vpce-pending", "marker_id": 222, "domain_id": "", "status": "pendingAcceptance",
             "created_at": "", "updated_at": "", "description": ""}],
            "total_count": 2})
    );
    let v = read(&h, &format!("{SVC}/connections?status=accepted&limit=1"))
        .await
        .json();
    assert_eq!(
        (v["total_count"].clone(), v["connections"][0]["id"].clone()),
        (json!(1), json!(CONN))
    );
    let r = read(&h, &format!("{SVC}/connections?marker_id=222")).await;
    assert_eq!(r.json()["connections"][0]["id"], "vpce-pending");

    let before = h.policy_file();
    let gets: &[(String, u16, &str)] = &[
        (format!("{SVC}/connections?limit=0"), 400, "UC.00011002"),
        (format!("{SVC}/connections?limit=101"), 400, "UC.00011002"),
        (
            format!("{SVC}/connections?offset=10000"),
            400,
            "UC.00011002",
        ),
        (format!("{SVC}/connections?status=open"), 400, "UC.00011002"),
        (format!("{SVC}/connections?marker_id=x"), 400, "UC.00011002"),
        (
            "/v1/p1/vpc-endpoint-services/svc-9/connections".into(),
            404,
            "UC.00011005",
        ),
        (
            "/v1/p1/vpc-endpoint-services/bad%21/connections".into(),
            400,
            "UC.00011002",
        ),
    ];
    for (path, status, code) in gets {
        let r = read(&h, path).await;
        assert_eq!(r.status, *status, "GET {path}: {}", r.body);
        assert_eq!(r.nested_code(), *code, "GET {path}");
    }
    let action = format!("{SVC}/connections/action");
    let bodies: Vec<(String, u16, &str)> = vec![
        ("{".into(), 400, "UC.00011002"),
        (
            json!({"action": "receive", "endpoints": [CONN, "vpce-pending"]}).to_string(),
            400,
            "UC.00011002",
        ),
        (
            json!({"action": "receive", "endpoints": []}).to_string(),
            400,
            "UC.00011002",
        ),
        (json!({"action": "receive"}).to_string(), 400, "UC.00011002"),
        (
            json!({"action": "accept", "endpoints": [CONN]}).to_string(),
            400,
            "UC.00011002",
        ),
        (
            json!({"action": "reject", "endpoints": ["Bad_Id"]}).to_string(),
            400,
            "UC.00011002",
        ),
        (
            json!({"action": "reject", "endpoints": ["vpce-unknown"]}).to_string(),
            404,
            "UC.00011005",
        ),
    ];
    for (body, status, code) in bodies {
        let r = h
            .call(Method::POST, &action, Some(WRITE_TOKEN), &[], Some(&body))
            .await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert_eq!(r.nested_code(), code, "{body}");
    }
    let (status, body) = write(
        &h,
        Method::POST,
        "/v1/p1/vpc-endpoint-services/svc-9/connections/action",
        json!({"action": "receive", "endpoints": [CONN]}),
    )
    .await;
    assert_eq!(
        (status, nested_code(&body)),
        (404, "UC.00011005".to_owned())
    );
    assert_eq!(h.policy_file(), before);
}

// === connections (router + data plane) ===

#[tokio::test]
async fn connection_action_receive_admits_the_marker_and_reject_denies_it() {
    let (_up, h) = admin_and_data_plane().await;
    let client = h.proxy.client(false);
    let send = || {
        through(
            &client,
            &h.proxy,
            Method::GET,
            B,
            "10.9.9.9",
            Via::Marker(222),
        )
    };
    assert_eq!(send().await, (403, "VG.00040304".to_owned()));

    let action = format!("{SVC}/connections/action");
    let (status, body) = write(
        &h,
        Method::POST,
        &action,
        json!({"action": "receive", "endpoints": ["vpce-pending"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let c = &body["connections"][0];
    assert_eq!(
        (&c["id"], &c["status"], &c["marker_id"]),
        (&json!("vpce-pending"), &json!("accepted"), &json!(222))
    );
    assert!(c["updated_at"].as_str().unwrap().ends_with('Z'), "{c}");
    assert_eq!(send().await, (200, String::new()));

    let (status, body) = write(
        &h,
        Method::POST,
        &action,
        json!({"action": "reject", "endpoints": ["vpce-pending"]}),
    )
    .await;
    assert_eq!(
        (status, &body["connections"][0]["status"]),
        (200, &json!("rejected"))
    );
    assert_eq!(send().await, (403, "VG.00040304".to_owned()));
    assert!(h.policy_file().contains("status: rejected"));
}

#[tokio::test]
async fn connection_unknown_marker_seen_is_listed_pending_persisted_and_receivable() {
    let (_up, h) = admin_and_data_plane().await;
    let client = h.proxy.client(false);
    let g = h.generation();
    let send = || {
        through(
            &client,
            &h.proxy,
            Method::GET,
            B,
            "10.9.9.9",
            Via::Marker(999),
        )
    };
    assert_eq!(send().await, (403, "VG.00040304".to_owned()));
    // Recording the marker is one write through the writer: wait for its generation.
    h.wait_generation(g + 1).await;
    let r = read(
        &h,
        &format!("{SVC}/connections?status=pendingAcceptance&marker_id=999"),
    )
    .await;
    let c = &r.json()["connections"][0];
    assert_eq!(
        (&c["id"], &c["status"]),
        (&json!("marker-999"), &json!("pendingAcceptance")),
        "{}",
        r.body
    );
    let file = h.policy_file();
    let line = file.lines().find(|l| l.contains("marker_id: 999")).unwrap();
    assert!(
        line.contains("id: marker-999") && line.contains("status: pendingAcceptance"),
        "{line}"
    );

    let (status, body) = write(
        &h,
        Method::POST,
        &format!("{SVC}/connections/action"),
        json!({"action": "receive", "endpoints": ["marker-999"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(send().await, (200, String::new()));
}

/// Hold the writer busy: a mutation that blocks (on the writer's blocking thread) until the
/// returned sender is used or dropped, then refuses itself, so nothing is written. Returns once it
/// runs, so later writes (pending markers, admin changes) wait behind it.
async fn hold_writer(
    h: &AdminHarness,
) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
    let (running_tx, running_rx) = tokio::sync::oneshot::channel();
    let mut running_tx = Some(running_tx);
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let writer = h.proxy.app.writer.clone();
    let task = tokio::spawn(async move {
        let r = writer
            .mutate(move |_| {
                // The writer may run a mutation again (etcd); this one runs once.
                if let Some(tx) = running_tx.take() {
                    let _ = tx.send(());
                }
                let _ = release_rx.recv();
                Err::<(), ()>(())
            })
            .await;
        assert!(matches!(r, Ok(Err(()))), "{r:?}");
    });
    within(30, running_rx).await.unwrap();
    (release_tx, task)
}

#[tokio::test]
async fn connection_unknown_marker_is_listed_pending_with_its_tenant_when_its_403_is_sent() {
    // docs/contract.md §7 read-your-writes; §4 step 1 "with the request's tenant as domain_id".
    let (_up, h) = admin_and_data_plane().await;
    let client = h.proxy.client(false);
    let g = h.generation();
    // The writer cannot persist anything until released: what the API lists comes from memory.
    let (release, held) = hold_writer(&h).await;
    let seen = through(
        &client,
        &h.proxy,
        Method::GET,
        B,
        "10.9.9.9",
        Via::Marker(999),
    )
    .await;
    assert_eq!(seen, (403, "VG.00040304".to_owned()));
    let listed = |r: &AdminResponse| {
        let v = r.json();
        let c = v["connections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["marker_id"] == 999)
            .cloned()
            .collect::<Vec<_>>();
        (c, v["total_count"].clone())
    };
    let r = read(&h, &format!("{SVC}/connections?marker_id=999")).await;
    let (c, total) = listed(&r);
    assert_eq!(total, 1, "{}", r.body);
    assert_eq!(
        (&c[0]["id"], &c[0]["status"], &c[0]["domain_id"]),
        (&json!("marker-999"), &json!("pendingAcceptance"), &json!(B)),
        "{}",
        r.body
    );
    let r = read(&h, &format!("{SVC}/connections")).await;
    assert_eq!(
        listed(&r).1,
        3,
        "two in the file and the one in memory: {}",
        r.body
    );
    assert!(!h.policy_file().contains("marker-999"), "not yet written");

    // Once written it is listed once (from the file), with the same record.
    release.send(()).unwrap();
    within(30, held).await.unwrap();
    h.wait_generation(g + 1).await;
    let r = read(&h, &format!("{SVC}/connections")).await;
    let (after, total) = listed(&r);
    assert_eq!((after.len(), total), (1, json!(3)), "{}", r.body);
    assert_eq!(after[0], c[0]);
    let file = h.policy_file();
    let line = file.lines().find(|l| l.contains("marker_id: 999")).unwrap();
    assert!(line.contains(&format!("domain_id: {B}")), "{line}");
}

#[tokio::test]
async fn connection_unknown_markers_beyond_max_pending_connections_are_denied_not_recorded_and_counted()
 {
    // docs/contract.md §2 `limits.max_pending_connections`, §4 step 1: the file already holds one
    // pending connection (marker 222); the cap is 2, counting those in memory too.
    let up = Upstream::start().await;
    let extra = EXTRA.replace("limits:\n", "limits:\n  max_pending_connections: 2\n");
    let h = AdminHarness::start(&config_plain(up.addr, &extra), POLICY).await;
    let client = h.proxy.client(false);
    let send = |m: u64| {
        through(
            &client,
            &h.proxy,
            Method::GET,
            B,
            "10.9.9.9",
            Via::Marker(m),
        )
    };
    let dropped = || {
        let text = vpcguard::metrics::render(&h.shared().registry);
        metric_lines(&text, "vpcguard_pending_connections_dropped_total")
            .concat()
            .to_owned()
    };
    assert_eq!(dropped(), "vpcguard_pending_connections_dropped_total 0");
    let denied = (403, "VG.00040304".to_owned());
    let g = h.generation();
    let (release, held) = hold_writer(&h).await;
    assert_eq!(send(901).await, denied); // 1 in the file + 0 in memory: recorded
    assert_eq!(send(902).await, denied); // 1 + 1: at the cap, dropped
    assert_eq!(send(903).await, denied); // dropped
    assert_eq!(send(901).await, denied); // already pending: neither recorded again nor dropped
    assert_eq!(dropped(), "vpcguard_pending_connections_dropped_total 2");
    let pending: Vec<u64> = h.shared().pending().iter().map(|p| p.marker_id).collect();
    assert_eq!(pending, [901]);
    release.send(()).unwrap();
    within(30, held).await.unwrap();
    h.wait_generation(g + 1).await;
    let file = h.policy_file();
    assert!(file.contains("marker-901"), "{file}");
    assert!(
        !file.contains("marker-902") && !file.contains("marker-903"),
        "{file}"
    );

    // Two pending in the file now: the next one is dropped with nothing in memory.
    assert_eq!(send(904).await, denied);
    assert_eq!(dropped(), "vpcguard_pending_connections_dropped_total 3");
    assert!(h.shared().pending().is_empty());
    // Accepting one frees a place: only pending connections count.
    let (status, body) = write(
        &h,
        Method::POST,
        &format!("{SVC}/connections/action"),
        json!({"action": "receive", "endpoints": ["marker-901"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let g = h.generation();
    assert_eq!(send(905).await, denied);
    h.wait_generation(g + 1).await;
    assert!(h.policy_file().contains("marker-905"));
    assert_eq!(dropped(), "vpcguard_pending_connections_dropped_total 3");
}

// === the authorization check (router + data plane) ===

#[tokio::test]
async fn authorization_check_any_described_request_answers_the_data_plane_decision() {
    let (_up, h) = admin_and_data_plane().await;
    let client = h.proxy.client(false);
    // (name, tenant, ip, via, method, expected data-plane code or "" for allow)
    let cases: &[(&str, &str, &str, Via, Method, &str)] = &[
        (
            "allow",
            A,
            "10.1.2.3",
            Via::Endpoint("vpce-1"),
            Method::GET,
            "",
        ),
        (
            "allow via accepted marker",
            A,
            "192.0.2.7",
            Via::Marker(111),
            Method::POST,
            "",
        ),
        (
            "not through an endpoint",
            A,
            "10.1.2.3",
            Via::Direct,
            Method::GET,
            "VG.00040301",
        ),
        (
            "unlisted endpoint",
            A,
            "10.1.2.3",
            Via::Endpoint("vpce-other"),
            Method::GET,
            "VG.00040301",
        ),
        (
            "ip not trusted",
            A,
            "10.2.0.1",
            Via::Endpoint("vpce-1"),
            Method::GET,
            "VG.00040302",
        ),
        (
            "right not granted",
            A,
            "10.1.2.3",
            Via::Endpoint("vpce-1"),
            Method::POST,
            "VG.00040303",
        ),
        (
            "connection not accepted",
            A,
            "10.1.2.3",
            Via::Marker(222),
            Method::GET,
            "VG.00040304",
        ),
        (
            "unknown tenant",
            "nobody",
            "10.1.2.3",
            Via::Direct,
            Method::GET,
            "VG.00040305",
        ),
        (
            "open tenant",
            B,
            "203.0.113.5",
            Via::Direct,
            Method::DELETE,
            "",
        ),
    ];
    for (name, tenant, ip, via, method, want) in cases {
        let (status, code) = through(&client, &h.proxy, method.clone(), tenant, ip, *via).await;
        assert_eq!(
            (status == 200, code.as_str()),
            (want.is_empty(), *want),
            "data plane: {name}"
        );
        let via_q = match via {
            Via::Direct => String::new(),
            Via::Endpoint(id) => format!("&vpcep_id={id}"),
            Via::Marker(m) => format!("&marker_id={m}"),
        };
        let path = format!(
            "/v1/vpcep-authorization?enterprise_id={tenant}&ip={ip}{via_q}&method={method}&path=/repo/x"
        );
        let r = read(&h, &path).await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        let d = &r.json()["data"];
        let (result, reason) = match *want {
            "" => ("Allow", Value::Null),
            code => ("Deny", json!(code)),
        };
        assert_eq!(
            (&d["result"], &d["reason"]),
            (&json!(result), &reason),
            "check: {name}: {}",
            r.body
        );
        assert_eq!(d["enterprise_id"], json!(tenant), "{name}");
        assert_eq!(r.json()["status"], "ok");
    }
    // The config of tenant A, and the endpoint a marker resolves to.
    let r = read(
        &h,
        &format!("/v1/vpcep-authorization?enterprise_id={A}&ip=10.1.2.3&marker_id=111"),
    )
    .await;
    let d = &r.json()["data"];
    assert_eq!((&d["config"], &d["vpcep_id"]), (&json!(true), &json!(CONN)));
    // Validation errors are flat.
    for bad in [
        "ip=10.1.2.3".to_owned(),
        format!("enterprise_id={A}"),
        format!("enterprise_id={A}&ip=10.1.2.300"),
        format!("enterprise_id={A}&ip=10.1.2.3&vpcep_id=UP"),
        format!("enterprise_id={A}&ip=10.1.2.3&marker_id=x"),
        format!("enterprise_id={A}&ip=10.1.2.3&marker_id=1&vpcep_id=a"),
        "enterprise_id=bad%21&ip=10.1.2.3".to_owned(),
    ] {
        let r = read(&h, &format!("/v1/vpcep-authorization?{bad}")).await;
        assert_eq!(
            (r.status, r.flat_code()),
            (400, "UC.00011002".to_owned()),
            "{bad}"
        );
    }
    // Checking an unknown marker records nothing (only real traffic does).
    let g = h.generation();
    let r = read(
        &h,
        &format!("/v1/vpcep-authorization?enterprise_id={A}&ip=10.1.2.3&marker_id=4242"),
    )
    .await;
    assert_eq!(r.json()["data"]["reason"], "VG.00040304");
    assert_eq!(h.generation(), g);
    assert!(h.shared().pending().is_empty());
}

// === project permission (router) ===

#[tokio::test]
async fn project_switch_on_and_off_turns_project_rules_on_and_off() {
    let h = admin().await;
    let path = "/v1/job/project/permission";
    let check = format!("/v1/vpcep-authorization?project_id={PROJECT}&ip=10.9.9.9");
    assert_eq!(read(&h, &check).await.json()["data"]["result"], "Allow");

    let got = write(
        &h,
        Method::POST,
        path,
        json!({"project_id": PROJECT, "project_switch": true}),
    )
    .await;
    assert_eq!(got, (200, json!({"status": "success", "result": "true"})));
    assert!(h.policy_file().contains("project_level: true"));
    let d = read(&h, &check).await.json()["data"].clone();
    assert_eq!(
        (&d["result"], &d["reason"]),
        (&json!("Deny"), &json!("VG.00040302"))
    );

    // Without a switch: the current setting, nothing written.
    let g = h.generation();
    let got = write(
        &h,
        Method::POST,
        path,
        json!({"project_id": PROJECT, "job_id": "a".repeat(32)}),
    )
    .await;
    assert_eq!(got, (200, json!({"status": "success", "result": "true"})));
    assert_eq!(h.generation(), g);

    let got = write(
        &h,
        Method::POST,
        path,
        json!({"project_id": PROJECT, "project_switch": false}),
    )
    .await;
    assert_eq!(got, (200, json!({"status": "success", "result": "false"})));
    assert_eq!(read(&h, &check).await.json()["data"]["result"], "Allow");

    let bad: Vec<(Value, u16, &str)> = vec![
        (json!({"project_switch": true}), 400, "UC.00011002"),
        (
            json!({"project_id": "short", "project_switch": true}),
            400,
            "UC.00011002",
        ),
        (
            json!({"project_id": PROJECT, "project_switch": "yes"}),
            400,
            "UC.00011002",
        ),
        (
            json!({"project_id": PROJECT, "job_id": "x"}),
            400,
            "UC.00011002",
        ),
        (
            json!({"project_id": "1f6c3a1e9b2d4c7f8a5e1d3b6c9f2a4e", "project_switch": true}),
            404,
            "UC.00011005",
        ),
    ];
    for (body, status, code) in bad {
        let (got_status, got) = write(&h, Method::POST, path, body.clone()).await;
        assert_eq!(
            (got_status, flat_code(&got)),
            (status, code.to_owned()),
            "{body}"
        );
    }
}

// === persistence and the one writer (router) ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_writes_sent_concurrently_serialize_and_none_is_lost() {
    let h = Arc::new(admin().await);
    let base = format!("/v4/tenant/trusted-ip-addresses?enterprise_id={B}");
    let g = h.generation();
    // Each call on its own task, so the handlers really run at once on both workers.
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let body =
                json!({"id": format!("c{i}"), "ip_range": format!("198.18.0.{i}"), "view_flag": 1});
            let (h, base) = (h.clone(), base.clone());
            tokio::spawn(async move { write(&h, Method::POST, &base, body).await })
        })
        .collect();
    for call in calls {
        let (status, body) = within(60, call).await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(h.generation(), g + 20);
    let r = read(&h, &format!("{base}&limit=100")).await;
    assert_eq!(r.headers["x-total"], "20");
    // Every entry is in the file, once.
    let file: Value = serde_saphyr::from_str(&h.policy_file()).unwrap();
    let b = file["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["enterprise_id"] == B)
        .unwrap();
    let mut ids: Vec<&str> = b["trusted_ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut want: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    want.sort_unstable();
    assert_eq!(ids, want);
}

#[tokio::test]
async fn policy_write_after_a_hand_edit_keeps_it_and_a_broken_file_answers_409() {
    let h = admin().await;
    let g = h.generation();
    let add = |id: &'static str| {
        let h = &h;
        async move {
            write(
                h,
                Method::POST,
                "/v2/vpceps",
                json!({"enterprise_id": B, "vpceps": [{"vpcep_id": id}]}),
            )
            .await
        }
    };
    assert_eq!(add("e1").await.0, 200);
    assert_eq!(h.generation(), g + 1);

    // A hand edit (a tenant added above the first one, saved by renaming over, as editors do)
    // is one reload, not two: our own write before it was not reloaded again.
    let file = h.policy_file();
    let first = file
        .lines()
        .find(|l| l.contains(&format!("enterprise_id: {A}")))
        .unwrap();
    let indent = &first[..first.find("enterprise_id").unwrap()];
    let hand = file.replacen(
        first,
        &format!("{indent}enterprise_id: hand-made\n{first}"),
        1,
    );
    let tmp = h.proxy.path("policy.yaml.tmp");
    std::fs::write(&tmp, &hand).unwrap();
    std::fs::rename(&tmp, h.proxy.path("policy.yaml")).unwrap();
    assert_eq!(h.wait_generation(g + 2).await, g + 2);
    assert!(h.shared().current().policy.has_tenant("hand-made"));

    // The next write is applied on top of the hand edit.
    assert_eq!(add("e2").await.0, 200);
    let file = h.policy_file();
    assert!(
        file.contains("hand-made") && file.contains("vpcep_id: e2"),
        "{file}"
    );

    // A broken hand edit is never overwritten: writes answer 409 until it is fixed.
    let broken = format!("{file}  - {{ broken\n");
    std::fs::write(&tmp, &broken).unwrap();
    std::fs::rename(&tmp, h.proxy.path("policy.yaml")).unwrap();
    let (status, body) = add("e3").await;
    assert_eq!(
        (status, flat_code(&body)),
        (409, "UC.00011009".to_owned()),
        "{body}"
    );
    assert_eq!(h.policy_file(), broken);
}

#[tokio::test]
async fn unknown_routes_any_path_answer_404_json_in_their_api_shape() {
    let h = admin().await;
    let r = read(&h, "/v2/nothing").await;
    assert_eq!((r.status, r.flat_code()), (404, "UC.00011005".to_owned()));
    let r = read(&h, "/v1/p/vpc-endpoint-services/s/other").await;
    assert_eq!((r.status, r.nested_code()), (404, "UC.00011005".to_owned()));
}

// === over the admin socket ===

#[tokio::test]
async fn admin_socket_token_missing_invalid_or_read_only_answers_401() {
    let (_up, proxy) = socket_setup().await;
    let list = format!("/v2/vpceps?enterprise_id={A}");
    let conns = format!("{SVC}/connections");
    let add_path = "/v2/vpceps".to_owned();
    let add = json!({"enterprise_id": A, "vpceps": [{"vpcep_id": "vpce-sock"}]}).to_string();
    let before = std::fs::read_to_string(proxy.path("policy.yaml")).unwrap();
    // (why, method, path, token); writes carry a valid body, so only the token is wrong.
    let refusals = [
        ("missing", Method::GET, &list, None),
        ("invalid", Method::GET, &list, Some("wrong-token")),
        ("read-only", Method::POST, &add_path, Some(READ_TOKEN)),
        ("missing, nested shape", Method::GET, &conns, None),
    ];
    for (why, method, path, token) in refusals {
        let body = (method == Method::POST).then_some(add.as_str());
        let r = socket_call(&proxy, method.clone(), path, token, body).await;
        assert_eq!(r.status, 401, "{why} {method} {path}: {}", r.body);
        let code = if path.contains("/vpc-endpoint-services/") {
            r.nested_code()
        } else {
            r.flat_code()
        };
        assert_eq!(code, "UC.00010002", "{why} {method} {path}");
    }
    assert_eq!(
        std::fs::read_to_string(proxy.path("policy.yaml")).unwrap(),
        before
    );
    let r = socket_call(&proxy, Method::GET, &list, Some(READ_TOKEN), None).await;
    assert_eq!(
        (r.status, &r.json()["total"]),
        (200, &json!(2)),
        "{}",
        r.body
    );
    let r = socket_call(
        &proxy,
        Method::POST,
        &add_path,
        Some(WRITE_TOKEN),
        Some(&add),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let file = std::fs::read_to_string(proxy.path("policy.yaml")).unwrap();
    assert!(file.contains("vpcep_id: vpce-sock"), "{file}");
}

#[tokio::test]
async fn admin_socket_delete_endpoint_denies_the_next_request_of_a_kept_alive_connection() {
    let (_up, proxy) = socket_setup().await;
    let client = proxy.client(false);
    let send = || {
        through(
            &client,
            &proxy,
            Method::GET,
            A,
            "10.1.2.3",
            Via::Endpoint("vpce-1"),
        )
    };
    assert_eq!(send().await, (200, String::new()));
    let body = json!({"enterprise_id": A, "vpceps": [{"vpcep_id": "vpce-1"}]}).to_string();
    let r = socket_call(
        &proxy,
        Method::DELETE,
        "/v2/vpceps",
        Some(WRITE_TOKEN),
        Some(&body),
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"status": "ok", "total": 1}))
    );
    assert_eq!(send().await, (403, "VG.00040301".to_owned()));
}

#[tokio::test]
async fn admin_socket_metrics_without_a_token_count_admin_requests_by_route_and_status() {
    let (_up, proxy) = socket_setup().await;
    let list = format!("/v2/vpceps?enterprise_id={A}");
    assert_eq!(
        socket_call(&proxy, Method::GET, &list, None, None)
            .await
            .status,
        401
    );
    let r = socket_call(&proxy, Method::GET, &list, Some(READ_TOKEN), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = socket_call(&proxy, Method::GET, "/metrics", None, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    // This scrape is counted after it answers, so only the two calls before it show (every
    // other pre-created series is at zero).
    let counted: Vec<&str> = metric_lines(&r.body, "vpcguard_admin_requests_total")
        .into_iter()
        .filter(|l| !l.ends_with(" 0"))
        .collect();
    assert_eq!(
        counted,
        [
            r#"vpcguard_admin_requests_total{route="vpceps",status="200"} 1"#,
            r#"vpcguard_admin_requests_total{route="vpceps",status="401"} 1"#,
        ]
    );
}
