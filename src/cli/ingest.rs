//! `payrun ingest`: load payout files into the ledger, and print what became of each.

use std::path::{Path, PathBuf};

use clap::Args;

use super::IngestRules;
use crate::config::FileConfig;
use crate::exit;
use crate::ingest::{self, FileError, IngestOutcome};
use crate::ledger::{ExistingBatch, IngestLedger, Ledger, RepeatOverlap};

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Payout files (CSV, UTF-8, with a header row).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub rules: IngestRules,
    /// How many problems to print per file; all are counted.
    #[arg(long, default_value_t = 50)]
    pub max_errors: usize,
    #[command(flatten)]
    pub payday: super::payday::PaydayArgs,
}

pub(super) fn run(ledger_path: &Path, file: &FileConfig, args: &IngestArgs) -> anyhow::Result<u8> {
    let mut options = args.rules.options(file, args.max_errors)?;
    args.payday.apply(&mut options);
    let clock = super::payday::clock()?;
    let mut ledger = Ledger::open_writer(ledger_path)?;
    ingest_all(&mut ledger, &options, &clock, args)
}

/// `payrun ingest` on a PostgreSQL ledger: the same checks, one transaction per file.
pub(super) fn run_postgres(url: &str, file: &FileConfig, args: &IngestArgs) -> anyhow::Result<u8> {
    let mut options = args.rules.options(file, args.max_errors)?;
    args.payday.apply(&mut options);
    let clock = super::payday::clock()?;
    let mut ledger = crate::ledger::postgres::PgLedger::open(url)?;
    ingest_all(&mut ledger, &options, &clock, args)
}

fn ingest_all(
    ledger: &mut impl IngestLedger,
    options: &ingest::IngestOptions,
    clock: &crate::clock::Clock,
    args: &IngestArgs,
) -> anyhow::Result<u8> {
    let mut status = exit::OK;
    for path in &args.files {
        let now = clock.now();
        let outcome = ingest::ingest_file(ledger, path, options, now)?;
        match outcome {
            IngestOutcome::Accepted {
                batch_id,
                n_payouts,
                total,
                rejected,
                n_rejected_rows,
                schedule,
                repeats,
            } => {
                for problem in &rejected {
                    eprintln!("{problem}");
                }
                note_pay_date_override(path, args.payday.pay_date, schedule.pay_date);
                let partial = partial_note(n_rejected_rows);
                let approval = approval_note(batch_id, repeats.as_ref(), options.awaiting_approval);
                println!(
                    "accepted {}: batch {batch_id}, {}, total {total} USD{partial}{}{approval}",
                    crate::names::shown(path),
                    crate::names::plural(n_payouts, "payout"),
                    describe_schedule(&schedule, now)
                );
                tracing::info!(batch_id, n_payouts, total_cents = total.get(), file = %crate::names::shown(path), "batch ingested");
            }
            IngestOutcome::AlreadyIngested(existing) => print_already_ingested(path, &existing),
            IngestOutcome::Invalid { errors, n_errors } => {
                print_invalid(path, &errors, n_errors);
                status = exit::INVALID_INPUT;
            }
        }
    }
    Ok(status)
}

/// A file's own pay_date column wins over `--pay-date`; say so when they differ.
fn note_pay_date_override(path: &Path, flag: Option<time::Date>, own: Option<time::Date>) {
    if let (Some(flag), Some(own)) = (flag, own)
        && flag != own
    {
        eprintln!(
            "payrun: note: {} names its pay date {own} in its pay_date column, which wins over --pay-date {flag}",
            path.display()
        );
    }
}

/// " (3 invalid rows left out and recorded)", or nothing when every row was valid.
fn partial_note(n_rejected_rows: u64) -> String {
    if n_rejected_rows > 0 {
        format!(
            " ({} left out and recorded)",
            crate::names::plural(n_rejected_rows, "invalid row")
        )
    } else {
        String::new()
    }
}

/// Why and how the batch waits for approval, or nothing when it does not.
fn approval_note(
    batch_id: i64,
    repeats: Option<&RepeatOverlap>,
    awaiting_approval: bool,
) -> String {
    match repeats {
        Some(overlap) => format!(
            "; held by the repeat guard: {overlap}; it waits for `payrun approve {batch_id}` (or ingest with --allow-repeat)"
        ),
        None if awaiting_approval => {
            format!("; it waits for `payrun approve {batch_id}`")
        }
        None => String::new(),
    }
}

fn print_already_ingested(path: &Path, existing: &ExistingBatch) {
    let pay_date = existing
        .pay_date
        .as_ref()
        .map(|date| format!(" for pay date {date}"))
        .unwrap_or_default();
    println!(
        "skipped {}: the same payouts{pay_date} are already batch {} ({}, received {}, {}); nothing added",
        crate::names::shown(path),
        existing.id,
        crate::names::escape(&existing.file_name),
        existing.received_at,
        existing.status
    );
}

fn print_invalid(path: &Path, errors: &[FileError], n_errors: u64) {
    for problem in errors {
        eprintln!("{problem}");
    }
    if n_errors > errors.len() as u64 {
        eprintln!(
            "{}: ... and {}",
            crate::names::shown(path),
            crate::names::plural(n_errors - errors.len() as u64, "more problem")
        );
    }
    println!(
        "rejected {}: {}; nothing was ingested",
        crate::names::shown(path),
        crate::names::plural(n_errors, "problem")
    );
}

/// "; pay date 2026-12-04, sent from 2026-12-02 00:00 UTC", or nothing without a pay date.
fn describe_schedule(schedule: &crate::payday::Schedule, now: time::OffsetDateTime) -> String {
    let Some(pay_date) = schedule.pay_date else {
        return String::new();
    };
    let when = match schedule.send_after {
        _ if schedule.send_late => "sent as soon as possible, late (--send-late)".to_string(),
        Some(after) if after > now => format!("sent from {}", crate::ledger::timestamp(after)),
        _ => "sent now (its send window is open)".to_string(),
    };
    format!("; pay date {pay_date}, {when}")
}
