//! The single-writer lock: an advisory lock on `<ledger>.lock`, held for the life of a writer.
//! The holder writes its pid into the file so that a second process can say who holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Held while this process may write the ledger; the OS releases it when the process dies,
/// however it dies.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another payrun process (pid {}) is writing this ledger ({}); read-only commands such as `status` still work", pid_text(.pid), crate::names::shown(.lock_path))]
    HeldByOther {
        lock_path: PathBuf,
        pid: Option<u32>,
    },
    #[error("cannot open the lock file {}: {source}", crate::names::shown(.lock_path))]
    Io {
        lock_path: PathBuf,
        source: std::io::Error,
    },
}

fn pid_text(pid: &Option<u32>) -> String {
    pid.map_or_else(|| "unknown".to_string(), |pid| pid.to_string())
}

/// `payrun.db` → `payrun.db.lock`.
pub fn lock_path_for(ledger_path: &Path) -> PathBuf {
    let mut name = ledger_path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl WriterLock {
    /// Takes the lock without waiting: a writer that finds it held must say so at once.
    pub fn acquire(ledger_path: &Path) -> Result<WriterLock, LockError> {
        let lock_path = lock_path_for(ledger_path);
        let io_error = |source| LockError::Io {
            lock_path: lock_path.clone(),
            source,
        };
        // Not truncated on open: the holder's pid must survive until we know we hold the lock.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::HeldByOther {
                    lock_path,
                    pid: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io_error(source)),
        }
        file.set_len(0).map_err(io_error)?;
        file.seek(SeekFrom::Start(0)).map_err(io_error)?;
        writeln!(file, "{}", std::process::id()).map_err(io_error)?;
        file.flush().map_err(io_error)?;
        Ok(WriterLock {
            _file: file,
            path: lock_path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
