//! `payrun serve`: the webhook receiver (and, when configured, `POST /client-tokens`).

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tokio::net::TcpListener;

use super::runtime::{runtime, stop_signal};
use super::settings::{track_config, webhook_secret};
use super::{DwollaArgs, ListenerArgs};
use crate::config::FileConfig;
use crate::ledger::LedgerPlace;
use crate::tracking;
use crate::webhooks::{
    ApplierConfig, DEFAULT_MAX_BODY_BYTES, HEALTH_PATH, ServeConfig, WEBHOOK_PATH, serve,
};

/// Where `serve` listens when neither `--listen` nor `[webhooks] listen` says.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Flags of `payrun serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Put a TLS-terminating proxy in front of it for Dwolla [default:
    /// webhooks.listen in the configuration file, else 127.0.0.1:8080].
    #[arg(long)]
    pub listen: Option<String>,
    /// The largest webhook body accepted, in bytes; larger ones get 413.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// How often to try applying stored events to the ledger.
    #[arg(long, default_value = "2s", value_parser = tracking::schedule::parse_duration)]
    pub apply_every: Duration,
    /// Only store events; `payrun track` (or another writer) applies them.
    #[arg(long)]
    pub store_only: bool,
    #[command(flatten)]
    pub connections: ListenerArgs,
    #[command(flatten)]
    pub dwolla: DwollaArgs,
}

/// `payrun serve`: prints one JSON line with the webhook URL, then serves until SIGINT or
/// SIGTERM.
/// `ledger` is a ledger file (the spool is the file beside it) or a PostgreSQL ledger (the
/// spool is in it, shared by every `serve` on it).
pub(super) fn run(ledger: LedgerPlace, file: &FileConfig, args: &ServeArgs) -> anyhow::Result<u8> {
    let listen = args
        .listen
        .clone()
        .or_else(|| file.webhooks.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let env_secret = webhook_secret(file);
    let applier = if args.store_only {
        None
    } else {
        match args.dwolla.client(file) {
            Ok(client) => Some(ApplierConfig {
                client,
                track: track_config(file),
                every: args.apply_every,
            }),
            Err(failure) => {
                tracing::warn!(
                    "events will be stored but not applied ({}); `payrun track` applies them",
                    failure.message
                );
                None
            }
        }
    };
    // Drop-in components' client tokens, on the same port, when an API key is configured.
    let extra_routes = match crate::drop_in::ClientTokenConfig::from_env() {
        Ok(tokens) => {
            let client = args.dwolla.client(file).map_err(anyhow::Error::new)?;
            tracing::info!("serving POST /client-tokens for drop-in components");
            Some(crate::drop_in::router(tokens, client))
        }
        Err(crate::drop_in::ClientTokenConfigError::Missing) => None,
        Err(other) => return Err(super::Failure::config(other.to_string()).into()),
    };
    let config = ServeConfig {
        ledger,
        env_secret,
        limits: args.connections.limits(file, args.max_body_bytes),
        applier,
        extra_routes,
    };
    runtime()?.block_on(async move {
        let listener = TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let line = json!({
            "listening": format!("http://{addr}"),
            "webhook_url": format!("http://{addr}{WEBHOOK_PATH}"),
            "health_url": format!("http://{addr}{HEALTH_PATH}"),
        });
        {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{line}")?;
            stdout.flush()?;
        }
        tracing::info!(%addr, "receiving webhooks");
        let mut stopping = stop_signal();
        serve(listener, config, async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        })
        .await
    })?;
    Ok(crate::exit::OK)
}
