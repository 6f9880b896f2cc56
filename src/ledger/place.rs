//! Where a ledger is kept, for the parts that open more than the ledger itself: the webhook
//! event spool lives beside a ledger file (`<ledger>.events`) or inside the PostgreSQL ledger.

use std::path::PathBuf;

use super::postgres::{PgLedger, shown_url};
use super::{EventSpool, Result, Spool, spool_path_for};

/// A SQLite ledger file, or a PostgreSQL database by URL.
#[derive(Clone)]
pub enum LedgerPlace {
    File(PathBuf),
    Postgres(String),
}

/// Shows the URL without its password.
impl std::fmt::Debug for LedgerPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LedgerPlace({})", self.shown())
    }
}

impl LedgerPlace {
    /// For messages: the file's path, or the URL without its password.
    pub fn shown(&self) -> String {
        match self {
            LedgerPlace::File(path) => crate::names::shown(path),
            LedgerPlace::Postgres(url) => shown_url(url),
        }
    }

    /// The ledger's webhook event spool, created if it is not there yet.
    pub fn open_spool(&self) -> Result<Box<dyn EventSpool + Send>> {
        Ok(match self {
            LedgerPlace::File(path) => Box::new(Spool::open(&spool_path_for(path))?),
            LedgerPlace::Postgres(url) => Box::new(PgLedger::open(url)?),
        })
    }

    /// The spool if one was ever made (a ledger file's may not exist yet; PostgreSQL's
    /// always does).
    pub fn existing_spool(&self) -> Result<Option<Box<dyn EventSpool + Send>>> {
        match self {
            LedgerPlace::File(path) if !spool_path_for(path).exists() => Ok(None),
            _ => self.open_spool().map(Some),
        }
    }
}
