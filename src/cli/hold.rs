//! `payrun hold BATCH` / `payrun release BATCH`: stop a batch from being sent, and let it go.

use clap::Args;

use super::Failure;
use crate::exit;
use crate::ledger::{HoldChange, OperatorLedger};

#[derive(Debug, Args)]
pub struct HoldArgs {
    /// The batch id (see `payrun status`).
    pub batch: i64,
    /// Why, kept with the hold and shown by `status` and `run`.
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The batch id (see `payrun status`).
    pub batch: i64,
}

/// The operator named in holds and cancellations: `$USER`, else `unknown`.
pub(super) fn operator() -> String {
    std::env::var("USER")
        .ok()
        .filter(|user| !user.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

pub(super) fn run_hold(ledger: &mut dyn OperatorLedger, args: &HoldArgs) -> anyhow::Result<u8> {
    change(ledger, args.batch, true, args.reason.as_deref())
}

pub(super) fn run_release(
    ledger: &mut dyn OperatorLedger,
    args: &ReleaseArgs,
) -> anyhow::Result<u8> {
    change(ledger, args.batch, false, None)
}

fn change(
    ledger: &mut dyn OperatorLedger,
    batch: i64,
    hold: bool,
    reason: Option<&str>,
) -> anyhow::Result<u8> {
    let now = crate::ledger::timestamp(super::payday::clock()?.now());
    let refused = |message: String| {
        Err(Failure {
            status: exit::USAGE,
            message,
        }
        .into())
    };
    match (
        ledger.set_hold(batch, hold, &now, &operator(), reason)?,
        hold,
    ) {
        (HoldChange::Done, true) => println!(
            "batch {batch} is held: nothing more of it is sent until `payrun release {batch}` (payouts already committed for sending are not stopped)"
        ),
        (HoldChange::Done, false) => {
            println!("batch {batch} is released; the next send or run pays what is due")
        }
        (HoldChange::Unchanged, true) => println!("batch {batch} was already held"),
        (HoldChange::Unchanged, false) => println!("batch {batch} was not held"),
        (HoldChange::NoSuchBatch, _) => return refused(format!("there is no batch {batch}")),
        (HoldChange::Cancelled, _) => return refused(format!("batch {batch} was cancelled")),
    }
    Ok(exit::OK)
}
