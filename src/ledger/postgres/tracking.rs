//! Status tracking on PostgreSQL: the same reads as on SQLite, and observations stored a page
//! at a time. Each page locks its payouts (`FOR UPDATE`), so that two trackers, or a tracker
//! and a webhook applier on another machine, never interleave their changes to one payout;
//! [`transition`] decides every change, as everywhere.

use std::collections::{HashMap, HashSet};

use tokio_postgres::{Row, Transaction};

use super::PgLedger;
use super::transitions::{ApplyError, Change, apply_all, parse_state};
use crate::ledger::Result;
use crate::ledger::tracking::{
    Observation, ObservationOutcome, PollTimes, TRACKED_COLUMNS, TRACKED_WHERE, TrackLedger,
    TrackedPayout, TrackingCounts, last_segment, observation_reason, schedule,
};
use crate::payout::{Event, PayoutState, TransferStatus, transition};

const DUE_EXPR: &str = "(next_poll_at IS NULL OR next_poll_at <= $1)";

impl PgLedger {
    fn tracked_row(&self, row: &Row) -> Result<TrackedPayout> {
        let id: i64 = row.get(0);
        let state: String = row.get(1);
        let transfer_status: Option<String> = row.get(4);
        Ok(TrackedPayout {
            id,
            state: parse_state(id, &state).map_err(|message| self.invalid(message))?,
            correlation_id: row.get(2),
            transfer_url: row.get(3),
            transfer_status: transfer_status.and_then(|text| text.parse().ok()),
            first_attempt_at: row.get(5),
            due: row.get(6),
        })
    }
}

impl TrackLedger for PgLedger {
    fn tracked_payouts(&self, now: &str, only_due: bool) -> Result<Vec<TrackedPayout>> {
        let sql = format!(
            "SELECT {TRACKED_COLUMNS}, {DUE_EXPR} FROM payouts
             WHERE {TRACKED_WHERE} AND (NOT $2 OR {DUE_EXPR}) ORDER BY id"
        );
        let rows = self.block(self.client.query(&sql, &[&now, &only_due]))?;
        rows.iter().map(|row| self.tracked_row(row)).collect()
    }

    fn tracked_payout(&self, id: i64, now: &str) -> Result<Option<TrackedPayout>> {
        let sql = format!("SELECT {TRACKED_COLUMNS}, {DUE_EXPR} FROM payouts WHERE id = $2");
        let row = self.block(self.client.query_opt(&sql, &[&now, &id]))?;
        row.map(|row| self.tracked_row(&row)).transpose()
    }

    fn tracking_counts(&self) -> Result<TrackingCounts> {
        let sql = format!(
            "SELECT count(*) FILTER (WHERE state = 'submitted'),
                    count(*) FILTER (WHERE state = 'processed'),
                    min(coalesce(next_poll_at, ''))
             FROM payouts WHERE {TRACKED_WHERE}"
        );
        let row = self.block(self.client.query_one(&sql, &[]))?;
        Ok(TrackingCounts {
            n_unsettled: row.get::<_, i64>(0) as u64,
            n_watched: row.get::<_, i64>(1) as u64,
            next_due_at: row.get(2),
        })
    }

    fn count_sent_since(&self, since: &str) -> Result<u64> {
        let row = self.block(self.client.query_one(
            "SELECT count(*) FROM payouts WHERE first_attempt_at >= $1",
            &[&since],
        ))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    fn failure_summary(&self, id: i64) -> Result<Option<(String, String, String)>> {
        let row = self.block(self.client.query_opt(
            "SELECT reference, coalesce(failure_code, ''), coalesce(failure_advice, 'unknown')
             FROM payouts WHERE id = $1",
            &[&id],
        ))?;
        Ok(row.map(|row| (row.get(0), row.get(1), row.get(2))))
    }

    fn postpone_polls(&mut self, ids: &[i64], next_poll_at: &str, now: &str) -> Result<()> {
        self.block(self.client.execute(
            "UPDATE payouts SET next_poll_at = $2, last_polled_at = $3
             WHERE id = ANY($1) AND state IN ('submitted', 'processed')",
            &[&ids, &next_poll_at, &now],
        ))
        .map(drop)
    }

    fn record_observations(
        &mut self,
        observations: &[Observation],
        times: &PollTimes,
    ) -> Result<Vec<ObservationOutcome>> {
        let stored = futures_executor::block_on(async {
            let tx = self.client.transaction().await?;
            let mut outcomes = vec![None; observations.len()];
            // A payout seen twice in one call (two transfers claiming it, say) is stored in a
            // later round, after the first observation's change is written.
            let mut remaining: Vec<usize> = (0..observations.len()).collect();
            while !remaining.is_empty() {
                let mut seen = HashSet::new();
                let (round, later): (Vec<usize>, Vec<usize>) = remaining
                    .into_iter()
                    .partition(|&i| seen.insert(observations[i].payout_id));
                record_round(&tx, observations, &round, times, &mut outcomes).await?;
                remaining = later;
            }
            tx.commit().await?;
            Ok::<_, ApplyError>(outcomes)
        });
        let outcomes = stored.map_err(|error| self.apply_error(error))?;
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.expect("every observation has an outcome"))
            .collect())
    }
}

/// What the ledger holds about a payout's transfer, read under lock.
struct StoredTransfer {
    state: String,
    url: Option<String>,
    status: Option<TransferStatus>,
    watch_until: Option<String>,
}

/// The transfer columns to write for one payout.
#[derive(Default)]
struct TransferWrites {
    ids: Vec<i64>,
    urls: Vec<String>,
    statuses: Vec<&'static str>,
    next_polls: Vec<Option<String>>,
    watch_untils: Vec<Option<String>>,
    codes: Vec<Option<String>>,
    descriptions: Vec<Option<String>>,
    explanations: Vec<Option<String>>,
    advices: Vec<Option<&'static str>>,
}

/// Observations of distinct payouts: read and lock them, decide each change, then write the
/// moves (with their history) and the transfer columns in bulk.
async fn record_round(
    tx: &Transaction<'_>,
    observations: &[Observation],
    round: &[usize],
    times: &PollTimes,
    outcomes: &mut [Option<ObservationOutcome>],
) -> std::result::Result<(), ApplyError> {
    let ids: Vec<i64> = round.iter().map(|&i| observations[i].payout_id).collect();
    let stored = lock_transfers(tx, &ids).await?;
    let reasons: Vec<String> = round
        .iter()
        .map(|&i| observation_reason(&observations[i]))
        .collect();
    let mut changes = Vec::new();
    let mut writes = TransferWrites::default();
    for (&i, reason) in round.iter().zip(&reasons) {
        let observation = &observations[i];
        let decided = decide(observation, stored.get(&observation.payout_id))?;
        let (from, to, stored) = match decided {
            Ok(decided) => decided,
            Err(conflict) => {
                outcomes[i] = Some(ObservationOutcome::Conflict(conflict));
                continue;
            }
        };
        let event = Event::TransferObserved(observation.status);
        if to != from {
            changes.push(Change {
                id: observation.payout_id,
                from,
                event,
                source: &observation.source,
                reason,
            });
        }
        writes.add(observation, stored, to, times);
        outcomes[i] = Some(if to == from {
            ObservationOutcome::Unchanged { state: from }
        } else {
            ObservationOutcome::Moved { from, to }
        });
    }
    apply_all(tx, &changes, &times.now).await?;
    writes.write(tx, &times.now).await?;
    Ok(())
}

async fn lock_transfers(
    tx: &Transaction<'_>,
    ids: &[i64],
) -> std::result::Result<HashMap<i64, StoredTransfer>, ApplyError> {
    let rows = tx
        .query(
            "SELECT id, state, transfer_url, transfer_status, watch_until FROM payouts
             WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            &[&ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let status: Option<String> = row.get(3);
            let stored = StoredTransfer {
                state: row.get(1),
                url: row.get(2),
                status: status.and_then(|text| text.parse().ok()),
                watch_until: row.get(4),
            };
            (row.get(0), stored)
        })
        .collect())
}

/// The payout's state before and after the observation, or why it cannot be stored (the
/// inner `Err`: a conflict a person must look at). The outer `Err` is a ledger that makes no
/// sense.
type Decided<'a> = std::result::Result<(PayoutState, PayoutState, &'a StoredTransfer), String>;

fn decide<'a>(
    observation: &Observation,
    stored: Option<&'a StoredTransfer>,
) -> std::result::Result<Decided<'a>, ApplyError> {
    let id = observation.payout_id;
    let Some(stored) = stored else {
        return Ok(Err(format!("payout {id} does not exist")));
    };
    if let Some(stored_url) = &stored.url
        && last_segment(stored_url) != last_segment(&observation.transfer_url)
    {
        return Ok(Err(format!(
            "transfer {} carries the correlation id of payout {id}, whose transfer is {stored_url}",
            observation.transfer_url
        )));
    }
    let from = parse_state(id, &stored.state).map_err(ApplyError::Invalid)?;
    Ok(
        match transition(from, Event::TransferObserved(observation.status)) {
            Ok(crate::payout::Decision::Move(to)) => Ok((from, to, stored)),
            Ok(crate::payout::Decision::Stay) => Ok((from, from, stored)),
            Err(illegal) => Err(format!("payout {id}: {illegal}")),
        },
    )
}

impl TransferWrites {
    /// Dwolla's status (never backwards), the failure reason of a failed or returned
    /// transfer, and the poll schedule of the payout's new state.
    fn add(
        &mut self,
        observation: &Observation,
        stored: &StoredTransfer,
        state: PayoutState,
        times: &PollTimes,
    ) {
        let status = match stored.status {
            Some(known) if known.rank() >= observation.status.rank() => known,
            _ => observation.status,
        };
        let (next_poll, watch_until) = schedule(state, stored.watch_until.clone(), times);
        let failure = observation
            .failure
            .as_ref()
            .filter(|_| matches!(status, TransferStatus::Failed | TransferStatus::Returned));
        self.ids.push(observation.payout_id);
        self.urls.push(observation.transfer_url.clone());
        self.statuses.push(status.as_str());
        self.next_polls.push(next_poll);
        self.watch_untils.push(watch_until);
        self.codes.push(failure.map(|f| f.code.clone()));
        self.descriptions
            .push(failure.map(|f| f.description.clone()));
        self.explanations
            .push(failure.and_then(|f| f.explanation.clone()));
        self.advices.push(failure.map(|f| f.advice.as_str()));
    }

    async fn write(&self, tx: &Transaction<'_>, now: &str) -> std::result::Result<(), ApplyError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        tx.execute(
            "UPDATE payouts p SET transfer_url = coalesce(p.transfer_url, m.url),
                 transfer_status = m.status, last_polled_at = $10, next_poll_at = m.next_poll,
                 watch_until = m.watch_until,
                 failure_code = coalesce(m.code, p.failure_code),
                 failure_description = coalesce(m.description, p.failure_description),
                 failure_explanation = coalesce(m.explanation, p.failure_explanation),
                 failure_advice = coalesce(m.advice, p.failure_advice)
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::text[])
                  AS m(id, url, status, next_poll, watch_until, code, description, explanation,
                       advice)
             WHERE p.id = m.id",
            &[
                &self.ids,
                &self.urls,
                &self.statuses,
                &self.next_polls,
                &self.watch_untils,
                &self.codes,
                &self.descriptions,
                &self.explanations,
                &self.advices,
                &now,
            ],
        )
        .await?;
        Ok(())
    }
}
