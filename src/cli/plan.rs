//! `payrun plan`: what ingesting a file would do, touching nothing.

use std::path::{Path, PathBuf};

use clap::Args;

use super::IngestRules;
use crate::config::FileConfig;
use crate::exit;
use crate::ledger::Ledger;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The payout file to check.
    pub file: PathBuf,
    #[command(flatten)]
    pub rules: IngestRules,
    #[command(flatten)]
    pub payday: super::payday::PaydayArgs,
}

pub(super) fn run(ledger_path: &Path, file: &FileConfig, args: &PlanArgs) -> anyhow::Result<u8> {
    let mut options = args.rules.options(file, 50)?;
    args.payday.apply(&mut options);
    let now = super::payday::clock()?.now();
    let ledger = if ledger_path.exists() {
        Some(Ledger::open_reader(ledger_path)?)
    } else {
        None
    };
    let plan = crate::plan::plan_file(&args.file, &options, ledger.as_ref(), now)?;
    print!("{}", crate::plan::render(&args.file, &plan));
    Ok(match plan {
        crate::plan::Plan::Invalid { .. } => exit::INVALID_INPUT,
        _ => exit::OK,
    })
}
