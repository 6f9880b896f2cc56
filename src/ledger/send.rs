//! What the sender reads and writes: due payouts in file order, the commit of `submitting`
//! with the exact request bytes before the first POST, and group-committed outcomes.

use rusqlite::{Row, params};

use super::batches::SENDABLE_BATCH;
use super::transitions::{ApplyError, Provenance, apply};
use super::{Ledger, LedgerError, Result};
use crate::money::Cents;
use crate::payout::{Event, PayoutState, TransferStatus};

/// A payout the sender may work on now.
#[derive(Debug, Clone)]
pub struct DuePayout {
    pub id: i64,
    pub batch_id: i64,
    pub line: u64,
    pub reference: String,
    /// The destination funding source id.
    pub destination: String,
    pub amount: Cents,
    pub correlation_id: String,
    pub idempotency_key: String,
    /// The file's metadata columns as a JSON object.
    pub metadata: Option<String>,
    pub state: PayoutState,
    pub attempts: u32,
    pub first_attempt_at: Option<String>,
    /// For a payout in doubt, when its next attempt is due (a backoff an earlier run planned).
    pub next_attempt_at: Option<String>,
    /// The bytes committed before the first POST; `None` until then.
    pub request_body: Option<Vec<u8>>,
}

/// How one attempt (or a run of attempts) at a payout ended, for [`Ledger::record_outcomes`].
#[derive(Debug, Clone)]
pub enum SendOutcome {
    /// Dwolla created the transfer (201, or a 201 replay of the same key).
    Created { transfer_url: String },
    /// Dwolla refused the request: nothing was created, and resending will not help.
    Refused {
        code: String,
        message: String,
        path: Option<String>,
    },
    /// The outcome is unknown; the same request goes again at `retry_at`.
    RetryLater { retry_at: String, reason: String },
    /// payrun stops trying on its own; a person must look.
    GaveUp { reason: String },
    /// A lookup by correlation id found the transfer the earlier attempts created.
    Found {
        transfer_url: String,
        status: TransferStatus,
    },
}

/// One payout's outcome and how many POSTs it has had in all.
#[derive(Debug, Clone)]
pub struct RecordedOutcome {
    pub payout_id: i64,
    pub attempts: u32,
    pub outcome: SendOutcome,
}

/// Payouts left unsent at the end of a run, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Unsent {
    /// `submitting`: committed, outcome unknown; the next run resends them with the same key.
    pub in_doubt: u64,
    /// `pending` in a batch that may be sent now.
    pub pending: u64,
}

impl Unsent {
    pub fn total(&self) -> u64 {
        self.in_doubt + self.pending
    }
}

/// With [`SENDABLE_BATCH`] (its send window open, not held), the condition on batch `b` for
/// its pending payouts to be claimed: one definition for the claim and for the count of what a
/// run left, so that a batch waiting for its pay date is never counted as left unsent.
const CLAIMABLE_BATCH: &str = "b.status = 'ready'";

const DUE_COLUMNS: &str =
    "p.id, p.batch_id, p.line, p.reference, p.destination, p.amount_cents, p.correlation_id,
     p.idempotency_key, p.metadata, p.state, p.attempts, p.first_attempt_at, p.request_body, p.next_attempt_at";

fn due_payout(row: &Row<'_>) -> rusqlite::Result<DuePayout> {
    let state: String = row.get(9)?;
    Ok(DuePayout {
        id: row.get(0)?,
        batch_id: row.get(1)?,
        line: row.get::<_, i64>(2)? as u64,
        reference: row.get(3)?,
        destination: row.get(4)?,
        amount: Cents::new(row.get(5)?).unwrap_or(Cents::ZERO),
        correlation_id: row.get(6)?,
        idempotency_key: row.get(7)?,
        metadata: row.get(8)?,
        state: state.parse().map_err(|_| {
            rusqlite::Error::InvalidColumnType(9, state.clone(), rusqlite::types::Type::Text)
        })?,
        attempts: row.get::<_, i64>(10)? as u32,
        first_attempt_at: row.get(11)?,
        request_body: row.get(12)?,
        next_attempt_at: row.get(13)?,
    })
}

impl Ledger {
    /// Every payout whose outcome is unknown, soonest due first, whatever its retry time: the
    /// caller holds the writer lock, so nobody else is sending them, and it waits for each
    /// until due. At the start of a run this is every payout a crash left in flight.
    pub fn in_doubt(&self, batch: Option<i64>, limit: usize) -> Result<Vec<DuePayout>> {
        let sql = format!(
            "SELECT {DUE_COLUMNS} FROM payouts p
             WHERE p.state = 'submitting' AND (?1 IS NULL OR p.batch_id = ?1)
             ORDER BY p.next_attempt_at, p.id LIMIT ?2"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map(params![batch, limit as i64], due_payout)
            .map_err(|e| self.error(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.error(e))
    }

    /// What a run leaves unsent: payouts in doubt, and pending payouts it could have claimed.
    pub fn unsent(&self, batch: Option<i64>) -> Result<Unsent> {
        let sql = format!(
            "SELECT COUNT(*) FILTER (WHERE p.state = 'submitting'),
                    COUNT(*) FILTER (WHERE p.state = 'pending' AND {CLAIMABLE_BATCH} AND {SENDABLE_BATCH})
             FROM payouts p JOIN batches b ON b.id = p.batch_id
             WHERE p.state IN ('submitting', 'pending') AND (?1 IS NULL OR p.batch_id = ?1)"
        );
        self.conn
            .query_row(&sql, params![batch], |row| {
                Ok(Unsent {
                    in_doubt: row.get::<_, i64>(0)? as u64,
                    pending: row.get::<_, i64>(1)? as u64,
                })
            })
            .map_err(|e| self.error(e))
    }

    /// Pending payouts of approved batches after payout `after_id`, in file order.
    pub fn pending_after(
        &self,
        after_id: i64,
        batch: Option<i64>,
        limit: usize,
    ) -> Result<Vec<DuePayout>> {
        let sql = format!(
            "SELECT {DUE_COLUMNS} FROM payouts p JOIN batches b ON b.id = p.batch_id
             WHERE p.id > ?1 AND p.state = 'pending' AND {CLAIMABLE_BATCH} AND {SENDABLE_BATCH} AND (?2 IS NULL OR p.batch_id = ?2)
             ORDER BY p.id LIMIT ?3"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map(params![after_id, batch, limit as i64], due_payout)
            .map_err(|e| self.error(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.error(e))
    }

    /// Commits, for each pending payout, state `submitting` with the exact bytes its every POST
    /// will carry, all in one transaction, before any of them is sent. A crash after this
    /// leaves them due at once (`next_attempt_at = now`), to be resent with the same key.
    pub fn start_submissions(&mut self, payouts: &[(i64, Vec<u8>)], now: &str) -> Result<()> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| super::sqlite_error(&path, e))?;
        for (id, body) in payouts {
            let provenance = Provenance {
                source: "send",
                reason: Some("request committed"),
            };
            apply(&tx, *id, Event::SubmitStarted, now, provenance)
                .map_err(|e| apply_error(&path, e))?;
            // The body is written once: an existing one is never replaced.
            tx.prepare_cached(
                "UPDATE payouts SET request_body = COALESCE(request_body, ?2),
                     first_attempt_at = COALESCE(first_attempt_at, ?3), next_attempt_at = ?3
                 WHERE id = ?1",
            )
            .and_then(|mut stmt| stmt.execute(params![id, body, now]))
            .map_err(|e| super::sqlite_error(&path, e))?;
        }
        tx.commit().map_err(|e| super::sqlite_error(&path, e))
    }

    /// Stores many outcomes in one transaction (group commit).
    pub fn record_outcomes(&mut self, outcomes: &[RecordedOutcome], now: &str) -> Result<()> {
        let path = self.path.clone();
        let err = |e| super::sqlite_error(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        for recorded in outcomes {
            let id = recorded.payout_id;
            let (event, reason, source) = transition_of(&recorded.outcome);
            let provenance = Provenance {
                source,
                reason: Some(&reason),
            };
            apply(&tx, id, event, now, provenance).map_err(|e| apply_error(&path, e))?;
            let (sql, fields) = columns_of(&recorded.outcome);
            let mut stmt = tx.prepare_cached(sql).map_err(err)?;
            stmt.raw_bind_parameter(1, id).map_err(err)?;
            stmt.raw_bind_parameter(2, recorded.attempts).map_err(err)?;
            stmt.raw_bind_parameter(3, now).map_err(err)?;
            for (offset, field) in fields.iter().enumerate() {
                stmt.raw_bind_parameter(4 + offset, field).map_err(err)?;
            }
            stmt.raw_execute().map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Counts of payouts by state, for the sender's summary of one batch or all.
    pub fn count_by_state(&self, batch: Option<i64>) -> Result<Vec<(PayoutState, u64)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state, COUNT(*) FROM payouts WHERE (?1 IS NULL OR batch_id = ?1) GROUP BY state")
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map(params![batch], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
            })
            .map_err(|e| self.error(e))?;
        let mut counts = Vec::new();
        for row in rows {
            let (state, count) = row.map_err(|e| self.error(e))?;
            if let Ok(state) = state.parse() {
                counts.push((state, count));
            }
        }
        Ok(counts)
    }
}

/// The transition an outcome makes, with the reason and source its history row records.
pub(super) fn transition_of(outcome: &SendOutcome) -> (Event, String, &'static str) {
    match outcome {
        SendOutcome::Created { transfer_url } => (
            Event::TransferCreated,
            format!("created {transfer_url}"),
            "send",
        ),
        SendOutcome::Refused {
            code,
            message,
            path,
        } => (
            Event::RequestRefused,
            match path {
                Some(path) => format!("{code}: {message} ({path})"),
                None => format!("{code}: {message}"),
            },
            "send",
        ),
        SendOutcome::RetryLater { reason, .. } => (Event::SubmitStarted, reason.clone(), "send"),
        SendOutcome::GaveUp { reason } => (Event::GaveUp, reason.clone(), "send"),
        SendOutcome::Found {
            transfer_url,
            status,
        } => (
            Event::TransferObserved(*status),
            format!("found {transfer_url} by correlation id"),
            "lookup",
        ),
    }
}

/// The update of a payout's columns for an outcome: `?1` id, `?2` attempts, `?3` now, then
/// the outcome's own fields from `?4` on.
pub(super) fn columns_of(outcome: &SendOutcome) -> (&'static str, Vec<Option<&str>>) {
    match outcome {
        SendOutcome::Created { transfer_url } => (
            "UPDATE payouts SET attempts = ?2, updated_at = ?3, next_attempt_at = NULL, transfer_url = ?4,
                 transfer_status = COALESCE(transfer_status, 'created')
             WHERE id = ?1",
            vec![Some(transfer_url)],
        ),
        SendOutcome::Found { transfer_url, status } => (
            "UPDATE payouts SET attempts = ?2, updated_at = ?3, next_attempt_at = NULL, transfer_url = ?4,
                 transfer_status = ?5
             WHERE id = ?1",
            vec![Some(transfer_url), Some(status.as_str())],
        ),
        SendOutcome::Refused { code, message, path } => (
            "UPDATE payouts SET attempts = ?2, updated_at = ?3, next_attempt_at = NULL, failure_code = ?4,
                 failure_description = ?5, failure_path = ?6
             WHERE id = ?1",
            vec![Some(code), Some(message), path.as_deref()],
        ),
        SendOutcome::RetryLater { retry_at, .. } => (
            "UPDATE payouts SET attempts = ?2, updated_at = ?3, next_attempt_at = ?4 WHERE id = ?1",
            vec![Some(retry_at)],
        ),
        SendOutcome::GaveUp { reason } => (
            "UPDATE payouts SET attempts = ?2, updated_at = ?3, next_attempt_at = NULL, failure_description = ?4
             WHERE id = ?1",
            vec![Some(reason)],
        ),
    }
}

fn apply_error(path: &std::path::Path, error: ApplyError) -> LedgerError {
    match error {
        ApplyError::Sqlite(source) => super::sqlite_error(path, source),
        other => LedgerError::Invalid {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    }
}
