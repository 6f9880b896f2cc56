//! The drop folder: which files are ready, and the moves that tell finance staff what happened.
//!
//! A file moves from the inbox to `processing/` before it is ingested, then to `archive/`
//! (ingested, or recognised as already ingested) or to `rejected/` with an `.errors.txt` beside
//! it naming each line and problem. A run killed at any point leaves the file in the inbox or in
//! `processing/`, and the next run takes it from there; the ledger's content hash makes a second
//! ingest of the same bytes a no-op, so no file is paid twice or skipped.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use crate::config::InboxDirs;
use crate::ingest::{self, FileError, IngestOptions, IngestOutcome};
use crate::ledger::IngestLedger;
use crate::money::Cents;

/// What became of one file.
#[derive(Debug, Clone)]
pub enum FileResult {
    Accepted {
        archived: PathBuf,
        batch_id: i64,
        n_payouts: u64,
        total: Cents,
    },
    AlreadyIngested {
        archived: PathBuf,
        batch_id: i64,
    },
    Rejected {
        moved_to: PathBuf,
        errors_file: PathBuf,
        n_errors: u64,
    },
    /// A symbolic link, a folder or another entry that is not a regular file: never read,
    /// moved to `rejected/` with an errors file that says what it is.
    NotAFile {
        kind: &'static str,
        moved_to: PathBuf,
        errors_file: PathBuf,
    },
}

/// What is in the inbox now.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Files to take, oldest first (those left in `processing/` first).
    pub ready: Vec<PathBuf>,
    /// Files changed too recently to take yet.
    pub settling: Vec<Settling>,
    /// Entries that are not regular files, with what they are.
    pub not_files: Vec<(PathBuf, &'static str)>,
}

/// A file not taken yet because it may still be being written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settling {
    pub path: PathBuf,
    /// How long ago it last changed.
    pub changed_ago: Duration,
    /// How long it must stay unchanged before it is taken.
    pub remaining: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("{action} {}: {source}", crate::names::shown(.path))]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Ingest(#[from] ingest::IngestError),
}

fn io_error<'p>(
    action: &'static str,
    path: &'p Path,
) -> impl FnOnce(std::io::Error) -> InboxError + 'p {
    move |source| InboxError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Creates the inbox and its folders if they are missing.
pub fn create_dirs(dirs: &InboxDirs) -> Result<(), InboxError> {
    for dir in [
        &dirs.inbox,
        &dirs.processing,
        &dirs.archive,
        &dirs.rejected,
        &dirs.reports,
    ] {
        fs::create_dir_all(dir).map_err(io_error("cannot create the folder", dir))?;
    }
    Ok(())
}

/// Whether a name is one payrun never takes: hidden files and files still being written
/// under a temporary name.
pub fn is_ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with(".part")
        || name.ends_with(".tmp")
        || name.ends_with('~')
}

/// Files ready to take, oldest first: everything left in `processing/` by an interrupted run,
/// then inbox files that have not changed for `stable_for` (a file renamed in keeps its old
/// modification time, so it is ready at once).
pub fn ready_files(
    dirs: &InboxDirs,
    stable_for: Duration,
    now: SystemTime,
) -> Result<Vec<PathBuf>, InboxError> {
    Ok(scan(dirs, stable_for, now)?.ready)
}

/// The inbox sorted into files ready to take, files still settling, and entries that are not
/// regular files. payrun's own folders inside the inbox, hidden and temporary names are none
/// of these.
pub fn scan(dirs: &InboxDirs, stable_for: Duration, now: SystemTime) -> Result<Scan, InboxError> {
    let (mut ready, _) = entries_in(&dirs.processing, dirs)?;
    let (files, not_files) = entries_in(&dirs.inbox, dirs)?;
    let mut stable: Vec<(SystemTime, PathBuf)> = Vec::new();
    let mut settling = Vec::new();
    for path in files {
        let metadata = fs::metadata(&path).map_err(io_error("cannot read", &path))?;
        let modified = metadata.modified().unwrap_or(now);
        let changed_ago = now.duration_since(modified).unwrap_or_default();
        if changed_ago >= stable_for {
            stable.push((modified, path));
        } else {
            settling.push(Settling {
                path,
                changed_ago,
                remaining: stable_for - changed_ago,
            });
        }
    }
    stable.sort();
    ready.extend(stable.into_iter().map(|(_, path)| path));
    Ok(Scan {
        ready,
        settling,
        not_files,
    })
}

/// The regular files of `dir`, and its other entries with what they are.
#[allow(clippy::type_complexity)]
fn entries_in(
    dir: &Path,
    dirs: &InboxDirs,
) -> Result<(Vec<PathBuf>, Vec<(PathBuf, &'static str)>), InboxError> {
    let (mut files, mut others) = (Vec::new(), Vec::new());
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok((files, others)),
        Err(err) => return Err(io_error("cannot list", dir)(err)),
    };
    for entry in entries {
        let entry = entry.map_err(io_error("cannot list", dir))?;
        let path = entry.path();
        if is_ignored(&entry.file_name().to_string_lossy()) || is_own_folder(dirs, &path) {
            continue;
        }
        // The entry's own type: a symbolic link is one, whatever it points to.
        let kind = entry.file_type().map_err(io_error("cannot read", &path))?;
        if kind.is_file() {
            files.push(path);
        } else if kind.is_symlink() {
            others.push((path, "a symbolic link"));
        } else if kind.is_dir() {
            others.push((path, "a folder"));
        } else {
            others.push((path, "a special file (a pipe, socket or device)"));
        }
    }
    files.sort();
    others.sort();
    Ok((files, others))
}

fn is_own_folder(dirs: &InboxDirs, path: &Path) -> bool {
    [
        &dirs.processing,
        &dirs.archive,
        &dirs.rejected,
        &dirs.reports,
    ]
    .iter()
    .any(|own| own.as_path() == path)
}

/// Moves an entry that is not a regular file to `rejected/`, with an errors file saying what
/// it is: payrun never reads through a link or into a folder, and says so rather than skip it.
pub fn reject_entry(
    dirs: &InboxDirs,
    path: &Path,
    kind: &'static str,
    now: OffsetDateTime,
) -> Result<FileResult, InboxError> {
    let name = path
        .file_name()
        .map_or_else(|| "entry".to_string(), |n| n.to_string_lossy().into_owned());
    let moved_to = free_name(&dirs.rejected, &format!("{}-{name}", now.unix_timestamp()));
    let errors_file = PathBuf::from(format!("{}.errors.txt", moved_to.display()));
    let text = format!(
        "{} was not taken; nothing of it was paid. It is {kind}, and payrun takes only regular \
         files: drop the payout file itself (not a link to it) into the inbox.\n",
        crate::names::escape(&name)
    );
    write_text(&errors_file, &text)?;
    fs::rename(path, &moved_to).map_err(io_error("cannot move into rejected/", path))?;
    Ok(FileResult::NotAFile {
        kind,
        moved_to,
        errors_file,
    })
}

/// Takes one ready file through ingest and moves it to where it belongs.
pub fn take_file(
    ledger: &mut impl IngestLedger,
    dirs: &InboxDirs,
    path: &Path,
    options: &IngestOptions,
    now: OffsetDateTime,
) -> Result<FileResult, InboxError> {
    let name = path
        .file_name()
        .map_or_else(|| "file".to_string(), |n| n.to_string_lossy().into_owned());
    let processing = if path.parent() == Some(dirs.processing.as_path()) {
        path.to_path_buf()
    } else {
        let target = free_name(&dirs.processing, &name);
        fs::rename(path, &target).map_err(io_error("cannot move into processing/", path))?;
        target
    };
    let outcome = ingest::ingest_file(ledger, &processing, options, now)?;
    let stamp = now.unix_timestamp();
    match outcome {
        IngestOutcome::Accepted {
            batch_id,
            n_payouts,
            total,
            ..
        } => {
            let archived = free_name(&dirs.archive, &format!("batch-{batch_id}-{name}"));
            fs::rename(&processing, &archived)
                .map_err(io_error("cannot move into archive/", &processing))?;
            Ok(FileResult::Accepted {
                archived,
                batch_id,
                n_payouts,
                total,
            })
        }
        IngestOutcome::AlreadyIngested(existing) => {
            let archived = free_name(
                &dirs.archive,
                &format!("duplicate-of-batch-{}-{stamp}-{name}", existing.id),
            );
            fs::rename(&processing, &archived)
                .map_err(io_error("cannot move into archive/", &processing))?;
            Ok(FileResult::AlreadyIngested {
                archived,
                batch_id: existing.id,
            })
        }
        IngestOutcome::Invalid { errors, n_errors } => {
            let moved_to = free_name(&dirs.rejected, &format!("{stamp}-{name}"));
            let errors_file = PathBuf::from(format!("{}.errors.txt", moved_to.display()));
            write_errors(&errors_file, &name, &errors, n_errors)?;
            fs::rename(&processing, &moved_to)
                .map_err(io_error("cannot move into rejected/", &processing))?;
            Ok(FileResult::Rejected {
                moved_to,
                errors_file,
                n_errors,
            })
        }
    }
}

/// The errors file beside a rejected file, written whole before the file is moved, so that
/// whoever sees the file also sees why.
fn write_errors(
    path: &Path,
    name: &str,
    errors: &[FileError],
    n_errors: u64,
) -> Result<(), InboxError> {
    let mut text = format!(
        "{name} was rejected; nothing of it was paid. Fix these problems and drop it again:\n\n"
    );
    for error in errors {
        let location = match &error.problem.column {
            Some(column) => format!("line {}, {column}", error.line),
            None => format!("line {}", error.line),
        };
        text.push_str(&format!("{location}: {}\n", error.problem.message));
    }
    if n_errors > errors.len() as u64 {
        text.push_str(&format!(
            "... and {}\n",
            crate::names::plural(n_errors - errors.len() as u64, "more problem")
        ));
    }
    write_text(path, &text)
}

/// Writes `text` to `path` whole or not at all (temporary file, sync, rename).
fn write_text(path: &Path, text: &str) -> Result<(), InboxError> {
    let temporary = path.with_extension("tmp");
    let mut file = fs::File::create(&temporary).map_err(io_error("cannot write", &temporary))?;
    file.write_all(text.as_bytes())
        .map_err(io_error("cannot write", &temporary))?;
    file.sync_all()
        .map_err(io_error("cannot write", &temporary))?;
    fs::rename(&temporary, path).map_err(io_error("cannot write", path))
}

/// `dir/name`, or `dir/name.1`, `dir/name.2`, ... if that is taken: a move never overwrites.
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|n| dir.join(format!("{name}.{n}")))
        .find(|p| !p.exists())
        .expect("some name is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_and_hidden_names_are_never_taken() {
        for name in [
            ".payroll.csv",
            "payroll.csv.part",
            "payroll.tmp",
            "payroll.csv~",
        ] {
            assert!(is_ignored(name), "{name}");
        }
        assert!(!is_ignored("payroll.csv"));
    }

    #[test]
    fn only_files_unchanged_for_the_stable_period_are_ready() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = InboxDirs::new(dir.path(), &Default::default());
        create_dirs(&dirs).unwrap();
        fs::write(dirs.inbox.join("old.csv"), "x").unwrap();
        fs::write(dirs.inbox.join("fresh.csv.part"), "x").unwrap();
        fs::write(dirs.processing.join("interrupted.csv"), "x").unwrap();
        let now = SystemTime::now();
        let ready = ready_files(&dirs, Duration::from_secs(60), now).unwrap();
        assert_eq!(
            ready,
            vec![dirs.processing.join("interrupted.csv")],
            "old.csv was just written"
        );
        let later = now + Duration::from_secs(120);
        let ready = ready_files(&dirs, Duration::from_secs(60), later).unwrap();
        assert_eq!(
            ready,
            vec![
                dirs.processing.join("interrupted.csv"),
                dirs.inbox.join("old.csv")
            ]
        );
    }
}
