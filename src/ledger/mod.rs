//! The ledger: every batch and payout, their states and history, in one SQLite file.
//!
//! Owns all SQL, the migrations, the single-writer lock and transactions. It makes no HTTP
//! calls, parses no CSV, and never reads the clock: callers pass `now`, so time stays testable.
//! Every state change goes through [`crate::payout::transition`].

mod batches;
mod ingest;
mod lock;
mod payees;
mod report;
mod send;
mod summary;
mod tracking;
mod transitions;

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use rusqlite::{Connection, OpenFlags};
use rusqlite_migration::{M, Migrations};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use batches::{Approval, DestinationTotal, PayoutLine};
pub use ingest::{
    ExistingBatch, IngestTx, NewBatch, NewPayout, RowBuffer, correlation_id, new_batch_key,
    parse_correlation_id,
};
pub use lock::{LockError, WriterLock, lock_path_for};
pub use payees::{NewPayee, Payee};
pub use report::{BatchSelection, PayoutRecord, ReadSnapshot, ReconcilePayout, ReportBatch, text};
pub use send::{DuePayout, RecordedOutcome, SendOutcome};
pub use summary::{BatchRow, StateTotal, Summary};
pub use tracking::spool::{
    EventFate, IncomingEvent, Spool, SpoolCounts, SpooledEvent, StoredSubscription, spool_path_for,
};
pub use tracking::{
    FailureDetails, Observation, ObservationOutcome, PollTimes, TrackedPayout, TrackingCounts,
};
pub use transitions::Provenance;

/// The schema, oldest first; the ledger's `user_version` counts how many are applied.
const MIGRATION_FILES: &[&str] = &[
    include_str!("../../migrations/0001_ledger.sql"),
    include_str!("../../migrations/0002_tracking.sql"),
    include_str!("../../migrations/0003_payees.sql"),
];

static MIGRATIONS: LazyLock<Migrations<'static>> =
    LazyLock::new(|| Migrations::new(MIGRATION_FILES.iter().map(|sql| M::up(sql)).collect()));

/// An open ledger. A writer holds the [`WriterLock`]; a reader does not and may run beside it.
#[derive(Debug)]
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    _lock: Option<WriterLock>,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error("no ledger at {}; ingest a payout file first (or pass --ledger)", .0.display())]
    Missing(PathBuf),
    #[error("ledger {}: {source}", .path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("ledger {}: cannot apply the schema: {source}", .path.display())]
    Migration {
        path: PathBuf,
        source: rusqlite_migration::Error,
    },
    #[error("ledger {}: {message}", .path.display())]
    Invalid { path: PathBuf, message: String },
}

pub type Result<T, E = LedgerError> = std::result::Result<T, E>;

impl Ledger {
    /// Opens (creating if needed) the ledger for writing. Fails at once, naming the holder's pid,
    /// if another process is writing it.
    pub fn open_writer(path: &Path) -> Result<Ledger> {
        let lock = WriterLock::acquire(path)?;
        let mut conn = Connection::open(path).map_err(|source| sqlite_error(path, source))?;
        configure(&conn, path)?;
        MIGRATIONS
            .to_latest(&mut conn)
            .map_err(|source| LedgerError::Migration {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Ledger {
            conn,
            path: path.to_path_buf(),
            _lock: Some(lock),
        })
    }

    /// An empty ledger in memory, with the schema and no lock: for dry runs (`payrun plan`)
    /// that must go through exactly the checks of a real ingest and leave no trace.
    pub fn open_scratch() -> Result<Ledger> {
        let path = PathBuf::from(":memory:");
        let mut conn =
            Connection::open_in_memory().map_err(|source| sqlite_error(&path, source))?;
        MIGRATIONS
            .to_latest(&mut conn)
            .map_err(|source| LedgerError::Migration {
                path: path.clone(),
                source,
            })?;
        Ok(Ledger {
            conn,
            path,
            _lock: None,
        })
    }

    /// Opens an existing ledger for reading, without the writer lock; WAL lets it read a
    /// consistent snapshot while a writer works.
    pub fn open_reader(path: &Path) -> Result<Ledger> {
        if !path.exists() {
            return Err(LedgerError::Missing(path.to_path_buf()));
        }
        // Read-write but query-only: after a writer was killed, SQLite must recover the WAL
        // index before anyone can read, and a read-only connection cannot ("attempt to write a
        // readonly database"). A file the user may only read falls back to read-only.
        let conn = match Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ) {
            Ok(conn) => {
                conn.pragma_update(None, "query_only", true)
                    .map_err(|source| sqlite_error(path, source))?;
                conn
            }
            Err(_) => Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|source| sqlite_error(path, source))?,
        };
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|source| sqlite_error(path, source))?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|source| sqlite_error(path, source))?;
        let latest = MIGRATION_FILES.len() as i64;
        if version != latest {
            return Err(LedgerError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "schema version {version}, this payrun expects {latest}; run any writing command once to upgrade"
                ),
            });
        }
        Ok(Ledger {
            conn,
            path: path.to_path_buf(),
            _lock: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, source: rusqlite::Error) -> LedgerError {
        sqlite_error(&self.path, source)
    }
}

fn configure(conn: &Connection, path: &Path) -> Result<()> {
    // WAL lets readers work beside the writer. A 16 MiB page cache keeps the hot B-tree pages
    // of a large ingest in memory instead of spilling them to the WAL again and again. FULL syncs the WAL at each commit: the sender
    // groups many payouts per commit, so durability costs one fsync per group, not per payout.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -16384;",
    )
    .map_err(|source| sqlite_error(path, source))?;
    // The writer lock makes us the only writer; a reader's checkpoint may still take a moment.
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|source| sqlite_error(path, source))?;
    Ok(())
}

pub(crate) fn sqlite_error(path: &Path, source: rusqlite::Error) -> LedgerError {
    LedgerError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// The ledger's one text form for instants: UTC, milliseconds, fixed width, so that text order
/// is time order.
pub fn timestamp(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let at = at
        .replace_nanosecond(at.millisecond() as u32 * 1_000_000)
        .unwrap_or(at);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format)
        .unwrap_or_else(|_| at.format(&Rfc3339).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        MIGRATIONS.validate().unwrap();
    }

    #[test]
    fn timestamps_are_fixed_width_utc() {
        let at = time::macros::datetime!(2026-11-20 23:24:21.1234 +02:00);
        assert_eq!(timestamp(at), "2026-11-20T21:24:21.123Z");
    }
}
