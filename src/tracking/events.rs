//! Applying spooled webhook events to the ledger.
//!
//! Events are thin and may arrive late, twice or out of order, so an event is only a reason
//! to look: the applier GETs the transfer it points to and stores what Dwolla says now,
//! through the one transition function (which never moves a payout backwards). Events whose
//! topic announces nothing newer than the ledger already knows are marked stale without a
//! request, and several events about one transfer in a batch cost one GET.
//!
//! An event is marked done in the spool only after the ledger committed its effect; a crash
//! in between applies it again, which changes nothing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{
    Tally, TrackConfig, is_unreachable, observation, payout_id_for, read_with_retry, record,
};
use crate::dwolla::wire::Transfer;
use crate::dwolla::{Client, DwollaError};
use crate::ledger::{
    self, EventFate, EventSpool, Ledger, LedgerError, LockError, Observation, ObservationOutcome,
    SpooledEvent, TrackLedger, TrackedPayout, WriterLock,
};
use crate::payout::{PayoutState, TransferStatus};

/// What applying spooled events did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Events finished (applied, stale, ignored or unreadable).
    pub n_events: u64,
    /// Events whose transfer was fetched and stored (changed or not).
    pub n_applied: u64,
    /// Events that announced nothing newer than the ledger knew: no request made.
    pub n_stale: u64,
    /// Unknown topics, and events about transfers that are not this ledger's.
    pub n_ignored: u64,
    /// Events left for later because Dwolla could not be reached.
    pub n_retry_later: u64,
    /// Transfers fetched.
    pub n_fetches: u64,
    pub tally: Tally,
}

impl ApplyReport {
    pub(super) fn merge(&mut self, other: ApplyReport) {
        self.n_events += other.n_events;
        self.n_applied += other.n_applied;
        self.n_stale += other.n_stale;
        self.n_ignored += other.n_ignored;
        self.n_retry_later += other.n_retry_later;
        self.n_fetches += other.n_fetches;
        self.tally.merge(other.tally);
    }
}

/// What an opportunistic attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opportunity {
    NothingPending,
    /// There is no ledger yet (nothing was ingested); the events wait.
    NoLedger,
    /// Another process holds the ledger's writer lock; the events wait for it or a later try.
    LedgerBusy,
    Applied(ApplyReport),
}

/// Applies every due spooled event with the writer lock held (by `track`, `send` or any
/// writer): batch by batch, one GET per distinct transfer, one ledger transaction per batch.
pub async fn apply_spooled_events<L: TrackLedger + Send, S: EventSpool + Send + ?Sized>(
    ledger: &mut L,
    spool: &mut S,
    client: &Client,
    config: &TrackConfig,
) -> anyhow::Result<ApplyReport> {
    let mut report = ApplyReport::default();
    while let Some(batch) = fetch_batch(ledger, spool, client, config).await? {
        let full = batch.n_events >= config.event_batch;
        commit_batch(ledger, spool, batch, config, &mut report)?;
        if !full || report.tally.unreachable.is_some() {
            break;
        }
    }
    prune_spool(spool, OffsetDateTime::now_utc())?;
    Ok(report)
}

/// How long finished events stay in the spool: well past Dwolla's 72 hours of redelivery, and
/// as long as Dwolla itself keeps events (`GET /events` covers a rolling 30 days).
pub const SPOOL_RETENTION: time::Duration = time::Duration::days(30);
/// Deleted per apply at most, so that pruning a long-neglected spool never stalls a cycle.
const PRUNE_LIMIT: usize = 10_000;

/// Keeps the spool from growing forever: finished events older than [`SPOOL_RETENTION`] go.
fn prune_spool(
    spool: &mut (impl EventSpool + ?Sized),
    now: OffsetDateTime,
) -> Result<(), LedgerError> {
    let cutoff = ledger::timestamp(now - SPOOL_RETENTION);
    let n_pruned = spool.prune_finished(&cutoff, PRUNE_LIMIT)?;
    if n_pruned > 0 {
        tracing::info!(
            n_pruned,
            spool = %spool.shown(),
            "pruned webhook events finished more than 30 days ago"
        );
    }
    Ok(())
}

/// For a process that must not hold the writer lock for long (`serve`): reads and GETs run
/// without the lock, which is taken without waiting only to commit each batch and released
/// at once. If another process holds it, the events stay pending for that process (`track`
/// and `send` drain the spool) or for a later try.
pub async fn apply_opportunistically<S: EventSpool + Send + ?Sized>(
    ledger_path: &Path,
    spool: &mut S,
    client: &Client,
    config: &TrackConfig,
) -> anyhow::Result<Opportunity> {
    let now = ledger::timestamp(OffsetDateTime::now_utc());
    if !spool.has_pending(&now)? {
        return Ok(Opportunity::NothingPending);
    }
    if !ledger_path.exists() {
        return Ok(Opportunity::NoLedger);
    }
    // A cheap look first, so that no GET is wasted while a writer is busy.
    match WriterLock::acquire(ledger_path) {
        Ok(probe) => drop(probe),
        Err(LockError::HeldByOther { .. }) => return Ok(Opportunity::LedgerBusy),
        Err(other) => return Err(other.into()),
    }
    let mut reader = match Ledger::open_reader(ledger_path) {
        Ok(reader) => reader,
        // An older schema: a writer upgrades it.
        Err(LedgerError::Invalid { .. }) => {
            match Ledger::open_writer(ledger_path) {
                Ok(writer) => drop(writer),
                Err(LedgerError::Locked(_)) => return Ok(Opportunity::LedgerBusy),
                Err(other) => return Err(other.into()),
            }
            Ledger::open_reader(ledger_path)?
        }
        Err(other) => return Err(other.into()),
    };
    let mut report = ApplyReport::default();
    while let Some(batch) = fetch_batch(&mut reader, spool, client, config).await? {
        let full = batch.n_events >= config.event_batch;
        let mut writer = match Ledger::open_writer(ledger_path) {
            Ok(writer) => writer,
            Err(LedgerError::Locked(_)) if report.n_events == 0 => {
                return Ok(Opportunity::LedgerBusy);
            }
            Err(LedgerError::Locked(_)) => break,
            Err(other) => return Err(other.into()),
        };
        commit_batch(&mut writer, spool, batch, config, &mut report)?;
        drop(writer);
        if !full || report.tally.unreachable.is_some() {
            break;
        }
    }
    // The spool is serve's own file: pruning it needs no ledger lock.
    prune_spool(spool, OffsetDateTime::now_utc())?;
    Ok(Opportunity::Applied(report))
}

/// For a ledger every process may write at once (PostgreSQL): applies the due events, each
/// page claimed from the other appliers, with no lock to wait for.
pub async fn apply_pending<L: TrackLedger + Send, S: EventSpool + Send + ?Sized>(
    ledger: &mut L,
    spool: &mut S,
    client: &Client,
    config: &TrackConfig,
) -> anyhow::Result<Opportunity> {
    let now = ledger::timestamp(OffsetDateTime::now_utc());
    if !spool.has_pending(&now)? {
        return Ok(Opportunity::NothingPending);
    }
    let report = apply_spooled_events(ledger, spool, client, config).await?;
    Ok(Opportunity::Applied(report))
}

/// One batch of events, read and fetched, not yet committed.
struct FetchedBatch {
    n_events: usize,
    /// Events finished without a ledger change (ignored, stale, unreadable, retry).
    fates: Vec<(String, EventFate)>,
    observations: Vec<Observation>,
    /// For each observation, the events it answers.
    observed_events: Vec<Vec<String>>,
    n_fetches: u64,
    unreachable: Option<String>,
}

/// One transfer to fetch and the events that point at it.
struct Fetch {
    url: String,
    payout_id: Option<i64>,
    /// (event id, rank of the status its topic announces)
    events: Vec<(String, u8)>,
}

fn done(event_id: &str, outcome: &str) -> (String, EventFate) {
    (
        event_id.to_string(),
        EventFate::Done {
            outcome: outcome.to_string(),
        },
    )
}

/// An event announcing `announced` tells nothing new about this payout.
fn is_stale(payout: &TrackedPayout, announced: TransferStatus) -> bool {
    match payout.state {
        PayoutState::Failed | PayoutState::Returned => true,
        PayoutState::Submitted | PayoutState::Processed => payout
            .transfer_status
            .is_some_and(|known| known.rank() >= announced.rank()),
        _ => false,
    }
}

/// Takes `&mut` only so that the future is `Send` (a SQLite connection is not `Sync`); it
/// only reads.
async fn fetch_batch<L: TrackLedger + Send, S: EventSpool + Send + ?Sized>(
    ledger: &mut L,
    spool: &mut S,
    client: &Client,
    config: &TrackConfig,
) -> anyhow::Result<Option<FetchedBatch>> {
    let now = OffsetDateTime::now_utc();
    let now_text = ledger::timestamp(now);
    let events = spool.pending(&now_text, config.event_batch)?;
    if events.is_empty() {
        return Ok(None);
    }
    let batches = ledger.batch_ids_by_key()?;
    let mut batch = FetchedBatch {
        n_events: events.len(),
        fates: Vec::new(),
        observations: Vec::new(),
        observed_events: Vec::new(),
        n_fetches: 0,
        unreachable: None,
    };
    let fetches = plan_fetches(
        ledger, client, config, &events, &batches, &now_text, &mut batch,
    )?;
    batch.n_fetches = fetches.len() as u64;
    let retry_at = ledger::timestamp(now + config.event_retry_after);
    for (fetch, result) in fetch_all(client, config, fetches).await? {
        settle(fetch, result, &batches, &retry_at, &mut batch);
    }
    Ok(Some(batch))
}

/// Decides, without a request, what each event needs: finished at once (ignored topic, no
/// resource, not payrun's, stale) into `batch.fates`, or a fetch of its transfer, one per URL.
fn plan_fetches(
    ledger: &mut impl TrackLedger,
    client: &Client,
    config: &TrackConfig,
    events: &[SpooledEvent],
    batches: &HashMap<String, i64>,
    now_text: &str,
    batch: &mut FetchedBatch,
) -> anyhow::Result<Vec<Fetch>> {
    let mut fetches: Vec<Fetch> = Vec::new();
    let mut by_url: HashMap<String, usize> = HashMap::new();
    for event in events {
        let Some(announced) = config.topics.transfer_status(&event.topic) else {
            tracing::debug!(event_id = %event.event_id, topic = %event.topic, "topic ignored");
            batch.fates.push(done(&event.event_id, "ignored_topic"));
            continue;
        };
        let url = match (&event.resource_url, &event.resource_id) {
            (Some(url), _) => url.clone(),
            (None, Some(id)) => client.transfer_url(id),
            (None, None) => {
                batch.fates.push(done(&event.event_id, "no_resource"));
                continue;
            }
        };
        let payout_id = match event.correlation_id.as_deref() {
            None => None,
            Some(correlation_id) => match payout_id_for(correlation_id, batches) {
                Some(id) => Some(id),
                None => {
                    batch.fates.push(done(&event.event_id, "not_payrun"));
                    continue;
                }
            },
        };
        if let Some(id) = payout_id {
            let verdict = match ledger.tracked_payout(id, now_text)? {
                None => Some("not_payrun"),
                Some(payout) if is_stale(&payout, announced) => Some("stale"),
                Some(_) => None,
            };
            if let Some(outcome) = verdict {
                batch.fates.push(done(&event.event_id, outcome));
                continue;
            }
        }
        let idx = *by_url.entry(url.clone()).or_insert_with(|| {
            fetches.push(Fetch {
                url,
                payout_id,
                events: Vec::new(),
            });
            fetches.len() - 1
        });
        fetches[idx]
            .events
            .push((event.event_id.clone(), announced.rank()));
    }
    Ok(fetches)
}

/// GETs every planned transfer, at most `max_concurrent_reads` at once, each read retried by
/// the tracking policy; results in the order they finish.
async fn fetch_all(
    client: &Client,
    config: &TrackConfig,
    fetches: Vec<Fetch>,
) -> anyhow::Result<Vec<(Fetch, Result<Transfer, DwollaError>)>> {
    let shared = Arc::new(config.clone());
    let slots = Arc::new(Semaphore::new(config.max_concurrent_reads.max(1)));
    let mut tasks = JoinSet::new();
    for fetch in fetches {
        let (client, config, slots) = (client.clone(), shared.clone(), slots.clone());
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let result = read_with_retry(&config, || client.get_transfer(&fetch.url)).await;
            (fetch, result)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        results.push(joined?);
    }
    Ok(results)
}

/// What one fetched transfer means for its events: an observation to record, or a fate
/// (retry later when Dwolla was unreachable or the status unknown; done when unreadable or
/// not payrun's).
fn settle(
    fetch: Fetch,
    result: Result<Transfer, DwollaError>,
    batches: &HashMap<String, i64>,
    retry_at: &str,
    batch: &mut FetchedBatch,
) {
    let event_ids = || fetch.events.iter().map(|(id, _)| id.as_str());
    let retry = |error: String| {
        event_ids()
            .map(|id| {
                let at = retry_at.to_string();
                let error = error.clone();
                (id.to_string(), EventFate::RetryAt { at, error })
            })
            .collect::<Vec<_>>()
    };
    let transfer = match result {
        Ok(transfer) => transfer,
        Err(error) if is_unreachable(&error) => {
            batch.unreachable = Some(format!("cannot read transfers: {error}"));
            batch.fates.extend(retry(error.to_string()));
            return;
        }
        Err(error) => {
            tracing::warn!(url = %fetch.url, "webhook event points at a transfer payrun cannot read: {error}");
            batch
                .fates
                .extend(event_ids().map(|id| done(id, "unreadable")));
            return;
        }
    };
    let payout_id = fetch.payout_id.or_else(|| {
        transfer
            .correlation_id
            .as_deref()
            .and_then(|c| payout_id_for(c, batches))
    });
    let Some(payout_id) = payout_id else {
        batch
            .fates
            .extend(event_ids().map(|id| done(id, "not_payrun")));
        return;
    };
    // The history names the event that announced the furthest status.
    let (cause, _) = fetch
        .events
        .iter()
        .max_by_key(|(_, rank)| *rank)
        .expect("a fetch has at least one event");
    let source = format!("webhook:{cause}");
    match observation(&transfer, payout_id, &fetch.url, source) {
        Some(seen) => {
            batch.observations.push(seen);
            batch
                .observed_events
                .push(event_ids().map(str::to_string).collect());
        }
        None => batch.fates.extend(retry(format!(
            "transfer status {:?} not understood",
            transfer.status
        ))),
    }
}

fn commit_batch(
    ledger: &mut impl TrackLedger,
    spool: &mut (impl EventSpool + ?Sized),
    batch: FetchedBatch,
    config: &TrackConfig,
    report: &mut ApplyReport,
) -> anyhow::Result<()> {
    let mut fates = batch.fates;
    let outcomes = record(ledger, &batch.observations, config, &mut report.tally)?;
    for (outcome, event_ids) in outcomes.iter().zip(batch.observed_events) {
        let text = match outcome {
            ObservationOutcome::Moved { .. } => "applied",
            ObservationOutcome::Unchanged { .. } => "unchanged",
            ObservationOutcome::Conflict(_) => "conflict",
        };
        fates.extend(event_ids.iter().map(|id| done(id, text)));
    }
    let now = ledger::timestamp(OffsetDateTime::now_utc());
    spool.finish(&fates, &now)?;
    for (_, fate) in &fates {
        match fate {
            EventFate::RetryAt { .. } => report.n_retry_later += 1,
            EventFate::Done { outcome } => {
                report.n_events += 1;
                match outcome.as_str() {
                    "applied" | "unchanged" | "conflict" => report.n_applied += 1,
                    "stale" => report.n_stale += 1,
                    _ => report.n_ignored += 1,
                }
            }
        }
    }
    report.n_fetches += batch.n_fetches;
    if batch.unreachable.is_some() {
        report.tally.unreachable = batch.unreachable;
    }
    Ok(())
}
