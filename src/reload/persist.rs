//! Persistence of the policy file: applying a mutation to the version on disk (hand edits are
//! the base, never overwritten), validating the whole result, and writing it atomically.
//!
//! Blocking file I/O: called on blocking threads by the writer task, never on a runtime worker.

use std::path::{Path, PathBuf};

use super::{Mutation, WriteError, compile_options};
use crate::config::Config;
use crate::config::load::sha256_hex;
use crate::policy::{PolicyError, Snapshot, parse_policy, render_policy};

/// What a mutation wrote.
pub(super) struct Written {
    pub(super) snapshot: Snapshot,
    pub(super) sha256: String,
}

/// Read the policy file, apply `apply`, validate, write atomically. Blocking. `None` when the
/// mutation refused itself: nothing was written.
pub(super) fn write_mutation(
    config: &Config,
    current: &Snapshot,
    current_sha: &str,
    apply: Mutation,
) -> Result<Option<Written>, WriteError> {
    let path = &config.policy.path;
    let text = std::fs::read_to_string(path).map_err(|source| WriteError::Unreadable {
        path: path.clone(),
        source,
    })?;
    let opts = compile_options(config);
    let mut file = if sha256_hex(text.as_bytes()) == current_sha {
        current.file().clone()
    } else {
        // Edited by hand since it was loaded: that version is the base, if it is valid.
        let changed =
            |e: PolicyError| WriteError::EditedInvalid(e.render(&path.display().to_string()));
        let file = parse_policy(&text).map_err(changed)?;
        Snapshot::compile(&file, &opts).map_err(changed)?;
        file
    };
    if !apply(&mut file) {
        return Ok(None);
    }
    let snapshot = Snapshot::compile(&file, &opts).map_err(WriteError::Invalid)?;
    let rendered = render_policy(&file).map_err(|e| WriteError::Render(e.to_string()))?;
    write_atomically(path, rendered.as_bytes()).map_err(|source| WriteError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(Some(Written {
        snapshot,
        sha256: sha256_hex(rendered.as_bytes()),
    }))
}

/// Replace `path` with `bytes` so that a reader (or a crash) sees the old file or the new one,
/// never a mix: write a temporary file in the same directory, fsync it, rename it over, fsync the
/// directory. A symlinked path is resolved first, so the link survives.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = match real.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(&real) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &real)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Remove temporary files a killed process left beside `path` (`.NAME.PID.tmp`, see
/// [`write_atomically`]); the file itself is always whole, so they hold nothing to recover.
pub(super) fn remove_stale_temp_files(path: &Path) {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let (Some(dir), Some(name)) = (real.parent(), real.file_name()) else {
        return;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&prefix) && n.ends_with(".tmp") {
            tracing::info!(file = %e.path().display(), "removing a temporary file left by an interrupted write");
            let _ = std::fs::remove_file(e.path());
        }
    }
}
