//! The ledger: every batch and payout, their states and history, in one SQLite file.
//!
//! Owns all SQL, the migrations, the single-writer lock and transactions. It makes no HTTP
//! calls, parses no CSV, and never reads the clock: callers pass `now`, so time stays testable.
//! Every state change goes through [`crate::payout::transition`].

mod batches;
mod cycle;
mod engine;
mod ingest;
mod lock;
mod payday;
mod payees;
mod place;
pub mod postgres;
mod repeat;
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
pub use cycle::CycleLedger;
pub use engine::{
    BatchWriter, IngestLedger, OperatorLedger, ReconcileLedger, ReportLedger, SendLedger,
};
pub use engine::{PayeeLedger, PlanLedger};
pub use ingest::{
    BatchIdentity, ExistingBatch, IngestTx, NewBatch, NewPayout, RowBuffer, batch_and_line,
    correlation_id, new_batch_key, parse_correlation_id, payout_id,
};
pub use lock::{LockError, WriterLock, lock_path_for};
pub use payday::{BatchSchedule, CancelReport, HoldChange, LateBatch, WaitingBatch};
pub use payees::{NewPayee, Payee};
pub use place::LedgerPlace;
pub use repeat::{RepeatCandidate, RepeatOverlap};
pub use report::{BatchSelection, PayoutRecord, ReadSnapshot, ReconcilePayout, ReportBatch, text};
pub use send::{DuePayout, RecordedOutcome, SendOutcome, Unsent};
pub use summary::{BatchRow, StateTotal, Summary};
pub use tracking::spool::{
    EventFate, EventSpool, IncomingEvent, Spool, SpoolCounts, SpooledEvent, StoredSubscription,
    spool_path_for,
};
pub use tracking::{
    FailureDetails, Observation, ObservationOutcome, PollTimes, TrackLedger, TrackedPayout,
    TrackingCounts,
};
pub use transitions::Provenance;

/// The schema, oldest first; the ledger's `user_version` counts how many are applied.
const MIGRATION_FILES: &[&str] = &[
    include_str!("../../migrations/0001_ledger.sql"),
    include_str!("../../migrations/0002_tracking.sql"),
    include_str!("../../migrations/0003_payees.sql"),
    include_str!("../../migrations/0004_payouts_state_check.sql"),
    include_str!("../../migrations/0005_payday.sql"),
];

/// Each migration checks foreign keys before it commits: they are off while it runs (see
/// [`migrate`]), so that a table can be rebuilt the way SQLite documents.
static MIGRATIONS: LazyLock<Migrations<'static>> = LazyLock::new(|| {
    Migrations::new(
        MIGRATION_FILES
            .iter()
            .map(|sql| M::up(sql).foreign_key_check())
            .collect(),
    )
});

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
    #[error("no ledger at {}; ingest a payout file first (or pass --ledger)", crate::names::shown(.0))]
    Missing(PathBuf),
    #[error("ledger {}: {source}", crate::names::shown(.path))]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("ledger {}: cannot apply the schema: {source}", crate::names::shown(.path))]
    Migration {
        path: PathBuf,
        source: rusqlite_migration::Error,
    },
    #[error("ledger {}: {message}", crate::names::shown(.path))]
    Invalid { path: PathBuf, message: String },
    /// `url` is shown without its password.
    #[error("ledger {url}: {source}")]
    Postgres {
        url: String,
        source: tokio_postgres::Error,
    },
}

pub type Result<T, E = LedgerError> = std::result::Result<T, E>;

impl Ledger {
    /// Opens (creating if needed) the ledger for writing. Fails at once, naming the holder's pid,
    /// if another process is writing it.
    pub fn open_writer(path: &Path) -> Result<Ledger> {
        check_path(path)?;
        let lock = WriterLock::acquire(path)?;
        let mut conn = Connection::open(path).map_err(|source| sqlite_error(path, source))?;
        configure(&conn, path)?;
        migrate(&mut conn, path)?;
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
        migrate(&mut conn, &path)?;
        Ok(Ledger {
            conn,
            path,
            _lock: None,
        })
    }

    /// Opens an existing ledger for reading, without the writer lock; WAL lets it read a
    /// consistent snapshot while a writer works. It works on a ledger the user may only read
    /// (see [`open_read_only`]).
    pub fn open_reader(path: &Path) -> Result<Ledger> {
        if !path.exists() {
            return Err(LedgerError::Missing(path.to_path_buf()));
        }
        check_path(path)?;
        // Read-write but query-only: after a writer was killed, SQLite must recover the WAL
        // index before anyone can read, and a read-only connection cannot always do that.
        // (SQLite opens a file the user may not write read-only even when asked for
        // read-write; the first read then fails and the read-only ways are tried.)
        let read_write = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|conn| {
            conn.pragma_update(None, "query_only", true)?;
            let version = schema_version(&conn)?;
            Ok((conn, version))
        });
        let (conn, version) = match read_write {
            Ok(opened) => opened,
            Err(_) => open_read_only(path)?,
        };
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

/// Brings the schema up to date. Foreign keys are off while migrations run, as SQLite's table
/// rebuild requires (the pragma is a no-op inside their transactions), and every migration runs
/// `PRAGMA foreign_key_check` before it commits; they are on for everything after.
fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    conn.pragma_update(None, "foreign_keys", false)
        .map_err(|source| sqlite_error(path, source))?;
    MIGRATIONS
        .to_latest(conn)
        .map_err(|source| LedgerError::Migration {
            path: path.to_path_buf(),
            source,
        })?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(|source| sqlite_error(path, source))
}

fn configure(conn: &Connection, path: &Path) -> Result<()> {
    // WAL lets readers work beside the writer. A 16 MiB page cache keeps the hot B-tree pages
    // of a large ingest in memory instead of spilling them to the WAL again and again. FULL
    // syncs the WAL at each commit: the sender groups many payouts per commit, so durability
    // costs one fsync per group, not per payout.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA cache_size = -16384;",
    )
    .map_err(|source| sqlite_error(path, source))?;
    // The writer lock makes us the only writer; a reader's checkpoint may still take a moment.
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|source| sqlite_error(path, source))?;
    Ok(())
}

/// The checks SQLite's own messages make obscure: a ledger path that is a folder ("disk I/O
/// error"), or one whose folder does not exist ("No such file or directory", about a lock file).
fn check_path(path: &Path) -> Result<()> {
    let invalid = |message: String| LedgerError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    if path.is_dir() {
        return Err(invalid(
            "is a folder, not a ledger file; pass the file, e.g. --ledger DIR/payrun.db".into(),
        ));
    }
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(invalid(format!(
            "the folder {} does not exist; create it first or choose another --ledger",
            crate::names::shown(parent)
        )));
    }
    Ok(())
}

fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// A read-only connection for a user who may only read the ledger and perhaps its folder.
///
/// SQLite reads a WAL database read-only when its `-shm` and `-wal` files exist and are
/// readable, or when it may create them; in a folder the user cannot write, with no `-wal`
/// file (the last writer closed cleanly and checkpointed everything), the database file alone
/// is the whole ledger and is opened as immutable. A `-wal` file with changes but no `-shm`
/// beside it in such a folder cannot be read without losing those changes: that is an error
/// saying so, never a silently stale answer.
fn open_read_only(path: &Path) -> Result<(Connection, i64)> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let plain = Connection::open_with_flags(path, flags)
        .and_then(|conn| schema_version(&conn).map(|version| (conn, version)));
    let error = match plain {
        Ok(opened) => return Ok(opened),
        Err(error) => error,
    };
    let wal = sibling(path, "-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    if wal_len > 0 {
        if sibling(path, "-shm").exists() {
            return Err(sqlite_error(path, error));
        }
        return Err(LedgerError::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "its write-ahead log {} holds changes not yet in the ledger file, and reading them needs {}, which cannot be created in this folder; run a payrun command as the ledger's owner once (or give write access to the folder)",
                crate::names::shown(&wal),
                crate::names::shown(&sibling(path, "-shm"))
            ),
        });
    }
    let uri = immutable_uri(path);
    Connection::open_with_flags(&uri, flags | OpenFlags::SQLITE_OPEN_URI)
        .and_then(|conn| schema_version(&conn).map(|version| (conn, version)))
        .map_err(|_| sqlite_error(path, error))
}

/// `payrun.db` -> `payrun.db-wal`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `file:<path>?immutable=1`, with the characters a URI path may not hold percent-encoded.
fn immutable_uri(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut uri = String::from("file:");
    for byte in absolute.as_os_str().as_encoded_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                uri.push(*byte as char)
            }
            other => uri.push_str(&format!("%{other:02X}")),
        }
    }
    uri.push_str("?immutable=1");
    uri
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

    /// The opcodes SQLite would run for `sql`.
    fn opcodes(conn: &Connection, sql: &str) -> Vec<String> {
        let mut explain = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
        // Unbound parameters are NULL, which EXPLAIN never looks at.
        let mut rows = explain.raw_query();
        let mut opcodes = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            opcodes.push(row.get(1).unwrap());
        }
        opcodes
    }

    /// A constraint such as `state IN (<nine names>)` makes SQLite build and free a temporary
    /// B-tree for every row written (see migrations/0004): 40% of an ingest's time.
    #[test]
    fn payout_writes_build_no_temporary_tables() {
        let ledger = Ledger::open_scratch().unwrap();
        for sql in [
            ingest::multi_row_insert_sql(1),
            ingest::multi_row_insert_sql(2),
            "UPDATE payouts SET state = ?2, updated_at = ?3 WHERE id = ?1",
        ] {
            let opcodes = opcodes(&ledger.conn, sql);
            assert!(
                opcodes.iter().any(|op| op == "Insert"),
                "{sql}: {opcodes:?}"
            );
            assert!(
                !opcodes.iter().any(|op| op == "OpenEphemeral"),
                "{sql} builds a temporary table: {opcodes:?}"
            );
        }
    }

    #[test]
    fn the_state_check_still_refuses_unknown_states() {
        let ledger = Ledger::open_scratch().unwrap();
        ledger
            .conn
            .execute_batch(
                "INSERT INTO batches (id, batch_key, file_name, file_sha256, row_count, total_cents, received_at, status)
                 VALUES (1, 'k', 'f.csv', 'sha', 1, 100, 't', 'ready');",
            )
            .unwrap();
        let insert = |state: &str| {
            ledger.conn.execute(
                "INSERT INTO payouts (id, batch_id, line, reference, destination, amount_cents, currency,
                     correlation_id, idempotency_key, state, created_at, updated_at)
                 VALUES ((1 << 32) | 2, 1, 2, 'r', 'd', 100, 'USD', 'c', 'i', ?1, 't', 't')",
                [state],
            )
        };
        let refused = insert("paid").unwrap_err().to_string();
        assert!(refused.contains("CHECK constraint failed"), "{refused}");
        insert("needs_review").unwrap();
    }

    /// A ledger written by payrun before version 4 keeps every payout, its history and its
    /// foreign keys through the rebuild of the payouts table.
    #[test]
    fn upgrading_a_version_3_ledger_keeps_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payrun.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "foreign_keys", false).unwrap();
            Migrations::new(MIGRATION_FILES[..3].iter().map(|sql| M::up(sql)).collect())
                .to_latest(&mut conn)
                .unwrap();
            conn.pragma_update(None, "foreign_keys", true).unwrap();
            conn.execute_batch(
                "INSERT INTO batches (id, batch_key, file_name, file_sha256, row_count, total_cents, received_at, status)
                 VALUES (1, 'a1b2c3d4e5f6', 'payroll.csv', 'sha', 2, 350, '2026-11-20T10:00:00.000Z', 'ready');
                 INSERT INTO payouts (id, batch_id, line, reference, destination, amount_cents, currency,
                     correlation_id, idempotency_key, state, created_at, updated_at, transfer_url,
                     failure_advice, watch_until)
                 VALUES ((1 << 32) | 2, 1, 2, 'E-1', 'fs-1', 100, 'USD', 'pr-a1b2c3d4e5f6-2', 'key-1',
                         'processed', 't0', 't1', 'https://x/transfers/1', NULL, 'w'),
                        ((1 << 32) | 3, 1, 3, 'E-2', 'fs-2', 250, 'USD', 'pr-a1b2c3d4e5f6-3', 'key-2',
                         'failed', 't0', 't2', 'https://x/transfers/2', 'fix_bank_details', NULL);
                 INSERT INTO payout_history (payout_id, at, old_state, new_state, source)
                 VALUES ((1 << 32) | 3, 't2', 'submitted', 'failed', 'webhook:e1');",
            )
            .unwrap();
        }
        let everything = |conn: &Connection| -> Vec<Vec<rusqlite::types::Value>> {
            let mut select = conn.prepare("SELECT * FROM payouts ORDER BY id").unwrap();
            let n = select.column_count();
            select
                .query_map([], |row| (0..n).map(|i| row.get(i)).collect())
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let before = everything(&Connection::open(&path).unwrap());

        let ledger = Ledger::open_writer(&path).unwrap();
        let version: i64 = ledger
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATION_FILES.len() as i64);
        assert_eq!(everything(&ledger.conn), before);
        let history: i64 = ledger
            .conn
            .query_row("SELECT count(*) FROM payout_history", [], |row| row.get(0))
            .unwrap();
        assert_eq!(history, 1);
        let foreign_keys: bool = ledger
            .conn
            .pragma_query_value(None, "foreign_keys", |row| row.get(0))
            .unwrap();
        assert!(foreign_keys, "foreign keys are back on after migrating");
        let orphan = ledger.conn.execute(
            "INSERT INTO payout_history (payout_id, at, old_state, new_state, source)
             VALUES (12345, 't', 'pending', 'cancelled', 'test')",
            [],
        );
        assert!(orphan.is_err(), "history of a payout that does not exist");
        let indexes: Vec<String> = ledger
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'payouts' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(indexes, ["payouts_in_doubt", "payouts_tracked"]);
    }

    /// Version 5 rebuilds batches: every batch keeps its rows, is sendable as before (its
    /// window open since it was received), takes its first send as its sent date, and the
    /// raw file hash may repeat (the same file for another pay date).
    #[test]
    fn upgrading_a_version_4_ledger_keeps_batches_sendable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payrun.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "foreign_keys", false).unwrap();
            Migrations::new(MIGRATION_FILES[..4].iter().map(|sql| M::up(sql)).collect())
                .to_latest(&mut conn)
                .unwrap();
            conn.execute_batch(
                "INSERT INTO batches (id, batch_key, file_name, file_sha256, row_count, total_cents, received_at, status)
                 VALUES (1, 'a1b2c3d4e5f6', 'payroll.csv', 'sha', 1, 100, '2026-11-20T10:00:00.000Z', 'ready'),
                        (2, 'b1b2c3d4e5f6', 'later.csv', 'sha2', 1, 100, '2026-11-21T10:00:00.000Z', 'awaiting_approval');
                 INSERT INTO payouts (id, batch_id, line, reference, destination, amount_cents, currency,
                     correlation_id, idempotency_key, state, created_at, updated_at, first_attempt_at)
                 VALUES ((1 << 32) | 2, 1, 2, 'E-1', 'fs-1', 100, 'USD', 'pr-a1b2c3d4e5f6-2', 'key-1',
                         'processed', 't0', 't1', '2026-11-20T10:05:00.000Z'),
                        ((2 << 32) | 2, 2, 2, 'E-1', 'fs-1', 100, 'USD', 'pr-b1b2c3d4e5f6-2', 'key-2',
                         'pending', 't0', 't0', NULL);",
            )
            .unwrap();
        }
        let ledger = Ledger::open_writer(&path).unwrap();
        let rows: Vec<(i64, String, Option<String>, Option<String>)> = ledger
            .conn
            .prepare("SELECT id, status, send_open_at, sent_at FROM batches ORDER BY id")
            .unwrap()
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (
                    1,
                    "ready".to_string(),
                    Some("2026-11-20T10:00:00.000Z".to_string()),
                    Some("2026-11-20T10:05:00.000Z".to_string())
                ),
                (
                    2,
                    "awaiting_approval".to_string(),
                    Some("2026-11-21T10:00:00.000Z".to_string()),
                    None
                ),
            ]
        );
        ledger
            .conn
            .execute_batch(
                "INSERT INTO batches (id, batch_key, file_name, file_sha256, row_count, total_cents, received_at, status, records_sha256, pay_date)
                 VALUES (3, 'c1b2c3d4e5f6', 'payroll.csv', 'sha', 1, 100, 't', 'ready', 'r', '2026-12-04');",
            )
            .unwrap();
        let same_payroll = ledger.conn.execute_batch(
            "INSERT INTO batches (id, batch_key, file_name, file_sha256, row_count, total_cents, received_at, status, records_sha256, pay_date)
             VALUES (4, 'd1b2c3d4e5f6', 'copy.csv', 'other', 1, 100, 't', 'ready', 'r', '2026-12-04');",
        );
        assert!(
            same_payroll.is_err(),
            "the same records for the same pay date"
        );
    }

    #[test]
    fn timestamps_are_fixed_width_utc() {
        let at = time::macros::datetime!(2026-11-20 23:24:21.1234 +02:00);
        assert_eq!(timestamp(at), "2026-11-20T21:24:21.123Z");
    }
}
