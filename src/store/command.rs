//! `vpcguard policy pull` / `policy push` (docs/contract.md §1): the policy of the configured
//! store as a policy file, and making the store hold exactly a policy file. The file store reads
//! and atomically replaces `policy.path`; the etcd store reads the prefix at one revision and
//! writes the difference in batched transactions (`etcd::push`).
//!
//! Blocking: builds its own small runtime for etcd. For `main`, not for the proxy.

use crate::config::Config;
use crate::config::model::Store;
use crate::policy::{PolicyFile, Snapshot, parse_policy};

/// Why a policy command failed, with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The policy is invalid (exit 78): the pushed file, or what the store holds.
    #[error("{0}")]
    Invalid(String),
    /// The store could not be reached (exit 69, `EX_UNAVAILABLE`).
    #[error("{0}")]
    Unavailable(String),
}

impl CommandError {
    /// The exit code: 78 invalid, 69 unreachable.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Invalid(_) => 78,
            CommandError::Unavailable(_) => 69,
        }
    }
}

/// What a push changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    /// Records put or deleted.
    pub changes: usize,
    /// The store's revision afterwards (0 for the file store).
    pub revision: i64,
}

/// The policy of the configured store, rendered as a policy file.
pub fn pull(config: &Config) -> Result<String, CommandError> {
    match &config.policy.store {
        Store::File => std::fs::read_to_string(&config.policy.path).map_err(|e| {
            CommandError::Unavailable(format!("{}: {e}", config.policy.path.display()))
        }),
        #[cfg(feature = "etcd")]
        Store::Etcd(s) => {
            let file = runtime()?.block_on(async {
                let client = super::etcd::connect(s).await.map_err(unavailable)?;
                let (_, records) = super::etcd::read_all(&client, &s.prefix, s.request_timeout)
                    .await
                    .map_err(unavailable)?;
                super::records::decode(
                    records
                        .iter()
                        .map(|(k, e)| (k.as_str(), e.value.as_slice())),
                )
                .map_err(|e| CommandError::Invalid(format!("{}{}: {}", s.prefix, e.key, e.message)))
            })?;
            crate::policy::render_policy(&file).map_err(|e| CommandError::Invalid(e.to_string()))
        }
        #[cfg(not(feature = "etcd"))]
        Store::Etcd(_) => Err(CommandError::Invalid(
            "this build has no etcd store".to_owned(),
        )),
    }
}

/// Validate `text` (a policy file, named `name` in messages) as a reload would, then make the
/// store hold exactly it.
pub fn push(config: &Config, name: &str, text: &str) -> Result<Pushed, CommandError> {
    let file = validate(config, name, text)?;
    match &config.policy.store {
        Store::File => {
            crate::reload::write_atomically(&config.policy.path, text.as_bytes()).map_err(|e| {
                CommandError::Unavailable(format!("{}: {e}", config.policy.path.display()))
            })?;
            Ok(Pushed {
                changes: 1,
                revision: 0,
            })
        }
        #[cfg(feature = "etcd")]
        Store::Etcd(s) => {
            let records = super::records::encode(&file)
                .map_err(|e| CommandError::Invalid(format!("{name}: {e}")))?;
            runtime()?.block_on(async {
                let client = super::etcd::connect(s).await.map_err(unavailable)?;
                let (changes, revision) =
                    super::etcd::push(&client, &s.prefix, &records, s.request_timeout)
                        .await
                        .map_err(unavailable)?;
                Ok(Pushed { changes, revision })
            })
        }
        #[cfg(not(feature = "etcd"))]
        Store::Etcd(_) => {
            let _ = file;
            Err(CommandError::Invalid(
                "this build has no etcd store".to_owned(),
            ))
        }
    }
}

fn validate(config: &Config, name: &str, text: &str) -> Result<PolicyFile, CommandError> {
    let invalid = |e: crate::policy::PolicyError| CommandError::Invalid(e.render(name));
    let file = parse_policy(text).map_err(invalid)?;
    Snapshot::compile(&file, &crate::reload::compile_options(config)).map_err(invalid)?;
    Ok(file)
}

#[cfg(feature = "etcd")]
fn unavailable(e: super::etcd::StoreError) -> CommandError {
    CommandError::Unavailable(e.to_string())
}

#[cfg(feature = "etcd")]
fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Unavailable(format!("cannot start the runtime: {e}")))
}
