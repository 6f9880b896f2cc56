//! Following every sent transfer to its final status: webhook events from the spool, polling as
//! the backstop, failure reasons with advice, and a returns watch over processed transfers.
//!
//! - `events`: applies spooled webhook events ([`apply_spooled_events`], and
//!   [`apply_opportunistically`] for `serve`, which may not hold the ledger's writer lock);
//! - `poll`: one sweep over the due payouts ([`sweep`]), walking the account's transfer list
//!   200 at a time when that costs fewer requests than one GET per transfer;
//! - `schedule`: banking days, poll times, durations (pure);
//! - `topics`: the webhook topic table (pure).
//!
//! Owns deciding what to ask Dwolla and when. It never creates transfers (read calls only),
//! writes the ledger only through `ledger` (state changes through `payout::transition`), and
//! serves no HTTP. Ledger calls run inline on the async task: each is one short transaction
//! over a batch, never one per payout.

mod events;
mod poll;
pub mod schedule;
pub mod topics;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use backon::BackoffBuilder;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::dwolla::{Client, Disposition, DwollaError};
use crate::failure;
use crate::ledger::{
    self, EventSpool, FailureDetails, Observation, ObservationOutcome, TrackLedger, TrackingCounts,
};
use crate::payout::{PayoutState, TransferStatus};

pub use events::{
    ApplyReport, Opportunity, apply_opportunistically, apply_pending, apply_spooled_events,
};
pub use poll::{SweepMode, SweepReport, sweep};
pub use topics::TopicMap;

/// How tracking behaves. Every field is a policy the operator may set.
#[derive(Debug, Clone)]
pub struct TrackConfig {
    /// How often to ask about a transfer that is still created or pending.
    pub poll_unsettled_every: Duration,
    /// How often to look for a late return on a processed transfer ...
    pub poll_processed_every: Duration,
    /// ... and for how long after it was first seen processed, in banking days.
    pub returns_window_banking_days: u32,
    /// The banking days the returns window counts (the Fed's, plus configured closures).
    pub calendar: crate::calendar::BankCalendar,
    pub list_mode: ListMode,
    pub topics: TopicMap,
    /// Tries per read before a transient failure counts as "Dwolla unreachable".
    pub read_attempts: u32,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Spooled events per batch (one GET per distinct transfer, one ledger transaction).
    pub event_batch: usize,
    /// When an event could not be applied (Dwolla unreachable), try it again after this.
    pub event_retry_after: Duration,
    /// Reads in flight at once (the client's throttle bounds them too).
    pub max_concurrent_reads: usize,
}

/// How a sweep asks about due transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMode {
    /// Walk the account's transfer list when that needs fewer requests than one GET each.
    Auto,
    /// Always walk the list (then GET whatever it did not show).
    List,
    /// Always GET each due transfer.
    Get,
}

impl TrackConfig {
    /// Production defaults: unsettled transfers every 10 minutes, processed ones twice a day
    /// for 5 banking days.
    pub fn standard() -> TrackConfig {
        TrackConfig {
            poll_unsettled_every: Duration::from_secs(600),
            poll_processed_every: Duration::from_secs(12 * 3600),
            returns_window_banking_days: 5,
            calendar: crate::calendar::BankCalendar::federal_reserve(),
            list_mode: ListMode::Auto,
            topics: TopicMap::dwolla_connect(),
            read_attempts: 4,
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            event_batch: 500,
            event_retry_after: Duration::from_secs(30),
            max_concurrent_reads: 64,
        }
    }
}

/// What tracking changed, summed over events and polls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Transfers seen (by poll or fetched for an event).
    pub n_observed: u64,
    /// Payout moves, by the state they reached.
    pub moved_to: BTreeMap<String, u64>,
    /// Observations that contradicted the ledger; each was logged.
    pub n_conflicts: u64,
    /// Reads that failed for good (404 and the like); each was logged.
    pub n_read_errors: u64,
    /// Set when Dwolla could not be reached, or refused payrun's credentials.
    pub unreachable: Option<String>,
    /// Payouts that reached failed or returned: (payout id, state).
    pub attention: Vec<(i64, PayoutState)>,
}

impl Tally {
    pub fn moved(&self, state: PayoutState) -> u64 {
        self.moved_to.get(state.as_str()).copied().unwrap_or(0)
    }

    fn count(&mut self, payout_id: i64, outcome: &ObservationOutcome) {
        self.n_observed += 1;
        match outcome {
            ObservationOutcome::Moved { to, .. } => {
                *self.moved_to.entry(to.as_str().to_string()).or_default() += 1;
                if matches!(to, PayoutState::Failed | PayoutState::Returned) {
                    self.attention.push((payout_id, *to));
                }
            }
            ObservationOutcome::Unchanged { .. } => {}
            ObservationOutcome::Conflict(_) => self.n_conflicts += 1,
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.n_observed += other.n_observed;
        for (state, n) in other.moved_to {
            *self.moved_to.entry(state).or_default() += n;
        }
        self.n_conflicts += other.n_conflicts;
        self.n_read_errors += other.n_read_errors;
        if other.unreachable.is_some() {
            self.unreachable = other.unreachable;
        }
        self.attention.extend(other.attention);
    }
}

/// What one `track` run did.
#[derive(Debug, Clone, Default)]
pub struct TrackReport {
    pub events: ApplyReport,
    pub n_sweeps: u64,
    pub n_requests_polling: u64,
    pub tally: Tally,
    pub counts: TrackingCounts,
    pub timed_out: bool,
    pub interrupted: bool,
}

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct TrackOptions {
    /// Keep sweeping until no payout is unsettled (submitted).
    pub until_settled: bool,
    /// Give up waiting after this long.
    pub timeout: Option<Duration>,
}

/// One `track` run with the writer lock held: drain the spool (when there is one), sweep the
/// due payouts, and with `until_settled` repeat as polls fall due until nothing is unsettled.
pub async fn track<L: TrackLedger + Send, S: EventSpool + Send + ?Sized>(
    ledger: &mut L,
    mut spool: Option<&mut S>,
    client: &Client,
    config: &TrackConfig,
    options: &TrackOptions,
    mut stopping: watch::Receiver<bool>,
) -> anyhow::Result<TrackReport> {
    let account_id = account_id(client, config).await?;
    let deadline = options
        .timeout
        .map(|timeout| tokio::time::Instant::now() + timeout);
    let mut report = TrackReport::default();
    loop {
        if let Some(spool) = spool.as_deref_mut() {
            let applied = apply_spooled_events(ledger, spool, client, config).await?;
            report.events.merge(applied);
        }
        let swept = sweep(ledger, client, &account_id, config).await?;
        report.n_sweeps += 1;
        report.n_requests_polling += swept.n_requests;
        report.tally.merge(swept.tally);
        if report.tally.unreachable.is_some() || report.events.tally.unreachable.is_some() {
            break;
        }
        report.counts = ledger.tracking_counts()?;
        if !options.until_settled || report.counts.n_unsettled == 0 {
            break;
        }
        let now = tokio::time::Instant::now();
        if deadline.is_some_and(|deadline| now >= deadline) {
            report.timed_out = true;
            break;
        }
        // Wake when the next poll falls due, and at least every second for new events.
        let until_due = report
            .counts
            .next_due_at
            .as_deref()
            .and_then(schedule::parse_timestamp)
            .map_or(Duration::ZERO, |at| {
                (at - OffsetDateTime::now_utc())
                    .try_into()
                    .unwrap_or(Duration::ZERO)
            });
        let mut wake = now + until_due.clamp(Duration::from_millis(20), Duration::from_secs(1));
        if let Some(deadline) = deadline {
            wake = wake.min(deadline);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = stopping.changed() => {}
        }
        if *stopping.borrow() {
            report.interrupted = true;
            break;
        }
    }
    report.counts = ledger.tracking_counts()?;
    Ok(report)
}

/// The account whose transfer list a sweep walks (`GET /`), with the usual retries.
pub async fn account_id(client: &Client, config: &TrackConfig) -> anyhow::Result<String> {
    let root = read_with_retry(config, || client.root())
        .await
        .map_err(|error| {
            let request = crate::dwolla::root_request(&error);
            anyhow::Error::new(error).context(format!("cannot reach Dwolla ({request})"))
        })?;
    Ok(root
        .account_id()
        .context("Dwolla's root resource names no account")?
        .to_string())
}

/// A read call, retried while the failure is transient.
pub(crate) async fn read_with_retry<T, F, Fut>(
    config: &TrackConfig,
    mut call: F,
) -> Result<T, DwollaError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DwollaError>>,
{
    let mut delays = backon::ExponentialBuilder::default()
        .with_min_delay(config.backoff_min)
        .with_max_delay(config.backoff_max)
        .with_jitter()
        .with_max_times(config.read_attempts.saturating_sub(1) as usize)
        .build();
    loop {
        let error = match call().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        match (error.disposition(), delays.next()) {
            (Disposition::Retry { after }, Some(delay)) => {
                tracing::debug!("read failed, retrying: {error}");
                tokio::time::sleep(delay.max(after.unwrap_or_default())).await;
            }
            _ => return Err(error),
        }
    }
}

/// Whether a failed read means Dwolla is out of reach (or refuses payrun), rather than that
/// one resource is wrong.
pub(crate) fn is_unreachable(error: &DwollaError) -> bool {
    !matches!(error.disposition(), Disposition::Final)
}

/// The payout a correlation id payrun made belongs to, if it is one of this ledger's.
pub(crate) fn payout_id_for(
    correlation_id: &str,
    batches: &std::collections::HashMap<String, i64>,
) -> Option<i64> {
    let (batch_key, line) = ledger::parse_correlation_id(correlation_id)?;
    let line = u32::try_from(line).ok()?;
    let batch_id = *batches.get(batch_key)?;
    Some(ledger::payout_id(batch_id, line))
}

/// An observation of `transfer` for a payout; `None` for a status payrun does not know.
pub(crate) fn observation(
    transfer: &crate::dwolla::Transfer,
    payout_id: i64,
    fallback_url: &str,
    source: String,
) -> Option<Observation> {
    let status: TransferStatus = match transfer.status.known() {
        Some(status) => status,
        None => {
            let reason = format!("unknown transfer status {:?}", transfer.status.as_str());
            tracing::warn!(transfer = %transfer.id, %reason, "transfer status not understood; left for a later look");
            return None;
        }
    };
    let failure = transfer
        .failure_reason
        .as_ref()
        .map(|reason| FailureDetails {
            code: reason.code.clone(),
            description: reason.description.clone(),
            explanation: reason.explanation.clone(),
            advice: failure::advice(&reason.code),
        });
    Some(Observation {
        payout_id,
        transfer_url: transfer.self_url().unwrap_or(fallback_url).to_string(),
        status,
        failure,
        source,
    })
}

/// Stores observations and counts what they did.
pub(crate) fn record(
    ledger: &mut impl TrackLedger,
    observations: &[Observation],
    config: &TrackConfig,
    tally: &mut Tally,
) -> anyhow::Result<Vec<ObservationOutcome>> {
    if observations.is_empty() {
        return Ok(Vec::new());
    }
    let times = schedule::poll_times(OffsetDateTime::now_utc(), config);
    let outcomes = ledger.record_observations(observations, &times)?;
    for (observation, outcome) in observations.iter().zip(&outcomes) {
        tally.count(observation.payout_id, outcome);
        log_outcome(ledger, observation, outcome);
    }
    Ok(outcomes)
}

/// One log line per payout that needs a person, naming it the way finance does (batch, file
/// line, reference) with Dwolla's code and transfer; ordinary moves only at debug level.
fn log_outcome(ledger: &impl TrackLedger, observation: &Observation, outcome: &ObservationOutcome) {
    let (batch, line) = ledger::batch_and_line(observation.payout_id);
    let transfer = observation.transfer_url.as_str();
    let source = observation.source.as_str();
    match outcome {
        ObservationOutcome::Moved { from, to }
            if matches!(to, PayoutState::Failed | PayoutState::Returned) =>
        {
            let reference = ledger
                .failure_summary(observation.payout_id)
                .ok()
                .flatten()
                .map(|(reference, _, _)| reference)
                .unwrap_or_default();
            let (code, description) = observation
                .failure
                .as_ref()
                .map_or(("", ""), |f| (f.code.as_str(), f.description.as_str()));
            tracing::warn!(
                batch, line, %reference, %from, %to, code, transfer, source,
                "payout {to}: {description}"
            );
        }
        ObservationOutcome::Moved { from, to } => {
            tracing::debug!(batch, line, %from, %to, transfer, source, "payout moved");
        }
        ObservationOutcome::Unchanged { .. } => {}
        ObservationOutcome::Conflict(reason) => {
            tracing::error!(batch, line, transfer, source, %reason, "observation contradicts the ledger; not stored");
        }
    }
}
