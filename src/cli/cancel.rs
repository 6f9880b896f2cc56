//! `payrun cancel BATCH [--reference REF...] --reason TEXT`: pending payouts become
//! `cancelled`; anything already committed for sending is left alone and named.

use clap::Args;

use super::Failure;
use crate::exit;
use crate::ledger::OperatorLedger;

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The batch id (see `payrun status`).
    pub batch: i64,
    /// Only the payouts with this reference (repeatable) [default: every payout of the batch].
    #[arg(long = "reference", value_name = "REF")]
    pub references: Vec<String>,
    /// Why, kept in each payout's history and shown in the reports.
    #[arg(long)]
    pub reason: String,
}

pub(super) fn run(ledger: &mut dyn OperatorLedger, args: &CancelArgs) -> anyhow::Result<u8> {
    let reason = args.reason.trim();
    if reason.is_empty() {
        return Err(usage(
            "--reason must say why the payouts are cancelled".into(),
        ));
    }
    let now = crate::ledger::timestamp(super::payday::clock()?.now());
    let operator = super::hold::operator();
    let references = (!args.references.is_empty()).then_some(args.references.as_slice());
    let batch = args.batch;
    let Some(report) = ledger.cancel_payouts(batch, references, &now, &operator, reason)? else {
        return Err(usage(format!("there is no batch {batch}")));
    };
    for reference in &report.unknown_references {
        eprintln!("payrun: batch {batch} has no payout with reference {reference:?}");
    }
    println!(
        "batch {batch}: {} cancelled by {operator}{}",
        payouts(report.cancelled.len()),
        if report.batch_cancelled {
            "; the whole batch is cancelled"
        } else {
            ""
        }
    );
    if !report.already_cancelled.is_empty() {
        println!(
            "{} were already cancelled",
            payouts(report.already_cancelled.len())
        );
    }
    if !report.past_pending.is_empty() {
        println!(
            "{} not cancelled: already committed for sending, so they may be at Dwolla (cancel a transfer there, if it is still pending):",
            payouts(report.past_pending.len())
        );
        for (line, reference, state) in &report.past_pending {
            println!("  line {line} {reference}: {}", state.as_str());
        }
    }
    Ok(if !report.unknown_references.is_empty() {
        exit::USAGE
    } else if !report.past_pending.is_empty() {
        exit::ATTENTION
    } else {
        exit::OK
    })
}

fn usage(message: String) -> anyhow::Error {
    Failure {
        status: exit::USAGE,
        message,
    }
    .into()
}

/// "1 payout", "3 payouts".
fn payouts(n: usize) -> String {
    if n == 1 {
        "1 payout".into()
    } else {
        format!("{n} payouts")
    }
}
