//! vpcguard: a TLS-terminating sidecar reverse proxy that admits each request by the caller's
//! source IP and the VPC endpoint it came through (see `SPEC.md` and `README.md`).
//!
//! # Layout
//! - [`app`] — composition root: bound listeners in, running [`app::App`] out.
//! - [`cli`] — command-line definitions.
//! - [`config`] — YAML → raw → validated model; the one load path for run, check and reload.
//! - [`policy`] — PURE decision core: policy file, compiled snapshot, `decide`.
//! - [`identity`] — PURE request identity: client IP, vpcep headers, tenant, route → right.
//! - [`proxy`] — the data path: accept, PROXY header, TLS, HTTP, forward.
//! - [`admin`] — the admin listener: metrics, health, status.
//! - [`state`] — the shared, atomically swapped generation of everything reloadable.
//! - [`error`] — documented error codes and the one `respond`.
//! - [`metrics`] — every metric name and label enum.
//! - [`body`] — streaming body wrappers (limit, completion hook).
//! - [`time`] — RFC 3339 timestamps.
//! - [`access_log`] — the per-request access line: formatted by hand, written by its own thread.
//! - [`signals`], [`logging`], [`explain`] — process glue for `main`.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod app;
pub mod body;
pub mod cli;
pub mod config;
pub mod error;
pub mod explain;
pub mod identity;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod signals;
pub mod state;
pub mod time;
pub mod watch;
