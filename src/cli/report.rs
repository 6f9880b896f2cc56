//! `payrun report`: the report finance signs off, and its exit status.
//!
//! Exit statuses (README "Exit statuses"): `report` exits 0 when the report was written and
//! ties out, even if payouts need attention (the report is how a person learns of them); with
//! `--fail-on-exceptions` it exits 3 when any selected payout needs attention. A report that
//! does not tie out is still written and exits 3.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Failure;
use super::values::FormatArg;
use crate::exit;
use crate::ledger::{self, BatchSelection, Ledger, ReportLedger};
use crate::report::{Format, Summary, write_report};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Only this batch.
    #[arg(long, conflicts_with = "since")]
    pub batch: Option<i64>,
    /// Only batches received on or after this date (YYYY-MM-DD, UTC) or instant (RFC 3339).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<OffsetDateTime>,
    /// csv: one row per payout; json: per-batch and overall totals per state with the
    /// tie-out; html: one self-contained page [default: from --out's extension, else csv].
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Write the report here, atomically (temp file + rename) [default: standard output].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit 3 when any selected payout needs attention (rejected, failed, returned,
    /// needs_review).
    #[arg(long)]
    pub fail_on_exceptions: bool,
}

/// `YYYY-MM-DD` (midnight UTC) or an RFC 3339 instant.
pub fn parse_since(text: &str) -> Result<OffsetDateTime, String> {
    let day = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(text.trim(), &day) {
        return Ok(date.midnight().assume_utc());
    }
    OffsetDateTime::parse(text.trim(), &Rfc3339)
        .map_err(|_| format!("{text:?} is not a date (2026-11-20) or an RFC 3339 instant"))
}

pub(super) fn run(ledger_path: &Path, args: &ReportArgs) -> anyhow::Result<u8> {
    let ledger = Ledger::open_reader(ledger_path)?;
    report(&ledger, &crate::names::shown(ledger_path), args)
}

pub(super) fn run_postgres(url: &str, args: &ReportArgs) -> anyhow::Result<u8> {
    let ledger = crate::ledger::postgres::PgLedger::open(url)?;
    report(&ledger, ledger.shown_url(), args)
}

fn report(ledger: &impl ReportLedger, ledger_name: &str, args: &ReportArgs) -> anyhow::Result<u8> {
    let selection = BatchSelection {
        batch: args.batch,
        received_since: args.since.map(ledger::timestamp),
    };
    if let Some(batch) = args.batch
        && ledger.report_batches(&selection)?.is_empty()
    {
        return Err(Failure {
            status: exit::USAGE,
            message: format!("no batch {batch} in {ledger_name}"),
        }
        .into());
    }
    let format = args
        .format
        .map(Format::from)
        .or_else(|| args.out.as_deref().and_then(Format::from_path))
        .unwrap_or(Format::Csv);
    let summary = match &args.out {
        Some(path) => crate::report::write_report_file(ledger, &selection, format, path)?,
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout);
            let summary = write_report(ledger, &selection, format, &mut out)?;
            out.flush().context("cannot write the report")?;
            summary
        }
    };
    eprintln!("{}", describe(&summary, args.out.as_deref()));
    Ok(report_exit_status(&summary, args.fail_on_exceptions))
}

/// The exit status of a written report: 3 if it does not tie out, or if `fail_on_exceptions`
/// and some payout needs attention; otherwise 0.
pub(super) fn report_exit_status(summary: &Summary, fail_on_exceptions: bool) -> u8 {
    if !summary.ties_out() || (fail_on_exceptions && summary.needing_attention() > 0) {
        exit::ATTENTION
    } else {
        exit::OK
    }
}

fn describe(summary: &Summary, out: Option<&Path>) -> String {
    let overall = &summary.overall;
    let place = out.map_or(String::new(), |path| {
        format!("wrote {}: ", crate::names::shown(path))
    });
    let tie = if summary.ties_out() {
        "ties out to the input files".to_string()
    } else {
        format!(
            "DOES NOT TIE OUT: input {} USD, sum over states {} USD",
            overall.tie_out.input_total, overall.tie_out.sum_over_states
        )
    };
    format!(
        "payrun: {place}{} batches, {} payouts, {} USD; {} need attention ({} USD); {tie}",
        summary.batches.len(),
        overall.payouts,
        overall.total,
        overall.needing_attention,
        overall.needing_attention_total,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_day_or_an_instant() {
        assert_eq!(
            ledger::timestamp(parse_since("2026-11-20").unwrap()),
            "2026-11-20T00:00:00.000Z"
        );
        assert_eq!(
            ledger::timestamp(parse_since("2026-11-20T10:00:00+02:00").unwrap()),
            "2026-11-20T08:00:00.000Z"
        );
        assert!(parse_since("20/11/2026").is_err());
    }
}
