//! What the sender reads and writes on PostgreSQL, where several workers send from one ledger.
//!
//! A claim takes rows `FOR UPDATE SKIP LOCKED`, so two workers never claim the same payout at
//! once, and marks each with the worker's id: the claim holds as long as that worker's lease
//! (`workers.lease_until`, on the server's clock, renewed by its heartbeat). A pending
//! payout is claimed and committed `submitting` with its exact request bytes in one
//! transaction, before any POST. A payout in doubt is claimed only when it is unclaimed, ours,
//! or its lease has passed (its worker died): the taker resends the committed bytes with the
//! same key, or looks the transfer up past the key's lifetime, as any run does.

use futures_util::future::try_join_all;
use tokio_postgres::Row;

use super::transitions::{ApplyError, Change, apply_all, parse_state};
use super::{PgLedger, pg_error};
use crate::ledger::send::{columns_of, transition_of};
use crate::ledger::{DuePayout, LateBatch, LedgerError, RecordedOutcome, Result, Unsent};
use crate::money::Cents;
use crate::payout::Event;

const DUE_COLUMNS: &str =
    "p.id, p.batch_id, p.line, p.reference, p.destination, p.amount_cents, p.correlation_id,
     p.idempotency_key, p.metadata, p.state, p.attempts, p.first_attempt_at, p.request_body, p.next_attempt_at";

/// The same conditions as SQLite's claim (`ledger::send`): approved, window open, not held.
const SENDABLE: &str = "b.status = 'ready' AND b.send_open_at IS NOT NULL AND b.held_at IS NULL";

fn due_payout(row: &Row) -> std::result::Result<DuePayout, String> {
    let id: i64 = row.get(0);
    Ok(DuePayout {
        id,
        batch_id: row.get(1),
        line: row.get::<_, i64>(2) as u64,
        reference: row.get(3),
        destination: row.get(4),
        amount: Cents::new(row.get(5)).unwrap_or(Cents::ZERO),
        correlation_id: row.get(6),
        idempotency_key: row.get(7),
        metadata: row.get(8),
        state: parse_state(id, row.get(9))?,
        attempts: row.get::<_, i32>(10) as u32,
        first_attempt_at: row.get(11),
        request_body: row.get(12),
        next_attempt_at: row.get(13),
    })
}

impl PgLedger {
    /// Claims every payout in doubt that no live worker holds, soonest due first: at the start
    /// of a run, those a crash left in flight, ours or a dead worker's.
    pub fn claim_in_doubt(&mut self, batch: Option<i64>) -> Result<Vec<DuePayout>> {
        let worker = self.worker_or_error()?;
        let sql = format!(
            "WITH claimable AS (
                 SELECT p.id, p.claimed_by AS previous FROM payouts p
                 WHERE p.state = 'submitting' AND ($1::bigint IS NULL OR p.batch_id = $1)
                   AND (p.claimed_by IS NULL OR p.claimed_by = $2 OR NOT EXISTS (
                        SELECT 1 FROM workers w
                        WHERE w.id = p.claimed_by AND w.lease_until > now()))
                 FOR UPDATE OF p SKIP LOCKED)
             UPDATE payouts p SET claimed_by = $2
             FROM claimable WHERE p.id = claimable.id
             RETURNING {DUE_COLUMNS}, claimable.previous IS DISTINCT FROM $2"
        );
        let rows = self.block(self.client.query(&sql, &[&batch, &worker]))?;
        let taken_over = rows.iter().filter(|row| row.get::<_, bool>(14)).count();
        if taken_over > 0 {
            tracing::info!(
                taken_over,
                "took over payouts in doubt that no live worker holds; resending them with their keys"
            );
        }
        let mut due = rows
            .iter()
            .map(due_payout)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|message| self.invalid(message))?;
        due.sort_by(|a, b| (&a.next_attempt_at, a.id).cmp(&(&b.next_attempt_at, b.id)));
        Ok(due)
    }

    /// Claims up to `limit` pending payouts after `after_id`, in file order, and commits each
    /// `submitting` with the bytes `body` builds for it, in one transaction.
    pub fn claim_pending(
        &mut self,
        after_id: i64,
        batch: Option<i64>,
        limit: usize,
        now: &str,
        body: &mut dyn FnMut(&DuePayout) -> Vec<u8>,
    ) -> Result<Vec<DuePayout>> {
        let worker = self.worker_or_error()?;
        let shown = self.shown.clone();
        let select = format!(
            "SELECT {DUE_COLUMNS} FROM payouts p JOIN batches b ON b.id = p.batch_id
             WHERE p.id > $1 AND p.state = 'pending' AND {SENDABLE}
               AND ($2::bigint IS NULL OR p.batch_id = $2)
             ORDER BY p.id LIMIT $3 FOR UPDATE OF p SKIP LOCKED"
        );
        let tx = futures_executor::block_on(self.client.transaction())
            .map_err(|e| pg_error(&shown, e))?;
        let rows =
            futures_executor::block_on(tx.query(&select, &[&after_id, &batch, &(limit as i64)]))
                .map_err(|e| pg_error(&shown, e))?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut payout = due_payout(row).map_err(|message| LedgerError::Invalid {
                path: shown.to_string().into(),
                message,
            })?;
            payout.request_body = Some(payout.request_body.take().unwrap_or_else(|| body(&payout)));
            claimed.push(payout);
        }
        let changes: Vec<Change<'_>> = claimed
            .iter()
            .map(|p| Change {
                id: p.id,
                from: p.state,
                event: Event::SubmitStarted,
                source: "send",
                reason: "request committed",
            })
            .collect();
        let ids: Vec<i64> = claimed.iter().map(|p| p.id).collect();
        let bodies: Vec<&[u8]> = claimed
            .iter()
            .map(|p| p.request_body.as_deref().unwrap_or_default())
            .collect();
        let committed = futures_executor::block_on(async {
            apply_all(&tx, &changes, now).await?;
            // The body is written once: an existing one is never replaced.
            tx.execute(
                "UPDATE payouts p SET request_body = coalesce(p.request_body, c.body),
                     first_attempt_at = coalesce(p.first_attempt_at, $3), next_attempt_at = $3,
                     claimed_by = $4
                 FROM unnest($1::bigint[], $2::bytea[]) AS c(id, body) WHERE p.id = c.id",
                &[&ids, &bodies, &now, &worker],
            )
            .await?;
            tx.commit().await?;
            Ok::<_, ApplyError>(())
        });
        committed.map_err(|e| self.apply_error(e))?;
        for payout in &mut claimed {
            payout.state = crate::payout::PayoutState::Submitting;
        }
        Ok(claimed)
    }

    /// Stores many outcomes in one transaction (group commit), each state change decided by
    /// `transition` on the state read under a row lock.
    pub fn record_outcomes(&mut self, outcomes: &[RecordedOutcome], now: &str) -> Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = outcomes.iter().map(|o| o.payout_id).collect();
        let described: Vec<_> = outcomes.iter().map(|o| transition_of(&o.outcome)).collect();
        let result = futures_executor::block_on(async {
            let tx = self.client.transaction().await?;
            let rows = tx
                .query(
                    "SELECT id, state FROM payouts WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                    &[&ids],
                )
                .await?;
            let states: std::collections::HashMap<i64, String> =
                rows.iter().map(|row| (row.get(0), row.get(1))).collect();
            let mut changes = Vec::with_capacity(outcomes.len());
            for (recorded, (event, reason, source)) in outcomes.iter().zip(&described) {
                let id = recorded.payout_id;
                let state = states
                    .get(&id)
                    .ok_or_else(|| ApplyError::Invalid(format!("payout {id} does not exist")))?;
                let from = parse_state(id, state).map_err(ApplyError::Invalid)?;
                changes.push(Change {
                    id,
                    from,
                    event: *event,
                    source,
                    reason,
                });
            }
            apply_all(&tx, &changes, now).await?;
            write_outcome_columns(&tx, outcomes, now).await?;
            tx.commit().await?;
            Ok::<_, ApplyError>(())
        });
        result.map_err(|error| self.apply_error(error))
    }

    /// What a run leaves unsent: payouts in doubt, and pending payouts it could have claimed.
    pub fn unsent(&self, batch: Option<i64>) -> Result<Unsent> {
        let sql = format!(
            "SELECT COUNT(*) FILTER (WHERE p.state = 'submitting'),
                    COUNT(*) FILTER (WHERE p.state = 'pending' AND {SENDABLE})
             FROM payouts p JOIN batches b ON b.id = p.batch_id
             WHERE p.state IN ('submitting', 'pending') AND ($1::bigint IS NULL OR p.batch_id = $1)"
        );
        let row = self.block(self.client.query_one(&sql, &[&batch]))?;
        Ok(Unsent {
            in_doubt: row.get::<_, i64>(0) as u64,
            pending: row.get::<_, i64>(1) as u64,
        })
    }

    /// How long until the first lease of a payout in doubt that another worker holds passes;
    /// zero when a sendable pending payout is left, which another worker's claim skipped
    /// past and then rolled back (it died inside its claim transaction).
    pub fn held_elsewhere(&self, batch: Option<i64>) -> Result<Option<std::time::Duration>> {
        let worker = self.worker_or_error()?;
        let sql = format!(
            "SELECT (SELECT extract(epoch FROM min(w.lease_until) - now())::float8
                     FROM payouts p JOIN workers w ON w.id = p.claimed_by
                     WHERE p.state = 'submitting' AND ($1::bigint IS NULL OR p.batch_id = $1)
                       AND p.claimed_by != $2),
                    EXISTS (SELECT 1 FROM batches b
                            WHERE {SENDABLE} AND ($1::bigint IS NULL OR b.id = $1)
                              AND EXISTS (SELECT 1 FROM payouts p
                                          WHERE p.id BETWEEN b.id << 32 AND (b.id << 32) | 4294967295
                                            AND p.state = 'pending'))"
        );
        let row = self.block(self.client.query_one(&sql, &[&batch, &worker]))?;
        let seconds: Option<f64> = row.get(0);
        let pending_left: bool = row.get(1);
        Ok(match (seconds, pending_left) {
            (_, true) => Some(std::time::Duration::ZERO),
            (Some(s), false) => Some(std::time::Duration::from_secs_f64(s.max(0.0))),
            (None, false) => None,
        })
    }

    /// As on SQLite: opens the send window of every batch whose `send_after` has come.
    pub fn open_send_windows(&mut self, now: &str) -> Result<usize> {
        let n = self.block(self.client.execute(
            "UPDATE batches SET send_open_at = $1
             WHERE send_open_at IS NULL AND send_after <= $1 AND status != 'cancelled'",
            &[&now],
        ))?;
        Ok(n as usize)
    }

    /// As on SQLite: gives every batch with payouts committed for sending its sent date, and
    /// returns those sent late.
    pub fn note_sent_batches(&mut self, now: &str) -> Result<Vec<LateBatch>> {
        let rows = self.block(self.client.query(
            "UPDATE batches SET sent_at = $1
             WHERE sent_at IS NULL AND send_open_at IS NOT NULL AND EXISTS (
                 SELECT 1 FROM payouts p
                 WHERE p.id BETWEEN batches.id << 32 AND (batches.id << 32) | 4294967295
                   AND p.first_attempt_at IS NOT NULL)
             RETURNING id, pay_date, send_by, send_late OR coalesce($1 > send_by, false)",
            &[&now],
        ))?;
        let mut late: Vec<LateBatch> = rows
            .iter()
            .filter(|row| row.get::<_, bool>(3))
            .map(|row| LateBatch {
                id: row.get(0),
                pay_date: row.get(1),
                send_by: row.get(2),
            })
            .collect();
        late.sort_by_key(|batch| batch.id);
        Ok(late)
    }
}

/// The outcome columns of every payout, with SQLite's statements (`ledger::send::columns_of`)
/// in PostgreSQL's placeholders, sent pipelined on the one connection.
async fn write_outcome_columns(
    tx: &tokio_postgres::Transaction<'_>,
    outcomes: &[RecordedOutcome],
    now: &str,
) -> std::result::Result<(), tokio_postgres::Error> {
    let mut statements = std::collections::HashMap::new();
    for recorded in outcomes {
        let (sql, _) = columns_of(&recorded.outcome);
        if !statements.contains_key(sql) {
            statements.insert(sql, tx.prepare(&numbered_placeholders(sql)).await?);
        }
    }
    let columns: Vec<_> = outcomes
        .iter()
        .map(|o| (o, columns_of(&o.outcome), o.attempts as i32))
        .collect();
    try_join_all(columns.iter().map(|(recorded, (sql, fields), attempts)| {
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            vec![&recorded.payout_id, attempts, &now];
        params.extend(
            fields
                .iter()
                .map(|f| f as &(dyn tokio_postgres::types::ToSql + Sync)),
        );
        let statement = &statements[sql];
        async move { tx.execute(statement, &params).await }
    }))
    .await?;
    Ok(())
}

/// SQLite's `?N` placeholders as PostgreSQL's `$N`.
fn numbered_placeholders(sql: &str) -> String {
    sql.replace('?', "$")
}
