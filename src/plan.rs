//! `payrun plan FILE`: what ingesting a file would do, touching nothing. The file goes through
//! exactly the checks of a real ingest, into a ledger in memory that is thrown away; the real
//! ledger (SQLite or PostgreSQL, [`PlanLedger`]) is only read: its payee directory, the same
//! payroll, repeats of recent batches, and the previous batch.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::ingest::{FileError, IngestOptions, IngestOutcome};
use crate::ledger::{
    self, BatchWriter, DestinationTotal, ExistingBatch, IngestLedger, Ledger, NewBatch, PayoutLine,
    PlanLedger, RepeatOverlap,
};
use crate::money::Cents;
use crate::payday::Schedule;

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
    /// Its pay date and send window.
    pub schedule: Schedule,
    /// How much it repeats a recent batch of the real ledger, and whether that holds it.
    pub repeats: Option<(RepeatOverlap, bool)>,
}

/// Plans `path` against `ledger` (the real one, read only, on either engine; `None` when there
/// is none yet).
pub fn plan_file<L: PlanLedger>(
    path: &Path,
    options: &IngestOptions,
    ledger: Option<&L>,
    now: time::OffsetDateTime,
) -> anyhow::Result<Plan> {
    let mut scratch = Ledger::open_scratch()?;
    // Read whether or not the file names payees: the ingest hands its ledger to a writer
    // thread, and a SQLite connection cannot be shared with one, so the scratch cannot ask
    // the real ledger later.
    let payees = match ledger {
        Some(ledger) => ledger.payee_funding_sources()?,
        None => HashMap::new(),
    };
    let mut planning = Scratch {
        ledger: &mut scratch,
        payees,
    };
    let outcome = crate::ingest::ingest_file(&mut planning, path, options, now)?;
    Ok(match outcome {
        IngestOutcome::Accepted {
            batch_id,
            n_payouts,
            total,
            schedule,
            ..
        } => {
            let pay_date = schedule.pay_date.map(|date| date.to_string());
            let mut repeats = None;
            if let Some(ledger) = ledger {
                if let Some((records, _)) = scratch.batch_identity(batch_id)?
                    && let Some(existing) =
                        ledger.batch_by_identity(&records, pay_date.as_deref())?
                {
                    return Ok(Plan::AlreadyIngested {
                        batch_id: existing.id,
                    });
                }
                let guard = options.repeat_guard;
                let since = now - time::Duration::days(i64::from(guard.window_days));
                let since = crate::ledger::timestamp(since);
                repeats = ledger
                    .repeat_overlap_of(&scratch, batch_id, &since, pay_date.as_deref())?
                    .map(|overlap| {
                        let holds = !guard.allow_repeat
                            && overlap.n_repeated * 100
                                >= u64::from(guard.min_overlap_percent) * overlap.n_payouts.max(1);
                        (overlap, holds)
                    });
            }
            Plan::Valid(ValidPlan {
                n_payouts,
                total,
                destinations: scratch.destination_totals(batch_id)?,
                largest: scratch.largest_payouts(batch_id, 5)?,
                previous: ledger.map(L::latest_batch).transpose()?.flatten(),
                schedule,
                repeats,
            })
        }
        IngestOutcome::Invalid { errors, n_errors } => Plan::Invalid { errors, n_errors },
        IngestOutcome::AlreadyIngested(existing) => Plan::AlreadyIngested {
            batch_id: existing.id,
        },
    })
}

/// The scratch ledger a plan ingests into, with the real ledger's payee directory, so that a
/// file naming payees is checked against the payees it would pay.
struct Scratch<'a> {
    ledger: &'a mut Ledger,
    /// Reference -> funding source id, from the real ledger.
    payees: HashMap<String, String>,
}

impl IngestLedger for Scratch<'_> {
    fn batches_by_sha256(&self, sha256: &str) -> ledger::Result<Vec<ExistingBatch>> {
        self.ledger.batches_by_sha256(sha256)
    }

    fn payee_funding_sources(&self) -> ledger::Result<HashMap<String, String>> {
        Ok(self.payees.clone())
    }

    fn write_batch<T>(
        &mut self,
        batch: &NewBatch<'_>,
        write: impl FnOnce(&mut dyn BatchWriter) -> ledger::Result<T>,
    ) -> ledger::Result<T> {
        IngestLedger::write_batch(self.ledger, batch, write)
    }
}

/// The pay date, when the batch would go, and how much it repeats a recent batch.
fn render_schedule(out: &mut String, plan: &ValidPlan) {
    if let Some((overlap, holds)) = &plan.repeats {
        let consequence = if *holds {
            "ingest would hold it for approval (--allow-repeat lets a deliberate repeat through)"
        } else {
            "below the repeat guard's threshold, or allowed"
        };
        let _ = writeln!(out, "  repeats: {overlap}; {consequence}");
    }
    let schedule = &plan.schedule;
    let Some(pay_date) = schedule.pay_date else {
        let _ = writeln!(out, "  no pay date: sent as soon as a run sends");
        return;
    };
    let when = match schedule.send_after {
        _ if schedule.send_late => "sent as soon as possible, late".to_string(),
        Some(after) => format!("sent from {}", crate::ledger::timestamp(after)),
        None => "sent as soon as a run sends".to_string(),
    };
    let by = schedule
        .send_by
        .map(|by| format!(", on time until {}", crate::ledger::timestamp(by)))
        .unwrap_or_default();
    let _ = writeln!(out, "  pay date {pay_date}: {when}{by}");
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
        Plan::Valid(plan) => render_valid(&mut out, &name.to_string(), plan),
    }
    out
}

fn render_valid(out: &mut String, name: &str, plan: &ValidPlan) {
    let _ = writeln!(
        out,
        "{name}: valid, {}, total {} USD",
        crate::names::plural(plan.n_payouts, "payout"),
        plan.total
    );
    render_schedule(out, plan);
    if let Some(previous) = plan.previous {
        render_change(out, plan.total, previous);
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
    render_destinations(out, &plan.destinations);
}

/// "previous batch 3: total 100.00 USD; change +5.00 (+5.0 %)".
fn render_change(out: &mut String, total: Cents, (previous_id, previous_total): (i64, Cents)) {
    let change = total.get() - previous_total.get();
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

/// Payees paid more than once, then the total per destination.
fn render_destinations(out: &mut String, destinations: &[DestinationTotal]) {
    let twice: Vec<&DestinationTotal> = destinations.iter().filter(|d| d.n_payouts > 1).collect();
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
    let _ = writeln!(out, "\nTotals per destination ({}):", destinations.len());
    for destination in destinations {
        let _ = writeln!(
            out,
            "  {}  {:>3} payouts  {:>12} USD",
            destination.destination,
            destination.n_payouts,
            destination.total.to_string()
        );
    }
}
