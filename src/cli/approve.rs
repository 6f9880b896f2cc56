//! `payrun approve`: let a batch that waits for approval be sent.

use std::path::Path;

use clap::Args;

use super::Failure;
use crate::exit;
use crate::ledger::{Approval, Ledger, OperatorLedger};

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The batch id (see `payrun status`).
    pub batch: i64,
}

pub(super) fn run(ledger_path: &Path, args: &ApproveArgs) -> anyhow::Result<u8> {
    approve(&mut Ledger::open_writer(ledger_path)?, args)
}

pub(super) fn run_postgres(url: &str, args: &ApproveArgs) -> anyhow::Result<u8> {
    approve(&mut crate::ledger::postgres::PgLedger::open(url)?, args)
}

fn approve(ledger: &mut impl OperatorLedger, args: &ApproveArgs) -> anyhow::Result<u8> {
    let now = crate::ledger::timestamp(time::OffsetDateTime::now_utc());
    match ledger.approve_batch(args.batch, &now)? {
        Approval::Approved => println!(
            "batch {} approved; the next send or run pays it",
            args.batch
        ),
        Approval::AlreadyApproved => {
            println!("batch {} needed no approval (already approved)", args.batch)
        }
        Approval::NoSuchBatch => {
            return Err(Failure {
                status: exit::USAGE,
                message: format!("there is no batch {}", args.batch),
            }
            .into());
        }
        Approval::Cancelled => {
            return Err(Failure {
                status: exit::USAGE,
                message: format!("batch {} was cancelled", args.batch),
            }
            .into());
        }
    }
    Ok(exit::OK)
}
