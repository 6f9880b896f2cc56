//! `payrun send`: every due payout to Dwolla, and the account of the run.

use std::path::Path;

use clap::Args;

use super::SendingArgs;
use super::runtime::{runtime, stop_signal};
use crate::config::FileConfig;
use crate::dwolla::{Client, ThrottleStats};
use crate::ledger::postgres::{Leases, PgLedger};
use crate::ledger::{LateBatch, Ledger};
use crate::sender::SendReport;
use crate::sender::fleet::Fleet;

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Only this batch.
    #[arg(long)]
    pub batch: Option<i64>,
    /// Print the account of the run as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sending: SendingArgs,
}

pub(super) fn run(ledger_path: &Path, file: &FileConfig, args: &SendArgs) -> anyhow::Result<u8> {
    let client = args.sending.dwolla.client(file)?;
    let config = args.sending.send_config(file, args.batch)?;
    let clock = super::payday::clock()?;
    let mut ledger = Ledger::open_writer(ledger_path)?;
    ledger.open_send_windows(&crate::ledger::timestamp(clock.now()))?;
    let report = runtime()?.block_on(async {
        let stopping = stop_signal();
        crate::sender::send(ledger, client.clone(), config, stopping).await
    })?;
    // The sender has let go of the ledger; a writer that took it since notes the sent dates.
    let late = match Ledger::open_writer(ledger_path) {
        Ok(mut ledger) => ledger.note_sent_batches(&crate::ledger::timestamp(clock.now()))?,
        Err(error) => {
            tracing::warn!("sent dates are noted by the next run: {error}");
            Vec::new()
        }
    };
    Ok(account(args, &report, &late, &client))
}

/// `payrun send` as one of several workers on a PostgreSQL ledger: the same run, with row
/// claims under a lease instead of the writer lock, and a share of the rate limit.
pub(super) fn run_postgres(
    url: &str,
    file: &FileConfig,
    args: &SendArgs,
    leases: Leases,
) -> anyhow::Result<u8> {
    let client = args.sending.dwolla.client(file)?;
    let config = args.sending.send_config(file, args.batch)?;
    let clock = super::payday::clock()?;
    let mut ledger = PgLedger::open(url)?;
    ledger.set_leases(leases);
    ledger.open_send_windows(&crate::ledger::timestamp(clock.now()))?;
    let (report, late) = runtime()?.block_on(async {
        let stopping = stop_signal();
        let fleet = Fleet::join(&mut ledger, &client).await?;
        let report = crate::sender::send(ledger, client.clone(), config, stopping).await;
        let late = fleet.leave(crate::ledger::timestamp(clock.now())).await;
        let report = report?;
        let late = late.unwrap_or_else(|error| {
            tracing::warn!("sent dates are noted by the next run: {error:#}");
            Vec::new()
        });
        anyhow::Ok((report, late))
    })?;
    Ok(account(args, &report, &late, &client))
}

/// Prints the account of a run; returns its exit status.
fn account(args: &SendArgs, report: &SendReport, late: &[LateBatch], client: &Client) -> u8 {
    if args.json {
        for line in late {
            eprintln!("{line}");
        }
        println!("{}", json_account(report, client));
    } else {
        for line in late {
            println!("{line}");
        }
        println!("{}", report.summary());
    }
    if let Some(reason) = &report.unauthorized {
        eprintln!("payrun: error: {reason}");
    } else if report.left.total() > 0
        && let Some(reason) = &report.last_transient_error
    {
        eprintln!(
            "payrun: {} could not be sent this run; last error: {reason}",
            crate::names::plural(report.left.total(), "payout")
        );
    }
    super::outcome::send_status(report)
}

/// `send --json`: the report, and how the run met Dwolla's limits.
fn json_account(report: &SendReport, client: &Client) -> serde_json::Value {
    let ThrottleStats {
        requests_started,
        rate_limited,
        rate_cuts,
        paused_total,
        ..
    } = client.throttle_stats();
    let mut account = serde_json::to_value(report).expect("a report serializes");
    account["exit_status"] = super::outcome::send_status(report).into();
    account["dwolla"] = serde_json::json!({
        "requests": requests_started,
        "rate_limited": rate_limited,
        "rate_cuts": rate_cuts,
        "paused_ms": paused_total.as_millis() as u64,
        "token_fetches": client.token_fetches(),
    });
    account
}
