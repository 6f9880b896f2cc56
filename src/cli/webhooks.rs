//! `payrun webhooks subscribe|list|delete|resume`: Dwolla webhook subscriptions.

use clap::{Args, Subcommand};

use super::runtime::runtime;
use super::{DwollaArgs, Failure};
use crate::config::FileConfig;
use crate::dwolla::DwollaError;
use crate::exit;
use crate::ledger::LedgerPlace;
use crate::webhooks::subscriptions::{delete, list, resume, subscribe};

#[derive(Debug, Args)]
pub struct WebhooksArgs {
    #[command(subcommand)]
    pub command: WebhooksCommand,
    #[command(flatten)]
    pub dwolla: DwollaArgs,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Subscribe URL (ending in /webhooks/dwolla) to every event; the secret is stored for
    /// `serve`. Without --secret a random one is made and printed once.
    Subscribe {
        #[arg(long)]
        url: String,
        #[arg(long, hide_env_values = true)]
        secret: Option<String>,
    },
    /// List the account's webhook subscriptions.
    List,
    /// Delete a subscription and forget its secret.
    Delete { id: String },
    /// Unpause a subscription (Dwolla pauses one after 400 failed deliveries in a row and a day
    /// without success) and have Dwolla send again every webhook of it that never got a 2xx:
    /// those created while it was paused are otherwise never sent.
    Resume { id: String },
}

pub(super) fn run(
    ledger: &LedgerPlace,
    file: &FileConfig,
    args: &WebhooksArgs,
) -> anyhow::Result<u8> {
    let client = args.dwolla.client(file)?;
    let runtime = runtime()?;
    let result = runtime.block_on(async {
        match &args.command {
            WebhooksCommand::Subscribe { url, secret } => {
                subscribe(&client, ledger, url, secret.clone()).await
            }
            WebhooksCommand::List => list(&client, ledger).await,
            WebhooksCommand::Delete { id } => delete(&client, ledger, id).await,
            WebhooksCommand::Resume { id } => resume(&client, id).await,
        }
    });
    result.map_err(|err| match err.downcast::<DwollaError>() {
        Ok(dwolla) => {
            let status = match dwolla.disposition() {
                crate::dwolla::Disposition::Final => exit::INTERNAL,
                _ => exit::UNAVAILABLE,
            };
            Failure {
                status,
                message: dwolla.to_string(),
            }
            .into()
        }
        Err(other) => other,
    })?;
    Ok(exit::OK)
}
