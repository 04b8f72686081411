//! Configuration pipeline: YAML text → `raw` (serde mirror of the file, unknown keys rejected) →
//! `model` (validated domain types, field path and position on every error) → `load` (file I/O,
//! policy and TLS files (`certs`), hashes). `check`, startup and reload all go through
//! [`load::load_as`]; only what absent certificate files mean differs ([`load::Phase`]).

pub mod certs;
pub mod load;
pub mod model;
pub mod raw;
mod validate;

pub use load::{ConfigError, Loaded, Phase, load, load_as, parse};
pub use model::Config;

#[cfg(test)]
mod tests;
