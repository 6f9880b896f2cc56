//! `payrun send`: every due payout to Dwolla exactly once, as fast as the rate limit allows.
//!
//! Three parts run at once. The dispatcher claims due payouts in file order, a page at a
//! time, and commits `submitting` with each payout's exact request bytes before any POST. Each
//! payout then gets a task that POSTs under the client's shared throttle and retries an
//! unknown outcome with the same key and bytes (backon delays, `Retry-After` honoured). The
//! recorder group-commits outcomes: one transaction per few hundred payouts or few tens of
//! milliseconds, never one fsync per payout.
//!
//! Owns claiming, concurrency, give-up rules and shutdown. It builds no JSON by hand (that is
//! `dwolla::wire`), writes only through the ledger, and parses no CSV.

mod attempt;
pub mod fleet;
pub mod progress;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::dwolla::{Amount, Client, Disposition, TransferRequest};
use crate::ledger::{self, DuePayout, RecordedOutcome, SendLedger, SendOutcome, Unsent};
pub use progress::Counters;

/// How a send run behaves. Every field is a policy the operator may set.
#[derive(Debug, Clone)]
pub struct SendConfig {
    /// The funding source payouts are paid from: a URL, or an id on the configured API.
    pub source_funding_source: String,
    /// Only this batch, or every approved batch.
    pub batch: Option<i64>,
    /// POSTs per payout, over all runs, before payrun stops and asks a person.
    pub max_attempts: u32,
    /// Time since a payout's first POST after which payrun stops and asks a person.
    pub give_up_after: Duration,
    /// How long Dwolla honours an Idempotency-Key (24 h) ...
    pub key_lifetime: Duration,
    /// ... less this margin: past it, payrun looks the transfer up instead of re-POSTing.
    pub key_margin: Duration,
    /// POSTs per payout within one run before it is left for the next run.
    pub attempts_per_run: u32,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Outcomes per ledger transaction, at most ...
    pub commit_max_rows: usize,
    /// ... and how long an outcome may wait for its transaction.
    pub commit_max_delay: Duration,
    /// Payout tasks alive at once (the client separately bounds requests in flight).
    pub max_tasks: usize,
    /// Draw a progress bar (a TTY) or log a line every few seconds.
    pub progress: progress::Display,
}

impl SendConfig {
    /// The defaults for `source` with `concurrency` requests in flight.
    pub fn new(source_funding_source: String, concurrency: usize) -> SendConfig {
        SendConfig {
            source_funding_source,
            batch: None,
            max_attempts: 12,
            give_up_after: Duration::from_secs(6 * 3600),
            key_lifetime: Duration::from_secs(24 * 3600),
            key_margin: Duration::from_secs(3600),
            attempts_per_run: 6,
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(20),
            commit_max_rows: 256,
            commit_max_delay: Duration::from_millis(25),
            max_tasks: concurrency.max(1) * 4,
            progress: progress::Display::Auto,
        }
    }
}

/// What a run did, for the summary and the exit status.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SendReport {
    /// Payouts this run worked on.
    pub n_claimed: u64,
    pub n_created: u64,
    pub n_refused: u64,
    pub n_found: u64,
    pub n_needs_review: u64,
    /// Given up for this run with the outcome still unknown (its attempt budget spent, Dwolla
    /// failing, or shutdown); they stay `submitting`, due at once for the next run.
    pub n_deferred: u64,
    /// Counted in the ledger once the run is over: what the next run has to send.
    pub left: Unsent,
    pub interrupted: bool,
    /// Set when Dwolla refused payrun's credentials: nothing more can be sent.
    pub unauthorized: Option<String>,
    /// The last transient error seen, to explain deferred payouts.
    pub last_transient_error: Option<String>,
}

impl SendReport {
    /// The one-line account of a run, with what it left by state.
    pub fn summary(&self) -> String {
        let left = match (self.left.in_doubt, self.left.pending) {
            (0, 0) => "nothing left to send".to_string(),
            (in_doubt, pending) => format!(
                "left for the next run: {in_doubt} in doubt (resent with the same keys), {pending} pending"
            ),
        };
        format!(
            "sent {}: {} created, {} rejected, {} need review; {left}{}",
            crate::names::plural(self.n_claimed, "payout"),
            self.n_created + self.n_found,
            self.n_refused,
            self.n_needs_review,
            if self.interrupted {
                " (stopped by a signal)"
            } else {
                ""
            }
        )
    }
}

/// Shared by the dispatcher, the payout tasks and the recorder.
struct Run {
    client: Client,
    config: SendConfig,
    source_url: String,
    account_id: String,
    stopping: watch::Receiver<bool>,
    unauthorized: Mutex<Option<String>>,
    stop_claiming: AtomicBool,
    counters: Arc<Counters>,
}

/// Sends every due payout. `stopping` turning true asks for a graceful stop: no more claims,
/// no more retries; requests in flight finish and are recorded.
pub async fn send<L: SendLedger>(
    ledger: L,
    client: Client,
    config: SendConfig,
    stopping: watch::Receiver<bool>,
) -> anyhow::Result<SendReport> {
    send_shared(Arc::new(Mutex::new(ledger)), client, config, stopping).await
}

/// [`send`] with a ledger the caller keeps using afterwards (and so keeps the writer lock).
pub async fn send_shared<L: SendLedger>(
    ledger: Arc<Mutex<L>>,
    client: Client,
    config: SendConfig,
    stopping: watch::Receiver<bool>,
) -> anyhow::Result<SendReport> {
    let root = preflight(&client, &config).await?;
    let account_id = root
        .account_id()
        .context("Dwolla's root resource names no account")?
        .to_string();
    let source_url = if config.source_funding_source.contains('/') {
        config.source_funding_source.clone()
    } else {
        client.funding_source_url(&config.source_funding_source)
    };
    let counters = Arc::new(Counters::default());
    let run = Arc::new(Run {
        client,
        config,
        source_url,
        account_id,
        stopping,
        unauthorized: Mutex::new(None),
        stop_claiming: AtomicBool::new(false),
        counters: counters.clone(),
    });
    let progress = progress::start(run.config.progress, counters.clone(), run.client.clone());

    let (outcome_tx, outcome_rx) = mpsc::channel::<RecordedOutcome>(4096);
    let recorder = tokio::spawn(record(ledger.clone(), outcome_rx, run.clone()));
    let dispatched = dispatch(&ledger, &run, outcome_tx).await;
    let recorded = recorder.await.context("the recorder task failed")?;
    progress.finish();
    dispatched?;
    let mut report = recorded?;
    report.interrupted = *run.stopping.borrow();
    report.unauthorized = run.unauthorized.lock().expect("not poisoned").clone();
    let batch = run.config.batch;
    report.left = with_ledger(&ledger, move |l| l.unsent(batch)).await?;
    Ok(report)
}

/// Fetches the root resource (and with it a token) before anything is claimed, so that a run
/// that cannot reach Dwolla, or whose credentials are refused, stops before touching a payout.
/// Transient failures are retried like any request.
async fn preflight(client: &Client, config: &SendConfig) -> anyhow::Result<crate::dwolla::Root> {
    use backon::BackoffBuilder;
    let mut delays = backon::ExponentialBuilder::default()
        .with_min_delay(config.backoff_min)
        .with_max_delay(config.backoff_max)
        .with_jitter()
        .with_max_times(config.attempts_per_run as usize)
        .build();
    loop {
        let error = match client.root().await {
            Ok(root) => return Ok(root),
            Err(error) => error,
        };
        match (error.disposition(), delays.next()) {
            (Disposition::Retry { after }, Some(delay)) => {
                tracing::warn!("Dwolla is not answering yet: {error}");
                tokio::time::sleep(delay.max(after.unwrap_or_default())).await;
            }
            _ => {
                let request = crate::dwolla::root_request(&error);
                return Err(error).context(format!("cannot reach Dwolla ({request})"));
            }
        }
    }
}

/// Claims payouts and starts a task for each, in passes: a pass takes every payout in doubt
/// (whatever its retry time; its task waits until due), then the pending ones page by page,
/// and waits for all of them. Another pass follows while the last one found anything new, so
/// the run ends only when every payout it may send is sent, final, or has spent this run's
/// attempt budget (those stay in doubt, due at once for the next run).
async fn dispatch<L: SendLedger>(
    ledger: &Arc<Mutex<L>>,
    run: &Arc<Run>,
    outcomes: mpsc::Sender<RecordedOutcome>,
) -> anyhow::Result<()> {
    let mut handled: HashSet<i64> = HashSet::new();
    while run.keep_claiming() {
        let mut tasks = JoinSet::new();
        let claimed = claim_pass(ledger, run, &outcomes, &mut handled, &mut tasks).await;
        while let Some(joined) = tasks.join_next().await {
            joined.context("a payout task panicked")?;
        }
        if claimed? > 0 {
            continue;
        }
        // Other workers' payouts in doubt: wait while they work, take over once a lease passes.
        let batch = run.config.batch;
        match with_ledger(ledger, move |l| l.held_elsewhere(batch)).await? {
            Some(lease_left) if run.keep_claiming() => {
                let wait = lease_left.clamp(Duration::from_millis(50), Duration::from_secs(1));
                tokio::time::sleep(wait).await;
            }
            _ => break,
        }
    }
    Ok(())
}

/// One pass of [`dispatch`]: starts a task for each payout not handled yet in this run;
/// returns how many.
async fn claim_pass<L: SendLedger>(
    ledger: &Arc<Mutex<L>>,
    run: &Arc<Run>,
    outcomes: &mpsc::Sender<RecordedOutcome>,
    handled: &mut HashSet<i64>,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<u64> {
    const PAGE: usize = 256;
    let task_slots = Arc::new(Semaphore::new(run.config.max_tasks));
    let batch = run.config.batch;
    let mut claimed = 0;
    // First the payouts a crash or an earlier run left in doubt, then the pending ones.
    let in_doubt = with_ledger(ledger, move |l| l.claim_in_doubt(batch)).await?;
    for payout in in_doubt {
        if !run.keep_claiming() {
            return Ok(claimed);
        }
        if !handled.insert(payout.id) {
            continue;
        }
        claimed += 1;
        let Some(body) = payout.request_body.clone() else {
            // Cannot happen: the body is committed with the state. Never invent a new one.
            outcomes
                .send(RecordedOutcome {
                    payout_id: payout.id,
                    attempts: payout.attempts,
                    outcome: SendOutcome::GaveUp {
                        reason: "in doubt but no committed request body".into(),
                    },
                })
                .await?;
            continue;
        };
        spawn_payout(tasks, &task_slots, run, payout, body, outcomes).await;
    }

    let mut cursor = 0i64;
    while run.keep_claiming() {
        let now = ledger::timestamp(OffsetDateTime::now_utc());
        let builder = run.clone();
        let page = with_ledger(ledger, move |l| {
            l.claim_pending(cursor, batch, PAGE, &now, &mut |p| builder.request_body(p))
        })
        .await?;
        let Some(last) = page.last() else { break };
        cursor = last.id;
        for mut payout in page {
            // A pending payout is new to this run: claiming it moved it out of `pending`.
            handled.insert(payout.id);
            let body = payout
                .request_body
                .take()
                .expect("a claim commits the body");
            claimed += 1;
            spawn_payout(tasks, &task_slots, run, payout, body, outcomes).await;
            if !run.keep_claiming() {
                // Committed but not sent: they are in doubt and due now, so the next run
                // sends them with the same key and bytes.
                break;
            }
        }
    }
    Ok(claimed)
}

async fn spawn_payout(
    tasks: &mut JoinSet<()>,
    task_slots: &Arc<Semaphore>,
    run: &Arc<Run>,
    payout: DuePayout,
    body: Vec<u8>,
    outcomes: &mpsc::Sender<RecordedOutcome>,
) {
    let slot = task_slots
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    run.counters.claimed.fetch_add(1, Ordering::Relaxed);
    let run = run.clone();
    let outcomes = outcomes.clone();
    tasks.spawn(async move {
        attempt::submit(&run, payout, body, &outcomes).await;
        drop(slot);
    });
}

impl Run {
    fn keep_claiming(&self) -> bool {
        !*self.stopping.borrow() && !self.stop_claiming.load(Ordering::Relaxed)
    }

    /// The exact bytes of a payout's transfer request. Built once, at the commit before the
    /// first POST; later attempts resend the stored bytes and never rebuild them.
    fn request_body(&self, payout: &DuePayout) -> Vec<u8> {
        let mut metadata: BTreeMap<String, String> = payout
            .metadata
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default();
        metadata.insert("payrun_batch".into(), payout.batch_id.to_string());
        metadata.insert("payrun_reference".into(), payout.reference.clone());
        TransferRequest {
            source_url: self.source_url.clone(),
            destination_url: self.client.funding_source_url(&payout.destination),
            amount: Amount::usd_cents(payout.amount.get() as u64),
            correlation_id: payout.correlation_id.clone(),
            metadata,
        }
        .to_body_bytes()
    }

    fn note_unauthorized(&self, message: String) {
        self.stop_claiming.store(true, Ordering::Relaxed);
        self.unauthorized
            .lock()
            .expect("not poisoned")
            .get_or_insert(message);
    }
}

/// Collects outcomes and commits them in groups bounded by count and by time.
async fn record<L: SendLedger>(
    ledger: Arc<Mutex<L>>,
    mut incoming: mpsc::Receiver<RecordedOutcome>,
    run: Arc<Run>,
) -> anyhow::Result<SendReport> {
    let mut report = SendReport::default();
    let mut group: Vec<RecordedOutcome> = Vec::new();
    loop {
        let first = incoming.recv().await;
        let Some(first) = first else { break };
        group.push(first);
        let deadline = tokio::time::Instant::now() + run.config.commit_max_delay;
        while group.len() < run.config.commit_max_rows {
            match tokio::time::timeout_at(deadline, incoming.recv()).await {
                Ok(Some(next)) => group.push(next),
                Ok(None) | Err(_) => break,
            }
        }
        for recorded in &group {
            tally(&mut report, &recorded.outcome, &run);
        }
        let now = ledger::timestamp(OffsetDateTime::now_utc());
        let committing = std::mem::take(&mut group);
        with_ledger(&ledger, move |l| l.record_outcomes(&committing, &now)).await?;
    }
    Ok(report)
}

/// Final outcomes count once; intermediate `RetryLater`s (recorded while a task keeps trying)
/// are not final, so the task marks its last one by leaving the run with it.
fn tally(report: &mut SendReport, outcome: &SendOutcome, run: &Run) {
    let counters = &run.counters;
    match outcome {
        SendOutcome::Created { .. } => {
            report.n_created += 1;
            counters.created.fetch_add(1, Ordering::Relaxed);
        }
        SendOutcome::Found { .. } => {
            report.n_found += 1;
            counters.created.fetch_add(1, Ordering::Relaxed);
        }
        SendOutcome::Refused { .. } => {
            report.n_refused += 1;
            counters.refused.fetch_add(1, Ordering::Relaxed);
        }
        SendOutcome::GaveUp { .. } => {
            report.n_needs_review += 1;
            counters.needs_review.fetch_add(1, Ordering::Relaxed);
        }
        SendOutcome::RetryLater { reason, .. } => {
            report.last_transient_error = Some(reason.clone());
        }
    }
    report.n_claimed = counters.claimed.load(Ordering::Relaxed);
    report.n_deferred = counters.deferred.load(Ordering::Relaxed);
}

/// Runs a ledger call off the async threads; SQLite calls block.
pub async fn with_ledger<L: Send + 'static, T: Send + 'static>(
    ledger: &Arc<Mutex<L>>,
    call: impl FnOnce(&mut L) -> ledger::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let ledger = ledger.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut guard = ledger.lock().expect("a ledger call panicked earlier");
        call(&mut guard)
    })
    .await
    .context("a ledger task panicked")?;
    Ok(result?)
}

/// Whether an error from the client means payrun cannot go on at all.
pub(crate) fn is_unauthorized(disposition: Disposition) -> bool {
    matches!(disposition, Disposition::Unauthorized)
}
