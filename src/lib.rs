//! vpcguard: a TLS-terminating sidecar reverse proxy that admits each request by the caller's
//! source IP and the VPC endpoint it came through (the contract: `docs/contract.md`; the
//! operator's guide: `README.md`).
//!
//! # Layout
//!
//! A request travels top to bottom through the data path; the control path writes what it reads.
//!
//! Data path:
//! - [`proxy`] — inbound: accept, PROXY header, TLS, HTTP serving, the per-request pipeline.
//! - [`proxy_protocol`] — the PROXY v1/v2 wire format: a pure parser, no I/O (a leaf).
//! - [`cert_store`] — the served certificate, swapped on reload; the rustls server config.
//! - [`verdict`] — request → `Facts` → decision → code/JSON; shared by data plane, CLI and admin.
//! - [`identity`] — PURE request identity: client IP, vpcep headers, tenant, route → right.
//! - [`policy`] — PURE decision core: policy file, compiled snapshot, `decide`.
//! - [`upstream`] — outbound: the upstream client and its HTTP/1.1 pool, the connection cap, the
//!   response deadline, 502/503/504 classes.
//! - [`body`] — streaming body wrappers (limit, end signal, idle timers, completion hook).
//! - [`error`] — the data plane's documented error codes and the one `respond`.
//! - [`access_log`] — the per-request access line: formatted by hand, written by its own thread.
//!
//! Control path:
//! - [`config`] — YAML → raw → validated model, certificate files; one load path for run, check
//!   and reload.
//! - [`state`] — the shared, atomically swapped [`state::Generation`] of everything reloadable.
//! - [`reload`] — the one writer of published state: reloads and admin writes, persisted
//!   atomically.
//! - [`store`] — where the policy lives: the file (default) or etcd (feature `etcd`), the seam
//!   the writer writes through; the etcd key layout.
//! - [`watch`] — which files to watch, and the watcher that asks the writer to reload.
//! - [`admin`] — the admin listener: metrics, health, status, the seed REST APIs.
//! - [`metrics`] — every metric name and label enum.
//!
//! Process glue:
//! - [`app`] — composition root: bound listeners in, running [`app::App`] out.
//! - [`cli`] — command-line definitions; [`signals`], [`logging`] — for `main`.
//! - [`query`] — query-string decoding; [`time`] — RFC 3339 timestamps; [`ipfmt`] — the one
//!   hot-path IPv4 formatter.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod app;
pub mod body;
pub mod cert_store;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod identity;
pub mod ipfmt;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod proxy_protocol;
pub mod query;
pub mod reload;
pub mod signals;
pub mod state;
pub mod store;
pub mod time;
pub mod upstream;
pub mod verdict;
pub mod watch;
