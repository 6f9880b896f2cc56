//! One file's batch on PostgreSQL, in one transaction: the batch row, then the payouts
//! streamed with `COPY payouts FROM STDIN` (binary format) while the parser fills the next
//! buffer, then the counts. Two workers ingesting the same payroll at once are serialized on
//! an advisory lock of its identity, so the second finds the first's batch and adds nothing;
//! the unique index on (records hash, pay date) stays the last word.

use std::collections::HashSet;
use std::pin::Pin;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt;
use tokio_postgres::{CopyInSink, Transaction};

use super::{PgLedger, pg_error};
use crate::ledger::repeat::{PayoutKey, RepeatCandidate, payout_key};
use crate::ledger::{
    BatchIdentity, BatchWriter, ExistingBatch, LedgerError, NewBatch, RepeatOverlap, Result,
    RowBuffer,
};
use crate::money::Cents;

const EXISTING_COLUMNS: &str = "id, file_name, received_at, pay_date, status";

/// Bytes of COPY data handed to the driver at a time.
const COPY_CHUNK: usize = 256 * 1024;

/// The advisory lock under which an ingest numbers its batch.
const BATCH_NUMBERING_LOCK: i64 = 0x7061_7972_756e_0002;

fn existing_batch(row: &tokio_postgres::Row) -> ExistingBatch {
    ExistingBatch {
        id: row.get(0),
        file_name: row.get(1),
        received_at: row.get(2),
        pay_date: row.get(3),
        status: row.get(4),
    }
}

impl PgLedger {
    pub fn batches_by_sha256(&self, sha256: &str) -> Result<Vec<ExistingBatch>> {
        let sql =
            format!("SELECT {EXISTING_COLUMNS} FROM batches WHERE file_sha256 = $1 ORDER BY id");
        let rows = self.block(self.client.query(&sql, &[&sha256]))?;
        Ok(rows.iter().map(existing_batch).collect())
    }

    pub(in crate::ledger) fn write_batch<T>(
        &mut self,
        batch: &NewBatch<'_>,
        write: impl FnOnce(&mut dyn BatchWriter) -> Result<T>,
    ) -> Result<T> {
        let shown = self.shown.clone();
        let err = |source| pg_error(&shown, source);
        let status = if batch.awaiting_approval {
            "awaiting_approval"
        } else {
            "ready"
        };
        let tx = futures_executor::block_on(self.client.transaction()).map_err(err)?;
        let batch_id: i64 = futures_executor::block_on(async {
            // Batches are numbered without gaps, as on SQLite: finance reads a missing batch
            // number as a lost payroll. A sequence would leave one behind for every rejected
            // file, so ingests take their numbers one at a time, each holding this lock to its
            // commit (taken before the payroll's identity lock, by every ingest alike).
            tx.execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&BATCH_NUMBERING_LOCK],
            )
            .await?;
            tx.query_one(
                "INSERT INTO batches (id, batch_key, file_name, file_sha256, row_count, total_cents,
                     received_at, status)
                 VALUES ((SELECT coalesce(max(id), 0) + 1 FROM batches), $1, $2, $3, 0, 0, $4, $5)
                 RETURNING id",
                &[&batch.batch_key, &batch.file_name, &batch.file_sha256, &batch.received_at, &status],
            )
            .await
        })
        .map_err(err)?
        .get(0);
        let mut writer = PgBatch {
            tx,
            copy: None,
            buffer: BytesMut::with_capacity(COPY_CHUNK * 2),
            batch_id,
            received_at: batch.received_at.to_string(),
            shown: &shown,
            rejected: Vec::new(),
            copied: 0,
            finished: false,
        };
        let written = write(&mut writer)?;
        if writer.finished {
            futures_executor::block_on(writer.tx.commit())
                .map_err(|source| unique_identity_error(&shown, source))?;
        }
        Ok(written)
    }
}

/// A concurrent ingest that slipped past the identity lock would hit the unique index; say so
/// in words.
fn unique_identity_error(shown: &str, source: tokio_postgres::Error) -> LedgerError {
    let duplicate = source.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION);
    if duplicate {
        return LedgerError::Invalid {
            path: shown.into(),
            message: "another worker committed the same payroll at the same moment; nothing was added (ingest again to see its batch)".into(),
        };
    }
    pg_error(shown, source)
}

struct PgBatch<'c> {
    tx: Transaction<'c>,
    copy: Option<Pin<Box<CopyInSink<Bytes>>>>,
    buffer: BytesMut,
    batch_id: i64,
    received_at: String,
    shown: &'c str,
    /// Written at the end, after the COPY, with one statement.
    rejected: Vec<(i64, String)>,
    /// Rows the server says its COPYs wrote, checked against the parser's count.
    copied: u64,
    finished: bool,
}

impl PgBatch<'_> {
    fn error(&self, source: tokio_postgres::Error) -> LedgerError {
        pg_error(self.shown, source)
    }

    /// Ends the COPY in progress, so that the transaction can run other statements.
    fn end_copy(&mut self) -> Result<()> {
        let Some(mut sink) = self.copy.take() else {
            return Ok(());
        };
        self.buffer.put_i16(-1);
        let rest = self.buffer.split().freeze();
        self.copied += futures_executor::block_on(async {
            if !rest.is_empty() {
                sink.send(rest).await?;
            }
            sink.as_mut().finish().await
        })
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    fn start_copy(&mut self) -> Result<()> {
        if self.copy.is_some() {
            return Ok(());
        }
        let sink = futures_executor::block_on(self.tx.copy_in(
            "COPY payouts (id, batch_id, line, amount_cents, reference, destination, name, email,
                 memo, metadata, correlation_id, idempotency_key, currency, state, created_at,
                 updated_at) FROM STDIN (FORMAT binary)",
        ))
        .map_err(|e| self.error(e))?;
        self.copy = Some(Box::pin(sink));
        self.buffer.put_slice(BINARY_COPY_HEADER);
        Ok(())
    }

    fn flush_if_full(&mut self) -> Result<()> {
        if self.buffer.len() < COPY_CHUNK {
            return Ok(());
        }
        let chunk = self.buffer.split().freeze();
        let sink = self
            .copy
            .as_mut()
            .expect("a COPY is open while rows are written");
        futures_executor::block_on(sink.send(chunk)).map_err(|e| pg_error(self.shown, e))
    }
}

impl BatchWriter for PgBatch<'_> {
    fn batch_id(&self) -> i64 {
        self.batch_id
    }

    fn insert_rows(&mut self, rows: &RowBuffer) -> Result<()> {
        self.start_copy()?;
        for (line, amount_cents, texts) in rows.each_row() {
            let id = crate::ledger::payout_id(self.batch_id, line as u32);
            copy_row(
                &mut self.buffer,
                id,
                self.batch_id,
                line,
                amount_cents,
                &texts,
                &self.received_at,
            );
        }
        self.flush_if_full()
    }

    fn insert_rejected_row(&mut self, line: u64, errors: &str) -> Result<()> {
        self.rejected.push((line as i64, errors.to_string()));
        Ok(())
    }

    fn reference_at_line(&mut self, line: u64) -> Result<Option<String>> {
        self.end_copy()?;
        let id = crate::ledger::payout_id(self.batch_id, line as u32);
        let row = futures_executor::block_on(
            self.tx
                .query_opt("SELECT reference FROM payouts WHERE id = $1", &[&id]),
        )
        .map_err(|e| self.error(e))?;
        Ok(row.map(|row| row.get(0)))
    }

    fn batch_with_identity(
        &mut self,
        records_sha256: &str,
        pay_date: Option<&str>,
    ) -> Result<Option<ExistingBatch>> {
        self.end_copy()?;
        let sql = format!(
            "SELECT {EXISTING_COLUMNS} FROM batches
             WHERE records_sha256 = $1 AND coalesce(pay_date, '') = coalesce($2, '') AND id != $3"
        );
        let identity = format!("{records_sha256}/{}", pay_date.unwrap_or(""));
        let row = futures_executor::block_on(async {
            // Held to the end of this transaction: a second ingest of the same payroll waits
            // here, then sees the first one's committed batch.
            self.tx
                .execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))",
                    &[&identity],
                )
                .await?;
            self.tx
                .query_opt(&sql, &[&records_sha256, &pay_date, &self.batch_id])
                .await
        })
        .map_err(|e| self.error(e))?;
        Ok(row.as_ref().map(existing_batch))
    }

    fn repeat_overlap(
        &mut self,
        since: &str,
        pay_date: Option<&str>,
    ) -> Result<Option<RepeatOverlap>> {
        self.end_copy()?;
        largest_overlap(&self.tx, self.batch_id, since, pay_date).map_err(|e| self.error(e))
    }

    fn finish(
        &mut self,
        n_payouts: u64,
        total: Cents,
        n_rejected: u64,
        identity: &BatchIdentity,
    ) -> Result<i64> {
        self.end_copy()?;
        if self.copied != n_payouts {
            return Err(LedgerError::Invalid {
                path: self.shown.into(),
                message: format!(
                    "the ingest parsed {n_payouts} payouts but wrote {}; nothing was added",
                    self.copied
                ),
            });
        }
        let schedule = &identity.schedule;
        let (lines, errors): (Vec<i64>, Vec<String>) = self.rejected.drain(..).unzip();
        futures_executor::block_on(async {
            self.tx
                .execute(
                    "INSERT INTO rejected_rows (batch_id, line, errors)
                     SELECT $1, line, errors FROM unnest($2::bigint[], $3::text[]) AS r(line, errors)",
                    &[&self.batch_id, &lines, &errors],
                )
                .await?;
            self.tx
                .execute(
                    "UPDATE batches SET row_count = $1, total_cents = $2, rejected_rows = $3,
                         records_sha256 = $5, pay_date = $6, send_after = $7, send_by = $8,
                         send_late = $9, approval_reason = $10,
                         status = CASE WHEN $10::text IS NULL THEN status ELSE 'awaiting_approval' END,
                         send_open_at = CASE WHEN $7::text IS NULL OR $7 <= received_at THEN received_at END
                     WHERE id = $4",
                    &[
                        &(n_payouts as i64),
                        &total.get(),
                        &(n_rejected as i64),
                        &self.batch_id,
                        &identity.records_sha256,
                        &schedule.pay_date,
                        &schedule.send_after,
                        &schedule.send_by,
                        &schedule.send_late,
                        &identity.approval_reason,
                    ],
                )
                .await
        })
        .map_err(|e| self.error(e))?;
        self.finished = true;
        Ok(self.batch_id)
    }
}

/// The start of a binary COPY stream: signature, flags, header extension length.
const BINARY_COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Columns per row, in the order the COPY statement names them.
const COPY_COLUMNS: i16 = 16;

/// One payout as a row of binary COPY: each field its length and bytes (-1 for NULL), the
/// numbers as big-endian int8. Nothing to escape, and nothing for the server to parse.
fn copy_row(
    out: &mut BytesMut,
    id: i64,
    batch_id: i64,
    line: u64,
    amount_cents: i64,
    texts: &[Option<&str>],
    received_at: &str,
) {
    out.put_i16(COPY_COLUMNS);
    for number in [id, batch_id, line as i64, amount_cents] {
        out.put_i32(8);
        out.put_i64(number);
    }
    for text in texts {
        copy_field(out, *text);
    }
    for text in ["USD", "pending", received_at, received_at] {
        copy_field(out, Some(text));
    }
}

fn copy_field(out: &mut BytesMut, value: Option<&str>) {
    match value {
        Some(text) => {
            out.put_i32(text.len() as i32);
            out.put_slice(text.as_bytes());
        }
        None => out.put_i32(-1),
    }
}

/// The repeat guard on PostgreSQL: the same candidates and comparison as on SQLite
/// (`ledger::repeat`), the payouts streamed rather than loaded.
fn largest_overlap(
    tx: &Transaction<'_>,
    batch_id: i64,
    since: &str,
    pay_date: Option<&str>,
) -> std::result::Result<Option<RepeatOverlap>, tokio_postgres::Error> {
    futures_executor::block_on(async {
        let candidates: Vec<RepeatCandidate> = tx
            .query(
                "SELECT id, file_name, received_at FROM batches
                 WHERE received_at >= $1
                   AND (pay_date IS NOT DISTINCT FROM $2 OR pay_date IS NULL OR $2::text IS NULL)
                   AND id != $3 AND status != 'cancelled'
                 ORDER BY id DESC LIMIT 20",
                &[&since, &pay_date, &batch_id],
            )
            .await?
            .iter()
            .map(|row| RepeatCandidate {
                id: row.get(0),
                file_name: row.get(1),
                received_at: row.get(2),
            })
            .collect();
        let mut best: Option<RepeatOverlap> = None;
        for earlier in candidates {
            let mut keys = HashSet::new();
            for_each_key(tx, earlier.id, |key| {
                keys.insert(key);
            })
            .await?;
            let (mut n_repeated, mut n_payouts) = (0, 0);
            for_each_key(tx, batch_id, |key| {
                n_payouts += 1;
                n_repeated += u64::from(keys.contains(&key));
            })
            .await?;
            if n_repeated > best.as_ref().map_or(0, |b| b.n_repeated) {
                best = Some(RepeatOverlap {
                    earlier,
                    n_repeated,
                    n_payouts,
                });
            }
        }
        Ok(best)
    })
}

async fn for_each_key(
    tx: &Transaction<'_>,
    batch_id: i64,
    mut each: impl FnMut(PayoutKey),
) -> std::result::Result<(), tokio_postgres::Error> {
    use futures_util::TryStreamExt;
    let (first, last) = (batch_id << 32, (batch_id << 32) | 0xffff_ffff);
    let rows = tx
        .query_raw(
            "SELECT reference, amount_cents, destination FROM payouts WHERE id BETWEEN $1 AND $2",
            [first, last],
        )
        .await?;
    let mut rows = std::pin::pin!(rows);
    while let Some(row) = rows.try_next().await? {
        each(payout_key(row.get(0), row.get(1), row.get(2)));
    }
    Ok(())
}
