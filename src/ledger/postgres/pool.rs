//! Each process's connections to a PostgreSQL ledger (deadpool-postgres): every `PgLedger`
//! opened on one URL takes a connection from that URL's pool and gives it back when it goes,
//! so a long `watch` or `serve` reuses connections for its cycles' spools and readers instead
//! of connecting again, and migrates once per process. A connection taken again is cleaned
//! first (`RecyclingMethod::Clean`: no session settings, temporary tables or advisory locks
//! carry over from its last user).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;

use crate::ledger::{LedgerError, Result};

/// More than any process holds at once (the sender's ledger, its heartbeat, serve's writer,
/// reader and applier, a cycle's spool), so a wait means a leak, reported after
/// [`WAIT_FOR_A_CONNECTION`].
const CONNECTIONS_PER_PROCESS: usize = 16;
const WAIT_FOR_A_CONNECTION: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The pool for one ledger URL, and whether this process has brought its schema up to date.
pub(super) struct LedgerPool {
    pub(super) connections: Pool,
    pub(super) migrated: AtomicBool,
}

static POOLS: LazyLock<Mutex<HashMap<String, Arc<LedgerPool>>>> = LazyLock::new(Default::default);

impl LedgerPool {
    /// The process's pool for `url`, made on first use.
    pub(super) fn for_url(url: &str, shown: &str) -> Result<Arc<LedgerPool>> {
        let mut pools = POOLS.lock().expect("not poisoned");
        if let Some(pool) = pools.get(url) {
            return Ok(pool.clone());
        }
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| invalid_at(shown, format!("not a PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("payrun");
        }
        let manager = manager(config, shown)?;
        let connections = Pool::builder(manager)
            .max_size(CONNECTIONS_PER_PROCESS)
            .wait_timeout(Some(WAIT_FOR_A_CONNECTION))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| invalid_at(shown, format!("cannot make a connection pool: {e}")))?;
        let pool = Arc::new(LedgerPool {
            connections,
            migrated: AtomicBool::new(false),
        });
        pools.insert(url.to_string(), pool.clone());
        Ok(pool)
    }
}

/// Makes the connections: `sslmode=disable` never uses TLS; `prefer` (the default) and
/// `require` verify the server whenever they do (see `tls`). Where no certificate can be had
/// to verify with (no system roots, no CA file named), `prefer` connects in plain text, with a
/// warning, as it would to a server without TLS; `require` fails.
fn manager(config: tokio_postgres::Config, shown: &str) -> Result<Manager> {
    let recycling = ManagerConfig {
        recycling_method: RecyclingMethod::Clean,
    };
    let mode = config.get_ssl_mode();
    if matches!(mode, SslMode::Disable) {
        return Ok(Manager::from_config(config, NoTls, recycling));
    }
    let ca_file = super::tls::ca_file();
    match super::tls::connector(ca_file.as_deref()) {
        Ok(tls) => Ok(Manager::from_config(config, tls, recycling)),
        Err(why) if ca_file.is_none() && matches!(mode, SslMode::Prefer) => {
            tracing::warn!("{why}; sslmode=prefer connects to {shown} without TLS");
            Ok(Manager::from_config(config, NoTls, recycling))
        }
        Err(why) => Err(invalid_at(shown, why)),
    }
}

/// A pooled connection, used as the driver's `Client` it wraps.
pub(super) struct Pooled(Option<Object>);

impl Pooled {
    pub(super) fn new(object: Object) -> Pooled {
        Pooled(Some(object))
    }

    /// Closes the connection rather than giving it back to the pool.
    pub(super) fn close(&mut self) {
        if let Some(object) = self.0.take() {
            // Out of the pool, the wrapper aborts the connection's task as it drops.
            drop(Object::take(object));
        }
    }
}

impl std::ops::Deref for Pooled {
    type Target = tokio_postgres::Client;

    fn deref(&self) -> &tokio_postgres::Client {
        self.0.as_ref().expect("a connection until the ledger goes")
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut tokio_postgres::Client {
        self.0.as_mut().expect("a connection until the ledger goes")
    }
}

pub(super) fn invalid_at(shown: &str, message: String) -> LedgerError {
    LedgerError::Invalid {
        path: shown.to_string().into(),
        message,
    }
}

/// A connection the pool could not give: the server's own error where it answered, else why.
pub(super) fn pool_error(shown: &str, error: PoolError) -> LedgerError {
    match error {
        PoolError::Backend(source) => super::pg_error(shown, source),
        PoolError::Timeout(_) => invalid_at(
            shown,
            format!(
                "no connection came free in {} s: this process holds all {CONNECTIONS_PER_PROCESS} of its connections",
                WAIT_FOR_A_CONNECTION.as_secs()
            ),
        ),
        other => invalid_at(shown, format!("cannot connect: {other}")),
    }
}
