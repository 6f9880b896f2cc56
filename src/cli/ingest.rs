//! `payrun ingest`: load payout files into the ledger, and print what became of each.

use std::path::{Path, PathBuf};

use clap::Args;

use super::IngestRules;
use crate::config::FileConfig;
use crate::exit;
use crate::ingest::{self, IngestOutcome};
use crate::ledger::Ledger;

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
}

pub(super) fn run(ledger_path: &Path, file: &FileConfig, args: &IngestArgs) -> anyhow::Result<u8> {
    let options = args.rules.options(file, args.max_errors)?;
    let mut ledger = Ledger::open_writer(ledger_path)?;
    let mut status = exit::OK;
    for path in &args.files {
        let now = time::OffsetDateTime::now_utc();
        let outcome = ingest::ingest_file(&mut ledger, path, &options, now)?;
        match outcome {
            IngestOutcome::Accepted {
                batch_id,
                n_payouts,
                total,
                rejected,
                n_rejected_rows,
            } => {
                for problem in &rejected {
                    eprintln!("{problem}");
                }
                let partial = if n_rejected_rows > 0 {
                    format!(
                        " ({} left out and recorded)",
                        crate::names::plural(n_rejected_rows, "invalid row")
                    )
                } else {
                    String::new()
                };
                let approval = if options.awaiting_approval {
                    format!("; it waits for `payrun approve {batch_id}`")
                } else {
                    String::new()
                };
                println!(
                    "accepted {}: batch {batch_id}, {}, total {total} USD{partial}{approval}",
                    crate::names::shown(path),
                    crate::names::plural(n_payouts, "payout")
                );
                tracing::info!(batch_id, n_payouts, total_cents = total.get(), file = %crate::names::shown(path), "batch ingested");
            }
            IngestOutcome::AlreadyIngested(existing) => {
                println!(
                    "skipped {}: the same content is already batch {} ({}, received {}); nothing added",
                    crate::names::shown(path),
                    existing.id,
                    crate::names::escape(&existing.file_name),
                    existing.received_at
                );
            }
            IngestOutcome::Invalid { errors, n_errors } => {
                for problem in &errors {
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
                status = exit::INVALID_INPUT;
            }
        }
    }
    Ok(status)
}
