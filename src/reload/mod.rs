//! The one writer of published state (docs/contract.md §8, docs/design.md §2.2). Every reload — file watcher, SIGHUP,
//! `POST /-/reload` — is a command on one queue, served by one task, so reloads never race each
//! other and a half-built generation is never visible: loading, validating and compiling run on a
//! blocking thread, off the request path, and only a complete [`Loaded`] is swapped in.
//!
//! Admin API mutations and newly seen pending markers are commands on the same queue: each one
//! re-reads the policy file (so an operator's hand edit is the base, never overwritten), applies
//! the change, validates the whole result, writes it atomically (temp file, fsync, rename, fsync
//! the directory) and only then publishes — so concurrent mutations serialize, none is lost, and
//! an answer of success means the change is on disk and enforced.
//!
//! An invalid version changes nothing: it is logged as `file:line:column: message`, counted in
//! `config_reloads_total{result="failure"}` and reported to whoever asked. A version whose files
//! hash the same as the one in force is not published again (the watcher sees many events per
//! save); an explicit reload of unchanged files answers `unchanged`.

//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | what asks ([`Trigger`]), what came of it ([`Outcome`]), why a write failed ([`WriteError`]) |
//! | `writer.rs` | the command queue and the task that serves it ([`Writer`]); pending markers |
//! | `persist.rs` | applying a mutation to the file on disk, atomic writes |
//!
//! Speaks no API dialect: a [`WriteError`] says what went wrong, and the admin API decides the
//! status and code it is answered with.

mod persist;
mod writer;

use std::path::PathBuf;

use crate::config::Config;
use crate::policy::{CompileOptions, PolicyError, PolicyFile};

pub use persist::write_atomically;
pub use writer::{Writer, pending_connection, pending_connection_id};

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The file watcher, after its debounce window.
    Watch,
    /// SIGHUP.
    Signal,
    /// `POST /-/reload`.
    Admin,
    /// A policy change through the admin API (or a pending marker being recorded).
    Api,
    /// A change in the policy store (etcd), by any instance or by hand.
    Store,
}

impl Trigger {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Trigger::Watch => "watch",
            Trigger::Signal => "signal",
            Trigger::Admin => "admin",
            Trigger::Api => "api",
            Trigger::Store => "store",
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new generation is in force.
    Published { generation: u64 },
    /// The files are byte-for-byte what is in force; nothing was swapped.
    Unchanged { generation: u64 },
    /// The new version is invalid; the current generation keeps serving.
    Failed { error: String },
}

/// A change to the policy, applied by the writer to the freshest version of it. `false` means
/// the change refused itself (its own error is in the caller's slot): nothing is written. The
/// etcd store may run it again on a newer version when a concurrent write won (`FnMut`).
pub type Mutation = Box<dyn FnMut(&mut PolicyFile) -> bool + Send>;

/// Why an admin write (or a pending marker) was not applied. Nothing was written or published.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The policy file could not be read, so it is not overwritten.
    #[error("cannot read the policy file {}: {source}; not overwriting it", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file on disk was edited by hand into something that does not validate (rendered as
    /// `file:line:column: message`).
    #[error("the policy file was edited and is not valid; fix it first: {0}")]
    EditedInvalid(String),
    /// The file on disk changed (a hand edit saved) while the change was being applied, after it
    /// was read and before the new version would have replaced it: nothing was written, so the
    /// edit is kept. Retrying applies the change on top of it.
    #[error("{} was changed on disk while this change was being written; nothing was written, retry", path.display())]
    Edited { path: PathBuf },
    /// The change would make the policy invalid.
    #[error("{0}")]
    Invalid(#[source] PolicyError),
    /// The changed policy could not be rendered as YAML.
    #[error("cannot render the policy: {0}")]
    Render(String),
    /// The file could not be written (the old one is still whole).
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The writer task is gone (shutting down) or its blocking thread panicked.
    #[error("the policy writer has stopped")]
    Stopped,
    /// The policy store (etcd) is unreachable: nothing was written; the rules in force keep
    /// serving (docs/contract.md §11). Answered 503 `UC.00010005`.
    #[error("the policy store is unavailable: {0}")]
    StoreUnavailable(String),
    /// Concurrent writes through other instances kept winning until `request_timeout`; nothing
    /// was written, retry.
    #[error("the policy store kept changing under this write; nothing was written, retry")]
    Contended,
    /// The change touches more records than one etcd transaction may hold.
    #[error("the change touches {changes} records; one write may change at most {max}")]
    TooLarge { changes: usize, max: usize },
    /// Committed in the store at `revision`, but not applied by this instance within
    /// `request_timeout` (the store's state after it does not validate, or the watch lags).
    #[error("committed at etcd revision {revision} but not yet applied here")]
    Unapplied { revision: i64 },
}

/// The options a policy is compiled under.
pub fn compile_options(config: &Config) -> CompileOptions {
    CompileOptions {
        unknown_tenant_allow: config.policy.unknown_tenant_allow,
        max_vpceps_per_tenant: config.limits.max_vpceps_per_tenant,
    }
}

/// Settings read once at startup: a reload that changes them logs that a restart is needed.
pub fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.listen.address != new.listen.address {
        out.push("listen.address");
    }
    if old.admin.address != new.admin.address {
        out.push("admin.address");
    }
    let tls = |c: &Config| c.listen.tls.as_ref().map(|t| t.min_version);
    if tls(old) != tls(new) {
        out.push("listen.tls (enabled, min_version)");
    }
    if old.limits.max_connections != new.limits.max_connections {
        out.push("limits.max_connections");
    }
    if old.limits.shutdown_grace != new.limits.shutdown_grace {
        out.push("limits.shutdown_grace");
    }
    if old.log.format != new.log.format || old.log.level != new.log.level {
        out.push("log");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn restart_needed_names_listener_changes_only() {
        let base = Path::new("/tmp");
        let a = crate::config::load::parse("{}\n", &base.join("a.yaml")).unwrap();
        let b = crate::config::load::parse(
            "listen: { address: \"127.0.0.1:1\" }\nupstream: { connect_timeout: 1s }\n",
            &base.join("a.yaml"),
        )
        .unwrap();
        assert_eq!(restart_needed(&a, &b), vec!["listen.address"]);
        assert!(restart_needed(&a, &a).is_empty());
    }
}
