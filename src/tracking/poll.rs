//! One polling sweep over the payouts whose poll time has come.
//!
//! Two ways to ask. `GET /transfers/{id}` costs one request per due transfer. Walking
//! `GET /accounts/{id}/transfers` (newest first, 200 per page, cursor paging) costs one request
//! per 200 transfers created since the oldest due one, whoever created them; the ledger knows
//! how many of those are payrun's, so the sweep estimates the walk and takes the cheaper way.
//! The walk stops as soon as every due payout has been seen, and anything it has not shown
//! within 1.5 times its estimate (other systems' transfers on the account) is fetched by GET.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{
    Tally, TrackConfig, is_unreachable, observation, payout_id_for, read_with_retry, record,
};
use crate::dwolla::{Client, Page, Transfer, TransferQuery};
use crate::ledger::{self, Observation, TrackLedger, TrackedPayout};
use crate::payout::TransferStatus;

/// Dwolla's largest page of transfers.
const PAGE_LIMIT: u32 = 200;
/// Observations per ledger transaction.
const FLUSH_EVERY: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepMode {
    List,
    Get,
}

/// What one sweep did.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    pub mode: Option<SweepMode>,
    pub n_due: u64,
    /// List pages fetched.
    pub n_pages: u64,
    /// Single-transfer GETs.
    pub n_gets: u64,
    /// Requests sent, not counting retries.
    pub n_requests: u64,
    pub tally: Tally,
}

/// Polls every due payout once and stores what Dwolla says, with source `poll`.
pub async fn sweep<L: TrackLedger + Send>(
    ledger: &mut L,
    client: &Client,
    account_id: &str,
    config: &TrackConfig,
) -> anyhow::Result<SweepReport> {
    let now = ledger::timestamp(time::OffsetDateTime::now_utc());
    let due = ledger.tracked_payouts(&now, true)?;
    let mut report = SweepReport {
        n_due: due.len() as u64,
        ..SweepReport::default()
    };
    if due.is_empty() {
        return Ok(report);
    }
    let estimated_pages = estimate_list_pages(ledger, &due)?;
    let mode = match config.list_mode {
        super::ListMode::List => SweepMode::List,
        super::ListMode::Get => SweepMode::Get,
        super::ListMode::Auto if estimated_pages < due.len() as u64 => SweepMode::List,
        super::ListMode::Auto => SweepMode::Get,
    };
    report.mode = Some(mode);
    tracing::debug!(n_due = due.len(), estimated_pages, ?mode, "sweep");
    let remaining = match mode {
        SweepMode::List => {
            let max_pages = estimated_pages + estimated_pages / 2 + 2;
            walk_list(
                ledger,
                client,
                account_id,
                config,
                due,
                max_pages,
                &mut report,
            )
            .await?
        }
        SweepMode::Get => due,
    };
    if report.tally.unreachable.is_none() && !remaining.is_empty() {
        get_each(ledger, client, config, remaining, &mut report).await?;
    }
    report.n_requests = report.n_pages + report.n_gets;
    Ok(report)
}

/// How many list pages reach back to the oldest due payout, counting payrun's transfers only.
fn estimate_list_pages(ledger: &impl TrackLedger, due: &[TrackedPayout]) -> anyhow::Result<u64> {
    let oldest = due
        .iter()
        .filter_map(|payout| payout.first_attempt_at.as_deref())
        .min();
    let n_since = match oldest {
        Some(oldest) => ledger.count_sent_since(oldest)?,
        None => due.len() as u64,
    };
    Ok(n_since.div_ceil(u64::from(PAGE_LIMIT)).max(1))
}

/// Walks the account's transfers until every due payout was seen (or `max_pages`). Stores an
/// observation for each due payout seen, and for any other tracked payout whose transfer has
/// moved on (free news). Returns the due payouts not seen.
async fn walk_list<L: TrackLedger + Send>(
    ledger: &mut L,
    client: &Client,
    account_id: &str,
    config: &TrackConfig,
    due: Vec<TrackedPayout>,
    max_pages: u64,
    report: &mut SweepReport,
) -> anyhow::Result<Vec<TrackedPayout>> {
    let now = ledger::timestamp(time::OffsetDateTime::now_utc());
    let tracked: HashMap<i64, TrackedPayout> = ledger
        .tracked_payouts(&now, false)?
        .into_iter()
        .map(|payout| (payout.id, payout))
        .collect();
    let batches = ledger.batch_ids_by_key()?;
    let mut missing: HashSet<i64> = due.iter().map(|payout| payout.id).collect();
    let mut observations: Vec<Observation> = Vec::new();
    let query = TransferQuery {
        correlation_id: None,
        limit: PAGE_LIMIT,
        cursor: None,
    };
    let mut page: Option<Page<Transfer>> = None;
    loop {
        let fetched = match &page {
            None => read_with_retry(config, || client.list_account_transfers(account_id, &query))
                .await
                .map(Some),
            Some(current) => read_with_retry(config, || client.next_page(current)).await,
        };
        let next = match fetched {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(error) if is_unreachable(&error) => {
                report.tally.unreachable = Some(format!("cannot list transfers: {error}"));
                break;
            }
            Err(error) => {
                tracing::warn!("cannot list transfers ({error}); fetching each due transfer");
                break;
            }
        };
        report.n_pages += 1;
        for transfer in &next.items {
            let Some(payout_id) = transfer
                .correlation_id
                .as_deref()
                .and_then(|c| payout_id_for(c, &batches))
            else {
                continue;
            };
            let Some(payout) = tracked.get(&payout_id) else {
                continue;
            };
            let fallback_url = client.transfer_url(&transfer.id);
            let Some(seen) = observation(transfer, payout_id, &fallback_url, "poll".into()) else {
                continue;
            };
            if payout.due || moved_on(payout.transfer_status, seen.status) {
                missing.remove(&payout_id);
                observations.push(seen);
            }
        }
        if observations.len() >= FLUSH_EVERY {
            record(ledger, &observations, config, &mut report.tally)?;
            observations.clear();
        }
        let end = next.next.is_none();
        page = Some(next);
        if missing.is_empty() || end || report.n_pages >= max_pages {
            break;
        }
    }
    record(ledger, &observations, config, &mut report.tally)?;
    Ok(due
        .into_iter()
        .filter(|payout| missing.contains(&payout.id))
        .collect())
}

fn moved_on(stored: Option<TransferStatus>, seen: TransferStatus) -> bool {
    stored.is_none_or(|stored| seen.rank() > stored.rank())
}

/// GETs each payout's transfer, a bounded number at a time.
async fn get_each<L: TrackLedger + Send>(
    ledger: &mut L,
    client: &Client,
    config: &TrackConfig,
    payouts: Vec<TrackedPayout>,
    report: &mut SweepReport,
) -> anyhow::Result<()> {
    let shared = Arc::new(config.clone());
    let slots = Arc::new(Semaphore::new(config.max_concurrent_reads.max(1)));
    let mut tasks = JoinSet::new();
    let mut observations: Vec<Observation> = Vec::new();
    let mut unreadable: Vec<i64> = Vec::new();
    let mut payouts = payouts.into_iter();
    loop {
        // Keep the reads in flight topped up while Dwolla answers.
        while report.tally.unreachable.is_none() && tasks.len() < config.max_concurrent_reads * 2 {
            let Some(payout) = payouts.next() else { break };
            let Some(url) = payout.transfer_url.clone() else {
                let (batch, line) = ledger::batch_and_line(payout.id);
                tracing::warn!(batch, line, "submitted payout without a transfer URL");
                unreadable.push(payout.id);
                continue;
            };
            report.n_gets += 1;
            let (client, config, slots) = (client.clone(), shared.clone(), slots.clone());
            tasks.spawn(async move {
                let _slot = slots.acquire_owned().await;
                let result = read_with_retry(&config, || client.get_transfer(&url)).await;
                (payout.id, url, result)
            });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (payout_id, url, result) = joined?;
        match result {
            Ok(transfer) => {
                if let Some(seen) = observation(&transfer, payout_id, &url, "poll".into()) {
                    observations.push(seen);
                }
            }
            Err(error) if is_unreachable(&error) => {
                report.tally.unreachable = Some(format!("cannot read transfers: {error}"));
            }
            Err(error) => {
                let (batch, line) = ledger::batch_and_line(payout_id);
                tracing::warn!(batch, line, %url, "cannot read the transfer: {error}");
                report.tally.n_read_errors += 1;
                unreadable.push(payout_id);
            }
        }
        if observations.len() >= FLUSH_EVERY {
            record(ledger, &observations, config, &mut report.tally)?;
            observations.clear();
        }
    }
    record(ledger, &observations, config, &mut report.tally)?;
    if !unreadable.is_empty() {
        let now = time::OffsetDateTime::now_utc();
        let later = ledger::timestamp(now + config.poll_unsettled_every);
        ledger.postpone_polls(&unreadable, &later, &ledger::timestamp(now))?;
    }
    Ok(())
}
