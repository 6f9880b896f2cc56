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
    /// Send every due payout to Dwolla as a transfer, exactly once.
    Send(SendArgs),
    /// Run the local Dwolla Connect simulator.
    Sim(crate::sim::SimArgs),
    /// Follow sent transfers to their final status: apply stored webhook events, then poll.
    Track(crate::tracking::TrackArgs),
    /// Receive Dwolla webhooks (POST /webhooks/dwolla) and store them; runs beside `send`.
    Serve(crate::webhooks::ServeArgs),
    /// Create, list and delete Dwolla webhook subscriptions.
    Webhooks(crate::webhooks::WebhooksArgs),
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

/// How payrun reaches Dwolla. Credentials come from the environment only, so that they never
/// appear in a process listing.
#[derive(Debug, Args)]
pub struct DwollaArgs {
    /// Request starts per second, for everything sent to Dwolla.
    #[arg(long, env = "PAYRUN_RATE", default_value_t = 100)]
    pub rate: u32,
    /// Requests in flight at once [default: rate x 0.3 s, at least 4].
    #[arg(long, env = "PAYRUN_CONCURRENCY")]
    pub concurrency: Option<usize>,
}

impl DwollaArgs {
    pub fn concurrency(&self) -> usize {
        self.concurrency
            .unwrap_or_else(|| (self.rate as usize * 3 / 10).max(4))
    }

    /// The client, configured from DWOLLA_API_URL or DWOLLA_ENV, DWOLLA_KEY and DWOLLA_SECRET.
    pub fn client(&self) -> Result<crate::dwolla::Client, Failure> {
        let mut config = crate::dwolla::DwollaConfig::from_env()
            .map_err(|err| Failure::config(err.to_string()))?;
        config.rate_per_second = self.rate.max(1);
        config.max_in_flight = self.concurrency();
        crate::dwolla::Client::new(config).map_err(|err| Failure::config(err.to_string()))
    }
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Only this batch.
    #[arg(long)]
    pub batch: Option<i64>,
    /// The funding source payouts are paid from (an id or URL).
    #[arg(long = "source", env = "PAYRUN_SOURCE_FUNDING_SOURCE")]
    pub source_funding_source: String,
    /// POSTs per payout, over all runs, before it needs review.
    #[arg(long, default_value_t = 12)]
    pub max_attempts: u32,
    /// No progress bar or progress log lines.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub dwolla: DwollaArgs,
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
        Command::Send(args) => run_send(&cli.ledger, &args),
        Command::Sim(args) => crate::sim::run_cli(args).map(|()| exit::OK),
        Command::Track(args) => crate::tracking::run_track(&cli.ledger, &args),
        Command::Serve(args) => crate::webhooks::run_serve(&cli.ledger, &args),
        Command::Webhooks(args) => crate::webhooks::run_webhooks(&cli.ledger, &args),
    };
    match result {
        Ok(status) => exit::code(status),
        Err(err) => match err.downcast::<Failure>() {
            Ok(failure) => {
                eprintln!("payrun: error: {}", failure.message);
                exit::code(failure.status)
            }
            Err(err) => {
                eprintln!("payrun: error: {err:#}");
                exit::code(exit_status_of(&err))
            }
        },
    }
}

/// An error that ends a command with a particular documented status. Return it (through
/// anyhow) from a command to choose the exit status; any other error exits 1.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub status: u8,
    pub message: String,
}

impl Failure {
    pub fn config(message: String) -> Failure {
        Failure {
            status: exit::CONFIG,
            message,
        }
    }

    pub fn unavailable(message: String) -> Failure {
        Failure {
            status: exit::UNAVAILABLE,
            message,
        }
    }
}

/// A multi-threaded runtime for the commands that talk to the network.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Turns true on the first SIGINT or SIGTERM; a second one exits at once (safe: every request
/// in flight carries its idempotency key, and its state was committed before it was sent).
pub fn stop_signal() -> tokio::sync::watch::Receiver<bool> {
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        eprintln!(
            "payrun: stopping: finishing the requests in flight (signal again to exit at once)"
        );
        let _ = stop.send(true);
        wait_for_signal().await;
        std::process::exit(130);
    });
    stopping
}

async fn wait_for_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match terminate.as_mut() {
                Some(terminate) => { terminate.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

fn run_send(ledger_path: &std::path::Path, args: &SendArgs) -> anyhow::Result<u8> {
    let client = args.dwolla.client()?;
    let ledger = Ledger::open_writer(ledger_path)?;
    let mut config = crate::sender::SendConfig::new(
        args.source_funding_source.clone(),
        args.dwolla.concurrency(),
    );
    config.batch = args.batch;
    config.max_attempts = args.max_attempts.max(1);
    if args.no_progress {
        config.progress = crate::sender::progress::Display::Off;
    }
    let report = runtime()?.block_on(async {
        let stopping = stop_signal();
        crate::sender::send(ledger, client, config, stopping).await
    });
    let report = report.map_err(|err| {
        let unreachable = err
            .chain()
            .any(|cause| cause.downcast_ref::<crate::dwolla::DwollaError>().is_some());
        let status = if unreachable {
            exit::UNAVAILABLE
        } else {
            exit::INTERNAL
        };
        Failure {
            status,
            message: format!("{err:#}"),
        }
    })?;
    println!(
        "sent {} payouts: {} created, {} rejected, {} need review, {} left for the next run{}",
        report.n_claimed,
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
