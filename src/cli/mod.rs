//! The command line, the top floor: one file per subcommand, each with its clap arguments, how
//! it resolves its settings (flags > environment > `payrun.toml` > defaults, once, into the
//! library's typed configurations), how it prints results, and the mapping of typed outcomes to
//! the documented exit statuses ([`exit`], [`Failure`]). The tokio runtime and the stop signal
//! are built here and passed down.
//!
//! Owns nothing the library needs: nothing outside `cli` imports it (the layering test in
//! `tests/it/layering.rs` keeps that true). No business rule lives here.

mod approve;
mod cancel;
mod client_tokens;
mod config;
mod connect;
mod demo;
mod failure;
mod hold;
mod ingest;
mod outcome;
mod payday;
mod payees;
mod pipe;
mod plan;
mod postgres;
mod reconcile;
mod report;
mod run;
mod runtime;
mod send;
mod serve;
mod settings;
mod sim;
mod status;
mod table;
mod track;
mod values;
mod watch;
mod webhooks;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::FileConfig;
use crate::exit;
use crate::ledger::Ledger;
use crate::telemetry;
use values::LogFormatArg;

pub use failure::Failure;
use failure::exit_status_of;
pub use outcome::{cycle_status, send_status, track_status};
pub use settings::{DwollaArgs, InboxArgs, IngestRules, ListenerArgs, SendingArgs};

#[derive(Debug, Parser)]
#[command(
    name = "payrun",
    version,
    about = "Durable payout batch worker for Dwolla Connect"
)]
pub struct Cli {
    /// The configuration file [default: payrun.toml when present].
    #[arg(long, global = true, env = "PAYRUN_CONFIG")]
    pub config: Option<PathBuf>,
    /// The ledger: a SQLite file, or a postgres:// URL [default: payrun.db].
    #[arg(long, global = true, env = "PAYRUN_LEDGER")]
    pub ledger: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormatArg,
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
    Ingest(ingest::IngestArgs),
    /// Show batches and the count and amount of payouts in each state.
    Status(status::StatusArgs),
    /// Send every due payout to Dwolla as a transfer, exactly once.
    Send(send::SendArgs),
    /// One unattended cycle for cron: inbox files, ingest, approval gate, send, track, reports.
    Run(run::RunArgs),
    /// Keep cycling: react to files dropped into the inbox, and rescan it periodically.
    Watch(watch::WatchArgs),
    /// Let a batch that waits for approval be sent.
    Approve(approve::ApproveArgs),
    /// Stop a batch from being sent until it is released.
    Hold(hold::HoldArgs),
    /// Let a held batch be sent again.
    Release(hold::ReleaseArgs),
    /// Cancel a batch's pending payouts (or some of them, by reference), with a reason.
    Cancel(cancel::CancelArgs),
    /// What ingesting a file would do, touching nothing.
    Plan(plan::PlanArgs),
    /// The effective configuration.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Run the local Dwolla Connect simulator.
    Sim(sim::SimArgs),
    /// The whole job end to end against the built-in simulator, in seconds.
    ///
    /// Its ledger is a new SQLite file in its folder; with `--ledger postgres://...` it is a
    /// schema of its own in that database, dropped at the end, so the sample payroll never
    /// mixes with a real ledger's batches.
    Demo(demo::DemoArgs),
    /// Your Dwolla main account.
    #[command(subcommand)]
    Accounts(connect::AccountsCommand),
    /// Treasury partners and your treasury accounts.
    #[command(subcommand)]
    Treasury(connect::TreasuryCommand),
    /// External parties: the businesses and people you pay.
    #[command(subcommand)]
    Parties(connect::PartiesCommand),
    /// Bank funding sources of the main account and of external parties.
    #[command(subcommand)]
    FundingSources(connect::FundingSourcesCommand),
    /// Exchange (open banking) partners and exchanges.
    #[command(subcommand)]
    Exchanges(connect::ExchangesCommand),
    /// Transfers at Dwolla.
    #[command(subcommand)]
    Transfers(connect::TransfersCommand),
    /// The payee directory: import payees from CSV, then name them in payout files.
    #[command(subcommand)]
    Payees(payees::PayeesCommand),
    /// Client tokens for Dwolla's drop-in components.
    #[command(subcommand)]
    ClientTokens(client_tokens::ClientTokensCommand),
    /// Write a report of payouts: CSV per payout, JSON summary with the tie-out, or HTML.
    Report(report::ReportArgs),
    /// Compare the ledger with the account's transfers at Dwolla; exit 3 on discrepancies.
    Reconcile(reconcile::ReconcileArgs),
    /// Follow sent transfers to their final status: apply stored webhook events, then poll.
    Track(track::TrackArgs),
    /// Receive Dwolla webhooks (POST /webhooks/dwolla) and store them; runs beside `send`.
    Serve(serve::ServeArgs),
    /// Create, list and delete Dwolla webhook subscriptions.
    Webhooks(webhooks::WebhooksArgs),
}

pub fn main() -> ExitCode {
    pipe::exit_quietly_on_broken_pipe();
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
    telemetry::init(cli.log_format.into(), verbosity);
    // Read once, here, and handed to every command that has a setting in it.
    let (file, file_path) = match FileConfig::load(cli.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("payrun: error: {err}");
            return exit::code(exit::CONFIG);
        }
    };
    let ledger = cli
        .ledger
        .clone()
        .or_else(|| file.ledger.clone())
        .unwrap_or_else(|| PathBuf::from("payrun.db"));
    let postgres_url = ledger
        .to_str()
        .filter(|text| crate::ledger::postgres::is_postgres_url(text));
    let result = match postgres_url {
        Some(url) => postgres::dispatch(cli.command, url, &file, file_path.as_deref()),
        None => dispatch(cli.command, &ledger, &file, file_path.as_deref()),
    };
    report_outcome(result)
}

fn dispatch(
    command: Command,
    ledger: &Path,
    file: &FileConfig,
    file_path: Option<&Path>,
) -> anyhow::Result<u8> {
    match command {
        Command::Ingest(args) => ingest::run(ledger, file, &args),
        Command::Status(args) => status::run(ledger, &args),
        Command::Send(args) => send::run(ledger, file, &args),
        Command::Run(args) => run::run(ledger, file, &args),
        Command::Watch(args) => watch::run(ledger, file, &args),
        Command::Approve(args) => approve::run(ledger, &args),
        Command::Hold(args) => hold::run_hold(&mut Ledger::open_writer(ledger)?, &args),
        Command::Release(args) => hold::run_release(&mut Ledger::open_writer(ledger)?, &args),
        Command::Cancel(args) => cancel::run(&mut Ledger::open_writer(ledger)?, &args),
        Command::Plan(args) => plan::run(ledger, file, &args),
        Command::Config(config::ConfigCommand::Check(args)) => {
            config::run_check(ledger, file, file_path, &args)
        }
        Command::Sim(args) => sim::run(args).map(|()| exit::OK),
        Command::Demo(args) => demo::run(&args, crate::demo::DemoLedger::File),
        Command::Accounts(command) => connect::run_accounts(file, &command),
        Command::Treasury(command) => connect::run_treasury(file, &command),
        Command::Parties(command) => connect::run_parties(file, &command),
        Command::FundingSources(command) => {
            let open = || match ledger.exists() {
                true => Ok(Some(Ledger::open_writer(ledger)?)),
                false => Ok(None),
            };
            connect::run_funding_sources(open, file, &command)
        }
        Command::Exchanges(command) => connect::run_exchanges(file, &command),
        Command::Transfers(command) => connect::run_transfers(file, &command),
        Command::Payees(command) => payees::run(ledger, file, &command),
        Command::ClientTokens(command) => client_tokens::run(file, &command),
        Command::Report(args) => report::run(ledger, &args),
        Command::Reconcile(args) => reconcile::run(ledger, file, &args),
        Command::Track(args) => track::run(ledger, file, &args),
        Command::Serve(args) => {
            serve::run(crate::ledger::LedgerPlace::File(ledger.into()), file, &args)
        }
        Command::Webhooks(args) => webhooks::run(
            &crate::ledger::LedgerPlace::File(ledger.into()),
            file,
            &args,
        ),
    }
}

fn report_outcome(result: anyhow::Result<u8>) -> ExitCode {
    match result {
        Ok(status) => exit::code(status),
        Err(err) if pipe::is_broken_pipe(&err) => exit::code(exit::OK),
        Err(err) => match err.downcast::<Failure>() {
            Ok(failure) => {
                eprintln!("payrun: error: {}", failure.message);
                exit::code(failure.status)
            }
            Err(err) => {
                eprintln!("payrun: error: {}", exit::describe(&err));
                if let Some(hint) = failure::hint_of(&err) {
                    eprintln!("payrun: hint: {hint}");
                }
                exit::code(exit_status_of(&err))
            }
        },
    }
}
