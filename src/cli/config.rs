//! `payrun config check`: the effective configuration, secrets masked, and a test of the
//! credentials against Dwolla.

use std::path::Path;

use clap::{Args, Subcommand};

use super::runtime::runtime;
use super::settings::webhook_secret;
use super::{Failure, InboxArgs, IngestRules, SendingArgs};
use crate::config::{self, InboxDirs};
use crate::exit;

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

pub(super) fn run_check(
    ledger_path: &Path,
    file: &config::FileConfig,
    file_path: Option<&Path>,
    args: &ConfigCheckArgs,
) -> anyhow::Result<u8> {
    let options = IngestRules {
        allow_partial: false,
        max_amount: None,
        require_approval: false,
    }
    .options(file, 50)?;
    let dirs = InboxArgs {
        inbox: None,
        stable_seconds: None,
    }
    .dirs(file);
    println!(
        "configuration file   {}",
        file_path.map_or("none".to_string(), crate::names::shown)
    );
    println!("ledger               {}", crate::names::shown(ledger_path));
    println!("require_approval     {}", options.awaiting_approval);
    println!("max_amount           {}", options.limits.max_amount);
    println!("allow_partial        {}", options.allow_partial);
    print_inbox(dirs.as_ref());
    print_dwolla(file, args);
    print_webhooks(file);
    check_credentials(file, args)
}

fn shown(value: Option<String>) -> String {
    value.unwrap_or_else(|| "not set".to_string())
}

fn print_inbox(dirs: Option<&InboxDirs>) {
    match dirs {
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
}

/// The Dwolla settings, the secret masked.
fn print_dwolla(file: &config::FileConfig, args: &ConfigCheckArgs) {
    let lookup = |name: &str| config::env_or_file(file, name);
    let secret = lookup("DWOLLA_SECRET").map(crate::secret::Secret::new);
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
    println!("rate                 {}/s", args.sending.dwolla.rate(file));
    println!(
        "concurrency          {}",
        args.sending.dwolla.concurrency(file)
    );
}

/// The webhook listener's settings, the secret masked.
fn print_webhooks(file: &config::FileConfig) {
    let webhook_secret = webhook_secret(file);
    println!(
        "webhooks listen      {}",
        shown(file.webhooks.listen.clone())
    );
    println!(
        "webhook secret       {}",
        config::mask(webhook_secret.as_ref())
    );
    let limits = super::ListenerArgs {
        header_timeout: None,
        body_timeout: None,
        max_connections: None,
    }
    .limits(file, crate::webhooks::DEFAULT_MAX_BODY_BYTES);
    println!(
        "webhook clients      headers within {:?}, body within {:?}, {} at once",
        limits.header_timeout,
        limits.body_timeout,
        crate::names::plural(limits.max_connections as u64, "connection")
    );
}

/// Asks Dwolla for the API root with the configured credentials.
fn check_credentials(file: &config::FileConfig, args: &ConfigCheckArgs) -> anyhow::Result<u8> {
    let client = args.sending.dwolla.client(file)?;
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
