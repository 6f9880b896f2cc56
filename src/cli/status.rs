//! `payrun status`: batches and the count and amount of payouts in each state.

use std::path::Path;

use anyhow::Context;
use clap::Args;

use crate::exit;
use crate::ledger::{Ledger, OperatorLedger};
use crate::money::Cents;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(ledger_path: &Path, args: &StatusArgs) -> anyhow::Result<u8> {
    show(&Ledger::open_reader(ledger_path)?, args)
}

pub(super) fn run_postgres(url: &str, args: &StatusArgs) -> anyhow::Result<u8> {
    show(&crate::ledger::postgres::PgLedger::open(url)?, args)
}

fn show(ledger: &impl OperatorLedger, args: &StatusArgs) -> anyhow::Result<u8> {
    let summary = ledger.summary().context("cannot read the ledger summary")?;
    if args.json {
        let payouts: serde_json::Map<String, serde_json::Value> = summary
            .payouts
            .iter()
            .map(|(state, total)| (state.as_str().to_string(), serde_json::json!(total)))
            .collect();
        let value = serde_json::json!({ "payouts": payouts, "batches": summary.batches });
        println!("{value}");
        return Ok(exit::OK);
    }
    println!("{:<14} {:>9} {:>16}", "state", "payouts", "amount (USD)");
    for (state, total) in &summary.payouts {
        let amount = Cents::new(total.amount_cents).unwrap_or(Cents::ZERO);
        println!(
            "{:<14} {:>9} {:>16}",
            state.as_str(),
            total.count,
            amount.to_string()
        );
    }
    println!();
    println!(
        "{:>5}  {:<24} {:<18} {:>7} {:>14}  {:<10}  {:<36}  file",
        "batch", "received", "status", "rows", "total (USD)", "pay date", "goes"
    );
    for batch in &summary.batches {
        let total = Cents::new(batch.total_cents).unwrap_or(Cents::ZERO);
        println!(
            "{:>5}  {:<24} {:<18} {:>7} {:>14}  {:<10}  {:<36}  {}",
            batch.id,
            batch.received_at,
            batch.status,
            batch.row_count,
            total.to_string(),
            batch.pay_date.as_deref().unwrap_or("-"),
            super::payday::when_it_goes(batch),
            crate::names::escape(&batch.file_name)
        );
    }
    for waiting in ledger.waiting_batches()? {
        println!("{waiting}");
    }
    Ok(exit::OK)
}
