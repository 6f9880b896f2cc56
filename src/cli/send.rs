//! `payrun send`: every due payout to Dwolla, and the one-line account of the run.

use std::path::Path;

use clap::Args;

use super::SendingArgs;
use super::runtime::{runtime, stop_signal};
use crate::config::FileConfig;
use crate::ledger::Ledger;

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Only this batch.
    #[arg(long)]
    pub batch: Option<i64>,
    #[command(flatten)]
    pub sending: SendingArgs,
}

pub(super) fn run(ledger_path: &Path, file: &FileConfig, args: &SendArgs) -> anyhow::Result<u8> {
    let client = args.sending.dwolla.client(file)?;
    let config = args.sending.send_config(file, args.batch)?;
    let ledger = Ledger::open_writer(ledger_path)?;
    let report = runtime()?.block_on(async {
        let stopping = stop_signal();
        crate::sender::send(ledger, client, config, stopping).await
    })?;
    println!(
        "sent {}: {} created, {} rejected, {} need review, {} left for the next run{}",
        crate::names::plural(report.n_claimed, "payout"),
        report.n_created + report.n_found,
        report.n_refused,
        report.n_needs_review,
        report.n_deferred,
        if report.interrupted {
            " (stopped by a signal)"
        } else {
            ""
        }
    );
    if let Some(reason) = &report.unauthorized {
        eprintln!("payrun: error: {reason}");
    } else if report.n_deferred > 0
        && let Some(reason) = &report.last_transient_error
    {
        eprintln!(
            "payrun: {} payouts could not be settled this run; last error: {reason}",
            report.n_deferred
        );
    }
    Ok(crate::sender::exit_status(&report))
}
