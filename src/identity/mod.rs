//! Request identity: who the client is, which VPC endpoint and tenant a request claims, and which
//! right it needs (docs/contract.md §4). Pure functions over `http` types.
//!
//! Owns: parsing and matching. Does not own: trust configuration loading, the access decision
//! (`policy`), or sequencing (`proxy/conn.rs`). No I/O.
//!
//! - [`client_ip`]: client address from the peer and forwarding headers.
//! - [`vpcep_headers`]: VPC endpoint id / marker from trusted headers; stripping untrusted copies.
//! - [`pattern`]: path and host patterns with `{tenant}` / `{project}` captures.
//! - [`tenant`]: tenant resolution rules.
//! - [`routes`]: the right a request needs.

pub mod canonical;
pub mod client_ip;
pub mod pattern;
pub mod routes;
pub mod tenant;
pub mod vpcep_headers;
