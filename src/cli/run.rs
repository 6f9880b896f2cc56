//! `payrun run`: one unattended cycle for cron, and the cycle settings `run` and `watch` share.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::runtime::{runtime, stop_signal};
use super::settings::track_config;
use super::{Failure, InboxArgs, IngestRules, SendingArgs};
use crate::config::FileConfig;
use crate::exit;
use crate::ledger::Ledger;
use crate::ledger::postgres::{Leases, PgLedger};
use crate::sender::fleet::Fleet;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub inbox: InboxArgs,
    /// One cycle, then exit (what `run` always does; accepted for clarity in crontabs).
    #[arg(long)]
    pub once: bool,
    /// Keep tracking until every transfer settles, for at most this long (e.g. 10m) [default:
    /// one tracking sweep, leaving the rest to the next run].
    #[arg(long)]
    pub deadline: Option<String>,
    #[command(flatten)]
    pub rules: IngestRules,
    #[command(flatten)]
    pub payday: super::payday::PaydayArgs,
    #[command(flatten)]
    pub sending: SendingArgs,
}

/// How often `run` polls a transfer not yet settled. Without webhooks polling is all a run has,
/// and the standard 10 minutes would let every other run from a 5-minute crontab skip a transfer
/// it just sent; a minute is shorter than any sensible cron interval, so each run follows every
/// unsettled transfer (a list sweep costs one request per 200 of them).
const RUN_POLLS_UNSETTLED_EVERY: Duration = Duration::from_secs(60);

/// The cycle settings shared by `run` (`once`) and `watch`.
pub(super) fn cycle(
    default_reports: PathBuf,
    file: &FileConfig,
    inbox: &InboxArgs,
    rules: &IngestRules,
    sending: &SendingArgs,
    settle_deadline: Option<Duration>,
    once: bool,
) -> Result<crate::operate::Cycle, Failure> {
    let dirs = inbox.dirs(file);
    let reports = match &dirs {
        Some(dirs) => dirs.reports.clone(),
        None => default_reports,
    };
    let mut track = track_config(file);
    if once {
        track.poll_unsettled_every = track.poll_unsettled_every.min(RUN_POLLS_UNSETTLED_EVERY);
    }
    Ok(crate::operate::Cycle {
        dirs,
        track,
        settle_deadline,
        reports,
        stable_for: inbox.stable_for(file),
        wait_for_settling: once,
        follow_up: if once {
            "the next run follows them"
        } else {
            "the next cycle follows them"
        },
        // The inbox writes every problem into the file's .errors.txt.
        ingest: rules.options(file, 10_000)?,
        send: sending.send_config(file, None)?,
        clock: super::payday::clock()?,
    })
}

pub(super) fn run(ledger_path: &Path, file: &FileConfig, args: &RunArgs) -> anyhow::Result<u8> {
    let (cycle, client) = prepare(default_reports(ledger_path), file, args)?;
    let ledger = Ledger::open_writer(ledger_path)?;
    let (_ledger, summary) = runtime()?.block_on(async {
        let stopping = stop_signal();
        crate::operate::run_cycle(ledger, &client, &cycle, &stopping).await
    });
    print_summary(summary?)
}

/// `payrun run` as one of several workers on a PostgreSQL ledger: the cycle sends under row
/// claims and a share of the rate limit (see `payrun send`); the reports go to the inbox's
/// reports folder, or `./reports`.
pub(super) fn run_postgres(
    url: &str,
    file: &FileConfig,
    args: &RunArgs,
    leases: Leases,
) -> anyhow::Result<u8> {
    let (cycle, client) = prepare(PathBuf::from("reports"), file, args)?;
    let mut ledger = PgLedger::open(url)?;
    ledger.set_leases(leases);
    let summary = runtime()?.block_on(async {
        let stopping = stop_signal();
        let fleet = Fleet::join(&mut ledger, &client).await?;
        let (_ledger, summary) =
            crate::operate::run_cycle(ledger, &client, &cycle, &stopping).await;
        if let Err(error) = fleet
            .leave(crate::ledger::timestamp(cycle.clock.now()))
            .await
        {
            tracing::warn!("left the workers without a goodbye; the lease lapses: {error:#}");
        }
        summary
    })?;
    print_summary(summary)
}

/// The reports folder when there is no inbox: beside the ledger file.
pub(super) fn default_reports(ledger_path: &Path) -> PathBuf {
    ledger_path
        .parent()
        .unwrap_or(Path::new("."))
        .join("reports")
}

fn prepare(
    default_reports: PathBuf,
    file: &FileConfig,
    args: &RunArgs,
) -> anyhow::Result<(crate::operate::Cycle, crate::dwolla::Client)> {
    let deadline = args
        .deadline
        .as_deref()
        .map(crate::tracking::schedule::parse_duration)
        .transpose()
        .map_err(|err| Failure {
            status: exit::USAGE,
            message: format!("--deadline: {err}"),
        })?;
    let mut cycle = cycle(
        default_reports,
        file,
        &args.inbox,
        &args.rules,
        &args.sending,
        deadline,
        true,
    )?;
    args.payday.apply(&mut cycle.ingest);
    let client = args.sending.dwolla.client(file)?;
    Ok((cycle, client))
}

fn print_summary(summary: crate::operate::CycleSummary) -> anyhow::Result<u8> {
    for line in summary.lines() {
        println!("{line}");
    }
    Ok(super::outcome::cycle_status(&summary))
}
