//! A batch's timing and the operator's brakes: its send window opening, its sent date, holds,
//! and the cancellation of pending payouts through the one transition function.

use rusqlite::{OptionalExtension, params};

use super::transitions::{Provenance, apply};
use super::{Ledger, LedgerError, Result};
use crate::payout::{Event, PayoutState};

/// What ingest stores about a batch's timing (ledger timestamps; dates as YYYY-MM-DD).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSchedule {
    pub pay_date: Option<String>,
    /// Not sent before this; `None` is at once.
    pub send_after: Option<String>,
    /// Sent after this, the batch is late.
    pub send_by: Option<String>,
    /// Accepted with `--send-late` although the pay date could not be met.
    pub send_late: bool,
}

/// A batch sent after its send window closed: it may settle after its pay date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateBatch {
    pub id: i64,
    pub pay_date: Option<String>,
    pub send_by: Option<String>,
}

impl std::fmt::Display for LateBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "batch {} was sent late", self.id)?;
        if let Some(by) = &self.send_by {
            write!(f, " (its send window closed {by})")?;
        }
        if let Some(pay_date) = &self.pay_date {
            write!(f, ": it may settle after its pay date {pay_date}")?;
        }
        Ok(())
    }
}

/// How `payrun hold` / `payrun release` went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldChange {
    Done,
    /// Already held (for hold) or not held (for release): nothing changed.
    Unchanged,
    NoSuchBatch,
    Cancelled,
}

/// What `payrun cancel` did, payout by payout (line and reference).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CancelReport {
    pub cancelled: Vec<(u64, String)>,
    pub already_cancelled: Vec<(u64, String)>,
    /// Committed for sending or beyond: never cancelled by payrun.
    pub past_pending: Vec<(u64, String, PayoutState)>,
    /// `--reference` values the batch does not have.
    pub unknown_references: Vec<String>,
    /// Every payout of the batch is cancelled now, so the batch is too.
    pub batch_cancelled: bool,
}

impl Ledger {
    /// Marks the send window of every batch whose `send_after` has come as open, so that the
    /// sender's claim takes it. Returns how many opened.
    pub fn open_send_windows(&mut self, now: &str) -> Result<usize> {
        self.conn
            .execute(
                "UPDATE batches SET send_open_at = ?1
                 WHERE send_open_at IS NULL AND send_after <= ?1 AND status != 'cancelled'",
                [now],
            )
            .map_err(|e| self.error(e))
    }

    /// Gives every batch that has payouts committed for sending, and no sent date yet, `now`
    /// as its sent date. Returns those of them that were sent late: after their send window
    /// closed, or accepted with `--send-late`.
    pub fn note_sent_batches(&mut self, now: &str) -> Result<Vec<LateBatch>> {
        let mut stmt = self
            .conn
            .prepare(
                "UPDATE batches SET sent_at = ?1
                 WHERE sent_at IS NULL AND send_open_at IS NOT NULL AND EXISTS (
                     SELECT 1 FROM payouts p
                     WHERE p.id BETWEEN batches.id << 32 AND (batches.id << 32) | 4294967295
                       AND p.first_attempt_at IS NOT NULL)
                 RETURNING id, pay_date, send_by, send_late OR coalesce(?1 > send_by, 0)",
            )
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map([now], |row| {
                Ok((
                    LateBatch {
                        id: row.get(0)?,
                        pay_date: row.get(1)?,
                        send_by: row.get(2)?,
                    },
                    row.get::<_, bool>(3)?,
                ))
            })
            .map_err(|e| self.error(e))?;
        let mut late = Vec::new();
        for row in rows {
            let (batch, is_late) = row.map_err(|e| self.error(e))?;
            if is_late {
                late.push(batch);
            }
        }
        late.sort_by_key(|batch| batch.id);
        Ok(late)
    }

    fn batch_status(&self, batch_id: i64) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT status FROM batches WHERE id = ?1",
                [batch_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Holds a batch (`hold = true`): nothing of it is claimed for sending until released.
    /// Payouts already committed for sending are not affected.
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
            self.conn.execute(
                "UPDATE batches SET held_at = ?2, held_by = ?3, hold_reason = ?4
                 WHERE id = ?1 AND held_at IS NULL",
                params![batch_id, now, by, reason],
            )
        } else {
            self.conn.execute(
                "UPDATE batches SET held_at = NULL, held_by = NULL, hold_reason = NULL
                 WHERE id = ?1 AND held_at IS NOT NULL",
                [batch_id],
            )
        }
        .map_err(|e| self.error(e))?;
        Ok(if changed == 0 {
            HoldChange::Unchanged
        } else {
            HoldChange::Done
        })
    }

    /// Cancels the pending payouts of a batch (all of them, or those with `references`), in
    /// one transaction, each through the transition function with the operator and the
    /// reason in its history. Payouts committed for sending or beyond are left as they are and
    /// reported. `None` when there is no such batch.
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
        let path = self.path.clone();
        let err = |e| super::sqlite_error(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let payouts = batch_payouts(&tx, batch_id).map_err(err)?;
        let mut report = CancelReport::default();
        if let Some(wanted) = references {
            report.unknown_references = wanted
                .iter()
                .filter(|r| !payouts.iter().any(|(_, _, reference, _)| reference == *r))
                .cloned()
                .collect();
        }
        let source = format!("operator:{operator}");
        let provenance = Provenance {
            source: &source,
            reason: Some(reason),
        };
        for (id, line, reference, state) in payouts {
            if references.is_some_and(|wanted| !wanted.contains(&reference)) {
                continue;
            }
            cancel_one(
                &tx,
                &path,
                (id, line, reference, state),
                now,
                provenance,
                &mut report,
            )?;
        }
        report.batch_cancelled = cancel_batch_if_nothing_left(&tx, batch_id).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Some(report))
    }
}

/// A batch's payouts (id, line, reference, state), in file order.
fn batch_payouts(
    tx: &rusqlite::Transaction<'_>,
    batch_id: i64,
) -> rusqlite::Result<Vec<(i64, u64, String, String)>> {
    tx.prepare(
        "SELECT id, line, reference, state FROM payouts
         WHERE id BETWEEN ?1 << 32 AND (?1 << 32) | 4294967295 ORDER BY id",
    )
    .and_then(|mut stmt| {
        stmt.query_map([batch_id], |row| {
            Ok((
                row.get(0)?,
                row.get::<_, i64>(1)? as u64,
                row.get(2)?,
                row.get(3)?,
            ))
        })?
        .collect()
    })
}

/// Cancels one payout if it is pending, and reports what became of it.
fn cancel_one(
    tx: &rusqlite::Transaction<'_>,
    path: &std::path::Path,
    (id, line, reference, state): (i64, u64, String, String),
    now: &str,
    provenance: Provenance<'_>,
    report: &mut CancelReport,
) -> Result<()> {
    let state: PayoutState = state.parse().map_err(|message| LedgerError::Invalid {
        path: path.to_path_buf(),
        message,
    })?;
    match state {
        PayoutState::Pending => {
            apply(tx, id, Event::Cancelled, now, provenance).map_err(|e| LedgerError::Invalid {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            report.cancelled.push((line, reference));
        }
        PayoutState::Cancelled => report.already_cancelled.push((line, reference)),
        other => report.past_pending.push((line, reference, other)),
    }
    Ok(())
}

/// Cancels the batch itself once every one of its payouts is; returns whether it did.
fn cancel_batch_if_nothing_left(
    tx: &rusqlite::Transaction<'_>,
    batch_id: i64,
) -> rusqlite::Result<bool> {
    let left: i64 = tx.query_row(
        "SELECT count(*) FROM payouts
         WHERE id BETWEEN ?1 << 32 AND (?1 << 32) | 4294967295 AND state != 'cancelled'",
        [batch_id],
        |row| row.get(0),
    )?;
    if left == 0 {
        tx.execute(
            "UPDATE batches SET status = 'cancelled' WHERE id = ?1",
            [batch_id],
        )?;
    }
    Ok(left == 0)
}

/// A batch with payouts still pending that a run leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingBatch {
    pub id: i64,
    pub pay_date: Option<String>,
    /// Its send window opens then (`None`: it is open).
    pub window_opens: Option<String>,
    /// Held: when, by whom, why.
    pub held: Option<(String, String, Option<String>)>,
    /// Waits for approval because of the repeat guard.
    pub approval_reason: Option<String>,
}

/// Batches with pending payouts that wait, in SQL both engines read alike: id, pay date,
/// when the window opens (if closed), the hold, and the repeat guard's reason.
pub(super) const WAITING_BATCHES: &str =
    "SELECT id, pay_date, CASE WHEN send_open_at IS NULL THEN send_after END,
            held_at, held_by, hold_reason,
            CASE WHEN status = 'awaiting_approval' THEN approval_reason END
     FROM batches b
     WHERE status != 'cancelled'
       AND (held_at IS NOT NULL OR send_open_at IS NULL
            OR (status = 'awaiting_approval' AND approval_reason IS NOT NULL))
       AND EXISTS (SELECT 1 FROM payouts p
                   WHERE p.id BETWEEN b.id << 32 AND (b.id << 32) | 4294967295
                     AND p.state = 'pending')
     ORDER BY id";

impl Ledger {
    /// Batches with pending payouts that wait for their send window, are held, or were held
    /// for approval by the repeat guard.
    pub fn waiting_batches(&self) -> Result<Vec<WaitingBatch>> {
        let mut stmt = self
            .conn
            .prepare(WAITING_BATCHES)
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map([], |row| {
                let held_at: Option<String> = row.get(3)?;
                let held_by: Option<String> = row.get(4)?;
                Ok(WaitingBatch {
                    id: row.get(0)?,
                    pay_date: row.get(1)?,
                    window_opens: row.get(2)?,
                    held: held_at
                        .map(|at| (at, held_by.unwrap_or_default(), row.get(5).ok().flatten())),
                    approval_reason: row.get(6)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.error(e))
    }
}

impl std::fmt::Display for WaitingBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = self.id;
        if let Some((at, by, reason)) = &self.held {
            write!(f, "batch {id} is held (by {by} at {at}")?;
            if let Some(reason) = reason {
                write!(f, ": {reason}")?;
            }
            return write!(f, "); payrun release {id} lets it be sent");
        }
        if let Some(reason) = &self.approval_reason {
            return write!(
                f,
                "batch {id} waits for approval, {reason}: payrun approve {id}"
            );
        }
        match (&self.window_opens, &self.pay_date) {
            (Some(opens), Some(pay_date)) => write!(
                f,
                "batch {id} (pay date {pay_date}) waits for its send window, which opens {opens}"
            ),
            (Some(opens), None) => write!(f, "batch {id} waits until {opens}"),
            (None, _) => write!(f, "batch {id} waits"),
        }
    }
}
