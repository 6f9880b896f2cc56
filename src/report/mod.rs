//! Reports finance signs off, and reconciliation against Dwolla.
//!
//! Owns the report formats (CSV per payout, JSON summary, self-contained HTML), the action a
//! person should take for each payout, and `payrun reconcile`. It only reads the ledger, through
//! `ledger` queries that stream rows in payout-id order, so a report of a million payouts holds
//! one row at a time, and the same ledger always gives byte-identical reports (no clock is read:
//! the "as of" time is the ledger's latest change). Files appear atomically (temp file + rename).
//!
//! - `summary`: totals per batch and overall, per state, exceptions first, and the tie-out;
//! - `action`: what a person should do about a payout, from its state and failure code;
//! - `csv`, `html`: the writers; `atomic`: write-then-rename files;
//! - `reconcile`: the ledger against the account's transfers at Dwolla;
//! - `cli`: the `report` and `reconcile` subcommands.

pub mod action;
pub mod atomic;
pub mod csv;
pub mod html;
pub mod reconcile;
pub mod summary;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::ledger::{BatchSelection, ReportLedger};
pub use crate::money::{decimal, dollars};
pub use action::action;
pub use summary::{Summary, SummaryBuilder, build_summary};

/// A report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One row per payout, for spreadsheets.
    Csv,
    /// The summary: per batch and overall, count and total per state, and the tie-out.
    Json,
    /// One self-contained page: summary, chart, exceptions with reasons and actions.
    Html,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Csv, Format::Json, Format::Html];

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Html => "html",
        }
    }

    /// The format a file name's extension names, if any.
    pub fn from_path(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        Format::ALL
            .into_iter()
            .find(|format| format.extension() == extension)
    }
}

/// Writes one report of the selected batches to `out`. All reads share one ledger snapshot.
pub fn write_report(
    ledger: &impl ReportLedger,
    selection: &BatchSelection,
    format: Format,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Summary> {
    let _snapshot = ledger.read_snapshot()?;
    if format == Format::Csv {
        // One pass: the CSV rows and the totals together.
        let batches = ledger.report_batches(selection)?;
        return csv::write_payouts_csv(ledger, SummaryBuilder::new(selection, batches), out);
    }
    let summary = build_summary(ledger, selection)?;
    match format {
        Format::Json => summary::write_json(&summary, out)?,
        _ => html::write_html(ledger, &summary, out)?,
    }
    Ok(summary)
}

/// Writes one report to `path` atomically: readers see the old file or the whole new one.
pub fn write_report_file(
    ledger: &impl ReportLedger,
    selection: &BatchSelection,
    format: Format,
    path: &Path,
) -> anyhow::Result<Summary> {
    atomic::write_atomically(path, |out| write_report(ledger, selection, format, out))
}

/// Writes the CSV, JSON and HTML reports of the selected batches into `dir` (created if
/// needed) as `payrun-report[-batch-N].{csv,json,html}`, all from one ledger snapshot, and
/// returns their paths (CSV, JSON, HTML) and the summary. For `payrun run` and `demo`.
pub fn write_reports(
    ledger: &impl ReportLedger,
    selection: &BatchSelection,
    dir: &Path,
) -> anyhow::Result<(Vec<PathBuf>, Summary)> {
    std::fs::create_dir_all(dir)
        .map_err(|err| anyhow::anyhow!("cannot create {}: {err}", crate::names::shown(dir)))?;
    let stem = match selection.batch {
        Some(batch) => format!("payrun-report-batch-{batch}"),
        None => "payrun-report".to_string(),
    };
    let path = |format: Format| dir.join(format!("{stem}.{}", format.extension()));
    let _snapshot = ledger.read_snapshot()?;
    let batches = ledger.report_batches(selection)?;
    // The CSV pass totals the payouts; the JSON and HTML reuse its summary.
    let summary = atomic::write_atomically(&path(Format::Csv), |out| {
        csv::write_payouts_csv(ledger, SummaryBuilder::new(selection, batches), out)
    })?;
    atomic::write_atomically(&path(Format::Json), |out| {
        summary::write_json(&summary, out)
    })?;
    atomic::write_atomically(&path(Format::Html), |out| {
        html::write_html(ledger, &summary, out)
    })?;
    Ok((Format::ALL.into_iter().map(path).collect(), summary))
}

/// The id at the end of a transfer URL.
pub fn transfer_id(transfer_url: &str) -> &str {
    crate::dwolla::wire::last_segment(transfer_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_group_thousands_and_keep_cents() {
        assert_eq!(dollars(0), "$0.00");
        assert_eq!(dollars(5), "$0.05");
        assert_eq!(dollars(123_456), "$1,234.56");
        assert_eq!(dollars(10_000_000_000), "$100,000,000.00");
        assert_eq!(dollars(-100_000), "-$1,000.00");
        assert_eq!(decimal(-7), "-0.07");
        assert_eq!(decimal(123_456), "1234.56");
    }

    #[test]
    fn the_format_follows_the_file_extension() {
        assert_eq!(Format::from_path(Path::new("a/r.HTML")), Some(Format::Html));
        assert_eq!(Format::from_path(Path::new("r.json")), Some(Format::Json));
        assert_eq!(Format::from_path(Path::new("r.txt")), None);
    }
}
