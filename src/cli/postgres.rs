//! The commands on a PostgreSQL ledger (`--ledger postgres://...`), the lease settings of its
//! workers, and the CA file its TLS connections trust.

use std::time::Duration;

use super::{
    Command, Failure, approve, cancel, client_tokens, connect, demo, hold, ingest, reconcile,
    report, run, send, serve, sim, status, track, watch, webhooks,
};
use crate::config::FileConfig;
use crate::exit;
use crate::ledger::LedgerPlace;
use crate::ledger::postgres::{Leases, PgLedger};

pub(super) fn dispatch(
    command: Command,
    url: &str,
    file: &FileConfig,
    file_path: Option<&std::path::Path>,
) -> anyhow::Result<u8> {
    use_ca_file(file)?;
    match command {
        Command::Ingest(args) => ingest::run_postgres(url, file, &args),
        Command::Send(args) => send::run_postgres(url, file, &args, leases(file)?),
        Command::Status(args) => status::run_postgres(url, &args),
        Command::Approve(args) => approve::run_postgres(url, &args),
        Command::Report(args) => report::run_postgres(url, &args),
        Command::Reconcile(args) => reconcile::run_postgres(url, file, &args),
        Command::Hold(args) => hold::run_hold(&mut PgLedger::open(url)?, &args),
        Command::Release(args) => hold::run_release(&mut PgLedger::open(url)?, &args),
        Command::Cancel(args) => cancel::run(&mut PgLedger::open(url)?, &args),
        Command::Track(args) => track::run_postgres(url, file, &args),
        Command::Run(args) => run::run_postgres(url, file, &args, leases(file)?),
        Command::Watch(args) => watch::run_postgres(url, file, &args, leases(file)?),
        Command::Webhooks(args) => webhooks::run(&LedgerPlace::Postgres(url.into()), file, &args),
        Command::Serve(args) => serve::run(LedgerPlace::Postgres(url.into()), file, &args),
        Command::Payees(command) => super::payees::run_postgres(url, file, &command),
        Command::Plan(args) => super::plan::run_postgres(url, file, &args),
        // A database payrun has not made its ledger in gets none, as a missing ledger file.
        Command::FundingSources(command) => {
            connect::run_funding_sources(|| Ok(PgLedger::open_existing(url)?), file, &command)
        }
        // Shows the ledger's URL without its password.
        Command::Config(super::config::ConfigCommand::Check(args)) => {
            let shown = crate::ledger::postgres::shown_url(url);
            super::config::run_check(std::path::Path::new(&shown), file, file_path, &args)
        }
        Command::Demo(args) => demo::run(&args, crate::demo::DemoLedger::Postgres(url.into())),
        // The commands that keep no ledger.
        Command::Sim(args) => sim::run(args).map(|()| exit::OK),
        Command::Accounts(command) => connect::run_accounts(file, &command),
        Command::Treasury(command) => connect::run_treasury(file, &command),
        Command::Parties(command) => connect::run_parties(file, &command),
        Command::Exchanges(command) => connect::run_exchanges(file, &command),
        Command::Transfers(command) => connect::run_transfers(file, &command),
        Command::ClientTokens(command) => client_tokens::run(file, &command),
    }
}

/// `[postgres] ca_file`, overridden by `PAYRUN_POSTGRES_CA_FILE`: checked here, before any
/// connection, so that a missing or invalid file is a configuration error that names it.
fn use_ca_file(file: &FileConfig) -> Result<(), Failure> {
    crate::ledger::postgres::use_ca_file(file.postgres.ca_file.clone());
    if let Some(path) = crate::ledger::postgres::ca_file() {
        crate::ledger::postgres::read_ca_file(&path).map_err(Failure::config)?;
    }
    Ok(())
}

/// `[postgres] lease_seconds` and `heartbeat_seconds`, overridden by `PAYRUN_LEASE_SECONDS`
/// and `PAYRUN_HEARTBEAT_SECONDS`.
fn leases(file: &FileConfig) -> Result<Leases, Failure> {
    let setting = |env: &str, value: Option<u64>, default: Duration| -> Result<Duration, Failure> {
        let from_env = match std::env::var(env) {
            Ok(text) => Some(
                text.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s > 0.0)
                    .ok_or_else(|| {
                        Failure::config(format!(
                            "{env}={text:?} is not a number of seconds above 0"
                        ))
                    })?,
            ),
            Err(_) => None,
        };
        Ok(from_env
            .map(Duration::from_secs_f64)
            .or(value.map(Duration::from_secs))
            .unwrap_or(default))
    };
    let defaults = Leases::default();
    let lease = setting(
        "PAYRUN_LEASE_SECONDS",
        file.postgres.lease_seconds,
        defaults.lease,
    )?;
    let heartbeat = setting(
        "PAYRUN_HEARTBEAT_SECONDS",
        file.postgres.heartbeat_seconds,
        defaults.heartbeat.min(lease / 3),
    )?;
    if heartbeat * 3 > lease {
        return Err(Failure::config(format!(
            "the heartbeat ({} s) must be at most a third of the lease ({} s), so that a live worker's claims never lapse",
            heartbeat.as_secs_f64(),
            lease.as_secs_f64()
        )));
    }
    Ok(Leases { lease, heartbeat })
}
