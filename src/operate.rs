//! Unattended operation: `payrun run` (one cycle, for cron) and `payrun watch` (cycles on
//! file events and a periodic rescan). A cycle takes the inbox's ready files, ingests them,
//! leaves batches that need approval waiting, sends what is due, tracks transfers and writes
//! reports. The writer lock is held for the whole cycle, so an overlapping run exits at once,
//! and every step resumes from the ledger, so a run killed anywhere is finished by the next.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::InboxDirs;
use crate::dwolla::Client;
use crate::inbox::{self, FileResult};
use crate::ingest::IngestOptions;
use crate::ledger::{self, BatchSelection, CycleLedger, LateBatch, WaitingBatch};
use crate::sender::{self, SendConfig, SendReport, with_ledger};
use crate::tracking::{self, TrackConfig, TrackOptions, TrackReport};

/// Everything one cycle needs.
#[derive(Debug, Clone)]
pub struct Cycle {
    pub dirs: Option<InboxDirs>,
    pub stable_for: Duration,
    /// Wait (at most `stable_for`) for inbox files still settling and take them in this cycle,
    /// as one `run` from cron must; `watch` leaves them for its next cycle instead.
    pub wait_for_settling: bool,
    /// What becomes of transfers not settled at the end of the cycle, as the summary says it:
    /// "the next run follows them", "the next cycle follows them".
    pub follow_up: &'static str,
    pub ingest: IngestOptions,
    pub send: SendConfig,
    pub track: TrackConfig,
    /// Keep tracking until every transfer settles, for at most this long; `None` is one sweep.
    pub settle_deadline: Option<Duration>,
    /// Where reports go (the inbox's `reports/`, or beside the ledger).
    pub reports: PathBuf,
    /// "Now" for pay dates and send windows (`PAYRUN_NOW` can inject it).
    pub clock: Clock,
}

/// What one cycle did.
#[derive(Debug, Default)]
pub struct CycleSummary {
    pub files: Vec<(PathBuf, FileResult)>,
    /// Inbox files left for a later cycle because they were still changing.
    pub left: Vec<inbox::Settling>,
    pub awaiting_approval: Vec<i64>,
    /// Batches left waiting (send window, hold, repeat guard), said in a line each.
    pub waiting: Vec<WaitingBatch>,
    /// Batches sent this cycle after their send window closed.
    pub sent_late: Vec<LateBatch>,
    pub send: Option<SendReport>,
    pub track: Option<TrackReport>,
    /// The reports written this cycle (the overall one first).
    pub reports: Vec<PathBuf>,
    /// Why Dwolla could not be used this cycle.
    pub unreachable: Option<String>,
    /// See [`Cycle::follow_up`].
    pub follow_up: &'static str,
}

impl CycleSummary {
    /// Lines for a person (stdout of `run`, logs of `watch`).
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .files
            .iter()
            .map(|(path, result)| file_line(path, result))
            .collect();
        for settling in &self.left {
            lines.push(left_line(settling));
        }
        for batch in &self.awaiting_approval {
            if !self.waiting.iter().any(|w| w.id == *batch) {
                lines.push(format!(
                    "batch {batch} waits for approval; nothing of it is sent until a person runs `payrun approve {batch}`"
                ));
            }
        }
        lines.extend(self.waiting.iter().map(ToString::to_string));
        if let Some(report) = &self.send
            && (report.n_claimed > 0 || report.left.total() > 0)
        {
            lines.push(report.summary());
        }
        lines.extend(self.sent_late.iter().map(ToString::to_string));
        if let Some(track) = &self.track {
            let moved: Vec<String> = track
                .tally
                .moved_to
                .iter()
                .map(|(state, n)| format!("{n} {state}"))
                .collect();
            if !moved.is_empty() {
                lines.push(format!("tracked: {}", moved.join(", ")));
            }
            if track.counts.n_unsettled > 0 {
                lines.push(format!(
                    "{} not settled yet; {}",
                    crate::names::plural(track.counts.n_unsettled, "transfer"),
                    self.follow_up
                ));
            }
        }
        if let Some(report) = self.reports.first() {
            lines.push(format!("report: {}", crate::names::shown(report)));
        }
        if let Some(reason) = &self.unreachable {
            lines.push(format!("Dwolla could not be used: {reason}"));
        }
        lines
    }
}

fn left_line(settling: &inbox::Settling) -> String {
    format!(
        "{}: left in the inbox for the next run: it changed {:.1}s ago and is taken once unchanged for {:.1}s more",
        crate::names::shown(&settling.path),
        settling.changed_ago.as_secs_f64(),
        settling.remaining.as_secs_f64()
    )
}

fn file_line(path: &std::path::Path, result: &FileResult) -> String {
    let name = crate::names::shown(path);
    match result {
        FileResult::Accepted {
            archived,
            batch_id,
            n_payouts,
            total,
        } => format!(
            "{name}: batch {batch_id}, {}, {total} USD; archived as {}",
            crate::names::plural(*n_payouts, "payout"),
            crate::names::shown(archived)
        ),
        FileResult::AlreadyIngested { archived, batch_id } => format!(
            "{name}: same content as batch {batch_id}, not paid again; archived as {}",
            crate::names::shown(archived)
        ),
        FileResult::Rejected {
            moved_to,
            errors_file,
            n_errors,
        } => format!(
            "{name}: rejected ({}), moved to {}; see {}",
            crate::names::plural(*n_errors, "problem"),
            crate::names::shown(moved_to),
            crate::names::shown(errors_file)
        ),
        FileResult::NotAFile {
            kind,
            moved_to,
            errors_file,
        } => format!(
            "{name}: not taken: it is {kind}, and payrun takes only regular files; moved to {}; see {}",
            crate::names::shown(moved_to),
            crate::names::shown(errors_file)
        ),
    }
}

/// One cycle over the ledger the caller opened (with its writer lock), which it gets back.
pub async fn run_cycle<L: CycleLedger>(
    ledger: L,
    client: &Client,
    cycle: &Cycle,
    stopping: &watch::Receiver<bool>,
) -> (L, anyhow::Result<CycleSummary>) {
    let shared = Arc::new(Mutex::new(ledger));
    let mut summary = CycleSummary {
        follow_up: cycle.follow_up,
        ..CycleSummary::default()
    };
    let result = ingest_and_send(&shared, client, cycle, stopping, &mut summary).await;
    // Every task that shared the ledger has finished, so this is its only owner again.
    let mut ledger = match Arc::try_unwrap(shared) {
        Ok(mutex) => mutex
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
        Err(_) => unreachable!("the sender's tasks hold no ledger after it returns"),
    };
    if let Err(error) = result {
        return (ledger, Err(error));
    }
    let result = track_and_report(&mut ledger, client, cycle, stopping, &mut summary).await;
    (ledger, result.map(|()| summary))
}

async fn ingest_and_send<L: CycleLedger>(
    ledger: &Arc<Mutex<L>>,
    client: &Client,
    cycle: &Cycle,
    stopping: &watch::Receiver<bool>,
    summary: &mut CycleSummary,
) -> anyhow::Result<()> {
    let clock = cycle.clock;
    if let Some(dirs) = &cycle.dirs {
        take_inbox(ledger, dirs, cycle, stopping, summary).await?;
    }
    let now = ledger::timestamp(clock.now());
    summary.awaiting_approval = with_ledger(ledger, move |ledger| {
        ledger.open_send_windows(&now)?;
        ledger.batches_awaiting_approval()
    })
    .await?;
    summary.waiting = with_ledger(ledger, |ledger| ledger.waiting_batches()).await?;
    if *stopping.borrow() {
        return Ok(());
    }
    let sent = sender::send_shared(
        ledger.clone(),
        client.clone(),
        cycle.send.clone(),
        stopping.clone(),
    )
    .await;
    let now = ledger::timestamp(clock.now());
    summary.sent_late = with_ledger(ledger, move |ledger| ledger.note_sent_batches(&now)).await?;
    match sent {
        Ok(report) => summary.send = Some(report),
        Err(error) if is_dwolla_error(&error) => {
            summary.unreachable = Some(crate::exit::describe(&error))
        }
        Err(error) => return Err(error),
    }
    Ok(())
}

/// Takes every ready file of the inbox and moves aside what is not a file. With
/// `wait_for_settling`, files still changing are waited for (at most `stable_for` from the
/// start) and taken in this cycle; whatever is still changing then is named in the summary.
async fn take_inbox<L: CycleLedger>(
    ledger: &Arc<Mutex<L>>,
    dirs: &InboxDirs,
    cycle: &Cycle,
    stopping: &watch::Receiver<bool>,
    summary: &mut CycleSummary,
) -> anyhow::Result<()> {
    inbox::create_dirs(dirs)?;
    let waiting_ends = Instant::now() + cycle.stable_for;
    loop {
        let scan = inbox::scan(dirs, cycle.stable_for, SystemTime::now())?;
        for (path, kind) in scan.not_files {
            let result = inbox::reject_entry(dirs, &path, kind, cycle.clock.now())?;
            tracing::warn!(entry = %crate::names::shown(&path), kind, "inbox entry is not a regular file; moved to rejected/");
            summary.files.push((path, result));
        }
        for path in scan.ready {
            if *stopping.borrow() {
                return Ok(());
            }
            let (dirs, options, taken) = (dirs.clone(), cycle.ingest.clone(), path.clone());
            let clock = cycle.clock;
            let result = with_ledger(ledger, move |ledger| {
                Ok(inbox::take_file(
                    ledger,
                    &dirs,
                    &taken,
                    &options,
                    clock.now(),
                ))
            })
            .await??;
            tracing::debug!(file = %crate::names::shown(&path), ?result, "inbox file taken");
            summary.files.push((path, result));
        }
        let now = Instant::now();
        let soonest = scan.settling.iter().map(|s| s.remaining).min();
        let wait = match soonest {
            Some(remaining) if cycle.wait_for_settling && now < waiting_ends => {
                remaining.min(waiting_ends - now)
            }
            _ => {
                for settling in &scan.settling {
                    tracing::info!(file = %crate::names::shown(&settling.path), changed_ago = ?settling.changed_ago, "inbox file still changing; left for the next cycle");
                }
                summary.left = scan.settling;
                return Ok(());
            }
        };
        let mut stopping = stopping.clone();
        tokio::select! {
            () = tokio::time::sleep(wait + Duration::from_millis(20)) => {}
            _ = stopping.wait_for(|stop| *stop) => return Ok(()),
        }
    }
}

fn is_dwolla_error(error: &anyhow::Error) -> bool {
    crate::dwolla::dwolla_cause(error).is_some()
}

/// Applies webhook events spooled by `serve`, polls what is due (once, or until settled
/// within the deadline), then writes the reports: overall, and for each batch ingested now
/// (its HTML also beside the archived file).
async fn track_and_report<L: CycleLedger>(
    ledger: &mut L,
    client: &Client,
    cycle: &Cycle,
    stopping: &watch::Receiver<bool>,
    summary: &mut CycleSummary,
) -> anyhow::Result<()> {
    if summary.unreachable.is_none() && !*stopping.borrow() {
        let mut spool = ledger.event_spool()?;
        let options = TrackOptions {
            until_settled: cycle.settle_deadline.is_some(),
            timeout: cycle.settle_deadline,
        };
        match tracking::track(
            ledger,
            spool.as_deref_mut(),
            client,
            &cycle.track,
            &options,
            stopping.clone(),
        )
        .await
        {
            Ok(report) => {
                if let Some(reason) = &report.tally.unreachable {
                    summary.unreachable = Some(reason.clone());
                }
                summary.track = Some(report);
            }
            Err(error) if is_dwolla_error(&error) => {
                summary.unreachable = Some(crate::exit::describe(&error))
            }
            Err(error) => return Err(error),
        }
    }
    let everything = BatchSelection {
        batch: None,
        received_since: None,
    };
    let (paths, _) = crate::report::write_reports(ledger, &everything, &cycle.reports)?;
    summary.reports.extend(paths.into_iter().rev());
    for (_, result) in &summary.files {
        if let FileResult::Accepted {
            archived, batch_id, ..
        } = result
        {
            let selection = BatchSelection {
                batch: Some(*batch_id),
                received_since: None,
            };
            let (paths, _) = crate::report::write_reports(ledger, &selection, &cycle.reports)?;
            if let Some(html) = paths
                .iter()
                .find(|p| p.extension().is_some_and(|e| e == "html"))
            {
                let beside = PathBuf::from(format!("{}.report.html", archived.display()));
                std::fs::copy(html, &beside)?;
            }
            summary.reports.extend(paths);
        }
    }
    Ok(())
}

/// `payrun watch`: cycles whenever a file event arrives (debounced until files are stable) or
/// the rescan interval passes, until `stopping` turns true.
pub async fn watch<L: CycleLedger>(
    mut ledger: L,
    client: Client,
    cycle: Cycle,
    rescan: Duration,
    mut stopping: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use notify::Watcher;
    let dirs = cycle
        .dirs
        .clone()
        .ok_or_else(|| anyhow::anyhow!("watch needs an inbox"))?;
    inbox::create_dirs(&dirs)?;
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = events_tx.send(());
        }
    })?;
    watcher.watch(&dirs.inbox, notify::RecursiveMode::NonRecursive)?;
    tracing::info!(inbox = %crate::names::shown(&dirs.inbox), "watching the inbox");
    loop {
        let (returned, summary) = run_cycle(ledger, &client, &cycle, &stopping).await;
        ledger = returned;
        let summary = summary?;
        for line in summary.lines() {
            tracing::info!("{line}");
        }
        // A file still being written gets another look once it can have become stable.
        let pending_in_inbox = inbox::ready_files(&dirs, Duration::ZERO, SystemTime::now())?
            .iter()
            .any(|path| path.parent() == Some(dirs.inbox.as_path()));
        let wait = if pending_in_inbox {
            cycle.stable_for.max(Duration::from_millis(200))
        } else {
            rescan
        };
        tokio::select! {
            _ = stopping.wait_for(|stop| *stop) => return Ok(()),
            _ = events.recv() => {
                // Let a burst of events (a file written in pieces) settle into one cycle.
                tokio::time::sleep(Duration::from_millis(100)).await;
                while events.try_recv().is_ok() {}
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}
