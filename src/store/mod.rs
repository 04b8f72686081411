//! Where the policy lives (docs/contract.md §11): the seam between the one writer (`reload`) and
//! the policy's home. [`Backend::File`] is the policy file, handled by `reload::persist` exactly
//! as before; [`Backend::Etcd`] (cargo feature `etcd`) keeps one key per record under a prefix,
//! follows it with a watch, and writes admin mutations as guarded transactions.
//!
//! | file | owns |
//! |---|---|
//! | `command.rs` | `vpcguard policy pull` / `policy push` for either store |
//! | `records.rs` | the key layout, policy ↔ records, the diff between two record sets (pure, every build) |
//! | `etcd/mod.rs` | the store handle: the records as last read, guarded writes, read-your-writes |
//! | `etcd/sync.rs` | the task that reads, watches, coalesces, validates and hands generations to the writer; the cache file |
//! | `etcd/client.rs` | connecting, the paginated consistent read, batched pushes |
//!
//! The writer stays the only publisher (docs/design.md §2.2): the etcd task sends it
//! [`StoreUpdate`]s, and the writer swaps them in.

pub mod command;
pub mod records;

#[cfg(feature = "etcd")]
pub mod etcd;

use crate::policy::Snapshot;

/// The policy's home, as the writer sees it.
#[derive(Debug, Clone)]
pub enum Backend {
    /// `policy.path`: mutations re-read, apply, validate and replace the file (`reload::persist`).
    File,
    /// `policy.store: etcd`.
    #[cfg(feature = "etcd")]
    Etcd(etcd::EtcdStore),
}

/// What the etcd task asks the writer to do.
#[derive(Debug)]
pub enum StoreUpdate {
    /// A validated, compiled state of the store, to publish. `revision` is the etcd revision it
    /// reflects (0 for the cache file served while etcd is unreachable at start).
    Publish {
        snapshot: Box<Snapshot>,
        sha256: String,
        revision: i64,
    },
    /// The store's state at `revision` does not validate: the rules in force keep serving.
    Invalid { error: String, revision: i64 },
}

/// The store's health, for `/status` (docs/contract.md §7, §11).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoreStatus {
    /// `etcd`.
    pub kind: &'static str,
    /// The last call to etcd succeeded and the watch is running.
    pub up: bool,
    /// The etcd revision of the records read so far (0: none yet).
    pub revision: i64,
    /// `etcd`, `cache` (etcd unreachable since the start) or `none` (nothing loaded yet).
    pub serving: &'static str,
    /// Why the last read or watch failed, or why the store's state does not validate (with the
    /// key), while that lasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
