//! What status tracking reads and writes: the payouts it follows and when each is due, and
//! observations of transfers (from polls or webhook events) stored through the one transition
//! function, with Dwolla's status, the failure reason and its advice, and the next poll time.
//!
//! The webhook event spool (`<ledger>.events`, a separate SQLite file that `serve` writes
//! without the ledger's writer lock) is in [`spool`].

pub mod spool;

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::transitions::{ApplyError, Provenance, apply};
use super::{Ledger, Result};
use crate::failure::Advice;
use crate::payout::{Decision, Event, PayoutState, TransferStatus};

/// A payout tracking follows: submitted, or processed and still inside its returns window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedPayout {
    pub id: i64,
    pub state: PayoutState,
    pub correlation_id: String,
    pub transfer_url: Option<String>,
    /// Dwolla's status as last seen; `None` before the first sighting.
    pub transfer_status: Option<TransferStatus>,
    pub first_attempt_at: Option<String>,
    /// Whether its poll time has come.
    pub due: bool,
}

/// Why a transfer failed or was returned, and what that means for paying the payee again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureDetails {
    pub code: String,
    pub description: String,
    pub explanation: Option<String>,
    pub advice: Advice,
}

/// A transfer seen at Dwolla, for one payout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub payout_id: i64,
    pub transfer_url: String,
    pub status: TransferStatus,
    pub failure: Option<FailureDetails>,
    /// `poll` or `webhook:<event id>`: written to the history row of any change.
    pub source: String,
}

/// The instants an observation batch may store, computed by the caller (the ledger reads no
/// clock and does no calendar arithmetic; it only compares these fixed-width texts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollTimes {
    pub now: String,
    /// Next poll of a transfer that is still created or pending.
    pub next_unsettled: String,
    /// Next poll of a processed transfer inside its returns window ...
    pub next_processed: String,
    /// ... and the end of that window, for a transfer first seen processed now.
    pub watch_until: String,
}

/// What storing one observation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObservationOutcome {
    Moved {
        from: PayoutState,
        to: PayoutState,
    },
    Unchanged {
        state: PayoutState,
    },
    /// Not stored: the observation contradicts the ledger (another transfer carries the
    /// payout's correlation id, or the payout was never sent). A person must look.
    Conflict(String),
}

/// Counts for `track --until-settled` and the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackingCounts {
    /// Submitted payouts: Dwolla has not settled them yet.
    pub n_unsettled: u64,
    /// Processed payouts still watched for a late return.
    pub n_watched: u64,
    /// The earliest poll time among them; `Some("")` when one is due at once.
    pub next_due_at: Option<String>,
}

pub(super) const TRACKED_COLUMNS: &str =
    "id, state, correlation_id, transfer_url, transfer_status, first_attempt_at";

/// Tracked: submitted payouts, and processed ones still watched. A processed payout without
/// `watch_until` (settled by the sender's lookup, say) has not had its window started yet.
pub(super) const TRACKED_WHERE: &str = "state IN ('submitted', 'processed')
     AND (state = 'submitted' OR watch_until IS NULL OR next_poll_at IS NOT NULL)";

/// Due: never polled, or the poll time has come.
const DUE_EXPR: &str = "(next_poll_at IS NULL OR next_poll_at <= ?1)";

fn tracked_payout(row: &Row<'_>) -> rusqlite::Result<TrackedPayout> {
    let state: String = row.get(1)?;
    let transfer_status: Option<String> = row.get(4)?;
    Ok(TrackedPayout {
        id: row.get(0)?,
        state: state.parse().map_err(|_| {
            rusqlite::Error::InvalidColumnType(1, state.clone(), rusqlite::types::Type::Text)
        })?,
        correlation_id: row.get(2)?,
        transfer_url: row.get(3)?,
        transfer_status: transfer_status.and_then(|text| text.parse().ok()),
        first_attempt_at: row.get(5)?,
        due: row.get(6)?,
    })
}

/// What status tracking (`track`, and the appliers of webhook events) needs of a ledger,
/// whichever engine keeps it.
pub trait TrackLedger: super::ReconcileLedger {
    /// Every tracked payout (or only the due ones), in id order.
    fn tracked_payouts(&self, now: &str, only_due: bool) -> Result<Vec<TrackedPayout>>;
    /// One payout as tracking sees it, whatever its state.
    fn tracked_payout(&self, id: i64, now: &str) -> Result<Option<TrackedPayout>>;
    /// How many payouts tracking still follows, and when the next is due.
    fn tracking_counts(&self) -> Result<TrackingCounts>;
    /// Payouts first sent at or after `since`.
    fn count_sent_since(&self, since: &str) -> Result<u64>;
    /// A payout's reference, failure code and stored advice.
    fn failure_summary(&self, id: i64) -> Result<Option<(String, String, String)>>;
    /// Moves the poll time of payouts whose transfer could not be read.
    fn postpone_polls(&mut self, ids: &[i64], next_poll_at: &str, now: &str) -> Result<()>;
    /// Stores many observations in one transaction, each through the transition function.
    fn record_observations(
        &mut self,
        observations: &[Observation],
        times: &PollTimes,
    ) -> Result<Vec<ObservationOutcome>>;
}

impl TrackLedger for Ledger {
    fn tracked_payouts(&self, now: &str, only_due: bool) -> Result<Vec<TrackedPayout>> {
        Ledger::tracked_payouts(self, now, only_due)
    }

    fn tracked_payout(&self, id: i64, now: &str) -> Result<Option<TrackedPayout>> {
        Ledger::tracked_payout(self, id, now)
    }

    fn tracking_counts(&self) -> Result<TrackingCounts> {
        Ledger::tracking_counts(self)
    }

    fn count_sent_since(&self, since: &str) -> Result<u64> {
        Ledger::count_sent_since(self, since)
    }

    fn failure_summary(&self, id: i64) -> Result<Option<(String, String, String)>> {
        Ledger::failure_summary(self, id)
    }

    fn postpone_polls(&mut self, ids: &[i64], next_poll_at: &str, now: &str) -> Result<()> {
        Ledger::postpone_polls(self, ids, next_poll_at, now)
    }

    fn record_observations(
        &mut self,
        observations: &[Observation],
        times: &PollTimes,
    ) -> Result<Vec<ObservationOutcome>> {
        Ledger::record_observations(self, observations, times)
    }
}

impl Ledger {
    /// Every tracked payout (or only the due ones), in id order.
    pub fn tracked_payouts(&self, now: &str, only_due: bool) -> Result<Vec<TrackedPayout>> {
        let sql = format!(
            "SELECT {TRACKED_COLUMNS}, {DUE_EXPR} FROM payouts
             WHERE {TRACKED_WHERE} AND (?2 = 0 OR {DUE_EXPR}) ORDER BY id"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map(params![now, only_due], tracked_payout)
            .map_err(|e| self.error(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.error(e))
    }

    /// One payout as tracking sees it, whatever its state (webhook events may name any).
    pub fn tracked_payout(&self, id: i64, now: &str) -> Result<Option<TrackedPayout>> {
        let sql = format!("SELECT {TRACKED_COLUMNS}, {DUE_EXPR} FROM payouts WHERE id = ?2");
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.error(e))?;
        stmt.query_row(params![now, id], tracked_payout)
            .optional()
            .map_err(|e| self.error(e))
    }

    /// How many payouts tracking still follows, and when the next is due.
    pub fn tracking_counts(&self) -> Result<TrackingCounts> {
        let sql = format!(
            "SELECT COALESCE(SUM(state = 'submitted'), 0), COALESCE(SUM(state = 'processed'), 0),
                    MIN(COALESCE(next_poll_at, ''))
             FROM payouts WHERE {TRACKED_WHERE}"
        );
        self.conn
            .query_row(&sql, [], |row| {
                Ok(TrackingCounts {
                    n_unsettled: row.get::<_, i64>(0)? as u64,
                    n_watched: row.get::<_, i64>(1)? as u64,
                    next_due_at: row.get(2)?,
                })
            })
            .map_err(|e| self.error(e))
    }

    /// Payouts first sent at or after `since`: how many of this ledger's transfers a walk of
    /// the account's transfer list (newest first) passes before it reaches that instant.
    pub fn count_sent_since(&self, since: &str) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM payouts WHERE first_attempt_at >= ?1",
                [since],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.error(e))
    }

    /// A failed or returned payout's reference, failure code and stored advice, for the
    /// lines `track` prints.
    pub fn failure_summary(&self, id: i64) -> Result<Option<(String, String, String)>> {
        self.conn
            .query_row(
                "SELECT reference, COALESCE(failure_code, ''), COALESCE(failure_advice, 'unknown')
                 FROM payouts WHERE id = ?1",
                [id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Moves the poll time of payouts whose transfer could not be read (404, an unreadable
    /// answer), so that one bad transfer does not make every run ask again at once.
    pub fn postpone_polls(&mut self, ids: &[i64], next_poll_at: &str, now: &str) -> Result<()> {
        let path = self.path.clone();
        let err = |e| super::sqlite_error(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE payouts SET next_poll_at = ?2, last_polled_at = ?3
                     WHERE id = ?1 AND state IN ('submitted', 'processed')",
                )
                .map_err(err)?;
            for id in ids {
                stmt.execute(params![id, next_poll_at, now]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Stores many observations in one transaction: the state change through
    /// [`crate::payout::transition`] (with a history row naming the source), Dwolla's status
    /// (never backwards), the failure reason and advice, and when to look again.
    pub fn record_observations(
        &mut self,
        observations: &[Observation],
        times: &PollTimes,
    ) -> Result<Vec<ObservationOutcome>> {
        let path = self.path.clone();
        let err = |e| super::sqlite_error(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        let mut outcomes = Vec::with_capacity(observations.len());
        for observation in observations {
            outcomes.push(record_observation(&tx, observation, times).map_err(err)?);
        }
        tx.commit().map_err(err)?;
        Ok(outcomes)
    }
}

/// What the ledger holds about a payout's transfer before an observation is stored.
struct StoredTransfer {
    url: Option<String>,
    status: Option<TransferStatus>,
    watch_until: Option<String>,
}

/// One observation, inside the caller's transaction. A payout that does not exist, a transfer
/// that is not the payout's, or a refused transition is a `Conflict` outcome; only SQLite
/// failures are errors.
fn record_observation(
    tx: &Transaction<'_>,
    observation: &Observation,
    times: &PollTimes,
) -> rusqlite::Result<ObservationOutcome> {
    let Some(stored) = stored_transfer(tx, observation.payout_id)? else {
        return Ok(ObservationOutcome::Conflict(format!(
            "payout {} does not exist",
            observation.payout_id
        )));
    };
    if let Some(stored_url) = &stored.url
        && last_segment(stored_url) != last_segment(&observation.transfer_url)
    {
        return Ok(ObservationOutcome::Conflict(format!(
            "transfer {} carries the correlation id of payout {}, whose transfer is {stored_url}",
            observation.transfer_url, observation.payout_id
        )));
    }
    let reason = observation_reason(observation);
    let provenance = Provenance {
        source: &observation.source,
        reason: Some(&reason),
    };
    let event = Event::TransferObserved(observation.status);
    let (from, decision) = match apply(tx, observation.payout_id, event, &times.now, provenance) {
        Ok(applied) => applied,
        Err(ApplyError::Sqlite(source)) => return Err(source),
        Err(other) => return Ok(ObservationOutcome::Conflict(other.to_string())),
    };
    let state = match decision {
        Decision::Move(to) => to,
        Decision::Stay => from,
    };
    let status = match stored.status {
        Some(stored) if stored.rank() >= observation.status.rank() => stored,
        _ => observation.status,
    };
    let (next_poll_at, watch_until) = schedule(state, stored.watch_until, times);
    store_transfer(tx, observation, status, &next_poll_at, &watch_until, times)?;
    Ok(match decision {
        Decision::Move(to) => ObservationOutcome::Moved { from, to },
        Decision::Stay => ObservationOutcome::Unchanged { state },
    })
}

fn stored_transfer(
    tx: &Transaction<'_>,
    payout_id: i64,
) -> rusqlite::Result<Option<StoredTransfer>> {
    tx.prepare_cached(
        "SELECT transfer_url, transfer_status, watch_until FROM payouts WHERE id = ?1",
    )?
    .query_row([payout_id], |row| {
        Ok(StoredTransfer {
            url: row.get(0)?,
            status: row
                .get::<_, Option<String>>(1)?
                .and_then(|text| text.parse().ok()),
            watch_until: row.get(2)?,
        })
    })
    .optional()
}

/// Writes Dwolla's status (never backwards, `status` is already the furthest), the failure
/// reason when the transfer failed or was returned, and the poll schedule.
fn store_transfer(
    tx: &Transaction<'_>,
    observation: &Observation,
    status: TransferStatus,
    next_poll_at: &Option<String>,
    watch_until: &Option<String>,
    times: &PollTimes,
) -> rusqlite::Result<()> {
    let failure = observation
        .failure
        .as_ref()
        .filter(|_| matches!(status, TransferStatus::Failed | TransferStatus::Returned));
    tx.prepare_cached(
        "UPDATE payouts SET transfer_url = COALESCE(transfer_url, ?2), transfer_status = ?3,
             last_polled_at = ?4, next_poll_at = ?5, watch_until = ?6,
             failure_code = COALESCE(?7, failure_code),
             failure_description = COALESCE(?8, failure_description),
             failure_explanation = COALESCE(?9, failure_explanation),
             failure_advice = COALESCE(?10, failure_advice)
         WHERE id = ?1",
    )?
    .execute(params![
        observation.payout_id,
        observation.transfer_url,
        status.as_str(),
        times.now,
        next_poll_at,
        watch_until,
        failure.map(|f| &f.code),
        failure.map(|f| &f.description),
        failure.and_then(|f| f.explanation.as_ref()),
        failure.map(|f| f.advice.as_str()),
    ])?;
    Ok(())
}

/// When to poll a payout next, and the end of its returns window, given its state after an
/// observation. Settled outcomes (failed, returned) are never polled again; a processed one
/// is polled until its window ends, with one last poll at the end.
pub(super) fn schedule(
    state: PayoutState,
    stored_watch_until: Option<String>,
    times: &PollTimes,
) -> (Option<String>, Option<String>) {
    match state {
        PayoutState::Submitted => (Some(times.next_unsettled.clone()), stored_watch_until),
        PayoutState::Processed => {
            let watch_until = stored_watch_until.unwrap_or_else(|| times.watch_until.clone());
            let next = if times.now >= watch_until {
                None
            } else {
                Some(times.next_processed.clone().min(watch_until.clone()))
            };
            (next, Some(watch_until))
        }
        _ => (None, stored_watch_until),
    }
}

pub(super) fn observation_reason(observation: &Observation) -> String {
    match &observation.failure {
        Some(failure)
            if matches!(
                observation.status,
                TransferStatus::Failed | TransferStatus::Returned
            ) =>
        {
            format!(
                "transfer {}: {} {}",
                observation.status.as_str(),
                failure.code,
                failure.description
            )
        }
        _ => format!("transfer {}", observation.status.as_str()),
    }
}

/// The last path segment of a URL: a transfer's id.
pub(super) fn last_segment(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(now: &str) -> PollTimes {
        PollTimes {
            now: now.into(),
            next_unsettled: "2026-01-01T00:10:00.000Z".into(),
            next_processed: "2026-01-01T12:00:00.000Z".into(),
            watch_until: "2026-01-08T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn unsettled_transfers_are_polled_soon_and_settled_ones_never() {
        let t = times("2026-01-01T00:00:00.000Z");
        assert_eq!(
            schedule(PayoutState::Submitted, None, &t).0.as_deref(),
            Some("2026-01-01T00:10:00.000Z")
        );
        assert_eq!(schedule(PayoutState::Failed, None, &t).0, None);
        assert_eq!(schedule(PayoutState::Returned, None, &t).0, None);
    }

    #[test]
    fn processed_transfers_are_watched_until_their_window_ends() {
        let t = times("2026-01-01T00:00:00.000Z");
        let (next, until) = schedule(PayoutState::Processed, None, &t);
        assert_eq!(next.as_deref(), Some("2026-01-01T12:00:00.000Z"));
        assert_eq!(until.as_deref(), Some("2026-01-08T00:00:00.000Z"));
        // The stored window wins over a new one; the last poll lands on its end.
        let stored = Some("2026-01-01T06:00:00.000Z".to_string());
        let (next, until) = schedule(PayoutState::Processed, stored.clone(), &t);
        assert_eq!(next.as_deref(), Some("2026-01-01T06:00:00.000Z"));
        assert_eq!(until, stored);
        // Past the window: no longer watched.
        let late = times("2026-01-09T00:00:00.000Z");
        let (next, _) = schedule(PayoutState::Processed, stored, &late);
        assert_eq!(next, None);
    }

    #[test]
    fn transfer_ids_compare_by_last_segment() {
        assert_eq!(last_segment("http://127.0.0.1:1/transfers/abc"), "abc");
        assert_eq!(last_segment("https://api.dwolla.com/transfers/abc/"), "abc");
        assert_eq!(last_segment("abc"), "abc");
    }
}
