//! What `payrun plan` reads of a PostgreSQL ledger: the same payroll already there, the most
//! recent batch, and how much a planned batch (held in the plan's scratch SQLite ledger)
//! repeats a recent batch here. The same candidates and comparison as the ingest's repeat
//! guard (`postgres::ingest`, `ledger::repeat`), each earlier batch's payouts streamed.

use std::collections::HashSet;

use futures_util::TryStreamExt;

use super::PgLedger;
use crate::ledger::repeat::{PayoutKey, RepeatCandidate, count_repeated, payout_key};
use crate::ledger::{ExistingBatch, Ledger, RepeatOverlap, Result};
use crate::money::Cents;

impl PgLedger {
    /// The batch holding these records for this pay date: the same payroll.
    pub fn batch_by_identity(
        &self,
        records_sha256: &str,
        pay_date: Option<&str>,
    ) -> Result<Option<ExistingBatch>> {
        let row = self.block(self.client.query_opt(
            "SELECT id, file_name, received_at, pay_date, status FROM batches
             WHERE records_sha256 = $1 AND coalesce(pay_date, '') = coalesce($2, '')",
            &[&records_sha256, &pay_date],
        ))?;
        Ok(row.map(|row| ExistingBatch {
            id: row.get(0),
            file_name: row.get(1),
            received_at: row.get(2),
            pay_date: row.get(3),
            status: row.get(4),
        }))
    }

    /// The most recent batch: its id and total, for comparing a new file against it.
    pub fn latest_batch(&self) -> Result<Option<(i64, Cents)>> {
        let row = self.block(self.client.query_opt(
            "SELECT id, total_cents FROM batches ORDER BY id DESC LIMIT 1",
            &[],
        ))?;
        Ok(row.map(|row| {
            let total: i64 = row.get(1);
            (row.get(0), Cents::new(total).unwrap_or(Cents::ZERO))
        }))
    }

    /// How much batch `planned_batch` of the scratch ledger `planned` repeats a recent batch
    /// of this ledger.
    pub fn repeat_overlap_of(
        &self,
        planned: &Ledger,
        planned_batch: i64,
        since: &str,
        pay_date: Option<&str>,
    ) -> Result<Option<RepeatOverlap>> {
        let mut best: Option<RepeatOverlap> = None;
        for earlier in self.repeat_candidates(since, pay_date)? {
            let keys = self.block(self.payout_keys(earlier.id))?;
            let (n_repeated, n_payouts) = count_repeated(&planned.conn, planned_batch, &keys)
                .map_err(|e| planned.error(e))?;
            if n_repeated > best.as_ref().map_or(0, |b| b.n_repeated) {
                best = Some(RepeatOverlap {
                    earlier,
                    n_repeated,
                    n_payouts,
                });
            }
        }
        Ok(best)
    }

    /// The batches a new one for `pay_date` may repeat, newest first (see
    /// `ledger::repeat::candidates`).
    fn repeat_candidates(
        &self,
        since: &str,
        pay_date: Option<&str>,
    ) -> Result<Vec<RepeatCandidate>> {
        let rows = self.block(self.client.query(
            "SELECT id, file_name, received_at FROM batches
             WHERE received_at >= $1
               AND (pay_date IS NOT DISTINCT FROM $2 OR pay_date IS NULL OR $2::text IS NULL)
               AND status != 'cancelled'
             ORDER BY id DESC LIMIT 20",
            &[&since, &pay_date],
        ))?;
        Ok(rows
            .iter()
            .map(|row| RepeatCandidate {
                id: row.get(0),
                file_name: row.get(1),
                received_at: row.get(2),
            })
            .collect())
    }

    /// The repeat keys of every payout of `batch_id`, streamed rather than loaded.
    async fn payout_keys(
        &self,
        batch_id: i64,
    ) -> std::result::Result<HashSet<PayoutKey>, tokio_postgres::Error> {
        let (first, last) = (batch_id << 32, (batch_id << 32) | 0xffff_ffff);
        let rows = self
            .client
            .query_raw(
                "SELECT reference, amount_cents, destination FROM payouts WHERE id BETWEEN $1 AND $2",
                [first, last],
            )
            .await?;
        let mut rows = std::pin::pin!(rows);
        let mut keys = HashSet::new();
        while let Some(row) = rows.try_next().await? {
            keys.insert(payout_key(row.get(0), row.get(1), row.get(2)));
        }
        Ok(keys)
    }
}
