//! `payrun report` on PostgreSQL: the batches and their payouts as `ledger::report` reads
//! them, the payouts streamed row by row, all in one repeatable-read snapshot.

use futures_util::StreamExt;

use super::{PgLedger, pg_error};
use crate::ledger::report::{EXCEPTION_STATES, PAYOUT_COLUMNS, SENT_STATES, id_range};
use crate::ledger::summary::SHOWN_BATCH_STATUS;
use crate::ledger::{
    BatchSelection, LedgerError, PayoutRecord, ReconcilePayout, ReportBatch, Result,
};
use crate::payout::PayoutState;

/// A read-only repeatable-read transaction on the ledger's connection: every query while it
/// lives sees one snapshot, whatever the workers commit beside it. Ends when dropped.
pub struct PgSnapshot<'l> {
    ledger: &'l PgLedger,
}

impl Drop for PgSnapshot<'_> {
    fn drop(&mut self) {
        let _ = self
            .ledger
            .block(self.ledger.client.batch_execute("COMMIT"));
    }
}

impl PgLedger {
    pub fn read_snapshot(&self) -> Result<PgSnapshot<'_>> {
        self.block(
            self.client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
        )?;
        Ok(PgSnapshot { ledger: self })
    }

    pub fn report_batches(&self, selection: &BatchSelection) -> Result<Vec<ReportBatch>> {
        let sql = format!(
            "SELECT id, file_name, received_at, {SHOWN_BATCH_STATUS}, row_count, total_cents,
                    rejected_rows, pay_date, sent_at,
                    send_late OR coalesce(sent_at > send_by, false), held_at
             FROM batches
             WHERE ($1::bigint IS NULL OR id = $1) AND ($2::text IS NULL OR received_at >= $2)
             ORDER BY id"
        );
        let rows = self.block(
            self.client
                .query(&sql, &[&selection.batch, &selection.received_since]),
        )?;
        Ok(rows
            .iter()
            .map(|row| ReportBatch {
                id: row.get(0),
                file_name: row.get(1),
                received_at: row.get(2),
                status: row.get(3),
                row_count: row.get::<_, i64>(4) as u64,
                total_cents: row.get(5),
                rejected_rows: row.get::<_, i64>(6) as u64,
                pay_date: row.get(7),
                sent_at: row.get(8),
                late: row.get(9),
                held_at: row.get(10),
            })
            .collect())
    }

    /// As on SQLite: every payout of `batch_id` in file order (or only the exceptions),
    /// streamed: one row in memory at a time.
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
            "SELECT {PAYOUT_COLUMNS} FROM payouts
             WHERE id BETWEEN $1 AND $2{filter} ORDER BY id"
        );
        let error = |source| pg_error(&self.shown, source);
        let rows = futures_executor::block_on(self.client.query_raw(&sql, [first, last]))
            .map_err(error)?;
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = futures_executor::block_on(rows.next()) {
            let row = row.map_err(error)?;
            let record = payout_record(&row).map_err(|message| LedgerError::Invalid {
                path: self.shown.to_string().into(),
                message,
            })?;
            each(&record)?;
        }
        Ok(())
    }
}

/// The columns of a [`ReconcilePayout`], as on SQLite.
const RECONCILE_COLUMNS: &str = "id, batch_id, line, reference, destination, amount_cents, state,
     transfer_url, transfer_status, correlation_id";

impl PgLedger {
    /// Batches that wait for approval, as on SQLite.
    pub fn batches_awaiting_approval(&self) -> Result<Vec<i64>> {
        let rows = self.block(self.client.query(
            "SELECT id FROM batches WHERE status = 'awaiting_approval' ORDER BY id",
            &[],
        ))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    pub fn batch_ids_by_key(&self) -> Result<std::collections::HashMap<String, i64>> {
        let rows = self.block(self.client.query("SELECT batch_key, id FROM batches", &[]))?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    pub fn reconcile_payout(&self, id: i64) -> Result<Option<ReconcilePayout>> {
        let sql = format!("SELECT {RECONCILE_COLUMNS} FROM payouts WHERE id = $1");
        let row = self.block(self.client.query_opt(&sql, &[&id]))?;
        row.map(|row| self.reconcile_row(&row)).transpose()
    }

    /// As on SQLite: the payouts Dwolla should have a transfer for, streamed in id order.
    pub fn for_each_sent_payout<E: From<LedgerError>>(
        &self,
        since: Option<&str>,
        mut each: impl FnMut(ReconcilePayout) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let sql = format!(
            "SELECT {RECONCILE_COLUMNS} FROM payouts
             WHERE state IN {SENT_STATES}
               AND ($1::text IS NULL OR COALESCE(first_attempt_at, created_at) >= $1)
             ORDER BY id"
        );
        let error = |source| pg_error(&self.shown, source);
        let rows =
            futures_executor::block_on(self.client.query_raw(&sql, [since])).map_err(error)?;
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = futures_executor::block_on(rows.next()) {
            each(self.reconcile_row(&row.map_err(error)?)?)?;
        }
        Ok(())
    }

    fn reconcile_row(&self, row: &tokio_postgres::Row) -> Result<ReconcilePayout> {
        let state_text: &str = row.get(6);
        let state = state_text
            .parse()
            .map_err(|message| self.invalid(message))?;
        Ok(ReconcilePayout {
            id: row.get(0),
            batch_id: row.get(1),
            line: row.get(2),
            reference: row.get(3),
            destination: row.get(4),
            amount_cents: row.get(5),
            state,
            transfer_url: row.get(7),
            transfer_status: row.get(8),
            correlation_id: row.get(9),
        })
    }
}

fn payout_record(row: &tokio_postgres::Row) -> std::result::Result<PayoutRecord<'_>, String> {
    let text = |index: usize| -> &[u8] { row.get::<_, &str>(index).as_bytes() };
    let optional =
        |index: usize| -> Option<&[u8]> { row.get::<_, Option<&str>>(index).map(str::as_bytes) };
    let state_text: &str = row.get(4);
    let state: PayoutState = state_text
        .parse()
        .map_err(|_| format!("a payout has an unknown state {state_text:?}"))?;
    Ok(PayoutRecord {
        batch_id: row.get(0),
        line: row.get(1),
        amount_cents: row.get(2),
        attempts: i64::from(row.get::<_, i32>(3)),
        state,
        reference: text(5),
        name: optional(6),
        destination: text(7),
        currency: text(8),
        transfer_url: optional(9),
        transfer_status: optional(10),
        failure_code: optional(11),
        failure_description: optional(12),
        failure_explanation: optional(13),
        failure_path: optional(14),
        idempotency_key: text(15),
        correlation_id: text(16),
        created_at: text(17),
        updated_at: text(18),
        cancel_reason: optional(19),
        email: optional(20),
        memo: optional(21),
    })
}
