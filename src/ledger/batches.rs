//! Batch-level operations: approval, and the figures `payrun plan` shows.

use rusqlite::{OptionalExtension, params};

use super::{Ledger, Result};
use crate::money::Cents;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    Approved,
    AlreadyApproved,
    NoSuchBatch,
    Cancelled,
}

/// Payouts to one destination in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationTotal {
    pub destination: String,
    pub n_payouts: u64,
    pub total: Cents,
    /// The references paid there, for payees paid more than once.
    pub references: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutLine {
    pub line: u64,
    pub reference: String,
    pub name: Option<String>,
    pub destination: String,
    pub amount: Cents,
}

impl Ledger {
    /// Lets an `awaiting_approval` batch be sent.
    pub fn approve_batch(&mut self, batch_id: i64, now: &str) -> Result<Approval> {
        let status: Option<String> = self
            .conn
            .query_row(
                "SELECT status FROM batches WHERE id = ?1",
                [batch_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))?;
        Ok(match status.as_deref() {
            None => Approval::NoSuchBatch,
            Some("ready") => Approval::AlreadyApproved,
            Some("cancelled") => Approval::Cancelled,
            Some(_) => {
                self.conn
                    .execute(
                        "UPDATE batches SET status = 'ready', approved_at = ?2 WHERE id = ?1 AND status = 'awaiting_approval'",
                        params![batch_id, now],
                    )
                    .map_err(|e| self.error(e))?;
                Approval::Approved
            }
        })
    }

    /// The most recent batch: its id and total, for comparing a new file against it.
    pub fn latest_batch(&self) -> Result<Option<(i64, Cents)>> {
        self.conn
            .query_row(
                "SELECT id, total_cents FROM batches ORDER BY id DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, Cents::new(row.get(1)?).unwrap_or(Cents::ZERO))),
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Totals per destination, largest first.
    pub fn destination_totals(&self, batch_id: i64) -> Result<Vec<DestinationTotal>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT destination, COUNT(*), SUM(amount_cents), group_concat(reference, char(31))
                 FROM payouts WHERE batch_id = ?1 GROUP BY destination ORDER BY SUM(amount_cents) DESC, destination",
            )
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map([batch_id], |row| {
                let references: String = row.get(3)?;
                Ok(DestinationTotal {
                    destination: row.get(0)?,
                    n_payouts: row.get::<_, i64>(1)? as u64,
                    total: Cents::new(row.get(2)?).unwrap_or(Cents::ZERO),
                    references: references.split('\u{1f}').map(str::to_string).collect(),
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.error(e))
    }

    /// The `n` largest payouts of a batch.
    pub fn largest_payouts(&self, batch_id: i64, n: usize) -> Result<Vec<PayoutLine>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT line, reference, name, destination, amount_cents FROM payouts
                 WHERE batch_id = ?1 ORDER BY amount_cents DESC, line LIMIT ?2",
            )
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map(params![batch_id, n as i64], |row| {
                Ok(PayoutLine {
                    line: row.get::<_, i64>(0)? as u64,
                    reference: row.get(1)?,
                    name: row.get(2)?,
                    destination: row.get(3)?,
                    amount: Cents::new(row.get(4)?).unwrap_or(Cents::ZERO),
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.error(e))
    }

    /// Batch key (the middle of every correlation id payrun makes) to batch id, for finding a
    /// payout from a correlation id.
    pub fn batch_ids_by_key(&self) -> Result<std::collections::HashMap<String, i64>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT batch_key, id FROM batches")
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|e| self.error(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.error(e))
    }

    /// Batches that wait for approval, for `run` to report.
    pub fn batches_awaiting_approval(&self) -> Result<Vec<i64>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM batches WHERE status = 'awaiting_approval' ORDER BY id")
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map([], |row| row.get(0))
            .map_err(|e| self.error(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.error(e))
    }
}

/// The claim's condition on a batch (`b`) beyond its approval: its send window has been seen
/// open and it is not held. The sender's claim query (`pending_after`) joins it in, so that a
/// run leaves a waiting or held batch untouched.
pub(super) const SENDABLE_BATCH: &str = "b.send_open_at IS NOT NULL AND b.held_at IS NULL";
