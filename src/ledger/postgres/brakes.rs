//! The operator's brakes on PostgreSQL: hold, release and cancel, as `ledger::payday` does
//! them on SQLite. Cancelling locks the batch's payouts first, so a worker's claim in progress
//! either commits before (and the payout is reported as already committed for sending) or
//! finds them cancelled.

use super::PgLedger;
use super::transitions::{ApplyError, Change, apply_all, parse_state};
use crate::ledger::{CancelReport, HoldChange, Result};
use crate::payout::{Event, PayoutState};

impl PgLedger {
    fn batch_status(&self, batch_id: i64) -> Result<Option<String>> {
        let row = self.block(
            self.client
                .query_opt("SELECT status FROM batches WHERE id = $1", &[&batch_id]),
        )?;
        Ok(row.map(|row| row.get(0)))
    }

    pub fn set_hold(
        &mut self,
        batch_id: i64,
        hold: bool,
        now: &str,
        by: &str,
        reason: Option<&str>,
    ) -> Result<HoldChange> {
        match self.batch_status(batch_id)?.as_deref() {
            None => return Ok(HoldChange::NoSuchBatch),
            Some("cancelled") => return Ok(HoldChange::Cancelled),
            Some(_) => {}
        }
        let changed = if hold {
            self.block(self.client.execute(
                "UPDATE batches SET held_at = $2, held_by = $3, hold_reason = $4
                 WHERE id = $1 AND held_at IS NULL",
                &[&batch_id, &now, &by, &reason],
            ))?
        } else {
            self.block(self.client.execute(
                "UPDATE batches SET held_at = NULL, held_by = NULL, hold_reason = NULL
                 WHERE id = $1 AND held_at IS NOT NULL",
                &[&batch_id],
            ))?
        };
        Ok(if changed == 0 {
            HoldChange::Unchanged
        } else {
            HoldChange::Done
        })
    }

    pub fn cancel_payouts(
        &mut self,
        batch_id: i64,
        references: Option<&[String]>,
        now: &str,
        operator: &str,
        reason: &str,
    ) -> Result<Option<CancelReport>> {
        if self.batch_status(batch_id)?.is_none() {
            return Ok(None);
        }
        let source = format!("operator:{operator}");
        let result = futures_executor::block_on(async {
            let tx = self.client.transaction().await?;
            let rows = tx
                .query(
                    "SELECT id, line, reference, state FROM payouts
                     WHERE id BETWEEN $1::bigint << 32 AND ($1::bigint << 32) | 4294967295
                     ORDER BY id FOR UPDATE",
                    &[&batch_id],
                )
                .await?;
            let mut report = CancelReport::default();
            if let Some(wanted) = references {
                report.unknown_references = wanted
                    .iter()
                    .filter(|r| !rows.iter().any(|row| row.get::<_, &str>(2) == r.as_str()))
                    .cloned()
                    .collect();
            }
            let mut changes = Vec::new();
            for row in &rows {
                let (id, line, reference): (i64, i64, &str) = (row.get(0), row.get(1), row.get(2));
                if references.is_some_and(|wanted| !wanted.iter().any(|r| r == reference)) {
                    continue;
                }
                let state = parse_state(id, row.get(3)).map_err(ApplyError::Invalid)?;
                let named = (line as u64, reference.to_string());
                match state {
                    PayoutState::Pending => {
                        report.cancelled.push(named);
                        changes.push(Change {
                            id,
                            from: state,
                            event: Event::Cancelled,
                            source: &source,
                            reason,
                        });
                    }
                    PayoutState::Cancelled => report.already_cancelled.push(named),
                    other => report.past_pending.push((named.0, named.1, other)),
                }
            }
            apply_all(&tx, &changes, now).await?;
            let left: i64 = tx
                .query_one(
                    "SELECT count(*) FROM payouts
                     WHERE id BETWEEN $1::bigint << 32 AND ($1::bigint << 32) | 4294967295
                       AND state != 'cancelled'",
                    &[&batch_id],
                )
                .await?
                .get(0);
            if left == 0 {
                tx.execute(
                    "UPDATE batches SET status = 'cancelled' WHERE id = $1",
                    &[&batch_id],
                )
                .await?;
            }
            report.batch_cancelled = left == 0;
            tx.commit().await?;
            Ok::<_, ApplyError>(report)
        });
        result.map(Some).map_err(|error| self.apply_error(error))
    }
}
