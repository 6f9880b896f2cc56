//! Read-only views for `payrun report` and `payrun reconcile`: the selected batches, payouts
//! streamed in payout-id order through a callback (a report of a million payouts holds one row
//! at a time), point look-ups by id, and a snapshot that makes several queries agree while a
//! writer commits beside them. Nothing here writes.
//!
//! A payout's id is `(batch_id << 32) | line`, so one batch's payouts are one contiguous range of
//! the primary key: every per-batch query is a range scan, never a full scan.

use rusqlite::{OptionalExtension, Row, params};

use super::{Ledger, LedgerError, Result};
use crate::payout::PayoutState;

/// Which batches a report covers. Whole batches only, so that each ties out to its file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSelection {
    /// Only this batch.
    pub batch: Option<i64>,
    /// Only batches received at or after this instant, in the ledger's timestamp form
    /// (see [`super::timestamp`]).
    pub received_since: Option<String>,
}

/// A batch as a report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportBatch {
    pub id: i64,
    pub file_name: String,
    pub received_at: String,
    /// `ready`, `settled`, `awaiting_approval` or `cancelled` (see
    /// [`super::summary::SHOWN_BATCH_STATUS`]).
    pub status: String,
    /// Payouts accepted from the file.
    pub row_count: u64,
    /// The file's total over its accepted payouts: the input side of the tie-out.
    pub total_cents: i64,
    /// Rows refused under `--allow-partial`, not part of `row_count` or `total_cents`.
    pub rejected_rows: u64,
    pub pay_date: Option<String>,
    /// When a run first committed payouts of it for sending.
    pub sent_at: Option<String>,
    /// Accepted with `--send-late`, or sent after its send window closed.
    pub late: bool,
    pub held_at: Option<String>,
}

/// One payout, borrowed from the current SQLite row: valid only inside the callback.
///
/// Text columns are the UTF-8 bytes SQLite holds (payrun wrote them from `str`s), handed over
/// without validating them again: on a million-row report that validation was 7 % of the time.
/// [`text`] turns one into a `str` for display.
#[derive(Debug, Clone, Copy)]
pub struct PayoutRecord<'a> {
    pub batch_id: i64,
    pub line: i64,
    pub amount_cents: i64,
    pub attempts: i64,
    pub state: PayoutState,
    pub reference: &'a [u8],
    pub name: Option<&'a [u8]>,
    pub destination: &'a [u8],
    pub currency: &'a [u8],
    pub transfer_url: Option<&'a [u8]>,
    pub transfer_status: Option<&'a [u8]>,
    pub failure_code: Option<&'a [u8]>,
    pub failure_description: Option<&'a [u8]>,
    pub failure_explanation: Option<&'a [u8]>,
    pub failure_path: Option<&'a [u8]>,
    pub idempotency_key: &'a [u8],
    pub correlation_id: &'a [u8],
    pub created_at: &'a [u8],
    pub updated_at: &'a [u8],
    /// For a cancelled payout: the reason and the operator, from its history.
    pub cancel_reason: Option<&'a [u8]>,
    pub email: Option<&'a [u8]>,
    pub memo: Option<&'a [u8]>,
}

/// A text column of a [`PayoutRecord`] as a `str` (any invalid byte shown as U+FFFD).
pub fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// What reconcile needs of one payout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcilePayout {
    pub id: i64,
    pub batch_id: i64,
    pub line: i64,
    pub reference: String,
    pub destination: String,
    pub amount_cents: i64,
    pub state: PayoutState,
    pub transfer_url: Option<String>,
    pub transfer_status: Option<String>,
    pub correlation_id: String,
}

/// A read transaction: every query made while it lives sees one snapshot of the ledger, even
/// while a writer commits beside it (WAL). Ends when dropped.
#[derive(Debug)]
pub struct ReadSnapshot<'l> {
    ledger: &'l Ledger,
}

impl Drop for ReadSnapshot<'_> {
    fn drop(&mut self) {
        let _ = self.ledger.conn.execute_batch("ROLLBACK");
    }
}

pub(super) const EXCEPTION_STATES: &str = "('rejected', 'failed', 'returned', 'needs_review')";
pub(super) const SENT_STATES: &str = "('submitted', 'processed', 'failed', 'returned')";

pub(super) const PAYOUT_COLUMNS: &str =
    "batch_id, line, amount_cents, attempts, state, reference, name, destination,
     currency, transfer_url, transfer_status, failure_code, failure_description,
     failure_explanation, failure_path, idempotency_key, correlation_id, created_at, updated_at,
     CASE WHEN state = 'cancelled' THEN (
         SELECT h.reason || ' (cancelled by ' || replace(h.source, 'operator:', '') || ')'
         FROM payout_history h WHERE h.payout_id = payouts.id AND h.new_state = 'cancelled'
         ORDER BY h.id DESC LIMIT 1) END,
     email, memo";

/// The first and last possible payout id of a batch.
pub(super) fn id_range(batch_id: i64) -> (i64, i64) {
    (
        super::payout_id(batch_id, 0),
        super::payout_id(batch_id, u32::MAX),
    )
}

impl Ledger {
    /// Starts a snapshot that the queries below share until it is dropped.
    pub fn read_snapshot(&self) -> Result<ReadSnapshot<'_>> {
        // BEGIN is deferred: the first read pins the snapshot, so read something at once.
        self.conn
            .execute_batch("BEGIN; SELECT COUNT(*) FROM batches;")
            .map_err(|e| self.error(e))?;
        Ok(ReadSnapshot { ledger: self })
    }

    /// The selected batches, by id.
    pub fn report_batches(&self, selection: &BatchSelection) -> Result<Vec<ReportBatch>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT id, file_name, received_at, {}, row_count, total_cents, rejected_rows,
                        pay_date, sent_at, send_late OR coalesce(sent_at > send_by, 0), held_at
                 FROM batches
                 WHERE (?1 IS NULL OR id = ?1) AND (?2 IS NULL OR received_at >= ?2)
                 ORDER BY id",
                super::summary::SHOWN_BATCH_STATUS
            ))
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map(params![selection.batch, selection.received_since], |row| {
                Ok(ReportBatch {
                    id: row.get(0)?,
                    file_name: row.get(1)?,
                    received_at: row.get(2)?,
                    status: row.get(3)?,
                    row_count: row.get::<_, i64>(4)? as u64,
                    total_cents: row.get(5)?,
                    rejected_rows: row.get::<_, i64>(6)? as u64,
                    pay_date: row.get(7)?,
                    sent_at: row.get(8)?,
                    late: row.get(9)?,
                    held_at: row.get(10)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.error(e))
    }

    /// Calls `each` for every payout of `batch_id` in id (file line) order; with
    /// `exceptions_only`, for the rejected, failed, returned and needs_review ones only.
    /// Stops at the first error `each` returns.
    pub fn for_each_batch_payout<E: From<LedgerError>>(
        &self,
        batch_id: i64,
        exceptions_only: bool,
        mut each: impl FnMut(&PayoutRecord<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let (first, last) = id_range(batch_id);
        let filter = if exceptions_only {
            format!(" AND state IN {EXCEPTION_STATES}")
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT {PAYOUT_COLUMNS} FROM payouts WHERE id BETWEEN ?1 AND ?2{filter} ORDER BY id"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.error(e))?;
        let mut rows = stmt
            .query(params![first, last])
            .map_err(|e| self.error(e))?;
        while let Some(row) = rows.next().map_err(|e| self.error(e))? {
            let record = payout_record(row).map_err(|e| self.error(e))?;
            each(&record)?;
        }
        Ok(())
    }

    /// One payout by id, for reconcile.
    pub fn reconcile_payout(&self, id: i64) -> Result<Option<ReconcilePayout>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, batch_id, line, reference, destination, amount_cents, state, transfer_url,
                        transfer_status, correlation_id
                 FROM payouts WHERE id = ?1",
            )
            .map_err(|e| self.error(e))?;
        let found = stmt
            .query_row([id], |row| Ok(self.reconcile_row(row)))
            .optional()
            .map_err(|e| self.error(e))?;
        found.transpose()
    }

    /// Calls `each` for every payout the ledger says Dwolla has a transfer for (submitted,
    /// processed, failed, returned), in id order; with `since`, only those first sent (or,
    /// failing that, ingested) at or after it.
    pub fn for_each_sent_payout<E: From<LedgerError>>(
        &self,
        since: Option<&str>,
        mut each: impl FnMut(ReconcilePayout) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let sql = format!(
            "SELECT id, batch_id, line, reference, destination, amount_cents, state, transfer_url,
                    transfer_status, correlation_id
             FROM payouts
             WHERE state IN {SENT_STATES} AND (?1 IS NULL OR COALESCE(first_attempt_at, created_at) >= ?1)
             ORDER BY id"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.error(e))?;
        let mut rows = stmt.query(params![since]).map_err(|e| self.error(e))?;
        while let Some(row) = rows.next().map_err(|e| self.error(e))? {
            each(self.reconcile_row(row)?)?;
        }
        Ok(())
    }

    fn reconcile_row(&self, row: &Row<'_>) -> Result<ReconcilePayout> {
        let state = self.state_at(row, 6)?;
        let get = || -> rusqlite::Result<ReconcilePayout> {
            Ok(ReconcilePayout {
                id: row.get(0)?,
                batch_id: row.get(1)?,
                line: row.get(2)?,
                reference: row.get(3)?,
                destination: row.get(4)?,
                amount_cents: row.get(5)?,
                state,
                transfer_url: row.get(7)?,
                transfer_status: row.get(8)?,
                correlation_id: row.get(9)?,
            })
        };
        get().map_err(|e| self.error(e))
    }

    fn state_at(&self, row: &Row<'_>, index: usize) -> Result<PayoutState> {
        let text = row
            .get_ref(index)
            .and_then(|value| value.as_str().map_err(Into::into))
            .map_err(|e| self.error(e))?;
        text.parse().map_err(|message| LedgerError::Invalid {
            path: self.path.clone(),
            message,
        })
    }
}

fn payout_record<'r>(row: &'r Row<'_>) -> rusqlite::Result<PayoutRecord<'r>> {
    let int = |index: usize| -> rusqlite::Result<i64> { Ok(row.get_ref(index)?.as_i64()?) };
    let text = |index: usize| -> rusqlite::Result<&'r [u8]> { Ok(row.get_ref(index)?.as_bytes()?) };
    let optional = |index: usize| -> rusqlite::Result<Option<&'r [u8]>> {
        Ok(row.get_ref(index)?.as_bytes_or_null()?)
    };
    let state_text = text(4)?;
    let state = PayoutState::ALL
        .into_iter()
        .find(|state| state.as_str().as_bytes() == state_text)
        .ok_or_else(|| {
            rusqlite::Error::InvalidColumnType(
                4,
                String::from_utf8_lossy(state_text).into_owned(),
                rusqlite::types::Type::Text,
            )
        })?;
    Ok(PayoutRecord {
        batch_id: int(0)?,
        line: int(1)?,
        amount_cents: int(2)?,
        attempts: int(3)?,
        state,
        reference: text(5)?,
        name: optional(6)?,
        destination: text(7)?,
        currency: text(8)?,
        transfer_url: optional(9)?,
        transfer_status: optional(10)?,
        failure_code: optional(11)?,
        failure_description: optional(12)?,
        failure_explanation: optional(13)?,
        failure_path: optional(14)?,
        idempotency_key: text(15)?,
        correlation_id: text(16)?,
        created_at: text(17)?,
        updated_at: text(18)?,
        cancel_reason: optional(19)?,
        email: optional(20)?,
        memo: optional(21)?,
    })
}
