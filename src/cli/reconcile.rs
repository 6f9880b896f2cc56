//! `payrun reconcile`: the account's transfers at Dwolla against the ledger. Exits 3 when it
//! found any discrepancy, 69 when Dwolla cannot be reached, 0 when the ledger and Dwolla agree.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use time::OffsetDateTime;

use super::report::parse_since;
use super::runtime::runtime;
use super::{DwollaArgs, Failure};
use crate::config::FileConfig;
use crate::exit;
use crate::ledger::{Ledger, ReconcileLedger};
use crate::report::reconcile::{DiscrepancyWriter, ReconcileOptions, ReconcileSummary, reconcile};
use crate::report::{Format, atomic};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReconcileFormat {
    /// One row per discrepancy.
    Csv,
    /// `{"discrepancies": [...], "summary": {...}}`.
    Json,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Only transfers created, and payouts first sent, on or after this date (YYYY-MM-DD,
    /// UTC) or instant (RFC 3339).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<OffsetDateTime>,
    /// [default: from --out's extension, else csv]
    #[arg(long, value_enum)]
    pub format: Option<ReconcileFormat>,
    /// Write the discrepancy report here, atomically [default: standard output].
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub dwolla: DwollaArgs,
}

pub(super) fn run(
    ledger_path: &Path,
    file: &FileConfig,
    args: &ReconcileArgs,
) -> anyhow::Result<u8> {
    let client = args.dwolla.client(file)?;
    reconcile_ledger(&Ledger::open_reader(ledger_path)?, &client, args)
}

pub(super) fn run_postgres(
    url: &str,
    file: &FileConfig,
    args: &ReconcileArgs,
) -> anyhow::Result<u8> {
    let client = args.dwolla.client(file)?;
    reconcile_ledger(
        &crate::ledger::postgres::PgLedger::open(url)?,
        &client,
        args,
    )
}

fn reconcile_ledger(
    ledger: &impl ReconcileLedger,
    client: &crate::dwolla::Client,
    args: &ReconcileArgs,
) -> anyhow::Result<u8> {
    let options = ReconcileOptions { since: args.since };
    let format = args
        .format
        .or_else(|| match Format::from_path(args.out.as_deref()?)? {
            Format::Json => Some(ReconcileFormat::Json),
            _ => None,
        })
        .unwrap_or(ReconcileFormat::Csv);
    let runtime = runtime()?;
    let run = |out: &mut (dyn Write + Send)| -> anyhow::Result<ReconcileSummary> {
        let mut writer = match format {
            ReconcileFormat::Csv => DiscrepancyWriter::csv(out)?,
            ReconcileFormat::Json => DiscrepancyWriter::json(out)?,
        };
        let summary = runtime.block_on(reconcile(ledger, client, &options, |d| writer.write(d)))?;
        writer.finish(&summary)?;
        Ok(summary)
    };
    let result = match &args.out {
        Some(path) => atomic::write_atomically(path, run),
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout);
            run(&mut out).and_then(|summary| {
                out.flush().context("cannot write the discrepancy report")?;
                Ok(summary)
            })
        }
    };
    let summary = result.map_err(|err| {
        let unreachable = crate::dwolla::dwolla_cause(&err).is_some();
        if unreachable {
            Failure::unavailable(crate::exit::describe(&err)).into()
        } else {
            err
        }
    })?;
    let kinds: Vec<String> = summary
        .by_kind
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    let place = args.out.as_deref().map_or(String::new(), |path| {
        format!("wrote {}: ", crate::names::shown(path))
    });
    eprintln!(
        "payrun: {place}{} transfers at Dwolla ({} checked), {} sent payouts checked: {}",
        summary.transfers_listed,
        summary.transfers_checked,
        summary.sent_payouts_checked,
        if kinds.is_empty() {
            "no discrepancies".to_string()
        } else {
            format!(
                "{} discrepancies ({})",
                summary.discrepancies,
                kinds.join(", ")
            )
        }
    );
    Ok(if summary.discrepancies > 0 {
        exit::ATTENTION
    } else {
        exit::OK
    })
}
