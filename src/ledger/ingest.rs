//! Writing one ingested file: the batch row and all its payouts in a single transaction, so a
//! crash at any moment leaves the whole batch or none of it.
//!
//! Rows arrive in [`RowBuffer`]s, so that parsing can fill the next buffer on another thread
//! while this one writes, and are written [`ROWS_PER_INSERT`] to an INSERT.

use std::fmt::Write as _;

use rusqlite::{OptionalExtension, PrepFlags, Transaction, params};

use super::{Ledger, Result};
use crate::money::Cents;

/// What the ledger records about a file before its rows.
#[derive(Debug)]
pub struct NewBatch<'a> {
    /// From [`new_batch_key`]; every correlation id of the batch starts with it.
    pub batch_key: &'a str,
    pub file_name: &'a str,
    pub file_sha256: &'a str,
    pub received_at: &'a str,
    pub awaiting_approval: bool,
}

/// One valid row of a payout file, borrowed from the parser's buffers.
#[derive(Debug)]
pub struct NewPayout<'a> {
    pub line: u64,
    pub reference: &'a str,
    pub destination: &'a str,
    /// In US dollars: ingest accepts no other currency.
    pub amount: Cents,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub memo: Option<&'a str>,
    /// A JSON object, already encoded.
    pub metadata: Option<&'a str>,
}

/// An already-ingested batch that holds the same file content.
#[derive(Debug, Clone)]
pub struct ExistingBatch {
    pub id: i64,
    pub file_name: String,
    pub received_at: String,
    pub pay_date: Option<String>,
    pub status: String,
}

const EXISTING_COLUMNS: &str = "id, file_name, received_at, pay_date, status";

fn existing_batch(row: &rusqlite::Row<'_>) -> rusqlite::Result<ExistingBatch> {
    Ok(ExistingBatch {
        id: row.get(0)?,
        file_name: row.get(1)?,
        received_at: row.get(2)?,
        pay_date: row.get(3)?,
        status: row.get(4)?,
    })
}

/// What is known about a batch once all of its rows are read: its identity, its timing, and
/// whether the repeat guard holds it.
#[derive(Debug, Clone, Default)]
pub struct BatchIdentity {
    /// SHA-256 of the parsed, normalised records.
    pub records_sha256: String,
    pub schedule: super::BatchSchedule,
    /// Why it waits for approval although `awaiting_approval` was not asked for.
    pub approval_reason: Option<String>,
}

/// An ingest in progress. Dropping it without [`IngestTx::commit`] rolls everything back.
pub struct IngestTx<'l> {
    tx: Transaction<'l>,
    ledger_path: &'l std::path::Path,
    batch_id: i64,
    received_at: String,
}

/// One multi-row INSERT costs one statement execution (cursor set-up, VDBE start and halt)
/// instead of 16, which dominated the profile of single-row inserts. Not more: SQLite copies
/// each bound text into its per-connection pool of small allocations (lookaside), which holds
/// a few hundred; the 512 texts of a 64-row statement overflowed it into malloc. Measured with
/// callgrind, the writer's instructions per row: 16.2k at 64 rows a statement, 13.5k at 32,
/// 12.3k at 16 (and no better at 8).
const ROWS_PER_INSERT: usize = 16;
/// Text columns bound per row, in this order: reference, destination, name, email, memo,
/// metadata, correlation id, idempotency key.
pub(super) const TEXT_COLUMNS: usize = 8;
/// Parameters bound per row: batch id, line, amount, and the text columns.
const PARAMS_PER_ROW: usize = 3 + TEXT_COLUMNS;
/// The ingest time, bound once per statement after every row's parameters.
const TIMESTAMP_PARAM: usize = ROWS_PER_INSERT * PARAMS_PER_ROW + 1;

/// Rows ready to write, their text in one arena that is reused, so the hot path allocates
/// nothing once buffers have grown.
#[derive(Default)]
pub struct RowBuffer {
    text: String,
    rows: Vec<BufferedRow>,
}

struct BufferedRow {
    line: u64,
    amount_cents: i64,
    /// Byte ranges into `RowBuffer::text`; `None` for an absent optional field.
    spans: [Option<(usize, usize)>; TEXT_COLUMNS],
}

impl RowBuffer {
    /// Adds a payout with its correlation id and a fresh idempotency key: a random UUID, as
    /// Dwolla recommends, never indexed (uniqueness lives on (batch, line)).
    pub fn push(&mut self, batch_key: &str, payout: &NewPayout<'_>) {
        let mut key_text = uuid::Uuid::encode_buffer();
        let idempotency_key = uuid::Uuid::new_v4()
            .hyphenated()
            .encode_lower(&mut key_text);
        let correlation_start = self.text.len();
        push_correlation_id(&mut self.text, batch_key, payout.line);
        let correlation = Some((correlation_start, self.text.len()));
        let spans = [
            self.push_text(Some(payout.reference)),
            self.push_text(Some(payout.destination)),
            self.push_text(payout.name),
            self.push_text(payout.email),
            self.push_text(payout.memo),
            self.push_text(payout.metadata),
            correlation,
            self.push_text(Some(idempotency_key)),
        ];
        self.rows.push(BufferedRow {
            line: payout.line,
            amount_cents: payout.amount.get(),
            spans,
        });
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.rows.clear();
    }

    /// The reference of a buffered row, by line.
    pub fn reference_at_line(&self, line: u64) -> Option<&str> {
        let row = self.rows.iter().find(|row| row.line == line)?;
        self.get(row.spans[0])
    }

    /// Every row: its line, amount in cents and text columns in [`TEXT_COLUMNS`] order
    /// (reference, destination, name, email, memo, metadata, correlation id, idempotency key).
    pub(super) fn each_row(
        &self,
    ) -> impl Iterator<Item = (u64, i64, [Option<&str>; TEXT_COLUMNS])> + '_ {
        self.rows.iter().map(|row| {
            (
                row.line,
                row.amount_cents,
                row.spans.map(|span| self.get(span)),
            )
        })
    }

    fn push_text(&mut self, value: Option<&str>) -> Option<(usize, usize)> {
        let value = value?;
        let start = self.text.len();
        self.text.push_str(value);
        Some((start, self.text.len()))
    }

    fn get(&self, span: Option<(usize, usize)>) -> Option<&str> {
        span.map(|(start, end)| &self.text[start..end])
    }
}

/// A fresh batch key: 48 random bits. Unique per ledger by the UNIQUE constraint, and across
/// ledgers by chance (a collision needs millions of batches), which keeps correlation ids short.
pub fn new_batch_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// The correlation id payrun sends with a payout: the batch's random key and the line. Unique
/// per payout, free of PII, and within Dwolla's `[A-Za-z0-9._-]{1,255}`.
pub fn correlation_id(batch_key: &str, line: u64) -> String {
    let mut id = String::with_capacity(32);
    push_correlation_id(&mut id, batch_key, line);
    id
}

fn push_correlation_id(out: &mut String, batch_key: &str, line: u64) {
    out.push_str("pr-");
    out.push_str(batch_key);
    out.push('-');
    out.push_str(itoa::Buffer::new().format(line));
}

/// A payout's id: `(batch_id << 32) | line`, so that the primary key alone makes (batch,
/// line) unique (see migrations/0001). The one place Rust code builds it.
pub fn payout_id(batch_id: i64, line: u32) -> i64 {
    (batch_id << 32) | i64::from(line)
}

/// The batch id and file line of a payout id, the inverse of [`payout_id`]: how logs and
/// messages name a payout to a person.
pub fn batch_and_line(payout_id: i64) -> (i64, i64) {
    (payout_id >> 32, payout_id & 0xffff_ffff)
}

/// The batch key and line of a correlation id payrun made, or `None` for any other text.
pub fn parse_correlation_id(text: &str) -> Option<(&str, u64)> {
    let (batch_key, line) = text.strip_prefix("pr-")?.split_once('-')?;
    let valid_key = batch_key.len() == 12 && batch_key.bytes().all(|b| b.is_ascii_hexdigit());
    let line: u64 = line.parse().ok().filter(|line| *line > 0)?;
    valid_key.then_some((batch_key, line))
}

impl Ledger {
    /// The batches whose file had exactly these bytes (one per pay date at most).
    pub fn batches_by_sha256(&self, sha256: &str) -> Result<Vec<ExistingBatch>> {
        let sql =
            format!("SELECT {EXISTING_COLUMNS} FROM batches WHERE file_sha256 = ?1 ORDER BY id");
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map([sha256], existing_batch)
            .map_err(|e| self.error(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.error(e))
    }

    /// A batch's records hash and pay date, for comparing a planned batch with this ledger.
    pub fn batch_identity(&self, batch_id: i64) -> Result<Option<(String, Option<String>)>> {
        self.conn
            .query_row(
                "SELECT records_sha256, pay_date FROM batches WHERE id = ?1 AND records_sha256 IS NOT NULL",
                [batch_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// The batch holding these records for this pay date: the same payroll.
    pub fn batch_by_identity(
        &self,
        records_sha256: &str,
        pay_date: Option<&str>,
    ) -> Result<Option<ExistingBatch>> {
        let sql = format!(
            "SELECT {EXISTING_COLUMNS} FROM batches
             WHERE records_sha256 = ?1 AND coalesce(pay_date, '') = coalesce(?2, '')"
        );
        self.conn
            .query_row(&sql, params![records_sha256, pay_date], existing_batch)
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Starts the single transaction of one file's ingest.
    pub fn begin_ingest(&mut self, batch: &NewBatch<'_>) -> Result<IngestTx<'_>> {
        let path = &self.path;
        let err = |source| super::sqlite_error(path, source);
        let tx = self.conn.transaction().map_err(err)?;
        let status = if batch.awaiting_approval {
            "awaiting_approval"
        } else {
            "ready"
        };
        tx.execute(
            "INSERT INTO batches (batch_key, file_name, file_sha256, row_count, total_cents, received_at, status)
             VALUES (?1, ?2, ?3, 0, 0, ?4, ?5)",
            params![batch.batch_key, batch.file_name, batch.file_sha256, batch.received_at, status],
        )
        .map_err(err)?;
        let batch_id = tx.last_insert_rowid();
        Ok(IngestTx {
            tx,
            ledger_path: path,
            batch_id,
            received_at: batch.received_at.to_string(),
        })
    }
}

impl IngestTx<'_> {
    pub fn batch_id(&self) -> i64 {
        self.batch_id
    }

    /// The prepared INSERTs of this ingest, kept for all of its rows: fetching them from
    /// rusqlite's cache per group (which hashes the long SQL and clears every binding on
    /// return) cost the writer about 5% of its instructions.
    pub fn payout_inserter(&self) -> Result<PayoutInserter<'_>> {
        // PERSISTENT keeps the statements out of SQLite's small-allocation pool (lookaside),
        // which then stays free for the bound texts: without it, most of those went to malloc.
        let prepare = |rows| {
            self.tx
                .prepare_with_flags(
                    multi_row_insert_sql(rows),
                    PrepFlags::SQLITE_PREPARE_PERSISTENT,
                )
                .map_err(|e| super::sqlite_error(self.ledger_path, e))
        };
        Ok(PayoutInserter {
            group: prepare(ROWS_PER_INSERT)?,
            single: prepare(1)?,
            ledger_path: self.ledger_path,
            batch_id: self.batch_id,
            received_at: &self.received_at,
        })
    }

    /// Records a row refused under `--allow-partial`, with every problem found on it.
    pub fn insert_rejected_row(&self, line: u64, errors: &str) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO rejected_rows (batch_id, line, errors) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut stmt| stmt.execute(params![self.batch_id, line as i64, errors]))
            .map_err(|e| super::sqlite_error(self.ledger_path, e))?;
        Ok(())
    }

    /// The reference of a payout already written in this ingest, by line.
    pub fn reference_at_line(&self, line: u64) -> Result<Option<String>> {
        self.tx
            .prepare_cached("SELECT reference FROM payouts WHERE id = (?1 << 32) | ?2")
            .and_then(|mut stmt| {
                stmt.query_row(params![self.batch_id, line as i64], |row| row.get(0))
                    .optional()
            })
            .map_err(|e| super::sqlite_error(self.ledger_path, e))
    }

    /// The batch that already holds the same records for the same pay date: the same
    /// payroll, however its file was saved.
    pub fn batch_with_identity(
        &self,
        records_sha256: &str,
        pay_date: Option<&str>,
    ) -> Result<Option<ExistingBatch>> {
        let sql = format!(
            "SELECT {EXISTING_COLUMNS} FROM batches
             WHERE records_sha256 = ?1 AND coalesce(pay_date, '') = coalesce(?2, '') AND id != ?3"
        );
        self.tx
            .query_row(
                &sql,
                params![records_sha256, pay_date, self.batch_id],
                existing_batch,
            )
            .optional()
            .map_err(|e| super::sqlite_error(self.ledger_path, e))
    }

    /// The earlier batch (received at or after `since`, for the same pay date or where either
    /// has none) whose payouts this batch repeats most, if any.
    pub fn repeat_overlap(
        &self,
        since: &str,
        pay_date: Option<&str>,
    ) -> Result<Option<super::RepeatOverlap>> {
        let err = |e| super::sqlite_error(self.ledger_path, e);
        let candidates = super::repeat::candidates(&self.tx, since, pay_date, Some(self.batch_id))
            .map_err(err)?;
        super::repeat::largest_overlap(&self.tx, &self.tx, self.batch_id, candidates).map_err(err)
    }

    /// Writes the batch's counts, identity and schedule; [`commit_written`](Self::commit_written)
    /// then makes the whole file visible at once. Its send window is open at once when it has
    /// no pay date or its window has come.
    pub fn record_counts(
        &self,
        n_payouts: u64,
        total: Cents,
        n_rejected: u64,
        identity: &BatchIdentity,
    ) -> Result<i64> {
        let err = |e| super::sqlite_error(self.ledger_path, e);
        let schedule = &identity.schedule;
        self.tx
            .execute(
                "UPDATE batches SET row_count = ?1, total_cents = ?2, rejected_rows = ?3,
                     records_sha256 = ?5, pay_date = ?6, send_after = ?7, send_by = ?8,
                     send_late = ?9, approval_reason = ?10,
                     status = CASE WHEN ?10 IS NULL THEN status ELSE 'awaiting_approval' END,
                     send_open_at = CASE WHEN ?7 IS NULL OR ?7 <= received_at THEN received_at END
                 WHERE id = ?4",
                params![
                    n_payouts as i64,
                    total.get(),
                    n_rejected as i64,
                    self.batch_id,
                    identity.records_sha256,
                    schedule.pay_date,
                    schedule.send_after,
                    schedule.send_by,
                    schedule.send_late,
                    identity.approval_reason,
                ],
            )
            .map_err(err)?;
        Ok(self.batch_id)
    }

    pub fn commit_written(self) -> Result<()> {
        self.tx
            .commit()
            .map_err(|e| super::sqlite_error(self.ledger_path, e))
    }
}

/// [`BatchWriter`](super::BatchWriter) on SQLite: the ingest transaction and its prepared
/// INSERTs, kept for all of the file's rows.
pub(super) struct SqliteBatch<'t> {
    tx: &'t IngestTx<'t>,
    inserter: PayoutInserter<'t>,
    finished: bool,
}

impl<'t> SqliteBatch<'t> {
    pub(super) fn new(tx: &'t IngestTx<'t>) -> Result<SqliteBatch<'t>> {
        Ok(SqliteBatch {
            tx,
            inserter: tx.payout_inserter()?,
            finished: false,
        })
    }

    pub(super) fn finished(&self) -> bool {
        self.finished
    }
}

impl super::BatchWriter for SqliteBatch<'_> {
    fn batch_id(&self) -> i64 {
        self.tx.batch_id
    }

    fn insert_rows(&mut self, rows: &RowBuffer) -> Result<()> {
        self.inserter.insert(rows)
    }

    fn insert_rejected_row(&mut self, line: u64, errors: &str) -> Result<()> {
        self.tx.insert_rejected_row(line, errors)
    }

    fn reference_at_line(&mut self, line: u64) -> Result<Option<String>> {
        self.tx.reference_at_line(line)
    }

    fn batch_with_identity(
        &mut self,
        records_sha256: &str,
        pay_date: Option<&str>,
    ) -> Result<Option<ExistingBatch>> {
        self.tx.batch_with_identity(records_sha256, pay_date)
    }

    fn repeat_overlap(
        &mut self,
        since: &str,
        pay_date: Option<&str>,
    ) -> Result<Option<super::RepeatOverlap>> {
        self.tx.repeat_overlap(since, pay_date)
    }

    fn finish(
        &mut self,
        n_payouts: u64,
        total: Cents,
        n_rejected: u64,
        identity: &BatchIdentity,
    ) -> Result<i64> {
        let batch_id = self
            .tx
            .record_counts(n_payouts, total, n_rejected, identity)?;
        self.finished = true;
        Ok(batch_id)
    }
}

/// Writes the payouts of one ingest, from [`IngestTx::payout_inserter`].
pub struct PayoutInserter<'t> {
    group: rusqlite::Statement<'t>,
    single: rusqlite::Statement<'t>,
    ledger_path: &'t std::path::Path,
    batch_id: i64,
    received_at: &'t str,
}

impl PayoutInserter<'_> {
    /// Writes buffered rows: whole groups with one statement each, the remainder row by row.
    pub fn insert(&mut self, buffer: &RowBuffer) -> Result<()> {
        let groups = buffer.rows.chunks_exact(ROWS_PER_INSERT);
        let remainder = groups.remainder();
        for rows in groups {
            bind_and_run(
                &mut self.group,
                buffer,
                rows,
                self.batch_id,
                self.received_at,
            )
            .map_err(|e| super::sqlite_error(self.ledger_path, e))?;
        }
        for row in remainder.chunks(1) {
            bind_and_run(
                &mut self.single,
                buffer,
                row,
                self.batch_id,
                self.received_at,
            )
            .map_err(|e| super::sqlite_error(self.ledger_path, e))?;
        }
        Ok(())
    }
}

/// Binds every parameter of `statement` (so no binding is left from its previous run) and runs
/// it once.
fn bind_and_run(
    statement: &mut rusqlite::Statement<'_>,
    buffer: &RowBuffer,
    rows: &[BufferedRow],
    batch_id: i64,
    received_at: &str,
) -> rusqlite::Result<()> {
    for (row_index, row) in rows.iter().enumerate() {
        let first = 1 + row_index * PARAMS_PER_ROW;
        statement.raw_bind_parameter(first, batch_id)?;
        statement.raw_bind_parameter(first + 1, row.line as i64)?;
        statement.raw_bind_parameter(first + 2, row.amount_cents)?;
        for (offset, span) in row.spans.iter().enumerate() {
            statement.raw_bind_parameter(first + 3 + offset, buffer.get(*span))?;
        }
    }
    statement.raw_bind_parameter(TIMESTAMP_PARAM, received_at)?;
    statement.raw_execute()?;
    Ok(())
}

/// `INSERT INTO payouts ... VALUES (...), (...)` for 1 or [`ROWS_PER_INSERT`] rows, built once.
pub(super) fn multi_row_insert_sql(n_rows: usize) -> &'static str {
    static ONE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static GROUP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let build = || {
        let mut sql = String::from(
            "INSERT INTO payouts (id, batch_id, line, amount_cents, reference, destination, name, email, memo,
                 metadata, correlation_id, idempotency_key, currency, state, created_at, updated_at) VALUES ",
        );
        for row in 0..n_rows {
            let p = row * PARAMS_PER_ROW;
            if row > 0 {
                sql.push(',');
            }
            let (b, l, a) = (p + 1, p + 2, p + 3);
            let _ = write!(sql, "((?{b} << 32) | ?{l}, ?{b}, ?{l}, ?{a}");
            for text in 0..TEXT_COLUMNS {
                let _ = write!(sql, ", ?{}", p + 4 + text);
            }
            let _ = write!(
                sql,
                ", 'USD', 'pending', ?{TIMESTAMP_PARAM}, ?{TIMESTAMP_PARAM})"
            );
        }
        sql
    };
    if n_rows == 1 {
        ONE.get_or_init(build)
    } else {
        GROUP.get_or_init(build)
    }
}
