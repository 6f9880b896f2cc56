//! The ledger on PostgreSQL: the same records as the SQLite file, for several workers on
//! several machines at once.
//!
//! The driver is tokio-postgres, its connections pooled per process by deadpool-postgres
//! ([`pool`]). They run on one private runtime thread ([`DRIVER`]), and the ledger's calls
//! block on their futures with a plain executor, so they
//! stay synchronous like SQLite's and work from any thread: the sender's blocking pool, the
//! ingest's writer thread, a command outside any runtime. Where SQLite has one writer behind
//! a file lock, PostgreSQL has row claims: see [`send`] and [`workers`].

mod brakes;
mod ingest;
mod payees;
mod plan;
mod pool;
mod report;
mod scratch;
mod send;
mod spool;
mod summary;
mod tls;
mod tracking;
mod transitions;
mod workers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use pool::{LedgerPool, Pooled, invalid_at, pool_error};

pub use report::PgSnapshot;
pub use scratch::ScratchSchema;
pub use spool::EVENT_CLAIM;
pub use tls::{CA_FILE_ENV, ca_file, certificate_hint, is_tls_refusal, read_ca_file, use_ca_file};
pub use workers::{FleetShare, WorkerId};

use super::{LedgerError, Result};

/// The schema, oldest first; `payrun_schema` holds one row per applied file.
const MIGRATION_FILES: &[&str] = &[include_str!("../../../migrations/postgres/0001_ledger.sql")];

/// The advisory lock every worker takes to migrate, so that two starting together migrate once.
const MIGRATION_LOCK: i64 = 0x7061_7972_756e_0001;

/// Drives every connection's socket. One thread is enough: it only moves bytes.
static DRIVER: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("payrun-postgres")
        .enable_all()
        .build()
        .expect("start the PostgreSQL driver thread")
});

/// Whether `text` names a PostgreSQL ledger rather than a SQLite file.
pub fn is_postgres_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// `url` without its password, for messages and logs.
pub fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or("");
            let tail = hide_query_password(tail);
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => format!("{scheme}://{authority}{}", hide_query_password(tail)),
    }
}

fn hide_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.starts_with("password="))
        .collect();
    if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

/// How long a worker's claims hold without a heartbeat, and how often it renews them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leases {
    pub lease: Duration,
    pub heartbeat: Duration,
}

impl Default for Leases {
    fn default() -> Leases {
        Leases {
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(5),
        }
    }
}

/// An open PostgreSQL ledger: one connection of the process's pool, and the worker it claims
/// payouts for.
pub struct PgLedger {
    client: Pooled,
    pool: Arc<LedgerPool>,
    url: Arc<str>,
    shown: Arc<str>,
    worker: Option<WorkerId>,
    leases: Leases,
    /// Set once the connection holds a session-level advisory lock: it then closes when this
    /// ledger goes instead of going back to the pool, so that the server releases the lock.
    holds_session_lock: AtomicBool,
}

impl Drop for PgLedger {
    fn drop(&mut self) {
        if *self.holds_session_lock.get_mut() {
            self.client.close();
        }
    }
}

impl std::fmt::Debug for PgLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLedger")
            .field("url", &self.shown)
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

impl PgLedger {
    /// Connects and brings the schema up to date under the migration lock.
    pub fn open(url: &str) -> Result<PgLedger> {
        let mut ledger = PgLedger::connect(url)?;
        ledger.migrate_once()?;
        Ok(ledger)
    }

    /// Opens a ledger payrun has already made in this database, or `None` where it has not
    /// (no schema yet): for commands that create nothing, as a missing ledger file on SQLite.
    pub fn open_existing(url: &str) -> Result<Option<PgLedger>> {
        let mut ledger = PgLedger::connect(url)?;
        let made: bool = ledger
            .block(
                ledger
                    .client
                    .query_one("SELECT to_regclass('payrun_schema') IS NOT NULL", &[]),
            )?
            .get(0);
        if !made {
            return Ok(None);
        }
        ledger.migrate_once()?;
        Ok(Some(ledger))
    }

    /// A connection from this process's pool for `url`, without migrating; [`open`](Self::open)
    /// once first.
    fn connect(url: &str) -> Result<PgLedger> {
        let shown: Arc<str> = shown_url(url).into();
        let pool = LedgerPool::for_url(url, &shown)?;
        let getting = DRIVER.spawn({
            let connections = pool.connections.clone();
            async move { connections.get().await }
        });
        let object = futures_executor::block_on(getting)
            .map_err(|e| invalid_at(&shown, format!("the connection task failed: {e}")))?
            .map_err(|error| pool_error(&shown, error))?;
        Ok(PgLedger {
            client: Pooled::new(object),
            pool,
            url: url.into(),
            shown,
            worker: None,
            leases: Leases::default(),
            holds_session_lock: AtomicBool::new(false),
        })
    }

    /// Another connection to the same ledger (for the heartbeat, which must not wait behind
    /// the sender's calls, or a spool beside the ledger).
    pub fn reconnect(&self) -> Result<PgLedger> {
        let mut again = PgLedger::connect(&self.url)?;
        again.worker = self.worker;
        again.leases = self.leases;
        Ok(again)
    }

    /// The URL without its password.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    pub fn set_leases(&mut self, leases: Leases) {
        self.leases = leases;
    }

    pub fn leases(&self) -> Leases {
        self.leases
    }

    /// Brings the schema up to date unless this process already did on this URL.
    fn migrate_once(&mut self) -> Result<()> {
        if !self.pool.migrated.load(Ordering::Acquire) {
            self.migrate()?;
            self.pool.migrated.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn migrate(&mut self) -> Result<()> {
        let shown = self.shown.clone();
        let err = |source| pg_error(&shown, source);
        futures_executor::block_on(async {
            let tx = self.client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS payrun_schema (
                     version    integer     PRIMARY KEY,
                     applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await?;
            let applied: i32 = tx
                .query_one("SELECT coalesce(max(version), 0) FROM payrun_schema", &[])
                .await?
                .get(0);
            Ok::<_, tokio_postgres::Error>((tx, applied))
        })
        .map_err(err)
        .and_then(|(tx, applied)| apply_migrations(tx, applied, &shown))
    }

    /// An error about this ledger in words.
    fn invalid(&self, message: String) -> LedgerError {
        invalid_at(&self.shown, message)
    }

    fn apply_error(&self, error: transitions::ApplyError) -> LedgerError {
        match error {
            transitions::ApplyError::Postgres(source) => pg_error(&self.shown, source),
            other => self.invalid(other.to_string()),
        }
    }

    /// Runs `future` to its end on this thread.
    fn block<T>(
        &self,
        future: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        futures_executor::block_on(future).map_err(|source| pg_error(&self.shown, source))
    }
}

fn apply_migrations(tx: tokio_postgres::Transaction<'_>, applied: i32, shown: &str) -> Result<()> {
    let latest = MIGRATION_FILES.len() as i32;
    if applied > latest {
        return Err(LedgerError::Invalid {
            path: shown.into(),
            message: format!(
                "schema version {applied} is newer than this payrun's {latest}; run the newer payrun"
            ),
        });
    }
    futures_executor::block_on(async {
        for (index, sql) in MIGRATION_FILES.iter().enumerate().skip(applied as usize) {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO payrun_schema (version) VALUES ($1)",
                &[&(index as i32 + 1)],
            )
            .await?;
        }
        tx.commit().await
    })
    .map_err(|source| pg_error(shown, source))
}

pub(super) fn pg_error(shown: &str, source: tokio_postgres::Error) -> LedgerError {
    LedgerError::Postgres {
        url: shown.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_passwords() {
        assert_eq!(
            shown_url("postgres://payrun:s3cret@db.internal:5432/ledger"),
            "postgres://payrun@db.internal:5432/ledger"
        );
        assert_eq!(
            shown_url("postgresql://db/ledger?user=payrun&password=s3cret&sslmode=disable"),
            "postgresql://db/ledger?user=payrun&sslmode=disable"
        );
        assert_eq!(
            shown_url("postgres://localhost/x"),
            "postgres://localhost/x"
        );
        assert!(is_postgres_url("postgresql://h/d") && !is_postgres_url("payrun.db"));
    }
}
