//! Talking to etcd: connecting with the configured timeouts, TLS and auth, the consistent
//! paginated read of the prefix, and batched pushes. Every call is bounded by
//! `policy.etcd.request_timeout` (or `dial_timeout` to connect): no wait on etcd is unbounded.
//!
//! Network I/O only; no policy semantics (`records.rs`) and no publication (`sync.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions, SortOrder, SortTarget, Txn, TxnOp};

use crate::config::model::EtcdSettings;
use crate::store::records::{Change, Records};

/// Why etcd could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// etcd answered with an error, or the connection failed.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// etcd did not answer within the configured timeout.
    #[error("etcd did not answer within {0:?}")]
    Timeout(Duration),
    /// A local file the connection needs (TLS, password) could not be read.
    #[error("{0}")]
    Setup(String),
}

/// A record as read: its value and the revision it was last modified at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

/// Keys read per page: well below etcd's 1.5 MiB response cap for records of a few hundred bytes.
const PAGE: i64 = 2_000;

/// Operations per transaction: etcd's default `--max-txn-ops` is 128.
pub const MAX_TXN_OPS: usize = 128;

/// Run `f` under `limit`.
pub async fn bounded<T>(
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r.map_err(StoreError::Etcd),
        Err(_) => Err(StoreError::Timeout(limit)),
    }
}

/// Connect to the configured endpoints (bounded by `dial_timeout`). Requests on the client are
/// bounded by `request_timeout`, and HTTP/2 keep-alives notice a silent peer within about
/// `dial_timeout` + 1 s, so a watch on a dead member fails instead of waiting forever.
pub async fn connect(s: &EtcdSettings) -> Result<Client, StoreError> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(s.dial_timeout)
        .with_timeout(s.request_timeout)
        .with_keep_alive(Duration::from_secs(1), s.dial_timeout)
        .with_keep_alive_while_idle(true);
    if let Some(user) = &s.username {
        let password = match &s.password_file {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| StoreError::Setup(format!("{}: {e}", p.display())))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
            None => String::new(),
        };
        opts = opts.with_user(user.clone(), password);
    }
    if let Some(tls) = &s.tls {
        opts = opts.with_tls(tls_options(tls)?);
    }
    // The whole dial, auth included, is bounded (the connect timeout is per attempt).
    let limit = s.dial_timeout + s.request_timeout;
    bounded(limit, Client::connect(s.endpoints.clone(), Some(opts))).await
}

fn tls_options(
    t: &crate::config::model::ClientTlsFiles,
) -> Result<etcd_client::TlsOptions, StoreError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| StoreError::Setup(format!("{}: {e}", p.display())))
    };
    let mut o = etcd_client::TlsOptions::new();
    if let Some(ca) = &t.ca {
        o = o.ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
    }
    if let (Some(cert), Some(key)) = (&t.cert, &t.key) {
        o = o.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(o)
}

/// The end of the key range that holds every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// One consistent read of every key under `prefix`, paginated, every page at the revision of
/// the first: `(revision, key relative to the prefix → entry)`. A key that is not UTF-8 is
/// kept under a lossy name, so that it fails decoding with its name rather than vanish.
pub async fn read_all(
    client: &Client,
    prefix: &str,
    limit: Duration,
) -> Result<(i64, BTreeMap<String, Entry>), StoreError> {
    let mut kv = client.kv_client();
    let end = prefix_end(prefix.as_bytes());
    let mut out = BTreeMap::new();
    let mut from = prefix.as_bytes().to_vec();
    let mut revision = 0;
    loop {
        let mut opts = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
        if revision > 0 {
            opts = opts.with_revision(revision);
        }
        let mut resp = bounded(limit, kv.get(from.clone(), Some(opts))).await?;
        if revision == 0 {
            revision = resp.header().map_or(0, |h| h.revision());
        }
        let more = resp.more();
        let kvs = resp.take_kvs();
        let Some(last) = kvs.last().map(|k| k.key().to_vec()) else {
            break;
        };
        for k in kvs {
            let key = String::from_utf8_lossy(&k.key()[prefix.len()..]).into_owned();
            let mod_revision = k.mod_revision();
            let (_, value) = k.into_key_value();
            out.insert(
                key,
                Entry {
                    value,
                    mod_revision,
                },
            );
        }
        if !more {
            break;
        }
        from = last;
        from.push(0);
    }
    Ok((revision, out))
}

/// The newest mod revision of any key under `prefix` (0 when empty): how far a local copy must
/// have caught up before a guarded write can succeed.
pub fn newest_op(prefix: &str) -> TxnOp {
    TxnOp::get(
        prefix.as_bytes().to_vec(),
        Some(
            GetOptions::new()
                .with_range(prefix_end(prefix.as_bytes()))
                .with_keys_only()
                .with_sort(SortTarget::Mod, SortOrder::Descend)
                .with_limit(1),
        ),
    )
}

/// The op that applies `c` under `prefix`.
pub fn op(prefix: &str, c: &Change) -> TxnOp {
    match c {
        Change::Put { key, value } => TxnOp::put(format!("{prefix}{key}"), value.clone(), None),
        Change::Delete { key } => TxnOp::delete(format!("{prefix}{key}"), None),
    }
}

/// Make the keys under `prefix` hold exactly `records` (`policy push`): the difference from
/// what is there, in transactions of at most [`MAX_TXN_OPS`] operations, parents before
/// children. Not one transaction (etcd caps its size): watchers may see the states between
/// batches, and keep their last good rules while one does not validate. Returns the number of
/// changes and the revision of the last batch.
pub async fn push(
    client: &Client,
    prefix: &str,
    records: &Records,
    limit: Duration,
) -> Result<(usize, i64), StoreError> {
    let (mut revision, current) = read_all(client, prefix, limit).await?;
    let current: Records = current.into_iter().map(|(k, e)| (k, e.value)).collect();
    let changes = crate::store::records::diff(&current, records);
    let mut kv = client.kv_client();
    for batch in changes.chunks(MAX_TXN_OPS) {
        let ops: Vec<TxnOp> = batch.iter().map(|c| op(prefix, c)).collect();
        let resp = bounded(limit, kv.txn(Txn::new().and_then(ops))).await?;
        revision = resp.header().map_or(revision, |h| h.revision());
    }
    Ok((changes.len(), revision))
}
