//! The command line: flags, subcommands, and the mapping from outcomes to exit statuses.
//! Each subcommand is one call into the library plus printing; no business rule lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::exit;
use crate::ingest::{self, IngestOptions, IngestOutcome, row::Limits};
use crate::ledger::{Ledger, LedgerError};
use crate::money::Cents;
use crate::telemetry::{self, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "payrun",
    version,
    about = "Durable payout batch worker for Dwolla Connect"
)]
pub struct Cli {
    /// The ledger file (SQLite).
    #[arg(
        long,
        global = true,
        env = "PAYRUN_LEDGER",
        default_value = "payrun.db"
    )]
    pub ledger: PathBuf,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// More log detail (repeatable).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less log detail (repeatable).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load payout CSV files into the ledger, strictly validated, all or nothing, never twice.
    Ingest(IngestArgs),
    /// Show batches and the count and amount of payouts in each state.
    Status(StatusArgs),
    /// Run the local Dwolla Connect simulator.
    Sim(crate::sim::SimArgs),
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Payout files (CSV, UTF-8, with a header row).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Accept the valid rows of a file with invalid ones; the invalid rows are recorded.
    #[arg(long)]
    pub allow_partial: bool,
    /// The largest amount one payout may have, in dollars.
    #[arg(long, default_value = "10000.00", value_parser = parse_amount)]
    pub max_amount: Cents,
    /// How many problems to print per file; all are counted.
    #[arg(long, default_value_t = 50)]
    pub max_errors: usize,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

fn parse_amount(text: &str) -> Result<Cents, String> {
    Cents::parse_payout_amount(text).map_err(|err| format!("{text:?} {err}"))
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return exit::code(if err.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let verbosity = (cli.verbose as i8).saturating_sub(cli.quiet as i8);
    telemetry::init(cli.log_format, verbosity);
    let result = match cli.command {
        Command::Ingest(args) => run_ingest(&cli.ledger, &args),
        Command::Status(args) => run_status(&cli.ledger, &args),
        Command::Sim(args) => crate::sim::run_cli(args).map(|()| exit::OK),
    };
    match result {
        Ok(status) => exit::code(status),
        Err(err) => {
            eprintln!("payrun: error: {err:#}");
            exit::code(exit_status_of(&err))
        }
    }
}

/// The documented status for an error that ended a command.
fn exit_status_of(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(LedgerError::Locked(crate::ledger::LockError::HeldByOther { .. })) =
            cause.downcast_ref()
        {
            return exit::LOCKED;
        }
    }
    exit::INTERNAL
}

fn run_ingest(ledger_path: &std::path::Path, args: &IngestArgs) -> anyhow::Result<u8> {
    let mut ledger = Ledger::open_writer(ledger_path)?;
    let options = IngestOptions {
        allow_partial: args.allow_partial,
        limits: Limits {
            max_amount: args.max_amount,
        },
        max_errors_shown: args.max_errors,
        awaiting_approval: false,
    };
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
                        plural(n_rejected_rows, "invalid row")
                    )
                } else {
                    String::new()
                };
                println!(
                    "accepted {}: batch {batch_id}, {n_payouts} payouts, total {total} USD{partial}",
                    path.display()
                );
                tracing::info!(batch_id, n_payouts, total_cents = total.get(), file = %path.display(), "batch ingested");
            }
            IngestOutcome::AlreadyIngested(existing) => {
                println!(
                    "skipped {}: the same content is already batch {} ({}, received {}); nothing added",
                    path.display(),
                    existing.id,
                    existing.file_name,
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
                        path.display(),
                        plural(n_errors - errors.len() as u64, "more problem")
                    );
                }
                println!(
                    "rejected {}: {}; nothing was ingested",
                    path.display(),
                    plural(n_errors, "problem")
                );
                status = exit::INVALID_INPUT;
            }
        }
    }
    Ok(status)
}

fn run_status(ledger_path: &std::path::Path, args: &StatusArgs) -> anyhow::Result<u8> {
    let ledger = Ledger::open_reader(ledger_path)?;
    let summary = ledger.summary().context("cannot read the ledger summary")?;
    if args.json {
        let payouts: serde_json::Map<String, serde_json::Value> = summary
            .payouts
            .iter()
            .map(|(state, total)| (state.as_str().to_string(), serde_json::json!(total)))
            .collect();
        let value = serde_json::json!({ "payouts": payouts, "batches": summary.batches });
        println!("{value}");
        return Ok(exit::OK);
    }
    println!("{:<14} {:>9} {:>16}", "state", "payouts", "amount (USD)");
    for (state, total) in &summary.payouts {
        let amount = Cents::new(total.amount_cents).unwrap_or(Cents::ZERO);
        println!(
            "{:<14} {:>9} {:>16}",
            state.as_str(),
            total.count,
            amount.to_string()
        );
    }
    println!();
    println!(
        "{:>5}  {:<24} {:<18} {:>7} {:>14}  file",
        "batch", "received", "status", "rows", "total (USD)"
    );
    for batch in &summary.batches {
        let total = Cents::new(batch.total_cents).unwrap_or(Cents::ZERO);
        println!(
            "{:>5}  {:<24} {:<18} {:>7} {:>14}  {}",
            batch.id,
            batch.received_at,
            batch.status,
            batch.row_count,
            total.to_string(),
            batch.file_name
        );
    }
    Ok(exit::OK)
}

/// "1 problem", "3 problems".
fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
