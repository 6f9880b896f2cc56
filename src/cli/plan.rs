//! `payrun plan`: what ingesting a file would do, touching nothing.

use std::path::{Path, PathBuf};

use clap::Args;

use super::IngestRules;
use crate::config::FileConfig;
use crate::exit;
use crate::ingest::IngestOptions;
use crate::ledger::postgres::PgLedger;
use crate::ledger::{Ledger, PlanLedger};

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The payout file to check.
    pub file: PathBuf,
    #[command(flatten)]
    pub rules: IngestRules,
    #[command(flatten)]
    pub payday: super::payday::PaydayArgs,
}

/// On SQLite a ledger file that does not exist yet is no error: there is nothing to compare
/// the file with.
pub(super) fn run(ledger_path: &Path, file: &FileConfig, args: &PlanArgs) -> anyhow::Result<u8> {
    let options = options(file, args)?;
    let ledger = if ledger_path.exists() {
        Some(Ledger::open_reader(ledger_path)?)
    } else {
        None
    };
    plan(ledger.as_ref(), &options, args)
}

/// A server that cannot be reached is exit 75, as for every command on PostgreSQL. A database
/// payrun has not made its ledger in is left without one, as a missing ledger file is.
pub(super) fn run_postgres(url: &str, file: &FileConfig, args: &PlanArgs) -> anyhow::Result<u8> {
    let options = options(file, args)?;
    plan(PgLedger::open_existing(url)?.as_ref(), &options, args)
}

fn options(file: &FileConfig, args: &PlanArgs) -> anyhow::Result<IngestOptions> {
    let mut options = args.rules.options(file, 50)?;
    args.payday.apply(&mut options);
    Ok(options)
}

fn plan(
    ledger: Option<&impl PlanLedger>,
    options: &IngestOptions,
    args: &PlanArgs,
) -> anyhow::Result<u8> {
    let now = super::payday::clock()?.now();
    let plan = crate::plan::plan_file(&args.file, options, ledger, now)?;
    print!("{}", crate::plan::render(&args.file, &plan));
    Ok(match plan {
        crate::plan::Plan::Invalid { .. } => exit::INVALID_INPUT,
        _ => exit::OK,
    })
}
