//! `payrun plan FILE`: what ingesting a file would do, touching nothing. The file goes through
//! exactly the checks of a real ingest, into a ledger in memory that is thrown away.

use std::fmt::Write as _;
use std::path::Path;

use crate::ingest::{self, FileError, IngestOptions, IngestOutcome};
use crate::ledger::{DestinationTotal, Ledger, PayoutLine};
use crate::money::Cents;

#[derive(Debug)]
pub enum Plan {
    Valid(ValidPlan),
    Invalid {
        errors: Vec<FileError>,
        n_errors: u64,
    },
    /// The real ledger already holds this content.
    AlreadyIngested {
        batch_id: i64,
    },
}

#[derive(Debug)]
pub struct ValidPlan {
    pub n_payouts: u64,
    pub total: Cents,
    pub destinations: Vec<DestinationTotal>,
    pub largest: Vec<PayoutLine>,
    /// The previous batch in the real ledger: its id and total.
    pub previous: Option<(i64, Cents)>,
}

/// Plans `path` against `ledger` (the real one, read only; `None` when there is none yet).
pub fn plan_file(
    path: &Path,
    options: &IngestOptions,
    ledger: Option<&Ledger>,
) -> anyhow::Result<Plan> {
    if let Some(ledger) = ledger {
        let sha256 = ingest::file_sha256(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", crate::names::shown(path)))?;
        if let Some(existing) = ledger.batch_by_sha256(&sha256)? {
            return Ok(Plan::AlreadyIngested {
                batch_id: existing.id,
            });
        }
    }
    let mut scratch = Ledger::open_scratch()?;
    let outcome =
        ingest::ingest_file(&mut scratch, path, options, time::OffsetDateTime::now_utc())?;
    Ok(match outcome {
        IngestOutcome::Accepted {
            batch_id,
            n_payouts,
            total,
            ..
        } => Plan::Valid(ValidPlan {
            n_payouts,
            total,
            destinations: scratch.destination_totals(batch_id)?,
            largest: scratch.largest_payouts(batch_id, 5)?,
            previous: ledger.map(Ledger::latest_batch).transpose()?.flatten(),
        }),
        IngestOutcome::Invalid { errors, n_errors } => Plan::Invalid { errors, n_errors },
        IngestOutcome::AlreadyIngested(existing) => Plan::AlreadyIngested {
            batch_id: existing.id,
        },
    })
}

/// The plan as text for a person.
pub fn render(path: &Path, plan: &Plan) -> String {
    let mut out = String::new();
    let name = crate::names::shown(path);
    match plan {
        Plan::AlreadyIngested { batch_id } => {
            let _ = writeln!(
                out,
                "{name} is already batch {batch_id}; ingesting it again would add nothing."
            );
        }
        Plan::Invalid { errors, n_errors } => {
            let _ = writeln!(
                out,
                "{name} is invalid ({}); ingest would reject it whole:",
                crate::names::plural(*n_errors, "problem")
            );
            for error in errors {
                let _ = writeln!(out, "  {error}");
            }
        }
        Plan::Valid(plan) => {
            let _ = writeln!(
                out,
                "{name}: valid, {}, total {} USD",
                crate::names::plural(plan.n_payouts, "payout"),
                plan.total
            );
            if let Some((previous_id, previous_total)) = plan.previous {
                let change = plan.total.get() - previous_total.get();
                let percent = if previous_total.get() > 0 {
                    format!(
                        " ({:+.1} %)",
                        change as f64 * 100.0 / previous_total.get() as f64
                    )
                } else {
                    String::new()
                };
                let sign = if change < 0 { "-" } else { "+" };
                let magnitude = Cents::new(change.abs()).unwrap_or(Cents::ZERO);
                let _ = writeln!(
                    out,
                    "  previous batch {previous_id}: total {previous_total} USD; change {sign}{magnitude}{percent}"
                );
            }
            let _ = writeln!(out, "\nLargest payouts:");
            for payout in &plan.largest {
                let who = payout.name.as_deref().unwrap_or("");
                let _ = writeln!(
                    out,
                    "  line {:>6}  {:>12}  {:<16} {who}",
                    payout.line,
                    payout.amount.to_string(),
                    payout.reference
                );
            }
            let twice: Vec<&DestinationTotal> = plan
                .destinations
                .iter()
                .filter(|d| d.n_payouts > 1)
                .collect();
            let _ = writeln!(
                out,
                "\nPayees paid more than once in this file: {}",
                twice.len()
            );
            for destination in &twice {
                let _ = writeln!(
                    out,
                    "  {}: {} payouts, {} USD ({})",
                    destination.destination,
                    destination.n_payouts,
                    destination.total,
                    destination.references.join(", ")
                );
            }
            let _ = writeln!(
                out,
                "\nTotals per destination ({}):",
                plan.destinations.len()
            );
            for destination in &plan.destinations {
                let _ = writeln!(
                    out,
                    "  {}  {:>3} payouts  {:>12} USD",
                    destination.destination,
                    destination.n_payouts,
                    destination.total.to_string()
                );
            }
        }
    }
    out
}
