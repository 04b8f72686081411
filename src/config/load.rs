//! Reading and validating the config file, the policy file and the TLS files: the one code path
//! that `run`, `check` and every reload use (docs/contract.md §1, §8).
//!
//! [`parse`] is pure (text in, config out); [`load`] does the file I/O around it and returns
//! everything a running proxy needs, compiled and ready to publish.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::model::{Config, Invalid};
use super::raw;
use crate::metrics::ReloadFile;
use crate::policy::{self, CompileOptions, Snapshot};

/// Why a config could not be loaded. `Display` is `file:line:column: message` whenever a position is
/// known, as `check` and reload logs print it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The YAML did not parse into the expected shape (syntax, unknown key, bad scalar).
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: u32,
        column: u32,
        message: String,
    },
    /// The file holds no document (nothing, only comments, `---` or `~`): docs/contract.md §2 makes
    /// an empty config invalid, so a truncated write never reloads as "every key at its default"
    /// (admin tokens gone, tenant rules reset). `{}` is the file that takes every default.
    #[error("{}: the config file is empty; write `{{}}` for a config that takes every default", path.display())]
    Empty { path: PathBuf },
    /// A value parsed but is not acceptable.
    #[error("{}{}: {}: {}", path.display(), at(invalid.pos), invalid.field, invalid.message)]
    Invalid { path: PathBuf, invalid: Invalid },
    /// The policy file is invalid.
    #[error("{}{}: {source}", path.display(), at(source.position()))]
    Policy {
        path: PathBuf,
        source: policy::PolicyError,
    },
    /// The certificate or key could not be used.
    #[error("{}: {source}", path.display())]
    Tls {
        path: PathBuf,
        source: super::certs::TlsError,
    },
}

/// `:line:column` when the position is known; nothing rather than a made-up `1:1` when not.
fn at(pos: Option<(u32, u32)>) -> String {
    pos.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default()
}

/// Parse and validate config text. `path` is used for messages and to resolve relative paths.
///
/// An empty document (nothing, only comments, `---` or `~`) is [`ConfigError::Empty`], and a
/// document that is not a mapping is a [`ConfigError::Syntax`] at its position (docs/contract.md
/// §2).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let raw: raw::File = match serde_saphyr::from_str::<Option<raw::File>>(text) {
        Ok(Some(raw)) => raw,
        Ok(None) => {
            return Err(ConfigError::Empty {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(syntax(path, &e)),
    };
    let base = path.parent().unwrap_or(Path::new("."));
    Config::from_raw(raw, base).map_err(|invalid| ConfigError::Invalid {
        path: path.to_path_buf(),
        invalid,
    })
}

/// Map a serde-saphyr error to [`ConfigError::Syntax`] with its position.
pub fn syntax(path: &Path, e: &serde_saphyr::Error) -> ConfigError {
    let num = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    let (line, column) = e
        .location()
        .map_or((1, 1), |l| (num(l.line()), num(l.column())));
    ConfigError::Syntax {
        path: path.to_path_buf(),
        line,
        column,
        // The position is ours to print: the message alone, on one line.
        message: crate::policy::yaml_message(e),
    }
}

/// The hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Everything a reload produces, validated and compiled, ready to publish.
#[derive(Debug)]
pub struct Loaded {
    pub config: Arc<Config>,
    pub config_sha256: String,
    pub policy: Arc<Snapshot>,
    pub policy_sha256: String,
    /// The certificate to serve (`None` without `listen.tls`, or on a reload that keeps the
    /// self-signed certificate in force).
    pub tls: Option<Arc<rustls::sign::CertifiedKey>>,
    /// True when no certificate files exist and the self-signed certificate is served (generated
    /// by this load at startup, kept by a reload).
    pub tls_self_signed: bool,
    /// The TLS client configuration of an `https://` upstream (`upstream.tls`, else the webpki
    /// roots); `None` for the other schemes.
    pub upstream_tls: Option<Arc<rustls::ClientConfig>>,
    /// What was read, so a file watcher can tell a real change from noise.
    pub fingerprint: Fingerprint,
}

/// The sha256 of each file a load reads (`None` when it is missing): the config, the policy, and
/// the certificate and key. Two loads with equal fingerprints read the same bytes, so the watcher
/// skips events that changed nothing (an editor's backup file, a no-op `touch`, our own writes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    pub config: Option<[u8; 32]>,
    pub policy: Option<[u8; 32]>,
    pub tls: Option<([u8; 32], [u8; 32])>,
    /// `upstream.tls`'s files (CA, certificate, key) hashed together; `None` without them.
    pub upstream_tls: Option<[u8; 32]>,
}

impl Fingerprint {
    /// Hash the files `config` (read from `config_path`) names, as they are on disk now.
    pub fn read(config_path: &Path, config: &Config) -> Fingerprint {
        Fingerprint {
            config: hash_file(config_path),
            policy: match config.policy.store {
                super::model::Store::File => hash_file(&config.policy.path),
                // The policy is in etcd: no file of it to watch.
                super::model::Store::Etcd(_) => None,
            },
            tls: config.listen.tls.as_ref().and_then(tls_hashes),
            upstream_tls: upstream_tls_hash(config),
        }
    }

    /// Which files differ between `self` and `other`.
    pub fn changed(&self, other: &Fingerprint) -> Vec<ReloadFile> {
        let mut out = Vec::new();
        if self.config != other.config {
            out.push(ReloadFile::Config);
        }
        if self.policy != other.policy {
            out.push(ReloadFile::Policy);
        }
        if self.tls != other.tls || self.upstream_tls != other.upstream_tls {
            out.push(ReloadFile::Tls);
        }
        out
    }
}

/// The files of `upstream.tls`, hashed together (a missing one hashes as empty: its load fails).
fn upstream_tls_hash(config: &Config) -> Option<[u8; 32]> {
    let files = super::model::upstream_tls_files(config);
    if files.is_empty() {
        return None;
    }
    let mut h = Sha256::new();
    for f in files {
        h.update(hash_file(f).unwrap_or_default());
    }
    Some(h.finalize().into())
}

fn hash_file(path: &Path) -> Option<[u8; 32]> {
    std::fs::read(path).ok().map(|b| Sha256::digest(&b).into())
}

fn tls_hashes(files: &super::model::TlsFiles) -> Option<([u8; 32], [u8; 32])> {
    Some((hash_file(&files.cert)?, hash_file(&files.key)?))
}

impl ConfigError {
    /// The file this error is about, for `config_reloads_total{file}`; `config` is the *current*
    /// config, used to tell a missing policy file from a missing config file.
    pub fn source_file(&self, config: &Config) -> ReloadFile {
        match self {
            ConfigError::Policy { .. } => ReloadFile::Policy,
            ConfigError::Tls { .. } => ReloadFile::Tls,
            ConfigError::Read { path, .. } if *path == config.policy.path => ReloadFile::Policy,
            _ => ReloadFile::Config,
        }
    }
}

/// Which load this is: it decides what absent certificate files mean (docs/contract.md §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `run` and `check`: when both certificate files are absent, a self-signed certificate for
    /// `localhost` is generated.
    Startup,
    /// A reload: nothing is generated. `self_signed` says the generation in force serves the
    /// certificate generated at startup; a pair still absent then keeps it, otherwise absent files
    /// are an invalid version ([`TlsError::Missing`](super::certs::TlsError::Missing)).
    Reload { self_signed: bool },
}

/// Read and validate the config at `path`, then its policy file and TLS files, as at startup
/// (`run`, `check`).
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    load_as(path, Phase::Startup)
}

/// [`load`] for `phase`: a reload passes [`Phase::Reload`].
pub fn load_as(path: &Path, phase: Phase) -> Result<Loaded, ConfigError> {
    let text = read(path)?;
    let config = parse(&text, path)?;
    let config_sha256 = sha256_hex(text.as_bytes());
    let (policy, policy_sha256) = match config.policy.store {
        super::model::Store::File => load_policy(&config)?,
        // The etcd store publishes its policy once it has read it (docs/contract.md §11); until
        // then this empty placeholder is in force and the instance is not ready.
        super::model::Store::Etcd(_) => {
            let text = "tenants: []\n";
            let snapshot = compile_policy(text, &config).map_err(|source| ConfigError::Policy {
                path: config.policy.path.clone(),
                source,
            })?;
            (snapshot, sha256_hex(text.as_bytes()))
        }
    };
    let policy_file = matches!(config.policy.store, super::model::Store::File);
    // Hash the TLS files *before* loading them: if they change in between, the stored fingerprint
    // is the older one and the next watch event still sees a difference.
    let fingerprint = Fingerprint {
        config: Some(Sha256::digest(text.as_bytes()).into()),
        policy: hex::decode(&policy_sha256)
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .filter(|_| policy_file),
        tls: config.listen.tls.as_ref().and_then(tls_hashes),
        upstream_tls: upstream_tls_hash(&config),
    };
    let tls_error = |(p, source)| ConfigError::Tls { path: p, source };
    let (tls, tls_self_signed) = match (&config.listen.tls, phase) {
        (None, _) => (None, false),
        (Some(files), Phase::Startup) => {
            let (key, generated) = super::certs::load_or_generate(files).map_err(tls_error)?;
            (Some(key), generated)
        }
        (Some(files), Phase::Reload { self_signed }) => {
            match super::certs::load_on_reload(files, self_signed).map_err(tls_error)? {
                Some(key) => (Some(key), false),
                // Both files still absent: the certificate generated at startup keeps serving.
                None => (None, true),
            }
        }
    };
    let upstream_tls = match config.upstream.protocol {
        super::model::UpstreamProtocol::Https => Some(
            super::certs::upstream_client_config(config.upstream.tls.as_ref())
                .map_err(tls_error)?,
        ),
        _ => None,
    };
    Ok(Loaded {
        config: Arc::new(config),
        config_sha256,
        policy: Arc::new(policy),
        policy_sha256,
        tls,
        tls_self_signed,
        upstream_tls,
        fingerprint,
    })
}

/// Read, parse and compile the policy file named by `config`.
pub fn load_policy(config: &Config) -> Result<(Snapshot, String), ConfigError> {
    let path = &config.policy.path;
    let text = read(path)?;
    let snapshot = compile_policy(&text, config).map_err(|source| ConfigError::Policy {
        path: path.clone(),
        source,
    })?;
    Ok((snapshot, sha256_hex(text.as_bytes())))
}

/// Parse and compile policy text under `config`'s options (pure).
pub fn compile_policy(text: &str, config: &Config) -> Result<Snapshot, policy::PolicyError> {
    let file = policy::parse_policy(text)?;
    Snapshot::compile(
        &file,
        &CompileOptions {
            unknown_tenant_allow: config.policy.unknown_tenant_allow,
            max_vpceps_per_tenant: config.limits.max_vpceps_per_tenant,
        },
    )
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}
