//! The data path, in order, and which module owns each stage:
//!
//! 1. `listener` — accept, connection limit, drain on shutdown.
//! 2. `conn` — PROXY header (`proxy_protocol`, replayed through `rewind`), TLS (`tls`), HTTP
//!    serving with client deadlines (`idle`). The only place that sequences connection stages.
//! 3. `http` — per request: identity, self check (`selfcheck`), `policy::decide`, deny or forward.
//! 4. `forward` — the upstream client (`pool` for plain HTTP/1.1 upstreams); `headers` — hop-by-hop and `X-Forwarded-*` rewriting.

pub mod conn;
pub mod forward;
pub mod headers;
pub mod http;
pub mod idle;
pub mod listener;
pub mod pool;
pub mod pp_builder;
pub mod proxy_protocol;
pub mod rewind;
pub mod selfcheck;
pub mod tls;
