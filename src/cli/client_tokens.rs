//! `payrun client-tokens serve`: `POST /client-tokens` alone, for Dwolla's drop-in components.

use std::net::SocketAddr;

use clap::{Args, Subcommand};

use super::runtime::{runtime, stop_signal};
use super::{DwollaArgs, Failure, ListenerArgs};
use crate::config::FileConfig;
use crate::drop_in::{ClientTokenConfig, router};
use crate::exit;

#[derive(Debug, Subcommand)]
pub enum ClientTokensCommand {
    /// Serve POST /client-tokens alone (the API key comes from PAYRUN_CLIENT_TOKEN_API_KEY).
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub connections: ListenerArgs,
    #[command(flatten)]
    pub dwolla: DwollaArgs,
}

pub(super) fn run(file: &FileConfig, command: &ClientTokensCommand) -> anyhow::Result<u8> {
    let ClientTokensCommand::Serve(args) = command;
    let config = ClientTokenConfig::from_env().map_err(|err| Failure::config(err.to_string()))?;
    let client = args.dwolla.client(file)?;
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|err| Failure {
                status: exit::UNAVAILABLE,
                message: format!("cannot listen on {}: {err}", args.listen),
            })?;
        let address = listener.local_addr()?;
        println!("serving POST http://{address}/client-tokens");
        let limits = args
            .connections
            .limits(file, crate::webhooks::DEFAULT_MAX_BODY_BYTES);
        crate::listener::serve(listener, router(config, client), limits, stop_signal()).await;
        Ok(exit::OK)
    })
}
