//! Persistence of the policy file: applying a mutation to the version on disk (hand edits are
//! the base, never overwritten), validating the whole result, and writing it atomically.
//!
//! Blocking file I/O: called on blocking threads by the writer task, never on a runtime worker.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

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
///
/// Just before the rename the file is hashed again; if it no longer holds what was read (a hand
/// edit saved meanwhile), nothing is written and the answer is [`WriteError::Edited`]. A window
/// remains between that check and the rename (microseconds, where it was the whole
/// apply-compile-render-fsync before): rename(2) cannot compare-and-swap, and an editor that
/// saves in place has no lock vpcguard could take.
pub(super) fn write_mutation(
    config: &Config,
    current: &Snapshot,
    current_sha: &str,
    mut apply: Mutation,
) -> Result<Option<Written>, WriteError> {
    let path = &config.policy.path;
    let text = std::fs::read_to_string(path).map_err(|source| WriteError::Unreadable {
        path: path.clone(),
        source,
    })?;
    let read_sha = sha256_hex(text.as_bytes());
    let opts = compile_options(config);
    let mut file = if read_sha == current_sha {
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
    // Deleted meanwhile counts as changed: it is not ours to recreate.
    let unchanged = |real: &Path| match std::fs::read(real) {
        Ok(now) => Ok(sha256_hex(&now) == read_sha),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    };
    match replace(path, rendered.as_bytes(), unchanged) {
        Ok(true) => {}
        Ok(false) => return Err(WriteError::Edited { path: path.clone() }),
        Err(source) => {
            return Err(WriteError::Write {
                path: path.clone(),
                source,
            });
        }
    }
    Ok(Some(Written {
        snapshot,
        sha256: sha256_hex(rendered.as_bytes()),
    }))
}

/// Replace `path` with `bytes` so that a reader (or a crash) sees the old file or the new one,
/// never a mix: write a temporary file in the same directory, fsync it, rename it over, fsync the
/// directory. A symlinked path is resolved first, so the link survives.
///
/// The temporary file is `.NAME.XXXXXX.tmp` with a random part, created exclusively
/// (`tempfile`), so two writers of the same file (two processes, or a process and its
/// successor during a restart) never share one; it is removed if anything fails.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace(path, bytes, |_| Ok(true)).map(|_| ())
}

/// [`write_atomically`], calling `proceed` on the resolved path after the temporary file is
/// written and synced and right before the rename: `Ok(false)` from it writes nothing (the
/// temporary file is removed) and returns `Ok(false)`.
fn replace(
    path: &Path,
    bytes: &[u8],
    proceed: impl FnOnce(&Path) -> std::io::Result<bool>,
) -> std::io::Result<bool> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = match real.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Created 0666 & !umask, as File::create would; an existing file's mode is copied below.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.{}-", std::process::id()))
        .suffix(TEMP_SUFFIX)
        .rand_bytes(TEMP_RANDOM)
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(&dir)?;
    if let Ok(meta) = std::fs::metadata(&real) {
        tmp.as_file().set_permissions(meta.permissions())?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    // Dropping `tmp` on any early return below removes the temporary file.
    if !proceed(&real)? {
        return Ok(false);
    }
    tmp.persist(&real).map_err(|e| e.error)?;
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(true)
}

/// Length of the random part of a temporary file's name.
const TEMP_RANDOM: usize = 6;
const TEMP_SUFFIX: &str = ".tmp";
/// A temporary file untouched for this long belongs to no write in progress (a write takes
/// milliseconds, seconds for a 100,000-entry policy on a slow disk), so it is a killed writer's.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// Remove temporary files a killed process left beside `path` (see [`write_atomically`]); the
/// file itself is always whole, so they hold nothing to recover. Only files that are surely
/// stale are removed: named `.NAME.PID-RANDOM.tmp` (or the `RANDOM` / `PID` names of earlier
/// versions), regular files, and either written by a process that no longer runs (a SIGKILLed
/// writer's, removed at the restart) or not modified for [`STALE_AFTER`] — never another live
/// process's write in progress.
pub(super) fn remove_stale_temp_files(path: &Path) {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let (Some(dir), Some(name)) = (real.parent(), real.file_name()) else {
        return;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(middle) = n
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(TEMP_SUFFIX))
        else {
            continue;
        };
        // `PID-RANDOM` (this version), `RANDOM` or `PID` (earlier ones).
        let (pid, random) = match middle.split_once('-') {
            Some((pid, random)) => (Some(pid), random),
            None if middle.bytes().all(|b| b.is_ascii_digit()) => (Some(middle), ""),
            None => (None, middle),
        };
        let ours = random.len() <= 32
            && random.bytes().all(|b| b.is_ascii_alphanumeric())
            && pid.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && !middle.is_empty();
        if !ours {
            continue;
        }
        // A writer that is gone (its pid no longer runs, or it is ours: we just started) left
        // it; otherwise only a file nobody touched for a minute is taken as abandoned.
        let writer_gone = pid.is_some_and(|p| {
            p == std::process::id().to_string() || !Path::new("/proc").join(p).exists()
        });
        // symlink_metadata: a symlink with a matching name is not ours to follow.
        let stale = e.path().symlink_metadata().is_ok_and(|m| {
            m.is_file()
                && (writer_gone
                    || m.modified()
                        .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age >= STALE_AFTER)))
        });
        if stale {
            tracing::info!(file = %e.path().display(), "removing a temporary file left by an interrupted write");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn age(path: &Path, by: Duration) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - by).unwrap();
    }

    #[test]
    fn remove_stale_temp_files_recent_or_unrelated_files_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(&policy, "tenants: []\n").unwrap();
        // (name, age in seconds, removed?)
        let cases: &[(&str, u64, bool)] = &[
            // A killed writer's leftovers, by the old (pid) and the new (random) naming.
            (".policy.yaml.999999998.tmp", 120, true),
            (".policy.yaml.aZ09xy.tmp", 3600, true),
            // Another live process's write in progress (pid 1 always runs): never touched.
            (".policy.yaml.1-bQ7rT2.tmp", 0, false),
            (".policy.yaml.bQ7rT2.tmp", 0, false),
            // A recent write of a process that is gone (the SIGKILL case): removed at once.
            (".policy.yaml.999999999-bQ7rT2.tmp", 0, true),
            // Not ours: another file's temp, an editor's swap file, a name that only looks close.
            (".other.yaml.aZ09xy.tmp", 3600, false),
            (".policy.yaml.swp", 3600, false),
            (".policy.yaml.a.b.tmp", 3600, false),
            (".policy.yaml..tmp", 3600, false),
        ];
        for (name, secs, _) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, "partial").unwrap();
            age(&p, Duration::from_secs(*secs));
        }
        remove_stale_temp_files(&policy);
        for (name, _, removed) in cases {
            assert_eq!(!dir.path().join(name).exists(), *removed, "case {name}");
        }
        assert!(policy.exists());
    }

    #[test]
    fn write_atomically_unique_temp_names_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.yaml");
        std::fs::write(&policy, "old\n").unwrap();
        // A temp file of another writer with the old pid naming is neither reused nor removed.
        let foreign = dir
            .path()
            .join(format!(".policy.yaml.{}.tmp", std::process::id()));
        std::fs::write(&foreign, "another writer's bytes").unwrap();
        write_atomically(&policy, b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&policy).unwrap(), "new\n");
        assert_eq!(
            std::fs::read_to_string(&foreign).unwrap(),
            "another writer's bytes"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }
}
