//! The summary: per batch and overall, count and total per state (exceptions first), the
//! exceptions grouped by reason with what to do, and the tie-out that proves the input total
//! (the files' accepted payouts) equals the sum over states to the cent.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::{action, decimal};
use crate::ledger::{BatchSelection, PayoutRecord, ReportBatch, ReportLedger, text};
use crate::payout::PayoutState;

/// States in report order: the exceptions first, then work in progress, then the settled.
pub const REPORT_ORDER: [PayoutState; 9] = [
    PayoutState::Rejected,
    PayoutState::Failed,
    PayoutState::Returned,
    PayoutState::NeedsReview,
    PayoutState::Pending,
    PayoutState::Submitting,
    PayoutState::Submitted,
    PayoutState::Processed,
    PayoutState::Cancelled,
];

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Which batches were asked for.
    pub selection: SelectionEcho,
    /// The latest change to any selected payout (or, with no payouts, the latest batch
    /// received): the report's "as of", taken from the ledger so reports stay deterministic.
    pub ledger_as_of: Option<String>,
    pub overall: Totals,
    /// Exceptions over all selected batches, grouped by state and failure code.
    pub exceptions: Vec<ExceptionReason>,
    pub batches: Vec<BatchSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SelectionEcho {
    pub batch: Option<i64>,
    pub since: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchSummary {
    pub batch_id: i64,
    pub file: String,
    pub received_at: String,
    pub status: String,
    /// Rows of the file refused at ingest (`--allow-partial`); not payouts, not in the totals.
    pub rejected_rows: u64,
    /// The pay date (YYYY-MM-DD), or none: sent as soon as possible.
    pub pay_date: Option<String>,
    /// When a run first committed its payouts for sending.
    pub sent_at: Option<String>,
    /// Sent after its send window closed (or accepted with `--send-late`): it may settle after
    /// the pay date.
    pub late: bool,
    pub held: bool,
    /// Cancelled payouts grouped by reason (which names the operator).
    pub cancellations: Vec<Cancellation>,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cancellation {
    pub reason: String,
    pub count: u64,
    pub total: String,
    pub total_cents: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub payouts: u64,
    pub total: String,
    pub total_cents: i64,
    pub needing_attention: u64,
    pub needing_attention_total: String,
    pub needing_attention_total_cents: i64,
    /// Every state, zero or not, in [`REPORT_ORDER`].
    pub states: Vec<StateLine>,
    pub tie_out: TieOut,
}

#[derive(Debug, Clone, Serialize)]
pub struct StateLine {
    #[serde(serialize_with = "state_name")]
    pub state: PayoutState,
    pub needs_attention: bool,
    pub count: u64,
    pub total: String,
    pub total_cents: i64,
}

/// Input (what the files asked to pay) against the ledger (the sum over states).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TieOut {
    pub input_payouts: u64,
    pub input_total: String,
    pub input_total_cents: i64,
    pub payouts_over_states: u64,
    pub sum_over_states: String,
    pub sum_over_states_cents: i64,
    /// `sum_over_states - input_total`; zero when it ties out.
    pub difference: String,
    pub difference_cents: i64,
    pub ties_out: bool,
    /// Of the input, cancelled before sending: never paid, still part of the sum over states.
    pub cancelled_payouts: u64,
    pub cancelled_total: String,
    pub cancelled_total_cents: i64,
    /// The input less the cancelled: what is paid or still to be paid.
    pub payable_total: String,
    pub payable_total_cents: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExceptionReason {
    #[serde(serialize_with = "state_name")]
    pub state: PayoutState,
    pub failure_code: Option<String>,
    pub description: Option<String>,
    pub count: u64,
    pub total: String,
    pub total_cents: i64,
    pub action: String,
}

fn state_name<S: serde::Serializer>(state: &PayoutState, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(state.as_str())
}

impl Summary {
    /// True when every batch and the whole selection tie out.
    pub fn ties_out(&self) -> bool {
        self.overall.tie_out.ties_out && self.batches.iter().all(|b| b.totals.tie_out.ties_out)
    }

    pub fn needing_attention(&self) -> u64 {
        self.overall.needing_attention
    }
}

/// Reads the selected batches and streams their payouts once to total them; the caller holds
/// a snapshot if it needs one.
pub fn build_summary(
    ledger: &impl ReportLedger,
    selection: &BatchSelection,
) -> anyhow::Result<Summary> {
    let batches = ledger.report_batches(selection)?;
    let mut builder = SummaryBuilder::new(selection, batches);
    for index in 0..builder.batches.len() {
        let batch_id = builder.batches[index].id;
        ledger.for_each_batch_payout(batch_id, false, |payout| -> anyhow::Result<()> {
            builder.add(index, payout);
            Ok(())
        })?;
    }
    Ok(builder.finish())
}

/// Totals payouts as they stream past, so that the CSV writer can produce the summary in the
/// same single pass over the ledger.
#[derive(Debug)]
pub struct SummaryBuilder {
    selection: SelectionEcho,
    pub batches: Vec<ReportBatch>,
    /// Per batch, count and cents per state in [`PayoutState::ALL`] order.
    counts: Vec<[(u64, i64); 9]>,
    last_change: Vec<Option<String>>,
    /// Exceptions by (rank in [`REPORT_ORDER`], failure code).
    reasons: BTreeMap<(usize, Option<String>), ReasonTotal>,
    /// Cancelled payouts by (batch index, reason): count and cents.
    cancellations: BTreeMap<(usize, String), (u64, i64)>,
}

#[derive(Debug)]
struct ReasonTotal {
    state: PayoutState,
    /// The smallest description and path of the group, so reports are deterministic.
    description: Option<String>,
    path: Option<String>,
    count: u64,
    cents: i64,
}

impl SummaryBuilder {
    pub fn new(selection: &BatchSelection, batches: Vec<ReportBatch>) -> SummaryBuilder {
        SummaryBuilder {
            selection: SelectionEcho {
                batch: selection.batch,
                since: selection.received_since.clone(),
            },
            counts: vec![[(0, 0); 9]; batches.len()],
            last_change: vec![None; batches.len()],
            batches,
            reasons: BTreeMap::new(),
            cancellations: BTreeMap::new(),
        }
    }

    /// Adds one payout of `self.batches[batch_index]`.
    pub fn add(&mut self, batch_index: usize, payout: &PayoutRecord<'_>) {
        let slot = PayoutState::ALL
            .iter()
            .position(|s| *s == payout.state)
            .unwrap_or(0);
        let entry = &mut self.counts[batch_index][slot];
        entry.0 += 1;
        entry.1 += payout.amount_cents;
        let last = &mut self.last_change[batch_index];
        if last
            .as_deref()
            .is_none_or(|last| payout.updated_at > last.as_bytes())
        {
            *last = Some(text(payout.updated_at).into_owned());
        }
        if payout.state == PayoutState::Cancelled {
            let reason = payout.cancel_reason.map_or_else(
                || "no reason recorded".to_string(),
                |r| text(r).into_owned(),
            );
            let entry = self.cancellations.entry((batch_index, reason)).or_default();
            entry.0 += 1;
            entry.1 += payout.amount_cents;
        }
        if payout.state.needs_attention() {
            let rank = REPORT_ORDER
                .iter()
                .position(|s| *s == payout.state)
                .unwrap_or(REPORT_ORDER.len());
            let reason = self
                .reasons
                .entry((
                    rank,
                    payout.failure_code.map(|code| text(code).into_owned()),
                ))
                .or_insert_with(|| ReasonTotal {
                    state: payout.state,
                    description: None,
                    path: None,
                    count: 0,
                    cents: 0,
                });
            reason.count += 1;
            reason.cents += payout.amount_cents;
            keep_smallest(
                &mut reason.description,
                payout.failure_description.map(text),
            );
            keep_smallest(&mut reason.path, payout.failure_path.map(text));
        }
    }

    pub fn finish(self) -> Summary {
        let mut overall: BTreeMap<PayoutState, (u64, i64)> = BTreeMap::new();
        let (mut input_payouts, mut input_cents) = (0u64, 0i64);
        let mut as_of: Option<String> = None;
        let mut summaries = Vec::with_capacity(self.batches.len());
        for (index, ((batch, counts), last_change)) in self
            .batches
            .iter()
            .zip(&self.counts)
            .zip(self.last_change)
            .enumerate()
        {
            let counts: BTreeMap<PayoutState, (u64, i64)> = PayoutState::ALL
                .iter()
                .copied()
                .zip(counts.iter().copied())
                .collect();
            for (state, (count, cents)) in &counts {
                let entry = overall.entry(*state).or_default();
                entry.0 += count;
                entry.1 += cents;
            }
            input_payouts += batch.row_count;
            input_cents += batch.total_cents;
            let changed = last_change.unwrap_or_else(|| batch.received_at.clone());
            if Some(&changed) > as_of.as_ref() {
                as_of = Some(changed);
            }
            let cancellations = self
                .cancellations
                .range((index, String::new())..(index + 1, String::new()))
                .map(|((_, reason), (count, cents))| Cancellation {
                    reason: reason.clone(),
                    count: *count,
                    total: decimal(*cents),
                    total_cents: *cents,
                })
                .collect();
            summaries.push(batch_summary(batch, &counts, cancellations));
        }
        let exceptions = self
            .reasons
            .into_iter()
            .map(|((_, code), reason)| ExceptionReason {
                state: reason.state,
                action: action(
                    reason.state,
                    code.as_deref(),
                    reason.path.as_deref(),
                    "ready",
                )
                .into_owned(),
                failure_code: code,
                description: reason.description,
                count: reason.count,
                total: decimal(reason.cents),
                total_cents: reason.cents,
            })
            .collect();
        Summary {
            selection: self.selection,
            ledger_as_of: as_of,
            overall: totals(&overall, input_payouts, input_cents),
            exceptions,
            batches: summaries,
        }
    }
}

fn keep_smallest(kept: &mut Option<String>, candidate: Option<Cow<'_, str>>) {
    if let Some(candidate) = candidate
        && kept.as_deref().is_none_or(|kept| *candidate < *kept)
    {
        *kept = Some(candidate.into_owned());
    }
}

fn batch_summary(
    batch: &ReportBatch,
    counts: &BTreeMap<PayoutState, (u64, i64)>,
    cancellations: Vec<Cancellation>,
) -> BatchSummary {
    BatchSummary {
        batch_id: batch.id,
        file: batch.file_name.clone(),
        received_at: batch.received_at.clone(),
        status: batch.status.clone(),
        rejected_rows: batch.rejected_rows,
        pay_date: batch.pay_date.clone(),
        sent_at: batch.sent_at.clone(),
        late: batch.late,
        held: batch.held_at.is_some(),
        cancellations,
        totals: totals(counts, batch.row_count, batch.total_cents),
    }
}

fn totals(
    counts: &BTreeMap<PayoutState, (u64, i64)>,
    input_payouts: u64,
    input_cents: i64,
) -> Totals {
    let states: Vec<StateLine> = REPORT_ORDER
        .iter()
        .map(|state| {
            let (count, cents) = counts.get(state).copied().unwrap_or_default();
            StateLine {
                state: *state,
                needs_attention: state.needs_attention(),
                count,
                total: decimal(cents),
                total_cents: cents,
            }
        })
        .collect();
    let payouts: u64 = states.iter().map(|s| s.count).sum();
    let sum_cents: i64 = states.iter().map(|s| s.total_cents).sum();
    let attention = states.iter().filter(|s| s.needs_attention);
    let (needing_attention, attention_cents) = attention.fold((0, 0), |(count, cents), s| {
        (count + s.count, cents + s.total_cents)
    });
    let difference = sum_cents - input_cents;
    let (cancelled_payouts, cancelled_cents) = counts
        .get(&PayoutState::Cancelled)
        .copied()
        .unwrap_or_default();
    Totals {
        payouts,
        total: decimal(sum_cents),
        total_cents: sum_cents,
        needing_attention,
        needing_attention_total: decimal(attention_cents),
        needing_attention_total_cents: attention_cents,
        states,
        tie_out: TieOut {
            input_payouts,
            input_total: decimal(input_cents),
            input_total_cents: input_cents,
            payouts_over_states: payouts,
            sum_over_states: decimal(sum_cents),
            sum_over_states_cents: sum_cents,
            difference: decimal(difference),
            difference_cents: difference,
            ties_out: difference == 0 && payouts == input_payouts,
            cancelled_payouts,
            cancelled_total: decimal(cancelled_cents),
            cancelled_total_cents: cancelled_cents,
            payable_total: decimal(input_cents - cancelled_cents),
            payable_total_cents: input_cents - cancelled_cents,
        },
    }
}

/// The summary as pretty JSON with a final newline.
pub fn write_json(summary: &Summary, out: &mut dyn Write) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, summary)?;
    out.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_order_lists_every_state_once_with_the_exceptions_first() {
        let mut sorted = REPORT_ORDER.to_vec();
        sorted.sort();
        assert_eq!(sorted, PayoutState::ALL.to_vec());
        let first_ordinary = REPORT_ORDER
            .iter()
            .position(|s| !s.needs_attention())
            .unwrap();
        assert!(
            REPORT_ORDER[first_ordinary..]
                .iter()
                .all(|s| !s.needs_attention())
        );
    }

    #[test]
    fn a_missing_cent_breaks_the_tie_out() {
        let counts = BTreeMap::from([
            (PayoutState::Processed, (2, 300)),
            (PayoutState::Failed, (1, 50)),
        ]);
        let good = totals(&counts, 3, 350);
        assert!(good.tie_out.ties_out);
        assert_eq!(
            (
                good.needing_attention,
                good.needing_attention_total.as_str()
            ),
            (1, "0.50")
        );
        let bad = totals(&counts, 3, 351);
        assert!(!bad.tie_out.ties_out);
        assert_eq!(bad.tie_out.difference, "-0.01");
    }
}
