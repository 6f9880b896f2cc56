//! `payrun run`: one unattended cycle for cron, and the cycle settings `run` and `watch` share.

use std::path::Path;
use std::time::Duration;

use clap::Args;

use super::runtime::{runtime, stop_signal};
use super::settings::track_config;
use super::{Failure, InboxArgs, IngestRules, SendingArgs};
use crate::config::FileConfig;
use crate::exit;
use crate::ledger::Ledger;

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
    ledger_path: &Path,
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
        None => ledger_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("reports"),
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
        ledger_path,
        file,
        &args.inbox,
        &args.rules,
        &args.sending,
        deadline,
        true,
    )?;
    args.payday.apply(&mut cycle.ingest);
    let client = args.sending.dwolla.client(file)?;
    let ledger = Ledger::open_writer(ledger_path)?;
    let (_ledger, summary) = runtime()?.block_on(async {
        let stopping = stop_signal();
        crate::operate::run_cycle(ledger, &client, &cycle, &stopping).await
    });
    let summary = summary?;
    for line in summary.lines() {
        println!("{line}");
    }
    Ok(super::outcome::cycle_status(&summary))
}
