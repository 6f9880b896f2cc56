//! The webhook event spool: `<ledger>.events`, a SQLite file of its own beside the ledger.
//!
//! `payrun serve` stores every verified event here, durably and deduplicated by event id,
//! before it answers 2xx, and never needs the ledger's writer lock to do so; whichever process
//! holds that lock later applies the pending events to the ledger and marks them done. The
//! spool also keeps the secrets of the webhook subscriptions payrun created, so the file is
//! created readable by its owner only.
//!
//! Its schema is versioned on its own (`user_version`), independent of the ledger's. Several
//! processes may open a new spool at the same moment and each apply the schema, so every
//! statement in it must be idempotent (`IF NOT EXISTS`).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};

use crate::ledger::{LedgerError, Result, sqlite_error};
use crate::secret::Secret;

const SPOOL_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    -- Dwolla's event id: a redelivery or duplicate of the same event is stored once.
    event_id        TEXT PRIMARY KEY,
    topic           TEXT NOT NULL,
    resource_id     TEXT,
    -- _links.resource.href: what to GET.
    resource_url    TEXT,
    correlation_id  TEXT,
    -- The event's own created/timestamp, as Dwolla sent it.
    event_created   TEXT,
    received_at     TEXT NOT NULL,
    -- The exact signed bytes, for audit.
    body            BLOB NOT NULL,
    -- NULL until applied (or ignored); outcome says which.
    applied_at      TEXT,
    outcome         TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS events_pending ON events (next_attempt_at) WHERE applied_at IS NULL;

-- Webhook subscriptions payrun created, with the secret Dwolla signs their deliveries with.
CREATE TABLE IF NOT EXISTS subscriptions (
    id          TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
";

/// Version 2: finished events are pruned by age ([`Spool::prune_finished`]).
const SPOOL_SCHEMA_2: &str = "
CREATE INDEX IF NOT EXISTS events_finished ON events (applied_at) WHERE applied_at IS NOT NULL;
";

/// A verified event as `serve` received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingEvent {
    pub event_id: String,
    pub topic: String,
    pub resource_id: Option<String>,
    pub resource_url: Option<String>,
    pub correlation_id: Option<String>,
    pub event_created: Option<String>,
    pub body: Vec<u8>,
}

/// An event waiting to be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledEvent {
    pub event_id: String,
    pub topic: String,
    pub resource_id: Option<String>,
    pub resource_url: Option<String>,
    pub correlation_id: Option<String>,
    pub attempts: u32,
}

/// What became of an event, for [`Spool::finish`] and [`Spool::retry_later`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFate {
    /// Applied (or found stale, unknown, or not payrun's): `outcome` says which.
    Done { outcome: String },
    /// Could not be applied now (Dwolla unreachable); try again at `at`.
    RetryAt { at: String, error: String },
}

/// A subscription payrun created.
#[derive(Debug, Clone)]
pub struct StoredSubscription {
    pub id: String,
    pub url: String,
    pub secret: Secret,
    pub created_at: String,
}

/// Counts for health checks and summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolCounts {
    pub n_pending: u64,
    pub n_done: u64,
}

/// What `serve`, `track` and the `webhooks` commands need of a spool, whichever engine keeps
/// it: the SQLite file beside a ledger file ([`Spool`]), or tables in the PostgreSQL ledger.
pub trait EventSpool {
    /// Where the spool is, for messages (never a password).
    fn shown(&self) -> String;
    /// Stores events in one transaction; for each, whether it was new.
    fn store(&mut self, events: &[IncomingEvent], now: &str) -> Result<Vec<bool>>;
    /// Events not yet applied whose time has come, oldest first. On an engine shared by
    /// several appliers, the events returned are claimed for a while, so that each event is
    /// applied by one of them (a claim that lapses, its applier gone, returns them).
    fn pending(&mut self, now: &str, limit: usize) -> Result<Vec<SpooledEvent>>;
    /// Records what became of events, in one transaction.
    fn finish(&mut self, fates: &[(String, EventFate)], now: &str) -> Result<()>;
    /// Deletes at most `limit` events finished before `finished_before`; how many.
    fn prune_finished(&mut self, finished_before: &str, limit: usize) -> Result<u64>;
    fn counts(&self) -> Result<SpoolCounts>;
    /// Whether any event is due, claimed or not.
    fn has_pending(&self, now: &str) -> Result<bool>;
    /// The outcome stored for an event (`None` while pending or unknown).
    fn outcome(&self, event_id: &str) -> Result<Option<String>>;
    fn event_ids(&self) -> Result<Vec<String>>;
    fn save_subscription(&mut self, id: &str, url: &str, secret: &Secret, now: &str) -> Result<()>;
    /// Forgets a subscription's secret; returns whether there was one.
    fn remove_subscription(&mut self, id: &str) -> Result<bool>;
    fn subscriptions(&self) -> Result<Vec<StoredSubscription>>;
}

impl EventSpool for Spool {
    fn shown(&self) -> String {
        crate::names::shown(&self.path).to_string()
    }

    fn store(&mut self, events: &[IncomingEvent], now: &str) -> Result<Vec<bool>> {
        Spool::store(self, events, now)
    }

    fn pending(&mut self, now: &str, limit: usize) -> Result<Vec<SpooledEvent>> {
        Spool::pending(self, now, limit)
    }

    fn finish(&mut self, fates: &[(String, EventFate)], now: &str) -> Result<()> {
        Spool::finish(self, fates, now)
    }

    fn prune_finished(&mut self, finished_before: &str, limit: usize) -> Result<u64> {
        Spool::prune_finished(self, finished_before, limit)
    }

    fn counts(&self) -> Result<SpoolCounts> {
        Spool::counts(self)
    }

    fn has_pending(&self, now: &str) -> Result<bool> {
        Spool::has_pending(self, now)
    }

    fn outcome(&self, event_id: &str) -> Result<Option<String>> {
        Spool::outcome(self, event_id)
    }

    fn event_ids(&self) -> Result<Vec<String>> {
        Spool::event_ids(self)
    }

    fn save_subscription(&mut self, id: &str, url: &str, secret: &Secret, now: &str) -> Result<()> {
        Spool::save_subscription(self, id, url, secret, now)
    }

    fn remove_subscription(&mut self, id: &str) -> Result<bool> {
        Spool::remove_subscription(self, id)
    }

    fn subscriptions(&self) -> Result<Vec<StoredSubscription>> {
        Spool::subscriptions(self)
    }
}

#[derive(Debug)]
pub struct Spool {
    conn: Connection,
    path: PathBuf,
}

/// `payrun.db` → `payrun.db.events`.
pub fn spool_path_for(ledger_path: &Path) -> PathBuf {
    let mut name = ledger_path.as_os_str().to_owned();
    name.push(".events");
    PathBuf::from(name)
}

impl Spool {
    /// Opens (creating if needed) the spool at `path`. Any number of processes may have it
    /// open; SQLite serialises their short writes.
    pub fn open(path: &Path) -> Result<Spool> {
        let err = |source| sqlite_error(path, source);
        let existed = path.exists();
        let mut conn = Connection::open(path).map_err(err)?;
        if !existed {
            restrict_to_owner(path);
        }
        // FULL: an event is on disk before serve answers 2xx, so a crash right after loses
        // nothing Dwolla will not resend.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;",
        )
        .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        Migrations::new(vec![M::up(SPOOL_SCHEMA), M::up(SPOOL_SCHEMA_2)])
            .to_latest(&mut conn)
            .map_err(|source| LedgerError::Migration {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Spool {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, source: rusqlite::Error) -> LedgerError {
        sqlite_error(&self.path, source)
    }

    /// Stores events in one transaction; for each, whether it was new (false: a duplicate of
    /// an event already stored).
    pub fn store(&mut self, events: &[IncomingEvent], now: &str) -> Result<Vec<bool>> {
        let path = self.path.clone();
        let err = |e| sqlite_error(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let mut fresh = Vec::with_capacity(events.len());
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO events (event_id, topic, resource_id, resource_url,
                         correlation_id, event_created, received_at, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(err)?;
            for event in events {
                let n = stmt
                    .execute(params![
                        event.event_id,
                        event.topic,
                        event.resource_id,
                        event.resource_url,
                        event.correlation_id,
                        event.event_created,
                        now,
                        event.body
                    ])
                    .map_err(err)?;
                fresh.push(n == 1);
            }
        }
        tx.commit().map_err(err)?;
        Ok(fresh)
    }

    /// Events not yet applied whose time has come, oldest first.
    pub fn pending(&self, now: &str, limit: usize) -> Result<Vec<SpooledEvent>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT event_id, topic, resource_id, resource_url, correlation_id, attempts
                 FROM events
                 WHERE applied_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= ?1)
                 ORDER BY rowid LIMIT ?2",
            )
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map(params![now, limit as i64], |row| {
                Ok(SpooledEvent {
                    event_id: row.get(0)?,
                    topic: row.get(1)?,
                    resource_id: row.get(2)?,
                    resource_url: row.get(3)?,
                    correlation_id: row.get(4)?,
                    attempts: row.get::<_, i64>(5)? as u32,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.error(e))
    }

    /// Records what became of events, in one transaction.
    pub fn finish(&mut self, fates: &[(String, EventFate)], now: &str) -> Result<()> {
        let path = self.path.clone();
        let err = |e| sqlite_error(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut done = tx
                .prepare_cached(
                    "UPDATE events SET applied_at = ?2, outcome = ?3, attempts = attempts + 1,
                         next_attempt_at = NULL WHERE event_id = ?1",
                )
                .map_err(err)?;
            let mut retry = tx
                .prepare_cached(
                    "UPDATE events SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
                     WHERE event_id = ?1",
                )
                .map_err(err)?;
            for (event_id, fate) in fates {
                match fate {
                    EventFate::Done { outcome } => done.execute(params![event_id, now, outcome]),
                    EventFate::RetryAt { at, error } => retry.execute(params![event_id, at, error]),
                }
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Deletes at most `limit` events that were finished before `finished_before`, oldest
    /// first, and returns how many. Pending events are never deleted. A pruned event that
    /// Dwolla delivers again is stored and applied again, which changes nothing in the ledger;
    /// the ledger's history keeps naming it (`webhook:<event id>`).
    pub fn prune_finished(&mut self, finished_before: &str, limit: usize) -> Result<u64> {
        self.conn
            .execute(
                "DELETE FROM events WHERE rowid IN (
                     SELECT rowid FROM events
                     WHERE applied_at IS NOT NULL AND applied_at < ?1
                     ORDER BY applied_at LIMIT ?2)",
                params![finished_before, limit as i64],
            )
            .map(|n| n as u64)
            .map_err(|e| self.error(e))
    }

    pub fn counts(&self) -> Result<SpoolCounts> {
        self.conn
            .query_row(
                "SELECT COALESCE(SUM(applied_at IS NULL), 0), COALESCE(SUM(applied_at IS NOT NULL), 0) FROM events",
                [],
                |row| {
                    Ok(SpoolCounts {
                        n_pending: row.get::<_, i64>(0)? as u64,
                        n_done: row.get::<_, i64>(1)? as u64,
                    })
                },
            )
            .map_err(|e| self.error(e))
    }

    /// Whether any event is waiting, whatever its retry time: a cheap check before taking
    /// the ledger's writer lock.
    pub fn has_pending(&self, now: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM events WHERE applied_at IS NULL
                     AND (next_attempt_at IS NULL OR next_attempt_at <= ?1))",
                [now],
                |row| row.get(0),
            )
            .map_err(|e| self.error(e))
    }

    /// The outcome stored for an event (`None` while pending or unknown).
    pub fn outcome(&self, event_id: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT outcome FROM events WHERE event_id = ?1",
                [event_id],
                |row| row.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.error(e))
    }

    pub fn event_ids(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT event_id FROM events ORDER BY rowid")
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map([], |row| row.get(0))
            .map_err(|e| self.error(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.error(e))
    }

    // --- Subscriptions ---------------------------------------------------------------------

    pub fn save_subscription(
        &mut self,
        id: &str,
        url: &str,
        secret: &Secret,
        now: &str,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO subscriptions (id, url, secret, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![id, url, secret.expose(), now],
            )
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// Forgets a subscription's secret; returns whether there was one.
    pub fn remove_subscription(&mut self, id: &str) -> Result<bool> {
        self.conn
            .execute("DELETE FROM subscriptions WHERE id = ?1", [id])
            .map(|n| n > 0)
            .map_err(|e| self.error(e))
    }

    pub fn subscriptions(&self) -> Result<Vec<StoredSubscription>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, url, secret, created_at FROM subscriptions ORDER BY created_at",
            )
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map([], |row| {
                Ok(StoredSubscription {
                    id: row.get(0)?,
                    url: row.get(1)?,
                    secret: Secret::new(row.get::<_, String>(2)?),
                    created_at: row.get(3)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.error(e))
    }
}

#[cfg(unix)]
fn restrict_to_owner(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict_to_owner(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> IncomingEvent {
        IncomingEvent {
            event_id: id.into(),
            topic: "transfer:pending".into(),
            resource_id: Some("t1".into()),
            resource_url: Some("http://127.0.0.1/transfers/t1".into()),
            correlation_id: None,
            event_created: None,
            body: b"{}".to_vec(),
        }
    }

    #[test]
    fn only_events_finished_before_the_cutoff_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(&dir.path().join("x.events")).unwrap();
        let received = "2026-01-01T00:00:00.000Z";
        spool
            .store(
                &[
                    event("old"),
                    event("older"),
                    event("recent"),
                    event("pending"),
                ],
                received,
            )
            .unwrap();
        let done = |outcome: &str| EventFate::Done {
            outcome: outcome.into(),
        };
        spool
            .finish(
                &[("older".into(), done("applied"))],
                "2026-01-02T00:00:00.000Z",
            )
            .unwrap();
        spool
            .finish(&[("old".into(), done("stale"))], "2026-01-03T00:00:00.000Z")
            .unwrap();
        spool
            .finish(
                &[("recent".into(), done("applied"))],
                "2026-02-10T00:00:00.000Z",
            )
            .unwrap();

        let cutoff = "2026-02-01T00:00:00.000Z";
        assert_eq!(
            spool.prune_finished(cutoff, 1).unwrap(),
            1,
            "the limit holds"
        );
        assert_eq!(spool.event_ids().unwrap(), ["old", "recent", "pending"]);
        assert_eq!(spool.prune_finished(cutoff, 100).unwrap(), 1);
        assert_eq!(spool.event_ids().unwrap(), ["recent", "pending"]);
        assert_eq!(spool.prune_finished(cutoff, 100).unwrap(), 0);
        // Dwolla redelivering a pruned event: stored again, as new.
        assert_eq!(spool.store(&[event("old")], cutoff).unwrap(), [true]);
    }

    #[test]
    fn events_are_stored_once_and_finished_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(&dir.path().join("x.events")).unwrap();
        let now = "2026-01-01T00:00:00.000Z";
        assert_eq!(
            spool
                .store(&[event("a"), event("b"), event("a")], now)
                .unwrap(),
            [true, true, false]
        );
        assert_eq!(spool.store(&[event("b")], now).unwrap(), [false]);
        assert_eq!(spool.pending(now, 10).unwrap().len(), 2);
        let later = "2026-01-01T00:01:00.000Z".to_string();
        spool
            .finish(
                &[
                    (
                        "a".into(),
                        EventFate::Done {
                            outcome: "applied".into(),
                        },
                    ),
                    (
                        "b".into(),
                        EventFate::RetryAt {
                            at: later.clone(),
                            error: "timeout".into(),
                        },
                    ),
                ],
                now,
            )
            .unwrap();
        assert!(spool.pending(now, 10).unwrap().is_empty());
        let again = spool.pending(&later, 10).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 1);
        assert_eq!(spool.outcome("a").unwrap().as_deref(), Some("applied"));
        assert_eq!(
            spool.counts().unwrap(),
            SpoolCounts {
                n_pending: 1,
                n_done: 1
            }
        );
    }

    #[test]
    fn subscription_secrets_are_kept_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.events");
        let mut spool = Spool::open(&path).unwrap();
        spool
            .save_subscription("s1", "http://h/w", &Secret::new("k"), "t")
            .unwrap();
        assert_eq!(spool.subscriptions().unwrap()[0].secret.expose(), "k");
        assert!(spool.remove_subscription("s1").unwrap());
        assert!(!spool.remove_subscription("s1").unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the spool holds secrets: owner only");
        }
    }
}
