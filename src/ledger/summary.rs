//! Read-only views for `payrun status`: count and amount per state, and the batches.

use serde::Serialize;

use super::{Ledger, Result};
use crate::payout::PayoutState;

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct StateTotal {
    pub count: u64,
    pub amount_cents: i64,
}

/// A batch's status as people read it. The stored status says whether a batch may be sent
/// (`ready`, `awaiting_approval`, `cancelled`); once a `ready` batch has no payout still on its
/// way (pending, submitting, submitted) or waiting for review, it is shown as `settled`, which
/// is what finance asks of a batch. Derived on reading, so it can never disagree with the
/// payouts. A payout's rowid is `(batch << 32) | line`, so the lookup is a rowid range.
pub(super) const SHOWN_BATCH_STATUS: &str = "CASE WHEN status = 'ready' AND NOT EXISTS (
        SELECT 1 FROM payouts p
        WHERE p.id BETWEEN batches.id << 32 AND (batches.id << 32) + 4294967295
          AND p.state IN ('pending', 'submitting', 'submitted', 'needs_review'))
    THEN 'settled' ELSE status END";

/// Every batch as [`BatchRow`] reads it, in SQL both engines read alike.
pub(super) fn batch_rows_sql() -> String {
    format!(
        "SELECT id, file_name, file_sha256, received_at, {SHOWN_BATCH_STATUS}, row_count,
                total_cents, rejected_rows, pay_date, send_after, send_by, send_late,
                send_open_at, sent_at, held_at, held_by, approval_reason
         FROM batches ORDER BY id"
    )
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchRow {
    pub id: i64,
    pub file_name: String,
    pub file_sha256: String,
    pub received_at: String,
    /// As shown: see [`SHOWN_BATCH_STATUS`].
    pub status: String,
    pub row_count: u64,
    pub total_cents: i64,
    pub rejected_rows: u64,
    pub pay_date: Option<String>,
    pub send_after: Option<String>,
    pub send_by: Option<String>,
    pub send_late: bool,
    /// Set once its send window was seen open; until then runs leave it waiting.
    pub send_open_at: Option<String>,
    pub sent_at: Option<String>,
    pub held_at: Option<String>,
    pub held_by: Option<String>,
    pub approval_reason: Option<String>,
}

/// Every state appears, zero or not, so that scripts can read any key without checking.
#[derive(Debug, Clone)]
pub struct Summary {
    pub payouts: Vec<(PayoutState, StateTotal)>,
    pub batches: Vec<BatchRow>,
}

impl Ledger {
    pub fn summary(&self) -> Result<Summary> {
        let mut totals: Vec<(PayoutState, StateTotal)> = PayoutState::ALL
            .iter()
            .map(|state| (*state, StateTotal::default()))
            .collect();
        let mut stmt = self
            .conn
            .prepare("SELECT state, COUNT(*), SUM(amount_cents) FROM payouts GROUP BY state")
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .map_err(|e| self.error(e))?;
        for row in rows {
            let (state, count, amount) = row.map_err(|e| self.error(e))?;
            let state: PayoutState =
                state
                    .parse()
                    .map_err(|message| super::LedgerError::Invalid {
                        path: self.path.clone(),
                        message,
                    })?;
            if let Some((_, total)) = totals.iter_mut().find(|(s, _)| *s == state) {
                *total = StateTotal {
                    count: count as u64,
                    amount_cents: amount,
                };
            }
        }
        let mut stmt = self
            .conn
            .prepare(&batch_rows_sql())
            .map_err(|e| self.error(e))?;
        let batches = stmt
            .query_map([], |row| {
                Ok(BatchRow {
                    id: row.get(0)?,
                    file_name: row.get(1)?,
                    file_sha256: row.get(2)?,
                    received_at: row.get(3)?,
                    status: row.get(4)?,
                    row_count: row.get::<_, i64>(5)? as u64,
                    total_cents: row.get(6)?,
                    rejected_rows: row.get::<_, i64>(7)? as u64,
                    pay_date: row.get(8)?,
                    send_after: row.get(9)?,
                    send_by: row.get(10)?,
                    send_late: row.get(11)?,
                    send_open_at: row.get(12)?,
                    sent_at: row.get(13)?,
                    held_at: row.get(14)?,
                    held_by: row.get(15)?,
                    approval_reason: row.get(16)?,
                })
            })
            .map_err(|e| self.error(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.error(e))?;
        Ok(Summary {
            payouts: totals,
            batches,
        })
    }
}
