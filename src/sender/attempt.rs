//! One payout's POSTs: the same key and the same bytes every time, until Dwolla answers
//! definitely, the run's budget for it is spent, or the give-up rules hand it to a person.

use std::sync::atomic::Ordering;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;

use super::Run;
use crate::dwolla::{Disposition, DwollaError};
use crate::ledger::{self, DuePayout, RecordedOutcome, SendOutcome};
use crate::payout::TransferStatus;

pub(super) async fn submit(
    run: &Run,
    payout: DuePayout,
    body: Vec<u8>,
    outcomes: &mpsc::Sender<RecordedOutcome>,
) {
    let mut attempts = payout.attempts;
    let outcome = submit_until_settled(run, &payout, &body, &mut attempts, outcomes).await;
    let outcome = match outcome {
        Final(outcome) => outcome,
        Deferred(reason) => {
            run.counters.deferred.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(batch = payout.batch_id, line = payout.line, reference = %payout.reference, %reason, "left for the next run");
            SendOutcome::RetryLater {
                retry_at: ledger::timestamp(OffsetDateTime::now_utc()),
                reason,
            }
        }
    };
    log_outcome(&payout, &outcome);
    // The recorder outlives every task; a closed channel means the run is already failing.
    let _ = outcomes
        .send(RecordedOutcome {
            payout_id: payout.id,
            attempts,
            outcome,
        })
        .await;
}

enum Settled {
    Final(SendOutcome),
    /// Still in doubt; the next run resends it.
    Deferred(String),
}
use Settled::{Deferred, Final};

async fn submit_until_settled(
    run: &Run,
    payout: &DuePayout,
    body: &[u8],
    attempts: &mut u32,
    outcomes: &mpsc::Sender<RecordedOutcome>,
) -> Settled {
    let config = &run.config;
    if let Some(settled) = before_first_post(run, payout).await {
        return settled;
    }
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(config.backoff_min)
        .with_max_delay(config.backoff_max)
        .with_jitter()
        .without_max_times()
        .build();
    let mut attempts_this_run = 0;
    loop {
        if run.unauthorized.lock().expect("not poisoned").is_some() {
            return Deferred("Dwolla refused payrun's credentials".into());
        }
        *attempts += 1;
        attempts_this_run += 1;
        let (reason, after) = match post_once(run, payout, body).await {
            Posted::Settled(settled) => return settled,
            Posted::Unknown { reason, after } => (reason, after),
        };
        if *attempts >= config.max_attempts || elapsed_since_first(payout) >= config.give_up_after {
            let why = format!(
                "no definite answer after {} attempts (last: {reason})",
                *attempts
            );
            return look_up(run, payout, &why).await;
        }
        if attempts_this_run >= config.attempts_per_run || *run.stopping.borrow() {
            return Deferred(reason);
        }
        let delay = delays
            .next()
            .unwrap_or(config.backoff_max)
            .max(after.unwrap_or_default());
        if wait_for_retry(run, payout, *attempts, delay, &reason, outcomes).await {
            return Deferred(reason);
        }
    }
}

/// What must happen before a payout's first POST of this run: a lookup instead when Dwolla
/// may have forgotten its key, or a wait for the retry an earlier (perhaps killed) run planned.
async fn before_first_post(run: &Run, payout: &DuePayout) -> Option<Settled> {
    if key_expired(payout, run) {
        // Dwolla may have forgotten the key: a resend could create a second transfer.
        let why = "the idempotency key is older than Dwolla keeps it";
        return Some(look_up(run, payout, why).await);
    }
    let wait = time_until_due(payout)?;
    run.counters.retrying.fetch_add(1, Ordering::Relaxed);
    let stopped = wait_unless_stopped(run, wait).await;
    run.counters.retrying.fetch_sub(1, Ordering::Relaxed);
    stopped.then(|| Deferred("stopped before its planned retry".into()))
}

enum Posted {
    Settled(Settled),
    /// The outcome is unknown: resend the same bytes, not before `after` when given.
    Unknown {
        reason: String,
        after: Option<Duration>,
    },
}

/// One POST of the payout's committed bytes with its key.
async fn post_once(run: &Run, payout: &DuePayout, body: &[u8]) -> Posted {
    run.counters.in_flight.fetch_add(1, Ordering::Relaxed);
    let result = run
        .client
        .create_transfer(&payout.idempotency_key, body)
        .await;
    run.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
    let error = match result {
        Ok(created) => {
            return Posted::Settled(Final(SendOutcome::Created {
                transfer_url: created.location,
            }));
        }
        Err(error) => error,
    };
    let disposition = error.disposition();
    if super::is_unauthorized(disposition) {
        run.note_unauthorized(error.to_string());
        let reason = format!("Dwolla refused payrun's credentials: {error}");
        return Posted::Settled(Deferred(reason));
    }
    match disposition {
        Disposition::Retry { after } => Posted::Unknown {
            reason: error.to_string(),
            after,
        },
        _ => Posted::Settled(Final(refused(&error))),
    }
}

/// Persists the next attempt time, then waits for it; returns whether the run was asked to
/// stop meanwhile. Persisting first means a crash while waiting keeps the plan.
async fn wait_for_retry(
    run: &Run,
    payout: &DuePayout,
    attempts: u32,
    delay: Duration,
    reason: &str,
    outcomes: &mpsc::Sender<RecordedOutcome>,
) -> bool {
    run.counters.retrying.fetch_add(1, Ordering::Relaxed);
    let planned = SendOutcome::RetryLater {
        retry_at: ledger::timestamp(OffsetDateTime::now_utc() + delay),
        reason: reason.to_string(),
    };
    let _ = outcomes
        .send(RecordedOutcome {
            payout_id: payout.id,
            attempts,
            outcome: planned,
        })
        .await;
    let stopped = wait_unless_stopped(run, delay).await;
    run.counters.retrying.fetch_sub(1, Ordering::Relaxed);
    stopped
}

/// Settles a payout whose outcome payrun cannot learn by resending: find its transfer by the
/// correlation id payrun put on it, or hand it to a person.
async fn look_up(run: &Run, payout: &DuePayout, why: &str) -> Settled {
    match run
        .client
        .find_transfer_by_correlation_id(&run.account_id, &payout.correlation_id)
        .await
    {
        Ok(Some(transfer)) => {
            let transfer_url = transfer
                .self_url()
                .map_or_else(|| run.client.transfer_url(&transfer.id), str::to_string);
            // A status payrun does not know still proves the transfer exists.
            let status = transfer.status.known().unwrap_or(TransferStatus::Created);
            Final(SendOutcome::Found {
                transfer_url,
                status,
            })
        }
        Ok(None) => Final(SendOutcome::GaveUp {
            reason: format!(
                "{why}; no transfer with correlation id {} exists at Dwolla",
                payout.correlation_id
            ),
        }),
        Err(error)
            if matches!(error.disposition(), Disposition::Retry { .. })
                && !key_expired(payout, run) =>
        {
            Deferred(format!(
                "{why}; the lookup by correlation id failed too: {error}"
            ))
        }
        Err(error) => Final(SendOutcome::GaveUp {
            reason: format!("{why}; the lookup by correlation id failed: {error}"),
        }),
    }
}

/// Sleeps for `wait`, or less if the run is asked to stop; returns whether it was.
async fn wait_unless_stopped(run: &Run, wait: Duration) -> bool {
    let mut stopping = run.stopping.clone();
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        _ = stopping.wait_for(|stop| *stop) => {}
    }
    *run.stopping.borrow()
}

/// How long until an in-doubt payout's planned retry, if that is still ahead.
fn time_until_due(payout: &DuePayout) -> Option<Duration> {
    let due = OffsetDateTime::parse(payout.next_attempt_at.as_deref()?, &Rfc3339).ok()?;
    let wait: Duration = (due - OffsetDateTime::now_utc()).try_into().ok()?;
    (!wait.is_zero()).then_some(wait)
}

fn key_expired(payout: &DuePayout, run: &Run) -> bool {
    let usable_for = run
        .config
        .key_lifetime
        .saturating_sub(run.config.key_margin);
    payout.first_attempt_at.is_some() && elapsed_since_first(payout) >= usable_for
}

fn elapsed_since_first(payout: &DuePayout) -> Duration {
    let Some(first) = payout.first_attempt_at.as_deref() else {
        return Duration::ZERO;
    };
    match OffsetDateTime::parse(first, &Rfc3339) {
        Ok(first) => (OffsetDateTime::now_utc() - first)
            .try_into()
            .unwrap_or(Duration::ZERO),
        // An unreadable time must not make payrun resend blindly: treat it as very old.
        Err(_) => Duration::MAX,
    }
}

fn refused(error: &DwollaError) -> SendOutcome {
    let (code, message, path) = match error {
        DwollaError::Api {
            code,
            message,
            errors,
            ..
        } => match errors.first() {
            Some(embedded) => (
                embedded.code.clone(),
                embedded.message.clone(),
                embedded.path.clone(),
            ),
            None => (code.clone(), message.clone(), None),
        },
        other => (
            other.code().unwrap_or("Refused").to_string(),
            other.to_string(),
            None,
        ),
    };
    SendOutcome::Refused {
        code,
        message,
        path,
    }
}

fn log_outcome(payout: &DuePayout, outcome: &SendOutcome) {
    let (batch, line, reference) = (payout.batch_id, payout.line, payout.reference.as_str());
    match outcome {
        SendOutcome::Created { transfer_url } | SendOutcome::Found { transfer_url, .. } => {
            tracing::debug!(batch, line, reference, transfer = %transfer_url, "transfer created")
        }
        SendOutcome::Refused {
            code,
            message,
            path,
        } => {
            tracing::warn!(batch, line, reference, code = %code, path = ?path, "Dwolla refused the payout: {message}")
        }
        SendOutcome::GaveUp { reason } => {
            tracing::warn!(batch, line, reference, "needs review: {reason}")
        }
        SendOutcome::RetryLater { .. } => {}
    }
}
