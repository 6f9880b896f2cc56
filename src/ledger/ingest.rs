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
    pub amount: Cents,
    pub currency: &'a str,
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
        let batch_key = uuid::Uuid::new_v4().simple().to_string();
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
        })
    }
}

/// The correlation id payrun sends with a payout: the batch's random key and the zero-padded
/// line. Unique per payout, free of PII, and within Dwolla's `[A-Za-z0-9._-]{1,255}`.
pub fn correlation_id(batch_key: &str, line: u64) -> String {
    format!("pr-{batch_key}-{line:09}")
}

impl IngestTx<'_> {
    pub fn batch_id(&self) -> i64 {
        self.batch_id
    }

    pub fn insert_payout(&mut self, payout: &NewPayout<'_>) -> Result<()> {
        let correlation_id = correlation_id(&self.batch_key, payout.line);
        // A random key, as Dwolla recommends. Never indexed: uniqueness lives on (batch, line).
        let idempotency_key = uuid::Uuid::new_v4();
        let mut uuid_text = uuid::Uuid::encode_buffer();
        let idempotency_key = idempotency_key.hyphenated().encode_lower(&mut uuid_text);
        let mut insert = self
            .tx
            .prepare_cached(
                "INSERT INTO payouts (batch_id, line, reference, destination, amount_cents, currency, name, email,
                     memo, metadata, correlation_id, idempotency_key, state, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'pending', ?13, ?13)",
            )
            .map_err(|e| super::sqlite_error(self.ledger_path, e))?;
        insert
            .execute(params![
                self.batch_id,
                payout.line as i64,
                payout.reference,
                payout.destination,
                payout.amount.get(),
                payout.currency,
                payout.name,
                payout.email,
                payout.memo,
                payout.metadata,
                correlation_id,
                &*idempotency_key,
                self.received_at,
            ])
            .map_err(|e| super::sqlite_error(self.ledger_path, e))?;
        self.n_payouts += 1;
        self.total = self
            .total
            .checked_add(payout.amount)
            .ok_or_else(|| LedgerError::Invalid {
                path: self.ledger_path.to_path_buf(),
                message: "batch total overflows".to_string(),
            })?;
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
    pub fn commit(self) -> Result<i64> {
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
        self.tx
            .prepare_cached("SELECT reference FROM payouts WHERE batch_id = ?1 AND line = ?2")
            .and_then(|mut stmt| {
                stmt.query_row(params![self.batch_id, line as i64], |row| row.get(0))
                    .optional()
            })
            .map_err(|e| super::sqlite_error(self.ledger_path, e))
    }
}
