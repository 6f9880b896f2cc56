//! Writing one ingested file: the batch row and all its payouts in a single transaction, so a
//! crash at any moment leaves the whole batch or none of it.

use rusqlite::{OptionalExtension, Transaction, params};

use super::{Ledger, LedgerError, Result};
use crate::money::Cents;

/// What the ledger records about a file before its rows.
#[derive(Debug)]
pub struct NewBatch<'a> {
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

/// An ingest in progress. Dropping it without [`IngestTx::commit`] rolls everything back.
pub struct IngestTx<'l> {
    tx: Transaction<'l>,
    ledger_path: &'l std::path::Path,
    batch_id: i64,
    batch_key: String,
    received_at: String,
    n_payouts: u64,
    total: Cents,
    n_rejected: u64,
    buffer: RowBuffer,
}

/// Rows are written [`ROWS_PER_INSERT`] at a time: one multi-row INSERT costs one statement
/// execution (cursor set-up, VDBE start and halt) instead of 64, which dominated the profile.
const ROWS_PER_INSERT: usize = 64;
/// Text columns bound per row, in this order: reference, destination, name, email, memo,
/// metadata, correlation id, idempotency key.
const TEXT_COLUMNS: usize = 8;

/// Buffered rows, their text in one reused arena so that the hot path does not allocate.
#[derive(Default)]
struct RowBuffer {
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
    fn push_text(&mut self, value: Option<&str>) -> Option<(usize, usize)> {
        let value = value?;
        let start = self.text.len();
        self.text.push_str(value);
        Some((start, self.text.len()))
    }

    fn get(&self, span: Option<(usize, usize)>) -> Option<&str> {
        span.map(|(start, end)| &self.text[start..end])
    }

    fn clear(&mut self) {
        self.text.clear();
        self.rows.clear();
    }
}

/// An already-ingested batch that holds the same file content.
#[derive(Debug, Clone)]
pub struct ExistingBatch {
    pub id: i64,
    pub file_name: String,
    pub received_at: String,
}

impl Ledger {
    /// The batch that already holds a file with this content, if any.
    pub fn batch_by_sha256(&self, sha256: &str) -> Result<Option<ExistingBatch>> {
        self.conn
            .query_row(
                "SELECT id, file_name, received_at FROM batches WHERE file_sha256 = ?1",
                [sha256],
                |row| {
                    Ok(ExistingBatch {
                        id: row.get(0)?,
                        file_name: row.get(1)?,
                        received_at: row.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Starts the single transaction of one file's ingest.
    pub fn begin_ingest(&mut self, batch: &NewBatch<'_>) -> Result<IngestTx<'_>> {
        let path = &self.path;
        let err = |source| super::sqlite_error(path, source);
        let tx = self.conn.transaction().map_err(err)?;
        // 48 random bits: unique per ledger by the UNIQUE constraint, and across ledgers by chance
        // (a collision needs millions of batches), which keeps correlation ids short.
        let batch_key = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let status = if batch.awaiting_approval {
            "awaiting_approval"
        } else {
            "ready"
        };
        tx.execute(
            "INSERT INTO batches (batch_key, file_name, file_sha256, row_count, total_cents, received_at, status)
             VALUES (?1, ?2, ?3, 0, 0, ?4, ?5)",
            params![batch_key, batch.file_name, batch.file_sha256, batch.received_at, status],
        )
        .map_err(err)?;
        let batch_id = tx.last_insert_rowid();
        Ok(IngestTx {
            tx,
            ledger_path: path,
            batch_id,
            batch_key,
            received_at: batch.received_at.to_string(),
            n_payouts: 0,
            total: Cents::ZERO,
            n_rejected: 0,
            buffer: RowBuffer::default(),
        })
    }
}

/// The correlation id payrun sends with a payout: the batch's random key and the line. Unique
/// per payout, free of PII, and within Dwolla's `[A-Za-z0-9._-]{1,255}`.
pub fn correlation_id(batch_key: &str, line: u64) -> String {
    format!("pr-{batch_key}-{line}")
}

/// The batch key and line of a correlation id payrun made, or `None` for any other text.
pub fn parse_correlation_id(text: &str) -> Option<(&str, u64)> {
    let (batch_key, line) = text.strip_prefix("pr-")?.split_once('-')?;
    let valid_key = batch_key.len() == 12 && batch_key.bytes().all(|b| b.is_ascii_hexdigit());
    let line: u64 = line.parse().ok().filter(|line| *line > 0)?;
    valid_key.then_some((batch_key, line))
}

impl IngestTx<'_> {
    pub fn batch_id(&self) -> i64 {
        self.batch_id
    }

    pub fn insert_payout(&mut self, payout: &NewPayout<'_>) -> Result<()> {
        // A random key, as Dwolla recommends. Never indexed: uniqueness lives on (batch, line).
        let mut key_text = uuid::Uuid::encode_buffer();
        let idempotency_key = uuid::Uuid::new_v4()
            .hyphenated()
            .encode_lower(&mut key_text);
        let correlation_start = self.buffer.text.len();
        {
            use std::fmt::Write;
            let _ = write!(self.buffer.text, "pr-{}-{}", self.batch_key, payout.line);
        }
        let correlation = Some((correlation_start, self.buffer.text.len()));
        let spans = [
            self.buffer.push_text(Some(payout.reference)),
            self.buffer.push_text(Some(payout.destination)),
            self.buffer.push_text(payout.name),
            self.buffer.push_text(payout.email),
            self.buffer.push_text(payout.memo),
            self.buffer.push_text(payout.metadata),
            correlation,
            self.buffer.push_text(Some(idempotency_key)),
        ];
        self.buffer.rows.push(BufferedRow {
            line: payout.line,
            amount_cents: payout.amount.get(),
            spans,
        });
        self.n_payouts += 1;
        self.total = self
            .total
            .checked_add(payout.amount)
            .ok_or_else(|| LedgerError::Invalid {
                path: self.ledger_path.to_path_buf(),
                message: "batch total overflows".to_string(),
            })?;
        if self.buffer.rows.len() == ROWS_PER_INSERT {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered rows: full groups with one statement, a remainder row by row.
    fn flush(&mut self) -> Result<()> {
        let err = |e| super::sqlite_error(self.ledger_path, e);
        let n_rows = self.buffer.rows.len();
        if n_rows == 0 {
            return Ok(());
        }
        let sql = if n_rows == ROWS_PER_INSERT {
            multi_row_insert_sql(ROWS_PER_INSERT)
        } else {
            multi_row_insert_sql(1)
        };
        let mut statement = self.tx.prepare_cached(sql).map_err(err)?;
        for group in self.buffer.rows.chunks(if n_rows == ROWS_PER_INSERT {
            ROWS_PER_INSERT
        } else {
            1
        }) {
            let mut index = 1;
            for row in group {
                statement
                    .raw_bind_parameter(index, self.batch_id)
                    .map_err(err)?;
                statement
                    .raw_bind_parameter(index + 1, row.line as i64)
                    .map_err(err)?;
                statement
                    .raw_bind_parameter(index + 2, row.amount_cents)
                    .map_err(err)?;
                for (offset, span) in row.spans.iter().enumerate() {
                    statement
                        .raw_bind_parameter(index + 3 + offset, self.buffer.get(*span))
                        .map_err(err)?;
                }
                index += PARAMS_PER_ROW;
            }
            statement
                .raw_bind_parameter(TIMESTAMP_PARAM, self.received_at.as_str())
                .map_err(err)?;
            statement.raw_execute().map_err(err)?;
        }
        drop(statement);
        self.buffer.clear();
        Ok(())
    }

    /// Records a row refused under `--allow-partial`, with every problem found on it.
    pub fn insert_rejected_row(&mut self, line: u64, errors: &str) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO rejected_rows (batch_id, line, errors) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut stmt| stmt.execute(params![self.batch_id, line as i64, errors]))
            .map_err(|e| super::sqlite_error(self.ledger_path, e))?;
        self.n_rejected += 1;
        Ok(())
    }

    pub fn n_payouts(&self) -> u64 {
        self.n_payouts
    }

    pub fn total(&self) -> Cents {
        self.total
    }

    /// Writes the batch's counts and makes the whole file visible at once.
    pub fn commit(mut self) -> Result<i64> {
        self.flush()?;
        let err = |e| super::sqlite_error(self.ledger_path, e);
        self.tx
            .execute(
                "UPDATE batches SET row_count = ?1, total_cents = ?2, rejected_rows = ?3 WHERE id = ?4",
                params![self.n_payouts as i64, self.total.get(), self.n_rejected as i64, self.batch_id],
            )
            .map_err(err)?;
        self.tx.commit().map_err(err)?;
        Ok(self.batch_id)
    }
}

impl IngestTx<'_> {
    /// The reference of a payout already written in this ingest, by line.
    pub fn reference_at_line(&self, line: u64) -> Result<Option<String>> {
        if let Some(row) = self.buffer.rows.iter().find(|row| row.line == line) {
            return Ok(self.buffer.get(row.spans[0]).map(str::to_string));
        }
        self.tx
            .prepare_cached("SELECT reference FROM payouts WHERE id = (?1 << 32) | ?2")
            .and_then(|mut stmt| {
                stmt.query_row(params![self.batch_id, line as i64], |row| row.get(0))
                    .optional()
            })
            .map_err(|e| super::sqlite_error(self.ledger_path, e))
    }
}

/// Parameters bound per row: batch id, line, amount, and the text columns.
const PARAMS_PER_ROW: usize = 3 + TEXT_COLUMNS;
/// The ingest time, bound once per statement after every row's parameters.
const TIMESTAMP_PARAM: usize = ROWS_PER_INSERT * PARAMS_PER_ROW + 1;

/// `INSERT INTO payouts ... VALUES (...), (...)` for `n_rows` rows, built once per size.
fn multi_row_insert_sql(n_rows: usize) -> &'static str {
    static ONE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static GROUP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let build = || {
        let mut sql = String::from(
            "INSERT INTO payouts (id, batch_id, line, amount_cents, reference, destination, name, email, memo,
                 metadata, correlation_id, idempotency_key, currency, state, created_at, updated_at) VALUES ",
        );
        for row in 0..n_rows {
            let p = row * PARAMS_PER_ROW;
            let param = |k: usize| format!("?{}", p + k);
            if row > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(({b} << 32) | {l}, {b}, {l}, {a}, {}, {}, {}, {}, {}, {}, {}, {}, 'USD', 'pending', ?{ts}, ?{ts})",
                param(4),
                param(5),
                param(6),
                param(7),
                param(8),
                param(9),
                param(10),
                param(11),
                b = param(1),
                l = param(2),
                a = param(3),
                ts = TIMESTAMP_PARAM,
            ));
        }
        sql
    };
    if n_rows == 1 {
        ONE.get_or_init(build)
    } else {
        GROUP.get_or_init(build)
    }
}
