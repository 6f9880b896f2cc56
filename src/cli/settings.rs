//! The flags and settings several subcommands share, and how each resolves: flags, then the
//! environment, then the configuration file, then defaults. The file is read once, by the
//! dispatch in `cli::main`, and handed to every resolution here: no setting reaches a command
//! by a side road, so a command that does not take the file cannot silently ignore it.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::Failure;
use crate::config::{self, FileConfig, InboxDirs};
use crate::ingest::{IngestOptions, row::Limits};
use crate::listener::{self, ConnectionLimits};
use crate::money::Cents;

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
    pub(super) fn options(
        &self,
        file: &FileConfig,
        max_errors_shown: usize,
    ) -> Result<IngestOptions, Failure> {
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
            pay_dates: super::payday::pay_date_rules(file)?,
            repeat_guard: super::payday::repeat_guard(file),
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
    pub fn rate(&self, file: &FileConfig) -> u32 {
        self.rate.or(file.send.rate).unwrap_or(100).max(1)
    }

    pub fn concurrency(&self, file: &FileConfig) -> usize {
        self.concurrency
            .or(file.send.concurrency)
            .unwrap_or_else(|| (self.rate(file) as usize * 3 / 10).max(4))
    }

    /// The client, configured from DWOLLA_API_URL or DWOLLA_ENV, DWOLLA_KEY and DWOLLA_SECRET,
    /// each falling back to the configuration file's `[dwolla]` section.
    pub fn client(&self, file: &FileConfig) -> Result<crate::dwolla::Client, Failure> {
        let mut config =
            crate::dwolla::DwollaConfig::from_lookup(|name| config::env_or_file(file, name))
                .map_err(|err| Failure::config(err.to_string()))?;
        config.rate_per_second = self.rate(file);
        config.max_in_flight = self.concurrency(file);
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
    /// POSTs per payout within one run before it is left, in doubt, for the next run
    /// [default: 6].
    #[arg(long)]
    pub attempts_per_run: Option<u32>,
    /// No progress bar or progress log lines.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub dwolla: DwollaArgs,
}

impl SendingArgs {
    pub(super) fn send_config(
        &self,
        file: &FileConfig,
        batch: Option<i64>,
    ) -> Result<crate::sender::SendConfig, Failure> {
        let source = self
            .source_funding_source
            .clone()
            .or_else(|| file.dwolla.source_funding_source.clone())
            .ok_or_else(|| {
                Failure::config("set PAYRUN_SOURCE_FUNDING_SOURCE (or --source) to the funding source payouts are paid from".into())
            })?;
        let mut config = crate::sender::SendConfig::new(source, self.dwolla.concurrency(file));
        config.batch = batch;
        config.max_attempts = self
            .max_attempts
            .or(file.send.max_attempts)
            .unwrap_or(12)
            .max(1);
        config.attempts_per_run = self
            .attempts_per_run
            .or(file.send.attempts_per_run)
            .unwrap_or(6)
            .max(1);
        if self.no_progress {
            config.progress = crate::sender::progress::Display::Off;
        }
        Ok(config)
    }
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
    pub(super) fn dirs(&self, file: &FileConfig) -> Option<InboxDirs> {
        let inbox = self.inbox.clone().or_else(|| file.inbox.dir.clone())?;
        Some(InboxDirs::new(&inbox, &file.inbox))
    }

    pub(super) fn stable_for(&self, file: &FileConfig) -> Duration {
        Duration::from_secs(
            self.stable_seconds
                .or(file.inbox.stable_seconds)
                .unwrap_or(2),
        )
    }
}

/// What a slow client may hold on an HTTP endpoint payrun serves (`crate::listener`).
#[derive(Debug, Args)]
pub struct ListenerArgs {
    /// Close a connection whose request headers are not all in after this long [default:
    /// webhooks.header_timeout_seconds in the configuration file, else 5s].
    #[arg(long, value_parser = positive_duration)]
    pub header_timeout: Option<Duration>,
    /// Answer 408 and close the connection when a request's body is not all in this long after
    /// its headers [default: webhooks.body_timeout_seconds, else 10s].
    #[arg(long, value_parser = positive_duration)]
    pub body_timeout: Option<Duration>,
    /// Connections served at once; more wait until one closes [default:
    /// webhooks.max_connections, else 256].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
}

impl ListenerArgs {
    pub(super) fn limits(&self, file: &FileConfig, max_body_bytes: usize) -> ConnectionLimits {
        let section = &file.webhooks;
        let seconds = |value: Option<u64>| value.map(|s| Duration::from_secs(s.max(1)));
        ConnectionLimits {
            header_timeout: self
                .header_timeout
                .or(seconds(section.header_timeout_seconds))
                .unwrap_or(listener::DEFAULT_HEADER_TIMEOUT),
            body_timeout: self
                .body_timeout
                .or(seconds(section.body_timeout_seconds))
                .unwrap_or(listener::DEFAULT_BODY_TIMEOUT),
            max_connections: self
                .max_connections
                .map(|n| n as usize)
                .or(section.max_connections)
                .unwrap_or(listener::DEFAULT_MAX_CONNECTIONS)
                .max(1),
            max_body_bytes,
        }
    }
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    match crate::tracking::schedule::parse_duration(text)? {
        Duration::ZERO => Err("must be more than 0".to_string()),
        duration => Ok(duration),
    }
}

/// Tracking as `payrun.toml` sets it: every command that follows transfers (`track`, `run`,
/// `watch`, `serve`'s applier) starts from this, and its own flags win over it.
pub(super) fn track_config(file: &FileConfig) -> crate::tracking::TrackConfig {
    let mut track = crate::tracking::TrackConfig::standard();
    if let Some(days) = file.tracking.returns_window_days {
        track.returns_window_banking_days = days;
    }
    track
}

/// The webhook secret from `PAYRUN_WEBHOOK_SECRET`, else the file's `[webhooks] secret`.
pub(super) fn webhook_secret(file: &FileConfig) -> Option<crate::secret::Secret> {
    std::env::var(crate::webhooks::SECRET_ENV)
        .ok()
        .filter(|value| !value.is_empty())
        .or_else(|| file.webhooks.secret.clone())
        .map(crate::secret::Secret::new)
}

pub(super) fn parse_amount(text: &str) -> Result<Cents, String> {
    Cents::parse_payout_amount(text).map_err(|err| format!("{text:?} {err}"))
}
