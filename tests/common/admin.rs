//! In-process admin API harness: the admin router of a running proxy, called with
//! `tower::ServiceExt::oneshot` — no admin socket, no HTTP client, no connection set-up per call.
//!
//! [`AdminHarness::start`] writes the config and policy to a tempdir and starts the proxy through
//! [`TestProxy`] (so `config::load`, `Shared`, the `Writer` task and the file watcher are exactly
//! the ones `App` builds; `App` is the only public way to get them without naming the metrics
//! module). Requests then go to `vpcguard::admin::router` over the app's own `Shared` and
//! `Writer`: a write is serialized, persisted and published as it is in production, and the data
//! plane (still on its real socket, [`AdminHarness::proxy`]) enforces it.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use http::{HeaderMap, Method, Request};
use serde_json::Value;
use tower::ServiceExt;
use vpcguard::admin::{AdminState, router};
use vpcguard::state::Shared;

use super::{TestProxy, within};

/// A proxy whose admin API is called in-process.
pub struct AdminHarness {
    /// The running proxy: its config directory, its data plane, its (unused) admin socket.
    pub proxy: TestProxy,
    router: axum::Router,
}

/// An admin response, whichever way it came (router or socket).
#[derive(Debug)]
pub struct AdminResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl AdminResponse {
    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }

    /// `error_code` of a flat error body, asserting the shape.
    pub fn flat_code(&self) -> String {
        flat_code(&self.json())
    }

    /// `error.code` of a nested error body, asserting the shape.
    pub fn nested_code(&self) -> String {
        nested_code(&self.json())
    }
}

/// `error_code` of a flat `{"error_code","error_msg"}` body, asserting the shape.
pub fn flat_code(v: &Value) -> String {
    assert!(v["error_msg"].is_string(), "flat shape: {v}");
    v["error_code"].as_str().unwrap().to_owned()
}

/// `error.code` of a nested `{"error":{"code","message"}}` body, asserting the shape.
pub fn nested_code(v: &Value) -> String {
    assert!(v["error"]["message"].is_string(), "nested shape: {v}");
    v["error"]["code"].as_str().unwrap().to_owned()
}

impl AdminHarness {
    /// Start a proxy with `config` (YAML, as for [`TestProxy::start`]) and `policy`.
    pub async fn start(config: &str, policy: &str) -> AdminHarness {
        let proxy = TestProxy::start(config, policy, false).await;
        let router = router(AdminState {
            shared: proxy.app.shared.clone(),
            writer: proxy.app.writer.clone(),
            started: Instant::now(),
        });
        AdminHarness { proxy, router }
    }

    /// The proxy's shared state (generation, policy in force, pending markers).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.proxy.app.shared
    }

    /// The generation in force.
    pub fn generation(&self) -> u64 {
        self.shared().current().number
    }

    /// The policy file as it is on disk now.
    pub fn policy_file(&self) -> String {
        std::fs::read_to_string(self.proxy.path("policy.yaml")).unwrap()
    }

    /// Wait (bounded) until the published generation is at least `generation`; returns it.
    pub async fn wait_generation(&self, generation: u64) -> u64 {
        self.proxy.wait_generation(generation).await
    }

    /// One admin call through the router: `method path` with `token` (if any), extra `headers`,
    /// and `body` sent as is (so malformed JSON can be sent), as `application/json`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> AdminResponse {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("x-auth-token", t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_owned())
            }
            None => Body::empty(),
        };
        let resp = within(30, self.router.clone().oneshot(req.body(body).unwrap()))
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = within(30, axum::body::to_bytes(resp.into_body(), usize::MAX))
            .await
            .unwrap();
        AdminResponse {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    /// `GET path` with `token`: (status, JSON body).
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let r = self.call(Method::GET, path, token, &[], None).await;
        (r.status, r.json())
    }

    /// `POST path` with `token` and `json`: (status, JSON body).
    pub async fn post(&self, path: &str, token: Option<&str>, json: &Value) -> (u16, Value) {
        self.send(Method::POST, path, token, json).await
    }

    /// `PUT path` with `token` and `json`: (status, JSON body).
    pub async fn put(&self, path: &str, token: Option<&str>, json: &Value) -> (u16, Value) {
        self.send(Method::PUT, path, token, json).await
    }

    /// `DELETE path` with `token` and `json`: (status, JSON body).
    pub async fn delete(&self, path: &str, token: Option<&str>, json: &Value) -> (u16, Value) {
        self.send(Method::DELETE, path, token, json).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        json: &Value,
    ) -> (u16, Value) {
        let r = self
            .call(method, path, token, &[], Some(&json.to_string()))
            .await;
        (r.status, r.json())
    }
}
