//! `payrun track`: follow sent transfers to their final status, and print what moved.

use std::path::Path;
use std::time::Duration;

use clap::Args;

use super::runtime::{runtime, stop_signal};
use super::settings::track_config;
use super::values::ListModeArg;
use super::{DwollaArgs, Failure};
use crate::config::FileConfig;
use crate::exit;
use crate::ledger::postgres::PgLedger;
use crate::ledger::{self, EventSpool, Ledger, Spool, TrackLedger};
use crate::payout::PayoutState;
use crate::tracking::{TrackConfig, TrackOptions, TrackReport, schedule, track};

#[derive(Debug, Args)]
pub struct TrackArgs {
    /// Keep polling until no payout is waiting for Dwolla to settle it.
    #[arg(long)]
    pub until_settled: bool,
    /// With --until-settled: stop waiting after this long (e.g. 30m).
    #[arg(long, value_parser = schedule::parse_duration)]
    pub timeout: Option<Duration>,
    /// How often to poll a transfer that is still created or pending.
    #[arg(long, default_value = "10m", value_parser = schedule::parse_duration)]
    pub poll_every: Duration,
    /// How often to look for a late return on a processed transfer.
    #[arg(long, default_value = "12h", value_parser = schedule::parse_duration)]
    pub processed_poll_every: Duration,
    /// How long processed transfers stay watched for late returns, in banking days [default:
    /// tracking.returns_window_days in the configuration file, else 5].
    #[arg(long)]
    pub returns_window_days: Option<u32>,
    /// How to poll: walk the account's transfer list, GET each transfer, or choose by cost.
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: ListModeArg,
    #[command(flatten)]
    pub dwolla: DwollaArgs,
}

impl TrackArgs {
    pub fn config(&self, file: &FileConfig) -> TrackConfig {
        let from_file = track_config(file);
        TrackConfig {
            poll_unsettled_every: self.poll_every,
            poll_processed_every: self.processed_poll_every,
            returns_window_banking_days: self
                .returns_window_days
                .unwrap_or(from_file.returns_window_banking_days),
            list_mode: self.mode.into(),
            ..from_file
        }
    }
}

/// `payrun track` on a ledger file, with its spool when `serve` ever made one.
pub(super) fn run(ledger_path: &Path, file: &FileConfig, args: &TrackArgs) -> anyhow::Result<u8> {
    let mut ledger = Ledger::open_writer(ledger_path)?;
    let spool_path = ledger::spool_path_for(ledger_path);
    let mut spool = if spool_path.exists() {
        Some(Spool::open(&spool_path)?)
    } else {
        None
    };
    run_on(&mut ledger, spool.as_mut(), file, args)
}

/// `payrun track` on a PostgreSQL ledger: its spool is in the same database, on a second
/// connection. Any number of trackers may run; each stores a page of observations under row
/// locks.
pub(super) fn run_postgres(url: &str, file: &FileConfig, args: &TrackArgs) -> anyhow::Result<u8> {
    let mut ledger = PgLedger::open(url)?;
    let mut spool = ledger.reconnect()?;
    run_on(&mut ledger, Some(&mut spool), file, args)
}

fn run_on<L: TrackLedger + Send, S: EventSpool + Send>(
    ledger: &mut L,
    spool: Option<&mut S>,
    file: &FileConfig,
    args: &TrackArgs,
) -> anyhow::Result<u8> {
    let client = args.dwolla.client(file)?;
    let config = args.config(file);
    let options = TrackOptions {
        until_settled: args.until_settled,
        timeout: args.timeout,
    };
    let report = runtime()?.block_on(async {
        let stopping = stop_signal();
        track(ledger, spool, &client, &config, &options, stopping).await
    });
    let report = report.map_err(|err| {
        let unreachable = crate::dwolla::dwolla_cause(&err).is_some();
        Failure {
            status: if unreachable {
                exit::UNAVAILABLE
            } else {
                exit::INTERNAL
            },
            message: crate::exit::describe(&err),
        }
    })?;
    print_report(ledger, &report);
    Ok(super::outcome::track_status(&report))
}

fn print_report(ledger: &impl TrackLedger, report: &TrackReport) {
    let mut tally = report.tally.clone();
    tally.merge(report.events.tally.clone());
    println!(
        "tracked: {} processed, {} failed, {} returned; {} webhook events applied; {} still unsettled, {} watched for returns{}{}",
        tally.moved(PayoutState::Processed),
        tally.moved(PayoutState::Failed),
        tally.moved(PayoutState::Returned),
        report.events.n_events,
        report.counts.n_unsettled,
        report.counts.n_watched,
        if report.timed_out { " (timed out)" } else { "" },
        if report.interrupted {
            " (stopped by a signal)"
        } else {
            ""
        },
    );
    const SHOWN: usize = 20;
    for (payout_id, state) in tally.attention.iter().take(SHOWN) {
        let details = ledger.failure_summary(*payout_id).ok().flatten();
        let (batch, line) = ledger::batch_and_line(*payout_id);
        match details {
            Some((reference, code, advice)) => {
                let action = advice_action(&advice);
                eprintln!(
                    "payrun: batch {batch} line {line} ({reference}): {state} {code}: {action}"
                );
            }
            None => eprintln!("payrun: batch {batch} line {line}: {state}"),
        }
    }
    if tally.attention.len() > SHOWN {
        eprintln!(
            "payrun: ... and {} more failed or returned payouts",
            tally.attention.len() - SHOWN
        );
    }
    if let Some(reason) = &tally.unreachable {
        eprintln!("payrun: error: {reason}");
    }
}

fn advice_action(stored: &str) -> &'static str {
    use crate::failure::Advice;
    [
        Advice::RetryMaySucceed,
        Advice::FixBankDetails,
        Advice::Investigate,
        Advice::FixPayrunSetup,
    ]
    .into_iter()
    .find(|advice| advice.as_str() == stored)
    .unwrap_or(Advice::Unknown)
    .action()
}
