//! `payrun reconcile`: the ledger against the transfers Dwolla holds for the account.
//!
//! Every transfer is listed (200 per page, following the cursor) and matched to its payout by
//! correlation id; then every payout the ledger calls sent is checked to have been seen. The
//! ledger is read in one snapshot taken *before* the listing, so a sender running meanwhile
//! cannot make a payout look sent without its transfer (a transfer created after the snapshot
//! belongs to a payout the snapshot holds as `submitting` or `pending`; `submitting` ones are
//! not discrepancies).
//!
//! Memory is one page of transfers plus the set of payout ids seen (8 bytes each, about 16 MiB
//! per million transfers with the hash set's overhead).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

use anyhow::Context;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{csv::neutralise, decimal, transfer_id};
use crate::dwolla::wire::{MAX_PAGE_LIMIT, Transfer, TransferQuery};
use crate::dwolla::{Client, LoopGuard};
use crate::ledger::{self, ReconcileLedger, ReconcilePayout, parse_correlation_id};
use crate::money::Cents;
use crate::payout::{self, Decision, Event, PayoutState, TransferStatus};

/// What kind of disagreement between the ledger and Dwolla.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A transfer at Dwolla that no payout accounts for: a possible double payment, or a
    /// payment made outside payrun.
    OrphanTransfer,
    /// A second transfer for a payout that already has one: a possible double payment.
    DuplicateTransfer,
    /// A transfer for a payout the ledger holds as never sent, refused or in need of review.
    UnrecordedTransfer,
    /// The transfer's amount (or currency) differs from the payout's.
    AmountMismatch,
    /// The transfer pays a different funding source than the payout names.
    DestinationMismatch,
    /// Dwolla's status means a different payout state than the ledger holds.
    StatusMismatch,
    /// The ledger says the payout was sent, and Dwolla has no transfer for it.
    MissingTransfer,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::OrphanTransfer,
        Kind::DuplicateTransfer,
        Kind::UnrecordedTransfer,
        Kind::AmountMismatch,
        Kind::DestinationMismatch,
        Kind::StatusMismatch,
        Kind::MissingTransfer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OrphanTransfer => "orphan_transfer",
            Kind::DuplicateTransfer => "duplicate_transfer",
            Kind::UnrecordedTransfer => "unrecorded_transfer",
            Kind::AmountMismatch => "amount_mismatch",
            Kind::DestinationMismatch => "destination_mismatch",
            Kind::StatusMismatch => "status_mismatch",
            Kind::MissingTransfer => "missing_transfer",
        }
    }

    /// One sentence for the person who reads the discrepancy report.
    pub fn action(self) -> &'static str {
        match self {
            Kind::OrphanTransfer => {
                "Find who made this transfer; if it pays a payout again, ask the payee to return it or cancel it at Dwolla."
            }
            Kind::DuplicateTransfer => {
                "This payout may have been paid twice: cancel the extra transfer at Dwolla if it is still pending, or recover the money from the payee."
            }
            Kind::UnrecordedTransfer => {
                "Do not pay this payout again: Dwolla has its transfer. Run payrun send or tracking so the ledger records it."
            }
            Kind::AmountMismatch => {
                "Compare the payout file with the transfer at Dwolla; recover or top up the difference with the payee."
            }
            Kind::DestinationMismatch => {
                "The money went to another account than the file names: contact Dwolla and the payee at once."
            }
            Kind::StatusMismatch => {
                "Run status tracking so the ledger catches up; if Dwolla still disagrees, look the transfer up at Dwolla."
            }
            Kind::MissingTransfer => {
                "Look the correlation_id up at Dwolla; if no transfer exists the payee was not paid: mark it for review and pay again."
            }
        }
    }
}

/// One disagreement. Fields that do not apply are `None` (empty in CSV, null in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discrepancy {
    pub kind: Kind,
    pub batch_id: Option<i64>,
    pub line: Option<i64>,
    pub reference: Option<String>,
    pub correlation_id: Option<String>,
    pub transfer_id: Option<String>,
    pub ledger_state: Option<String>,
    pub ledger_amount: Option<String>,
    pub dwolla_status: Option<String>,
    pub dwolla_amount: Option<String>,
    pub dwolla_created: Option<String>,
    pub detail: String,
    pub action: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct ReconcileOptions {
    /// Report only transfers created, and sent payouts first sent, at or after this instant.
    /// Older transfers are still listed and matched, so their payouts are not called missing.
    pub since: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileSummary {
    /// Transfers Dwolla listed for the account.
    pub transfers_listed: u64,
    /// Of those, the ones inside `--since` that were compared.
    pub transfers_checked: u64,
    /// Payouts the ledger calls sent (inside `--since`) that were checked to exist at Dwolla.
    pub sent_payouts_checked: u64,
    pub discrepancies: u64,
    /// Every kind, zero or not.
    pub by_kind: BTreeMap<&'static str, u64>,
}

/// Compares the ledger with the account's transfers at Dwolla and hands each discrepancy to
/// `found` as it is found: transfers in Dwolla's listing order, then missing transfers in
/// payout-id order.
pub async fn reconcile<L: ReconcileLedger>(
    ledger: &L,
    client: &Client,
    options: &ReconcileOptions,
    found: impl FnMut(&Discrepancy) -> anyhow::Result<()>,
) -> anyhow::Result<ReconcileSummary> {
    let _snapshot = ledger.read_snapshot()?;
    let batch_ids = ledger.batch_ids_by_key()?;
    let mut findings = Findings {
        summary: ReconcileSummary {
            by_kind: Kind::ALL.iter().map(|kind| (kind.as_str(), 0)).collect(),
            ..ReconcileSummary::default()
        },
        found,
    };
    let mut matcher = Matcher {
        ledger,
        batch_ids: &batch_ids,
        since: options.since,
        seen: HashSet::new(),
    };
    compare_listed(client, &mut matcher, &mut findings).await?;
    let since = options.since.map(ledger::timestamp);
    report_missing(ledger, since.as_deref(), &matcher.seen, &mut findings)?;
    Ok(findings.summary)
}

/// The summary so far and where each discrepancy goes.
struct Findings<F> {
    summary: ReconcileSummary,
    found: F,
}

impl<F: FnMut(&Discrepancy) -> anyhow::Result<()>> Findings<F> {
    fn report(&mut self, discrepancy: Discrepancy) -> anyhow::Result<()> {
        self.summary.discrepancies += 1;
        *self
            .summary
            .by_kind
            .entry(discrepancy.kind.as_str())
            .or_default() += 1;
        (self.found)(&discrepancy)
    }
}

/// Walks the account's transfer list, 200 a page, and compares each transfer with the ledger.
async fn compare_listed<L: ReconcileLedger, F: FnMut(&Discrepancy) -> anyhow::Result<()>>(
    client: &Client,
    matcher: &mut Matcher<'_, L>,
    findings: &mut Findings<F>,
) -> anyhow::Result<()> {
    let root = client
        .root()
        .await
        .context("cannot read Dwolla's root resource")?;
    let account_id = root
        .account_id()
        .context("Dwolla's root resource names no account")?
        .to_owned();
    let query = TransferQuery {
        correlation_id: None,
        limit: MAX_PAGE_LIMIT,
        cursor: None,
    };
    let mut page = client
        .list_account_transfers(&account_id, &query)
        .await
        .context("cannot list the account's transfers")?;
    let mut guard = LoopGuard::new("transfer list");
    loop {
        for transfer in &page.items {
            findings.summary.transfers_listed += 1;
            let (checked, discrepancy) = matcher.check(transfer)?;
            findings.summary.transfers_checked += u64::from(checked);
            if let Some(discrepancy) = discrepancy {
                findings.report(discrepancy)?;
            }
        }
        if let Some(next) = &page.next {
            guard.follow(next)?;
        }
        match client
            .next_page(&page)
            .await
            .context("cannot list the account's transfers")?
        {
            Some(next) => page = next,
            None => return Ok(()),
        }
    }
}

/// Every payout the ledger calls sent (since `since`) whose transfer Dwolla did not list.
fn report_missing<L: ReconcileLedger, F: FnMut(&Discrepancy) -> anyhow::Result<()>>(
    ledger: &L,
    since: Option<&str>,
    seen: &HashSet<i64>,
    findings: &mut Findings<F>,
) -> anyhow::Result<()> {
    ledger.for_each_sent_payout(since, |payout| -> anyhow::Result<()> {
        findings.summary.sent_payouts_checked += 1;
        if seen.contains(&payout.id) {
            return Ok(());
        }
        let detail = match payout.transfer_url.as_deref() {
            Some(url) => format!(
                "the ledger holds this payout as {} with transfer {}, which Dwolla does not list",
                payout.state,
                transfer_id(url)
            ),
            None => format!(
                "the ledger holds this payout as {}, and Dwolla lists no transfer with its correlation id",
                payout.state
            ),
        };
        findings.report(with_payout(Kind::MissingTransfer, &payout, None, detail))
    })?;
    Ok(())
}

struct Matcher<'a, L> {
    ledger: &'a L,
    batch_ids: &'a HashMap<String, i64>,
    since: Option<OffsetDateTime>,
    /// Payouts whose transfer was listed.
    seen: HashSet<i64>,
}

impl<L: ReconcileLedger> Matcher<'_, L> {
    /// Whether the transfer is inside `since`, and what is wrong with it, if anything.
    fn check(&mut self, transfer: &Transfer) -> anyhow::Result<(bool, Option<Discrepancy>)> {
        let in_window = match self.since {
            None => true,
            // A creation time that does not parse is checked rather than skipped.
            Some(since) => OffsetDateTime::parse(&transfer.created, &Rfc3339)
                .map_or(true, |created| created >= since),
        };
        let payout = match transfer.correlation_id.as_deref() {
            Some(correlation_id) => self.payout_for(correlation_id)?,
            None => None,
        };
        let Some(payout) = payout else {
            let detail = match transfer.correlation_id.as_deref() {
                Some(correlation_id) => {
                    format!("no payout in the ledger has the correlation id {correlation_id:?}")
                }
                None => "the transfer has no correlation id, so payrun did not make it".to_string(),
            };
            let discrepancy = Discrepancy {
                kind: Kind::OrphanTransfer,
                batch_id: None,
                line: None,
                reference: None,
                correlation_id: transfer.correlation_id.clone(),
                transfer_id: Some(transfer.id.clone()),
                ledger_state: None,
                ledger_amount: None,
                dwolla_status: Some(transfer.status.to_string()),
                dwolla_amount: Some(transfer.amount.value.clone()),
                dwolla_created: Some(transfer.created.clone()),
                detail,
                action: Kind::OrphanTransfer.action(),
            };
            return Ok((in_window, in_window.then_some(discrepancy)));
        };
        let recorded = payout.transfer_url.as_deref().map(transfer_id);
        let finding = match recorded {
            Some(recorded) if !recorded.eq_ignore_ascii_case(&transfer.id) => Some((
                Kind::DuplicateTransfer,
                format!("the ledger records transfer {recorded} for this payout, not this one"),
            )),
            Some(_) => {
                self.seen.insert(payout.id);
                compare(&payout, transfer)
            }
            None if !self.seen.insert(payout.id) => Some((
                Kind::DuplicateTransfer,
                "Dwolla lists another transfer with the same correlation id".to_string(),
            )),
            // In flight: the sender records it; not a disagreement.
            None if payout.state == PayoutState::Submitting => None,
            None => Some((
                Kind::UnrecordedTransfer,
                format!(
                    "the ledger holds this payout as {} with no transfer, but Dwolla has one",
                    payout.state
                ),
            )),
        };
        let discrepancy = finding
            .filter(|_| in_window)
            .map(|(kind, detail)| with_payout(kind, &payout, Some(transfer), detail));
        Ok((in_window, discrepancy))
    }

    fn payout_for(&self, correlation_id: &str) -> anyhow::Result<Option<ReconcilePayout>> {
        let Some((batch_key, line)) = parse_correlation_id(correlation_id) else {
            return Ok(None);
        };
        let Some(batch_id) = self.batch_ids.get(batch_key) else {
            return Ok(None);
        };
        let Ok(line) = u32::try_from(line) else {
            return Ok(None);
        };
        let payout = self
            .ledger
            .reconcile_payout(ledger::payout_id(*batch_id, line))?;
        // The correlation id is the key; a payout whose own id differs is not this one.
        Ok(payout.filter(|payout| payout.correlation_id == correlation_id))
    }
}

/// The first disagreement between a payout and its recorded transfer: amount, then
/// destination, then status.
fn compare(payout: &ReconcilePayout, transfer: &Transfer) -> Option<(Kind, String)> {
    let amount = Cents::parse_payout_amount(&transfer.amount.value).ok();
    if amount.map(Cents::get) != Some(payout.amount_cents) || transfer.amount.currency != "USD" {
        return Some((
            Kind::AmountMismatch,
            format!(
                "the ledger has {} USD, Dwolla {} {}",
                decimal(payout.amount_cents),
                transfer.amount.value,
                transfer.amount.currency
            ),
        ));
    }
    if let Some(destination) = transfer.destination_funding_source_url().map(transfer_id)
        && !destination.eq_ignore_ascii_case(&payout.destination)
    {
        return Some((
            Kind::DestinationMismatch,
            format!(
                "the payout names funding source {}, the transfer pays {destination}",
                payout.destination
            ),
        ));
    }
    let observed = transfer.status.known();
    // Dwolla's created and pending both mean a submitted payout.
    let implied = observed.map(|status| match status {
        TransferStatus::Created | TransferStatus::Pending => PayoutState::Submitted,
        TransferStatus::Processed => PayoutState::Processed,
        TransferStatus::Failed => PayoutState::Failed,
        TransferStatus::Returned => PayoutState::Returned,
    });
    if implied == Some(payout.state) {
        return None;
    }
    let behind = match (observed, implied) {
        (Some(status), Some(implied)) => {
            payout::transition(payout.state, Event::TransferObserved(status))
                == Ok(Decision::Move(implied))
        }
        _ => false,
    };
    Some((
        Kind::StatusMismatch,
        format!(
            "the ledger holds this payout as {}, Dwolla's transfer is {}{}",
            payout.state,
            transfer.status,
            if behind {
                "; the ledger has not recorded this change yet"
            } else {
                ""
            }
        ),
    ))
}

fn with_payout(
    kind: Kind,
    payout: &ReconcilePayout,
    transfer: Option<&Transfer>,
    detail: String,
) -> Discrepancy {
    Discrepancy {
        kind,
        batch_id: Some(payout.batch_id),
        line: Some(payout.line),
        reference: Some(payout.reference.clone()),
        correlation_id: Some(payout.correlation_id.clone()),
        transfer_id: transfer.map(|t| t.id.clone()).or_else(|| {
            payout
                .transfer_url
                .as_deref()
                .map(|url| transfer_id(url).to_string())
        }),
        ledger_state: Some(payout.state.to_string()),
        ledger_amount: Some(decimal(payout.amount_cents)),
        dwolla_status: transfer.map(|t| t.status.to_string()),
        dwolla_amount: transfer.map(|t| t.amount.value.clone()),
        dwolla_created: transfer.map(|t| t.created.clone()),
        detail,
        action: kind.action(),
    }
}

/// The discrepancy report's CSV columns, in order.
pub const CSV_COLUMNS: [&str; 13] = [
    "kind",
    "batch_id",
    "line",
    "reference",
    "correlation_id",
    "transfer_id",
    "ledger_state",
    "ledger_amount",
    "dwolla_status",
    "dwolla_amount",
    "dwolla_created",
    "detail",
    "action",
];

/// Streams discrepancies into a CSV (with a header, formula-neutralised) or a JSON document
/// `{"discrepancies": [...], "summary": {...}}`.
pub enum DiscrepancyWriter<'w> {
    Csv(Box<::csv::Writer<&'w mut dyn Write>>),
    Json {
        out: &'w mut dyn Write,
        n_written: u64,
    },
}

impl<'w> DiscrepancyWriter<'w> {
    pub fn csv(out: &'w mut dyn Write) -> anyhow::Result<DiscrepancyWriter<'w>> {
        out.write_all(super::csv::UTF8_BOM)?;
        let mut writer = ::csv::Writer::from_writer(out);
        writer.write_record(CSV_COLUMNS)?;
        Ok(DiscrepancyWriter::Csv(Box::new(writer)))
    }

    pub fn json(out: &'w mut dyn Write) -> anyhow::Result<DiscrepancyWriter<'w>> {
        out.write_all(b"{\n  \"discrepancies\": [")?;
        Ok(DiscrepancyWriter::Json { out, n_written: 0 })
    }

    pub fn write(&mut self, discrepancy: &Discrepancy) -> anyhow::Result<()> {
        match self {
            DiscrepancyWriter::Csv(writer) => {
                let number = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
                let text = |t: &Option<String>| neutralise(t.as_deref().unwrap_or("")).into_owned();
                writer.write_record([
                    discrepancy.kind.as_str().to_string(),
                    number(discrepancy.batch_id),
                    number(discrepancy.line),
                    text(&discrepancy.reference),
                    text(&discrepancy.correlation_id),
                    text(&discrepancy.transfer_id),
                    text(&discrepancy.ledger_state),
                    text(&discrepancy.ledger_amount),
                    text(&discrepancy.dwolla_status),
                    text(&discrepancy.dwolla_amount),
                    text(&discrepancy.dwolla_created),
                    neutralise(&discrepancy.detail).into_owned(),
                    discrepancy.action.to_string(),
                ])?;
            }
            DiscrepancyWriter::Json { out, n_written } => {
                out.write_all(if *n_written == 0 {
                    b"\n    "
                } else {
                    b",\n    "
                })?;
                serde_json::to_writer(&mut **out, discrepancy)?;
                *n_written += 1;
            }
        }
        Ok(())
    }

    pub fn finish(self, summary: &ReconcileSummary) -> anyhow::Result<()> {
        match self {
            DiscrepancyWriter::Csv(mut writer) => writer.flush()?,
            DiscrepancyWriter::Json { out, n_written } => {
                out.write_all(if n_written == 0 { b"],\n" } else { b"\n  ],\n" })?;
                out.write_all(b"  \"summary\": ")?;
                serde_json::to_writer(&mut *out, summary)?;
                out.write_all(b"\n}\n")?;
            }
        }
        Ok(())
    }
}
