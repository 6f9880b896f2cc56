//! The command line: flags, subcommands, and the mapping from outcomes to exit statuses.
//! Each subcommand is one call into the library plus printing; no business rule lives here.
//!
//! Settings come from flags, then environment variables, then the configuration file
//! (`--config`, or `payrun.toml` when present), then defaults.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{self, FileConfig, InboxDirs};
use crate::exit;
use crate::ingest::{self, IngestOptions, IngestOutcome, row::Limits};
use crate::ledger::{Approval, Ledger, LedgerError};
use crate::money::Cents;
use crate::telemetry::{self, LogFormat};

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
    /// The ledger file (SQLite) [default: payrun.db].
    #[arg(long, global = true, env = "PAYRUN_LEDGER")]
    pub ledger: Option<PathBuf>,
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
    /// One unattended cycle for cron: inbox files, ingest, approval gate, send, track, reports.
    Run(RunArgs),
    /// Keep cycling: react to files dropped into the inbox, and rescan it periodically.
    Watch(WatchArgs),
    /// Let a batch that waits for approval be sent.
    Approve(ApproveArgs),
    /// What ingesting a file would do, touching nothing.
    Plan(PlanArgs),
    /// The effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the local Dwolla Connect simulator.
    Sim(crate::sim::SimArgs),
    /// The whole job end to end against the built-in simulator, in seconds.
    Demo(DemoArgs),
    /// Your Dwolla main account.
    #[command(subcommand)]
    Accounts(crate::onboard::commands::AccountsCommand),
    /// Treasury partners and your treasury accounts.
    #[command(subcommand)]
    Treasury(crate::onboard::commands::TreasuryCommand),
    /// External parties: the businesses and people you pay.
    #[command(subcommand)]
    Parties(crate::onboard::commands::PartiesCommand),
    /// Bank funding sources of the main account and of external parties.
    #[command(subcommand)]
    FundingSources(crate::onboard::commands::FundingSourcesCommand),
    /// Exchange (open banking) partners and exchanges.
    #[command(subcommand)]
    Exchanges(crate::onboard::commands::ExchangesCommand),
    /// Transfers at Dwolla.
    #[command(subcommand)]
    Transfers(crate::onboard::commands::TransfersCommand),
    /// The payee directory: import payees from CSV, then name them in payout files.
    #[command(subcommand)]
    Payees(crate::onboard::payees::PayeesCommand),
    /// Client tokens for Dwolla's drop-in components.
    #[command(subcommand)]
    ClientTokens(crate::drop_in::ClientTokensCommand),
    /// Write a report of payouts: CSV per payout, JSON summary with the tie-out, or HTML.
    Report(crate::report::ReportArgs),
    /// Compare the ledger with the account's transfers at Dwolla; exit 3 on discrepancies.
    Reconcile(crate::report::ReconcileArgs),
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
    #[command(flatten)]
    pub rules: IngestRules,
    /// How many problems to print per file; all are counted.
    #[arg(long, default_value_t = 50)]
    pub max_errors: usize,
}

/// The flags that decide what a valid file is.
#[derive(Debug, Args)]
pub struct IngestRules {
    /// Accept the valid rows of a file with invalid ones; the invalid rows are recorded.
    #[arg(long)]
    pub allow_partial: bool,
    /// The largest amount one payout may have, in dollars [default: 10000.00].
    #[arg(long, value_parser = parse_amount)]
    pub max_amount: Option<Cents>,
    /// New batches wait for `payrun approve` before they are sent.
    #[arg(long)]
    pub require_approval: bool,
}

impl IngestRules {
    fn options(&self, max_errors_shown: usize) -> Result<IngestOptions, Failure> {
        let file = file_config();
        let max_amount = match (self.max_amount, &file.max_amount) {
            (Some(amount), _) => amount,
            (None, Some(text)) => {
                parse_amount(text).map_err(|e| Failure::config(format!("max_amount: {e}")))?
            }
            (None, None) => Cents::new(1_000_000).expect("positive"),
        };
        Ok(IngestOptions {
            allow_partial: self.allow_partial || file.allow_partial.unwrap_or(false),
            limits: Limits { max_amount },
            max_errors_shown,
            awaiting_approval: self.require_approval || file.require_approval.unwrap_or(false),
        })
    }
}

/// How payrun reaches Dwolla. Credentials come from the environment (or the configuration
/// file), never from flags, so that they never appear in a process listing.
#[derive(Debug, Args)]
pub struct DwollaArgs {
    /// Request starts per second, for everything sent to Dwolla [default: 100].
    #[arg(long, env = "PAYRUN_RATE")]
    pub rate: Option<u32>,
    /// Requests in flight at once [default: rate x 0.3 s, at least 4].
    #[arg(long, env = "PAYRUN_CONCURRENCY")]
    pub concurrency: Option<usize>,
}

impl DwollaArgs {
    pub fn rate(&self) -> u32 {
        self.rate.or(file_config().send.rate).unwrap_or(100).max(1)
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency
            .or(file_config().send.concurrency)
            .unwrap_or_else(|| (self.rate() as usize * 3 / 10).max(4))
    }

    /// The client, configured from DWOLLA_API_URL or DWOLLA_ENV, DWOLLA_KEY and DWOLLA_SECRET,
    /// each falling back to the configuration file's `[dwolla]` section.
    pub fn client(&self) -> Result<crate::dwolla::Client, Failure> {
        let mut config = crate::dwolla::DwollaConfig::from_lookup(|name| {
            config::env_or_file(file_config(), name)
        })
        .map_err(|err| Failure::config(err.to_string()))?;
        config.rate_per_second = self.rate();
        config.max_in_flight = self.concurrency();
        crate::dwolla::Client::new(config).map_err(|err| Failure::config(err.to_string()))
    }
}

/// What every sending command needs besides the connection.
#[derive(Debug, Args)]
pub struct SendingArgs {
    /// The funding source payouts are paid from (an id or URL).
    #[arg(long = "source", env = "PAYRUN_SOURCE_FUNDING_SOURCE")]
    pub source_funding_source: Option<String>,
    /// POSTs per payout, over all runs, before it needs review [default: 12].
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// No progress bar or progress log lines.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub dwolla: DwollaArgs,
}

impl SendingArgs {
    fn send_config(&self, batch: Option<i64>) -> Result<crate::sender::SendConfig, Failure> {
        let file = file_config();
        let source = self
            .source_funding_source
            .clone()
            .or_else(|| file.dwolla.source_funding_source.clone())
            .ok_or_else(|| {
                Failure::config("set PAYRUN_SOURCE_FUNDING_SOURCE (or --source) to the funding source payouts are paid from".into())
            })?;
        let mut config = crate::sender::SendConfig::new(source, self.dwolla.concurrency());
        config.batch = batch;
        config.max_attempts = self
            .max_attempts
            .or(file.send.max_attempts)
            .unwrap_or(12)
            .max(1);
        if self.no_progress {
            config.progress = crate::sender::progress::Display::Off;
        }
        Ok(config)
    }
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Only this batch.
    #[arg(long)]
    pub batch: Option<i64>,
    #[command(flatten)]
    pub sending: SendingArgs,
}

#[derive(Debug, Args)]
pub struct InboxArgs {
    /// The drop folder [default: the configuration file's inbox.dir].
    #[arg(long)]
    pub inbox: Option<PathBuf>,
    /// A file is taken once it has not changed for this many seconds [default: 2].
    #[arg(long)]
    pub stable_seconds: Option<u64>,
}

impl InboxArgs {
    fn dirs(&self) -> Option<InboxDirs> {
        let file = file_config();
        let inbox = self.inbox.clone().or_else(|| file.inbox.dir.clone())?;
        Some(InboxDirs::new(&inbox, &file.inbox))
    }

    fn stable_for(&self) -> Duration {
        Duration::from_secs(
            self.stable_seconds
                .or(file_config().inbox.stable_seconds)
                .unwrap_or(2),
        )
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub inbox: InboxArgs,
    /// One cycle, then exit (what `run` always does; accepted for clarity in crontabs).
    #[arg(long)]
    pub once: bool,
    /// Keep tracking until every transfer settles, for at most this long (e.g. 10m) [default:
    /// one tracking sweep, leaving the rest to the next run].
    #[arg(long)]
    pub deadline: Option<String>,
    #[command(flatten)]
    pub rules: IngestRules,
    #[command(flatten)]
    pub sending: SendingArgs,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub inbox: InboxArgs,
    /// Rescan the inbox this often, besides reacting to file events [default: 30].
    #[arg(long)]
    pub rescan_seconds: Option<u64>,
    /// Also receive Dwolla's webhooks here, in this process [default: webhooks.listen in the
    /// configuration file, else none].
    #[arg(long)]
    pub listen: Option<String>,
    #[command(flatten)]
    pub rules: IngestRules,
    #[command(flatten)]
    pub sending: SendingArgs,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The batch id (see `payrun status`).
    pub batch: i64,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The payout file to check.
    pub file: PathBuf,
    #[command(flatten)]
    pub rules: IngestRules,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (secrets masked) and test the credentials against Dwolla.
    Check(ConfigCheckArgs),
}

#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    #[command(flatten)]
    pub sending: SendingArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to put the demo's ledger, inbox and reports [default: a new folder in the
    /// system's temporary directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
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

static FILE_CONFIG: OnceLock<(FileConfig, Option<PathBuf>)> = OnceLock::new();

/// The configuration file, read once at start-up (empty when there is none).
fn file_config() -> &'static FileConfig {
    &FILE_CONFIG.get_or_init(|| (FileConfig::default(), None)).0
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
    match FileConfig::load(cli.config.as_deref()) {
        Ok(loaded) => {
            let _ = FILE_CONFIG.set(loaded);
        }
        Err(err) => {
            eprintln!("payrun: error: {err}");
            return exit::code(exit::CONFIG);
        }
    }
    let ledger = cli
        .ledger
        .clone()
        .or_else(|| file_config().ledger.clone())
        .unwrap_or_else(|| PathBuf::from("payrun.db"));
    let result = match cli.command {
        Command::Ingest(args) => run_ingest(&ledger, &args),
        Command::Status(args) => run_status(&ledger, &args),
        Command::Send(args) => run_send(&ledger, &args),
        Command::Run(args) => run_run(&ledger, &args),
        Command::Watch(args) => run_watch(&ledger, &args),
        Command::Approve(args) => run_approve(&ledger, &args),
        Command::Plan(args) => run_plan(&ledger, &args),
        Command::Config(ConfigCommand::Check(args)) => run_config_check(&ledger, &args),
        Command::Sim(args) => crate::sim::run_cli(args).map(|()| exit::OK),
        Command::Demo(args) => run_demo(&args),
        Command::Accounts(command) => crate::onboard::commands::run_accounts(&command),
        Command::Treasury(command) => crate::onboard::commands::run_treasury(&command),
        Command::Parties(command) => crate::onboard::commands::run_parties(&command),
        Command::FundingSources(command) => {
            crate::onboard::commands::run_funding_sources(&ledger, &command)
        }
        Command::Exchanges(command) => crate::onboard::commands::run_exchanges(&command),
        Command::Transfers(command) => crate::onboard::commands::run_transfers(&command),
        Command::Payees(command) => crate::onboard::payees::run_payees(&ledger, &command),
        Command::ClientTokens(command) => crate::drop_in::run_cli(&command),
        Command::Report(args) => crate::report::run_report(&ledger, &args),
        Command::Reconcile(args) => crate::report::run_reconcile(&ledger, &args),
        Command::Track(args) => crate::tracking::run_track(&ledger, &args),
        Command::Serve(args) => crate::webhooks::run_serve(&ledger, &args),
        Command::Webhooks(args) => crate::webhooks::run_webhooks(&ledger, &args),
    };
    match result {
        Ok(status) => exit::code(status),
        Err(err) => match err.downcast::<Failure>() {
            Ok(failure) => {
                eprintln!("payrun: error: {}", failure.message);
                exit::code(failure.status)
            }
            Err(err) => {
                eprintln!("payrun: error: {}", exit::describe(&err));
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

/// The documented status for an error that ended a command.
fn exit_status_of(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(LedgerError::Locked(crate::ledger::LockError::HeldByOther { .. })) =
            cause.downcast_ref()
        {
            return exit::LOCKED;
        }
        if cause.downcast_ref::<crate::dwolla::DwollaError>().is_some() {
            return exit::UNAVAILABLE;
        }
    }
    exit::INTERNAL
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

fn run_send(ledger_path: &Path, args: &SendArgs) -> anyhow::Result<u8> {
    let client = args.sending.dwolla.client()?;
    let config = args.sending.send_config(args.batch)?;
    let ledger = Ledger::open_writer(ledger_path)?;
    let report = runtime()?.block_on(async {
        let stopping = stop_signal();
        crate::sender::send(ledger, client, config, stopping).await
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

/// The cycle settings shared by `run` and `watch`.
fn cycle(
    ledger_path: &Path,
    inbox: &InboxArgs,
    rules: &IngestRules,
    sending: &SendingArgs,
    settle_deadline: Option<Duration>,
) -> Result<crate::operate::Cycle, Failure> {
    let dirs = inbox.dirs();
    let reports = match &dirs {
        Some(dirs) => dirs.reports.clone(),
        None => ledger_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("reports"),
    };
    let mut track = crate::tracking::TrackConfig::standard();
    if let Some(days) = file_config().tracking.returns_window_days {
        track.returns_window_banking_days = days;
    }
    Ok(crate::operate::Cycle {
        dirs,
        track,
        settle_deadline,
        reports,
        stable_for: inbox.stable_for(),
        // The inbox writes every problem into the file's .errors.txt.
        ingest: rules.options(10_000)?,
        send: sending.send_config(None)?,
    })
}

fn run_run(ledger_path: &Path, args: &RunArgs) -> anyhow::Result<u8> {
    let deadline = args
        .deadline
        .as_deref()
        .map(crate::tracking::schedule::parse_duration)
        .transpose()
        .map_err(|err| Failure {
            status: exit::USAGE,
            message: format!("--deadline: {err}"),
        })?;
    let cycle = cycle(
        ledger_path,
        &args.inbox,
        &args.rules,
        &args.sending,
        deadline,
    )?;
    let client = args.sending.dwolla.client()?;
    let ledger = Ledger::open_writer(ledger_path)?;
    let (_ledger, summary) = runtime()?.block_on(async {
        let stopping = stop_signal();
        crate::operate::run_cycle(ledger, &client, &cycle, &stopping).await
    });
    let summary = summary?;
    for line in summary.lines() {
        println!("{line}");
    }
    Ok(summary.exit_status())
}

fn run_watch(ledger_path: &Path, args: &WatchArgs) -> anyhow::Result<u8> {
    let cycle = cycle(ledger_path, &args.inbox, &args.rules, &args.sending, None)?;
    if cycle.dirs.is_none() {
        return Err(Failure::config(
            "watch needs an inbox: --inbox DIR or inbox.dir in the configuration file".into(),
        )
        .into());
    }
    let rescan = Duration::from_secs(
        args.rescan_seconds
            .or(file_config().inbox.rescan_seconds)
            .unwrap_or(30)
            .max(1),
    );
    let client = args.sending.dwolla.client()?;
    let ledger = Ledger::open_writer(ledger_path)?;
    let listen = args
        .listen
        .clone()
        .or_else(|| file_config().webhooks.listen.clone());
    runtime()?.block_on(async {
        let stopping = stop_signal();
        let receiver = match listen {
            Some(listen) => {
                let secret = std::env::var(crate::webhooks::SECRET_ENV)
                    .ok()
                    .or_else(|| file_config().webhooks.secret.clone())
                    .map(crate::secret::Secret::new);
                Some(
                    crate::webhooks::serve_beside(
                        ledger_path,
                        &listen,
                        secret,
                        &client,
                        stopping.clone(),
                    )
                    .await?,
                )
            }
            None => None,
        };
        crate::operate::watch(ledger, client, cycle, rescan, stopping).await?;
        if let Some(receiver) = receiver {
            receiver.await.context("the webhook endpoint failed")??;
        }
        anyhow::Ok(())
    })?;
    Ok(exit::OK)
}

fn run_demo(args: &DemoArgs) -> anyhow::Result<u8> {
    let dir = args.dir.clone().unwrap_or_else(|| {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        std::env::temp_dir().join(format!("payrun-demo-{stamp}-{}", std::process::id()))
    });
    let outcome = runtime()?.block_on(crate::demo::run(dir))?;
    print!("{}", crate::demo::render(&outcome));
    Ok(if outcome.summary.ties_out() {
        exit::OK
    } else {
        exit::ATTENTION
    })
}

fn run_approve(ledger_path: &Path, args: &ApproveArgs) -> anyhow::Result<u8> {
    let mut ledger = Ledger::open_writer(ledger_path)?;
    let now = crate::ledger::timestamp(time::OffsetDateTime::now_utc());
    match ledger.approve_batch(args.batch, &now)? {
        Approval::Approved => println!(
            "batch {} approved; the next send or run pays it",
            args.batch
        ),
        Approval::AlreadyApproved => {
            println!("batch {} needed no approval (already approved)", args.batch)
        }
        Approval::NoSuchBatch => {
            return Err(Failure {
                status: exit::USAGE,
                message: format!("there is no batch {}", args.batch),
            }
            .into());
        }
        Approval::Cancelled => {
            return Err(Failure {
                status: exit::USAGE,
                message: format!("batch {} was cancelled", args.batch),
            }
            .into());
        }
    }
    Ok(exit::OK)
}

fn run_plan(ledger_path: &Path, args: &PlanArgs) -> anyhow::Result<u8> {
    let options = args.rules.options(50)?;
    let ledger = if ledger_path.exists() {
        Some(Ledger::open_reader(ledger_path)?)
    } else {
        None
    };
    let plan = crate::plan::plan_file(&args.file, &options, ledger.as_ref())?;
    print!("{}", crate::plan::render(&args.file, &plan));
    Ok(match plan {
        crate::plan::Plan::Invalid { .. } => exit::INVALID_INPUT,
        _ => exit::OK,
    })
}

fn run_config_check(ledger_path: &Path, args: &ConfigCheckArgs) -> anyhow::Result<u8> {
    let (file, file_path) = FILE_CONFIG
        .get()
        .map(|(f, p)| (f, p.as_ref()))
        .unwrap_or((file_config(), None));
    let lookup = |name: &str| config::env_or_file(file, name);
    let secret = lookup("DWOLLA_SECRET").map(crate::secret::Secret::new);
    let webhook_secret = std::env::var("PAYRUN_WEBHOOK_SECRET")
        .ok()
        .or_else(|| file.webhooks.secret.clone())
        .map(crate::secret::Secret::new);
    let options = IngestRules {
        allow_partial: false,
        max_amount: None,
        require_approval: false,
    }
    .options(50)?;
    let dirs = InboxArgs {
        inbox: None,
        stable_seconds: None,
    }
    .dirs();
    let shown = |value: Option<String>| value.unwrap_or_else(|| "not set".to_string());
    println!(
        "configuration file   {}",
        file_path.map_or("none".to_string(), |p| crate::names::shown(p))
    );
    println!("ledger               {}", crate::names::shown(ledger_path));
    println!("require_approval     {}", options.awaiting_approval);
    println!("max_amount           {}", options.limits.max_amount);
    println!("allow_partial        {}", options.allow_partial);
    match &dirs {
        Some(dirs) => {
            println!("inbox                {}", crate::names::shown(&dirs.inbox));
            println!(
                "  processing         {}",
                crate::names::shown(&dirs.processing)
            );
            println!(
                "  archive            {}",
                crate::names::shown(&dirs.archive)
            );
            println!(
                "  rejected           {}",
                crate::names::shown(&dirs.rejected)
            );
            println!(
                "  reports            {}",
                crate::names::shown(&dirs.reports)
            );
        }
        None => println!("inbox                not set"),
    }
    println!("dwolla api_url       {}", shown(lookup("DWOLLA_API_URL")));
    println!("dwolla environment   {}", shown(lookup("DWOLLA_ENV")));
    println!("dwolla key           {}", shown(lookup("DWOLLA_KEY")));
    println!("dwolla secret        {}", config::mask(secret.as_ref()));
    println!(
        "source funding src   {}",
        shown(
            args.sending
                .source_funding_source
                .clone()
                .or_else(|| file.dwolla.source_funding_source.clone())
        )
    );
    println!("rate                 {}/s", args.sending.dwolla.rate());
    println!("concurrency          {}", args.sending.dwolla.concurrency());
    println!(
        "webhooks listen      {}",
        shown(file.webhooks.listen.clone())
    );
    println!(
        "webhook secret       {}",
        config::mask(webhook_secret.as_ref())
    );
    let client = args.sending.dwolla.client()?;
    let root = runtime()?.block_on(client.root());
    match root {
        Ok(root) => {
            println!(
                "credentials          accepted by Dwolla (account {})",
                root.account_id().unwrap_or("?")
            );
            Ok(exit::OK)
        }
        Err(error) => Err(Failure::unavailable(format!(
            "Dwolla did not accept the configuration: {error}"
        ))
        .into()),
    }
}

fn run_ingest(ledger_path: &Path, args: &IngestArgs) -> anyhow::Result<u8> {
    let options = args.rules.options(args.max_errors)?;
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
                        plural(n_rejected_rows, "invalid row")
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
                    "accepted {}: batch {batch_id}, {n_payouts} payouts, total {total} USD{partial}{approval}",
                    crate::names::shown(path)
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
                        plural(n_errors - errors.len() as u64, "more problem")
                    );
                }
                println!(
                    "rejected {}: {}; nothing was ingested",
                    crate::names::shown(path),
                    plural(n_errors, "problem")
                );
                status = exit::INVALID_INPUT;
            }
        }
    }
    Ok(status)
}

fn run_status(ledger_path: &Path, args: &StatusArgs) -> anyhow::Result<u8> {
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
            crate::names::escape(&batch.file_name)
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
