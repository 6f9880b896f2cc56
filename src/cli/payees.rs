//! `payrun payees import|list`: the payee directory from the command line.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;

use super::Failure;
use super::connect::{CommonArgs, print_json};
use super::runtime::runtime;
use super::table::Table;
use crate::config::FileConfig;
use crate::exit;
use crate::ingest::FileError;
use crate::ledger::postgres::PgLedger;
use crate::ledger::{self, Ledger, PayeeLedger};
use crate::onboard::payee_file::{PayeeFile, read_payee_file};
use crate::onboard::payees::{
    ImportResult, ImportStatus, account_text, onboard_all, plan_import, record_new_payees,
};

#[derive(Debug, Subcommand)]
pub enum PayeesCommand {
    /// Create each payee of a CSV file at Dwolla (external party + bank funding source), once,
    /// and remember reference -> funding source so that payout files can name `payee`.
    Import(PayeesImportArgs),
    /// The payee directory (account numbers as their last four digits).
    List(PayeesListArgs),
}

#[derive(Debug, Args)]
pub struct PayeesImportArgs {
    /// The payee file (CSV, UTF-8, with a header row).
    pub file: PathBuf,
    /// How many problems to print; all are counted.
    #[arg(long, default_value_t = 50)]
    pub max_errors: usize,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct PayeesListArgs {
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(
    ledger_path: &Path,
    file: &FileConfig,
    command: &PayeesCommand,
) -> anyhow::Result<u8> {
    match command {
        PayeesCommand::Import(args) => {
            run_import(|| Ok(Ledger::open_writer(ledger_path)?), file, args)
        }
        PayeesCommand::List(args) => run_list(&Ledger::open_reader(ledger_path)?, args),
    }
}

pub(super) fn run_postgres(
    url: &str,
    file: &FileConfig,
    command: &PayeesCommand,
) -> anyhow::Result<u8> {
    match command {
        PayeesCommand::Import(args) => {
            let open = || {
                let ledger = PgLedger::open(url)?;
                ledger.lock_payee_directory()?;
                Ok(ledger)
            };
            run_import(open, file, args)
        }
        PayeesCommand::List(args) => run_list(&PgLedger::open(url)?, args),
    }
}

/// `open` is called once the file is valid and the client configured, so that a wrong file
/// or missing credentials never wait for (or lock) the ledger.
fn run_import<L: PayeeLedger>(
    open: impl FnOnce() -> anyhow::Result<L>,
    file: &FileConfig,
    args: &PayeesImportArgs,
) -> anyhow::Result<u8> {
    let display_name = crate::names::shown(&args.file);
    let rows = match read_payee_file(&args.file).map_err(|err| Failure {
        status: exit::INVALID_INPUT,
        message: format!("cannot read {display_name}: {err}"),
    })? {
        PayeeFile::Valid(rows) => rows,
        PayeeFile::Invalid(errors) => return Ok(reject(&display_name, &errors, args.max_errors)),
    };
    let client = args.common.dwolla.client(file)?;
    let mut ledger = open()?;

    let directory = ledger.payees()?;
    let plan = match plan_import(&directory, &rows, &display_name) {
        Ok(plan) => plan,
        Err(conflicts) => return Ok(reject(&display_name, &conflicts, args.max_errors)),
    };
    let now = ledger::timestamp(time::OffsetDateTime::now_utc());
    record_new_payees(&mut ledger, &plan.work, &now)?;
    let mut results = plan.unchanged;
    let work = plan.work;

    let concurrency = args.common.dwolla.concurrency(file).clamp(1, 16);
    let outcome = runtime()?.block_on(onboard_all(&client, &mut ledger, work, concurrency))?;
    results.extend(outcome.results);
    results.sort_by_key(|r| r.line);

    print_import(&display_name, &results, args.common.json);
    if let Some(reason) = &outcome.stopped_by {
        eprintln!(
            "payrun: error: {reason}; run the same import again to finish (nothing is created twice)"
        );
        return Ok(exit::UNAVAILABLE);
    }
    Ok(
        if results.iter().any(|r| r.status == ImportStatus::Failed) {
            exit::INVALID_INPUT
        } else {
            exit::OK
        },
    )
}

/// Each payee's error on stderr, then the table (or JSON) and the one-line verdict.
fn print_import(display_name: &str, results: &[ImportResult], json: bool) {
    for result in results {
        if let Some(message) = &result.error {
            eprintln!("{display_name}:{}: {message}", result.line);
        }
    }
    if json {
        print_json(&serde_json::Value::Array(
            results.iter().map(ImportResult::to_json).collect(),
        ));
    } else {
        let mut table = Table::new(&[
            "line",
            "reference",
            "name",
            "account",
            "status",
            "external party",
            "funding source",
        ]);
        for r in results {
            table.row(vec![
                r.line.to_string(),
                r.reference.clone(),
                r.name.clone(),
                r.account.clone(),
                r.status.as_str().to_string(),
                r.external_party_id.clone().unwrap_or_default(),
                r.funding_source_id.clone().unwrap_or_default(),
            ]);
        }
        table.print();
        let count = |status: ImportStatus| results.iter().filter(|r| r.status == status).count();
        println!(
            "imported {display_name}: {} created, {} unchanged, {} failed",
            count(ImportStatus::Created) + count(ImportStatus::AdoptedParty),
            count(ImportStatus::Unchanged),
            count(ImportStatus::Failed)
        );
    }
}

/// Prints a file's problems and the one-line verdict; the status is 65.
fn reject(display_name: &str, errors: &[FileError], max_shown: usize) -> u8 {
    for problem in errors.iter().take(max_shown) {
        eprintln!("{problem}");
    }
    if errors.len() > max_shown {
        eprintln!(
            "{display_name}: ... and {}",
            crate::names::plural((errors.len() - max_shown) as u64, "more problem")
        );
    }
    println!(
        "rejected {display_name}: {}; nothing was imported",
        crate::names::plural(errors.len() as u64, "problem")
    );
    exit::INVALID_INPUT
}

fn run_list(ledger: &impl PayeeLedger, args: &PayeesListArgs) -> anyhow::Result<u8> {
    let payees = ledger.payees()?;
    if args.json {
        print_json(&serde_json::Value::Array(
            payees
                .iter()
                .map(|p| {
                    json!({
                        "reference": p.reference,
                        "name": p.display_name(),
                        "email": p.email,
                        "routingNumber": p.routing_number,
                        "accountLast4": p.account_last4,
                        "accountType": p.account_type,
                        "externalPartyId": p.external_party_id,
                        "fundingSourceId": p.funding_source_id,
                        "ready": p.funding_source_id.is_some(),
                        "updated": p.updated_at,
                    })
                })
                .collect(),
        ));
        return Ok(exit::OK);
    }
    let mut table = Table::new(&[
        "reference",
        "name",
        "email",
        "account",
        "routing",
        "funding source",
        "ready",
    ]);
    for p in &payees {
        table.row(vec![
            p.reference.clone(),
            p.display_name(),
            p.email.clone(),
            account_text(&p.account_type, &p.account_last4),
            p.routing_number.clone(),
            p.funding_source_id.clone().unwrap_or_default(),
            if p.funding_source_id.is_some() {
                "yes"
            } else {
                "no (import again)"
            }
            .to_string(),
        ]);
    }
    table.print();
    Ok(exit::OK)
}
