//! `payrun watch`: keep cycling on inbox events and a periodic rescan, optionally receiving
//! webhooks in the same process.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::run::cycle;
use super::runtime::{runtime, stop_signal};
use super::settings::webhook_secret;
use super::{Failure, InboxArgs, IngestRules, ListenerArgs, SendingArgs};
use crate::config::FileConfig;
use crate::exit;
use crate::ledger::Ledger;

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
    let cycle = cycle(
        ledger_path,
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
    let ledger = Ledger::open_writer(ledger_path)?;
    let listen = args.listen.clone().or_else(|| file.webhooks.listen.clone());
    runtime()?.block_on(async {
        let stopping = stop_signal();
        let receiver = match listen {
            Some(listen) => {
                let secret = webhook_secret(file);
                let limits = args
                    .connections
                    .limits(file, crate::webhooks::DEFAULT_MAX_BODY_BYTES);
                Some(
                    crate::webhooks::serve_beside(
                        crate::ledger::LedgerPlace::File(ledger_path.to_path_buf()),
                        &listen,
                        secret,
                        limits,
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
