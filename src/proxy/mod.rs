//! The inbound side of the data path: from an accepted socket to the response, in order, and
//! which module owns each stage:
//!
//! 1. `listener` — accept, connection limit, drain on shutdown (`drain`).
//! 2. `conn` — PROXY header (`crate::proxy_protocol`, replayed through `rewind`), TLS (keys from
//!    `crate::cert_store`), HTTP/1.1 or HTTP/2 by ALPN or by the first bytes (`sniff`), served
//!    with client deadlines (`idle`) and drained on shutdown (`drain`); an HTTP/2 connection's
//!    streams run in its own task (`streams`). The only place that sequences connection stages.
//! 3. `http` — per request: identity, self check (`selfcheck`), the verdict (`crate::verdict`,
//!    `policy::decide`), then deny or hand the request to `crate::upstream`; `headers` rewrites
//!    hop-by-hop and `X-Forwarded-*`; `record` writes the request's metrics and access line once;
//!    after a 101, `tunnel` copies bytes both ways (counted, idle-limited, re-judged, drained).
//!
//! The outbound side (the upstream client and its pool) is `crate::upstream`.

mod canon;
pub mod conn;
mod drain;
pub mod headers;
pub mod http;
pub mod idle;
pub mod listener;
mod record;
mod refusal;
pub mod rewind;
pub mod selfcheck;
pub mod sniff;
mod streams;
pub mod tunnel;
