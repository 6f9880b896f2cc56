//! What one unattended cycle (`run`, `watch`) does with a ledger, whichever engine keeps it:
//! take the inbox's files, send, track, report.

use super::postgres::PgLedger;
use super::{
    EventSpool, IngestLedger, Ledger, OperatorLedger, Result, SendLedger, Spool, TrackLedger,
    spool_path_for,
};

pub trait CycleLedger:
    SendLedger + IngestLedger + OperatorLedger + TrackLedger + Send + 'static
{
    /// Batches that wait for approval, for the cycle's summary.
    fn batches_awaiting_approval(&self) -> Result<Vec<i64>>;
    /// The ledger's webhook event spool, where there is one: a ledger file's only once
    /// `serve` made it; a PostgreSQL ledger's always (on a connection of its own).
    fn event_spool(&self) -> Result<Option<Box<dyn EventSpool + Send>>>;
}

impl CycleLedger for Ledger {
    fn batches_awaiting_approval(&self) -> Result<Vec<i64>> {
        Ledger::batches_awaiting_approval(self)
    }

    fn event_spool(&self) -> Result<Option<Box<dyn EventSpool + Send>>> {
        let path = spool_path_for(self.path());
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(Box::new(Spool::open(&path)?)))
    }
}

impl CycleLedger for PgLedger {
    fn batches_awaiting_approval(&self) -> Result<Vec<i64>> {
        PgLedger::batches_awaiting_approval(self)
    }

    fn event_spool(&self) -> Result<Option<Box<dyn EventSpool + Send>>> {
        Ok(Some(Box::new(self.reconnect()?)))
    }
}
