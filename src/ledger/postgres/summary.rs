//! `payrun status` and `payrun approve` on PostgreSQL: the same views as `ledger::summary` and
//! `ledger::payday::waiting_batches`, from the same SQL.

use super::PgLedger;
use crate::ledger::payday::WAITING_BATCHES;
use crate::ledger::summary::{BatchRow, StateTotal, Summary, batch_rows_sql};
use crate::ledger::{Approval, Result, WaitingBatch};
use crate::payout::PayoutState;

impl PgLedger {
    pub fn summary(&self) -> Result<Summary> {
        let mut totals: Vec<(PayoutState, StateTotal)> = PayoutState::ALL
            .iter()
            .map(|state| (*state, StateTotal::default()))
            .collect();
        let rows = self.block(self.client.query(
            "SELECT state, COUNT(*), SUM(amount_cents)::bigint FROM payouts GROUP BY state",
            &[],
        ))?;
        for row in rows {
            let text: &str = row.get(0);
            let state: PayoutState = text.parse().map_err(|message| self.invalid(message))?;
            if let Some((_, total)) = totals.iter_mut().find(|(s, _)| *s == state) {
                *total = StateTotal {
                    count: row.get::<_, i64>(1) as u64,
                    amount_cents: row.get(2),
                };
            }
        }
        let rows = self.block(self.client.query(&batch_rows_sql(), &[]))?;
        let batches = rows
            .iter()
            .map(|row| BatchRow {
                id: row.get(0),
                file_name: row.get(1),
                file_sha256: row.get(2),
                received_at: row.get(3),
                status: row.get(4),
                row_count: row.get::<_, i64>(5) as u64,
                total_cents: row.get(6),
                rejected_rows: row.get::<_, i64>(7) as u64,
                pay_date: row.get(8),
                send_after: row.get(9),
                send_by: row.get(10),
                send_late: row.get(11),
                send_open_at: row.get(12),
                sent_at: row.get(13),
                held_at: row.get(14),
                held_by: row.get(15),
                approval_reason: row.get(16),
            })
            .collect();
        Ok(Summary {
            payouts: totals,
            batches,
        })
    }

    /// As on SQLite: lets an `awaiting_approval` batch be sent.
    pub fn approve_batch(&mut self, batch_id: i64, now: &str) -> Result<Approval> {
        let row = self.block(self.client.query_opt(
            "WITH approved AS (
                 UPDATE batches SET status = 'ready', approved_at = $2
                 WHERE id = $1 AND status = 'awaiting_approval' RETURNING id)
             SELECT b.status, EXISTS (SELECT 1 FROM approved) FROM batches b WHERE b.id = $1",
            &[&batch_id, &now],
        ))?;
        Ok(match row {
            None => Approval::NoSuchBatch,
            Some(row) if row.get::<_, bool>(1) => Approval::Approved,
            Some(row) => match row.get::<_, &str>(0) {
                "cancelled" => Approval::Cancelled,
                _ => Approval::AlreadyApproved,
            },
        })
    }

    pub fn waiting_batches(&self) -> Result<Vec<WaitingBatch>> {
        let rows = self.block(self.client.query(WAITING_BATCHES, &[]))?;
        Ok(rows
            .iter()
            .map(|row| {
                let held_at: Option<String> = row.get(3);
                let held_by: Option<String> = row.get(4);
                WaitingBatch {
                    id: row.get(0),
                    pay_date: row.get(1),
                    window_opens: row.get(2),
                    held: held_at.map(|at| (at, held_by.unwrap_or_default(), row.get(5))),
                    approval_reason: row.get(6),
                }
            })
            .collect())
    }
}
