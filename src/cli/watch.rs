//! `payrun watch`: keep cycling on inbox events and a periodic rescan, optionally receiving
//! webhooks in the same process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::run::cycle;
use super::runtime::{runtime, stop_signal};
use super::settings::webhook_secret;
use super::{Failure, InboxArgs, IngestRules, ListenerArgs, SendingArgs};
use crate::config::FileConfig;
use crate::exit;
use crate::ledger::postgres::{Leases, PgLedger};
use crate::ledger::{Ledger, LedgerPlace};
use crate::sender::fleet::Fleet;
use time::OffsetDateTime;

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
    pub connections: ListenerArgs,
    #[command(flatten)]
    pub rules: IngestRules,
    #[command(flatten)]
    pub sending: SendingArgs,
}

pub(super) fn run(ledger_path: &Path, file: &FileConfig, args: &WatchArgs) -> anyhow::Result<u8> {
    let (cycle, rescan, client) = prepare(super::run::default_reports(ledger_path), file, args)?;
    let ledger = Ledger::open_writer(ledger_path)?;
    let place = LedgerPlace::File(ledger_path.to_path_buf());
    runtime()?.block_on(async {
        let stopping = stop_signal();
        let receiver = receive_beside(place, file, args, &client, &stopping).await?;
        crate::operate::watch(ledger, client, cycle, rescan, stopping).await?;
        wait_for(receiver).await
    })?;
    Ok(exit::OK)
}

/// `payrun watch` as one of several workers on a PostgreSQL ledger, for as long as it runs:
/// it joins the workers once, and each cycle sends under row claims (see `payrun send`).
/// Several machines may watch inboxes of their own; a file that two of them take is one batch.
pub(super) fn run_postgres(
    url: &str,
    file: &FileConfig,
    args: &WatchArgs,
    leases: Leases,
) -> anyhow::Result<u8> {
    let (cycle, rescan, client) = prepare(PathBuf::from("reports"), file, args)?;
    let mut ledger = PgLedger::open(url)?;
    ledger.set_leases(leases);
    let place = LedgerPlace::Postgres(url.to_string());
    runtime()?.block_on(async {
        let stopping = stop_signal();
        let fleet = Fleet::join(&mut ledger, &client).await?;
        let receiver = receive_beside(place, file, args, &client, &stopping).await?;
        let watched = crate::operate::watch(ledger, client, cycle, rescan, stopping).await;
        let left = fleet
            .leave(crate::ledger::timestamp(OffsetDateTime::now_utc()))
            .await;
        watched?;
        left?;
        wait_for(receiver).await
    })?;
    Ok(exit::OK)
}

fn prepare(
    default_reports: PathBuf,
    file: &FileConfig,
    args: &WatchArgs,
) -> anyhow::Result<(crate::operate::Cycle, Duration, crate::dwolla::Client)> {
    let cycle = cycle(
        default_reports,
        file,
        &args.inbox,
        &args.rules,
        &args.sending,
        None,
        false,
    )?;
    if cycle.dirs.is_none() {
        return Err(Failure::config(
            "watch needs an inbox: --inbox DIR or inbox.dir in the configuration file".into(),
        )
        .into());
    }
    let rescan = Duration::from_secs(
        args.rescan_seconds
            .or(file.inbox.rescan_seconds)
            .unwrap_or(30)
            .max(1),
    );
    let client = args.sending.dwolla.client(file)?;
    Ok((cycle, rescan, client))
}

type Receiving = Option<tokio::task::JoinHandle<anyhow::Result<()>>>;

/// The webhook endpoint beside the inbox, when `--listen` (or `webhooks.listen`) asks for one.
async fn receive_beside(
    place: LedgerPlace,
    file: &FileConfig,
    args: &WatchArgs,
    client: &crate::dwolla::Client,
    stopping: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Receiving> {
    let Some(listen) = args.listen.clone().or_else(|| file.webhooks.listen.clone()) else {
        return Ok(None);
    };
    let limits = args
        .connections
        .limits(file, crate::webhooks::DEFAULT_MAX_BODY_BYTES);
    let receiving = crate::webhooks::serve_beside(
        place,
        &listen,
        webhook_secret(file),
        limits,
        client,
        stopping.clone(),
    )
    .await?;
    Ok(Some(receiving))
}

async fn wait_for(receiver: Receiving) -> anyhow::Result<()> {
    if let Some(receiver) = receiver {
        receiver.await.context("the webhook endpoint failed")??;
    }
    Ok(())
}
