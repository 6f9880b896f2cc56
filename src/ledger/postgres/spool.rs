//! The webhook event spool in the PostgreSQL ledger (tables `webhook_events` and
//! `webhook_subscriptions`), so that `serve` may run on several machines behind a load
//! balancer: whichever of them receives a delivery stores it, and any of them applies it.

use std::time::Duration;

use time::OffsetDateTime;

use super::PgLedger;
use crate::ledger::{
    EventFate, EventSpool, IncomingEvent, Result, SpoolCounts, SpooledEvent, StoredSubscription,
    timestamp,
};
use crate::secret::Secret;

/// How long the events [`EventSpool::pending`] returns stay claimed by their applier: long
/// enough for a page's GETs and their retries, short enough that an applier that died leaves
/// its events to the others within a minute.
pub const EVENT_CLAIM: Duration = Duration::from_secs(60);

impl EventSpool for PgLedger {
    fn shown(&self) -> String {
        format!("the webhook spool in {}", self.shown)
    }

    fn store(&mut self, events: &[IncomingEvent], now: &str) -> Result<Vec<bool>> {
        let shown = self.shown.clone();
        futures_executor::block_on(async {
            let tx = self.client.transaction().await?;
            let insert = tx
                .prepare(
                    "INSERT INTO webhook_events (event_id, topic, resource_id, resource_url,
                         correlation_id, event_created, received_at, body)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING",
                )
                .await?;
            let mut fresh = Vec::with_capacity(events.len());
            for event in events {
                let n = tx
                    .execute(
                        &insert,
                        &[
                            &event.event_id,
                            &event.topic,
                            &event.resource_id,
                            &event.resource_url,
                            &event.correlation_id,
                            &event.event_created,
                            &now,
                            &event.body,
                        ],
                    )
                    .await?;
                fresh.push(n == 1);
            }
            tx.commit().await?;
            Ok(fresh)
        })
        .map_err(|source| super::pg_error(&shown, source))
    }

    /// Claims the due events it returns until [`EVENT_CLAIM`] past `now`, skipping those
    /// another applier holds.
    fn pending(&mut self, now: &str, limit: usize) -> Result<Vec<SpooledEvent>> {
        let claimed_until =
            OffsetDateTime::parse(now, &time::format_description::well_known::Rfc3339)
                .map(|at| timestamp(at + EVENT_CLAIM))
                .map_err(|e| self.invalid(format!("{now:?} is not a ledger timestamp: {e}")))?;
        let rows = self.block(self.client.query(
            "WITH due AS (
                 SELECT event_id FROM webhook_events
                 WHERE applied_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= $1)
                 ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED)
             UPDATE webhook_events e SET next_attempt_at = $3 FROM due
             WHERE e.event_id = due.event_id
             RETURNING e.seq, e.event_id, e.topic, e.resource_id, e.resource_url,
                       e.correlation_id, e.attempts",
            &[&now, &(limit as i64), &claimed_until],
        ))?;
        let mut events: Vec<(i64, SpooledEvent)> = rows
            .iter()
            .map(|row| {
                let event = SpooledEvent {
                    event_id: row.get(1),
                    topic: row.get(2),
                    resource_id: row.get(3),
                    resource_url: row.get(4),
                    correlation_id: row.get(5),
                    attempts: row.get::<_, i32>(6) as u32,
                };
                (row.get(0), event)
            })
            .collect();
        events.sort_by_key(|(seq, _)| *seq);
        Ok(events.into_iter().map(|(_, event)| event).collect())
    }

    fn finish(&mut self, fates: &[(String, EventFate)], now: &str) -> Result<()> {
        let (mut done_ids, mut outcomes, mut retry_ids, mut retry_ats, mut errors) =
            (vec![], vec![], vec![], vec![], vec![]);
        for (event_id, fate) in fates {
            match fate {
                EventFate::Done { outcome } => {
                    done_ids.push(event_id.as_str());
                    outcomes.push(outcome.as_str());
                }
                EventFate::RetryAt { at, error } => {
                    retry_ids.push(event_id.as_str());
                    retry_ats.push(at.as_str());
                    errors.push(error.as_str());
                }
            }
        }
        let shown = self.shown.clone();
        futures_executor::block_on(async {
            let tx = self.client.transaction().await?;
            tx.execute(
                "UPDATE webhook_events e SET applied_at = $3, outcome = m.outcome,
                     attempts = e.attempts + 1, next_attempt_at = NULL
                 FROM unnest($1::text[], $2::text[]) AS m(event_id, outcome)
                 WHERE e.event_id = m.event_id",
                &[&done_ids, &outcomes, &now],
            )
            .await?;
            tx.execute(
                "UPDATE webhook_events e SET attempts = e.attempts + 1,
                     next_attempt_at = m.at, last_error = m.error
                 FROM unnest($1::text[], $2::text[], $3::text[]) AS m(event_id, at, error)
                 WHERE e.event_id = m.event_id",
                &[&retry_ids, &retry_ats, &errors],
            )
            .await?;
            tx.commit().await
        })
        .map_err(|source| super::pg_error(&shown, source))
    }

    fn prune_finished(&mut self, finished_before: &str, limit: usize) -> Result<u64> {
        self.block(self.client.execute(
            "DELETE FROM webhook_events WHERE event_id IN (
                 SELECT event_id FROM webhook_events
                 WHERE applied_at IS NOT NULL AND applied_at < $1
                 ORDER BY applied_at LIMIT $2)",
            &[&finished_before, &(limit as i64)],
        ))
    }

    fn counts(&self) -> Result<SpoolCounts> {
        let row = self.block(self.client.query_one(
            "SELECT count(*) FILTER (WHERE applied_at IS NULL),
                    count(*) FILTER (WHERE applied_at IS NOT NULL)
             FROM webhook_events",
            &[],
        ))?;
        Ok(SpoolCounts {
            n_pending: row.get::<_, i64>(0) as u64,
            n_done: row.get::<_, i64>(1) as u64,
        })
    }

    fn has_pending(&self, now: &str) -> Result<bool> {
        let row = self.block(self.client.query_one(
            "SELECT EXISTS (SELECT 1 FROM webhook_events WHERE applied_at IS NULL
                 AND (next_attempt_at IS NULL OR next_attempt_at <= $1))",
            &[&now],
        ))?;
        Ok(row.get(0))
    }

    fn outcome(&self, event_id: &str) -> Result<Option<String>> {
        let row = self.block(self.client.query_opt(
            "SELECT outcome FROM webhook_events WHERE event_id = $1",
            &[&event_id],
        ))?;
        Ok(row.and_then(|row| row.get(0)))
    }

    fn event_ids(&self) -> Result<Vec<String>> {
        let rows = self.block(
            self.client
                .query("SELECT event_id FROM webhook_events ORDER BY seq", &[]),
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn save_subscription(&mut self, id: &str, url: &str, secret: &Secret, now: &str) -> Result<()> {
        self.block(self.client.execute(
            "INSERT INTO webhook_subscriptions (id, url, secret, created_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET url = $2, secret = $3, created_at = $4",
            &[&id, &url, &secret.expose(), &now],
        ))
        .map(drop)
    }

    fn remove_subscription(&mut self, id: &str) -> Result<bool> {
        self.block(
            self.client
                .execute("DELETE FROM webhook_subscriptions WHERE id = $1", &[&id]),
        )
        .map(|n| n > 0)
    }

    fn subscriptions(&self) -> Result<Vec<StoredSubscription>> {
        let rows = self.block(self.client.query(
            "SELECT id, url, secret, created_at FROM webhook_subscriptions ORDER BY created_at",
            &[],
        ))?;
        Ok(rows
            .iter()
            .map(|row| StoredSubscription {
                id: row.get(0),
                url: row.get(1),
                secret: Secret::new(row.get::<_, String>(2)),
                created_at: row.get(3),
            })
            .collect())
    }
}
