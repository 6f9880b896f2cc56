//! What the sender and the ingest need of a ledger, whichever engine keeps it: claim due
//! payouts, commit request bodies, record outcomes, count what is left; write one file's
//! batch in one transaction. SQLite ([`Ledger`]) and PostgreSQL ([`PgLedger`]) each keep their
//! own SQL behind these; the callers see none of it.

use std::collections::HashMap;

use super::postgres::PgLedger;
use super::{
    Approval, BatchIdentity, BatchSelection, CancelReport, DuePayout, ExistingBatch, HoldChange,
    LateBatch, Ledger, LedgerError, NewBatch, PayoutRecord, ReadSnapshot, RecordedOutcome,
    ReportBatch, Result, RowBuffer, Summary, Unsent, WaitingBatch,
};
use crate::ledger::{ReconcilePayout, RepeatOverlap};
use crate::money::Cents;

/// What `payrun status` and the operator's commands (approve, hold, release, cancel) need of
/// a ledger.
pub trait OperatorLedger {
    fn summary(&self) -> Result<Summary>;
    /// Batches with pending payouts that wait: held, for their window, or for approval.
    fn waiting_batches(&self) -> Result<Vec<WaitingBatch>>;
    /// Lets an `awaiting_approval` batch be sent.
    fn approve_batch(&mut self, batch_id: i64, now: &str) -> Result<Approval>;
    /// Holds (or releases) a batch: nothing of it is claimed for sending while held.
    fn set_hold(
        &mut self,
        batch_id: i64,
        hold: bool,
        now: &str,
        by: &str,
        reason: Option<&str>,
    ) -> Result<HoldChange>;
    /// Cancels the pending payouts of a batch (all, or those with `references`).
    fn cancel_payouts(
        &mut self,
        batch_id: i64,
        references: Option<&[String]>,
        now: &str,
        operator: &str,
        reason: &str,
    ) -> Result<Option<CancelReport>>;
}

impl OperatorLedger for Ledger {
    fn summary(&self) -> Result<Summary> {
        Ledger::summary(self)
    }

    fn waiting_batches(&self) -> Result<Vec<WaitingBatch>> {
        Ledger::waiting_batches(self)
    }

    fn approve_batch(&mut self, batch_id: i64, now: &str) -> Result<Approval> {
        Ledger::approve_batch(self, batch_id, now)
    }

    fn set_hold(
        &mut self,
        batch_id: i64,
        hold: bool,
        now: &str,
        by: &str,
        reason: Option<&str>,
    ) -> Result<HoldChange> {
        Ledger::set_hold(self, batch_id, hold, now, by, reason)
    }

    fn cancel_payouts(
        &mut self,
        batch_id: i64,
        references: Option<&[String]>,
        now: &str,
        operator: &str,
        reason: &str,
    ) -> Result<Option<CancelReport>> {
        Ledger::cancel_payouts(self, batch_id, references, now, operator, reason)
    }
}

impl OperatorLedger for PgLedger {
    fn summary(&self) -> Result<Summary> {
        PgLedger::summary(self)
    }

    fn waiting_batches(&self) -> Result<Vec<WaitingBatch>> {
        PgLedger::waiting_batches(self)
    }

    fn approve_batch(&mut self, batch_id: i64, now: &str) -> Result<Approval> {
        PgLedger::approve_batch(self, batch_id, now)
    }

    fn set_hold(
        &mut self,
        batch_id: i64,
        hold: bool,
        now: &str,
        by: &str,
        reason: Option<&str>,
    ) -> Result<HoldChange> {
        PgLedger::set_hold(self, batch_id, hold, now, by, reason)
    }

    fn cancel_payouts(
        &mut self,
        batch_id: i64,
        references: Option<&[String]>,
        now: &str,
        operator: &str,
        reason: &str,
    ) -> Result<Option<CancelReport>> {
        PgLedger::cancel_payouts(self, batch_id, references, now, operator, reason)
    }
}

/// The reports' view of a ledger: batches and their payouts, in one snapshot.
pub trait ReportLedger {
    /// A read snapshot that every query shares while it lives.
    type Snapshot<'a>
    where
        Self: 'a;
    fn read_snapshot(&self) -> Result<Self::Snapshot<'_>>;
    fn report_batches(&self, selection: &BatchSelection) -> Result<Vec<ReportBatch>>;
    /// Every payout of `batch_id` in file order (or only the exceptions), one at a time.
    fn for_each_batch_payout<E: From<LedgerError>>(
        &self,
        batch_id: i64,
        exceptions_only: bool,
        each: impl FnMut(&PayoutRecord<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E>;
}

impl ReportLedger for Ledger {
    type Snapshot<'a> = ReadSnapshot<'a>;

    fn read_snapshot(&self) -> Result<ReadSnapshot<'_>> {
        Ledger::read_snapshot(self)
    }

    fn report_batches(&self, selection: &BatchSelection) -> Result<Vec<ReportBatch>> {
        Ledger::report_batches(self, selection)
    }

    fn for_each_batch_payout<E: From<LedgerError>>(
        &self,
        batch_id: i64,
        exceptions_only: bool,
        each: impl FnMut(&PayoutRecord<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        Ledger::for_each_batch_payout(self, batch_id, exceptions_only, each)
    }
}

impl ReportLedger for PgLedger {
    type Snapshot<'a> = super::postgres::PgSnapshot<'a>;

    fn read_snapshot(&self) -> Result<super::postgres::PgSnapshot<'_>> {
        PgLedger::read_snapshot(self)
    }

    fn report_batches(&self, selection: &BatchSelection) -> Result<Vec<ReportBatch>> {
        PgLedger::report_batches(self, selection)
    }

    fn for_each_batch_payout<E: From<LedgerError>>(
        &self,
        batch_id: i64,
        exceptions_only: bool,
        each: impl FnMut(&PayoutRecord<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        PgLedger::for_each_batch_payout(self, batch_id, exceptions_only, each)
    }
}

/// `payrun reconcile`'s view of a ledger, beside the report's snapshot.
pub trait ReconcileLedger: ReportLedger {
    /// Batch key (the middle of every correlation id payrun makes) to batch id.
    fn batch_ids_by_key(&self) -> Result<HashMap<String, i64>>;
    /// One payout by id.
    fn reconcile_payout(&self, id: i64) -> Result<Option<ReconcilePayout>>;
    /// Every payout the ledger says Dwolla has a transfer for, in id order; with `since`,
    /// only those first sent (or ingested) at or after it.
    fn for_each_sent_payout<E: From<LedgerError>>(
        &self,
        since: Option<&str>,
        each: impl FnMut(ReconcilePayout) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E>;
}

impl ReconcileLedger for Ledger {
    fn batch_ids_by_key(&self) -> Result<HashMap<String, i64>> {
        Ledger::batch_ids_by_key(self)
    }

    fn reconcile_payout(&self, id: i64) -> Result<Option<ReconcilePayout>> {
        Ledger::reconcile_payout(self, id)
    }

    fn for_each_sent_payout<E: From<LedgerError>>(
        &self,
        since: Option<&str>,
        each: impl FnMut(ReconcilePayout) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        Ledger::for_each_sent_payout(self, since, each)
    }
}

impl ReconcileLedger for PgLedger {
    fn batch_ids_by_key(&self) -> Result<HashMap<String, i64>> {
        PgLedger::batch_ids_by_key(self)
    }

    fn reconcile_payout(&self, id: i64) -> Result<Option<ReconcilePayout>> {
        PgLedger::reconcile_payout(self, id)
    }

    fn for_each_sent_payout<E: From<LedgerError>>(
        &self,
        since: Option<&str>,
        each: impl FnMut(ReconcilePayout) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        PgLedger::for_each_sent_payout(self, since, each)
    }
}

/// The sender's view of a ledger.
pub trait SendLedger: Send + 'static {
    /// Opens the send window of every batch whose time has come (see `ledger::payday`).
    fn open_send_windows(&mut self, now: &str) -> Result<usize>;
    /// Gives batches with payouts committed for sending their sent date; returns the late ones.
    fn note_sent_batches(&mut self, now: &str) -> Result<Vec<LateBatch>>;
    /// Every payout in doubt this worker may send, soonest due first, claimed for it.
    fn claim_in_doubt(&mut self, batch: Option<i64>) -> Result<Vec<DuePayout>>;
    /// Up to `limit` pending payouts after `after_id` in file order, each committed
    /// `submitting` with the bytes `body` builds (its `request_body`), before any is sent.
    fn claim_pending(
        &mut self,
        after_id: i64,
        batch: Option<i64>,
        limit: usize,
        now: &str,
        body: &mut dyn FnMut(&DuePayout) -> Vec<u8>,
    ) -> Result<Vec<DuePayout>>;
    /// Stores many outcomes in one transaction.
    fn record_outcomes(&mut self, outcomes: &[RecordedOutcome], now: &str) -> Result<()>;
    /// What is left unsent: in doubt, and pending in batches that may be sent now.
    fn unsent(&self, batch: Option<i64>) -> Result<Unsent>;
    /// Whether the run must wait for other workers before it may end: how long until the
    /// first lease of a payout in doubt another worker holds passes (zero when sendable
    /// pending payouts are left that another worker's claim skipped and rolled back).
    /// Always `None` for a single writer.
    fn held_elsewhere(&self, batch: Option<i64>) -> Result<Option<std::time::Duration>>;
}

/// The ingest's view of a ledger.
pub trait IngestLedger: Send {
    /// The batches whose file had exactly these bytes.
    fn batches_by_sha256(&self, sha256: &str) -> Result<Vec<ExistingBatch>>;
    /// Reference -> funding source id of every payee that can be paid.
    fn payee_funding_sources(&self) -> Result<HashMap<String, String>>;
    /// Runs `write` inside the single transaction of one file's batch. The batch commits when
    /// `write` has called [`BatchWriter::finish`] and returns `Ok`; otherwise it rolls back
    /// and leaves no trace.
    fn write_batch<T>(
        &mut self,
        batch: &NewBatch<'_>,
        write: impl FnOnce(&mut dyn BatchWriter) -> Result<T>,
    ) -> Result<T>;
}

/// One file's batch being written.
pub trait BatchWriter {
    fn batch_id(&self) -> i64;
    fn insert_rows(&mut self, rows: &RowBuffer) -> Result<()>;
    /// A row refused under `--allow-partial`, with every problem found on it.
    fn insert_rejected_row(&mut self, line: u64, errors: &str) -> Result<()>;
    /// The reference of a payout already written in this batch.
    fn reference_at_line(&mut self, line: u64) -> Result<Option<String>>;
    /// The batch that already holds the same records for the same pay date. On PostgreSQL
    /// this also serializes two workers ingesting the same payroll at once.
    fn batch_with_identity(
        &mut self,
        records_sha256: &str,
        pay_date: Option<&str>,
    ) -> Result<Option<ExistingBatch>>;
    /// The recent batch whose payouts this one repeats most, if any.
    fn repeat_overlap(
        &mut self,
        since: &str,
        pay_date: Option<&str>,
    ) -> Result<Option<RepeatOverlap>>;
    /// Writes the batch's counts, identity and schedule; the commit follows.
    fn finish(
        &mut self,
        n_payouts: u64,
        total: Cents,
        n_rejected: u64,
        identity: &BatchIdentity,
    ) -> Result<i64>;
}

impl SendLedger for Ledger {
    fn open_send_windows(&mut self, now: &str) -> Result<usize> {
        Ledger::open_send_windows(self, now)
    }

    fn note_sent_batches(&mut self, now: &str) -> Result<Vec<LateBatch>> {
        Ledger::note_sent_batches(self, now)
    }

    /// The writer lock makes this process the only sender: every payout in doubt is ours.
    fn claim_in_doubt(&mut self, batch: Option<i64>) -> Result<Vec<DuePayout>> {
        self.in_doubt(batch, usize::MAX)
    }

    fn claim_pending(
        &mut self,
        after_id: i64,
        batch: Option<i64>,
        limit: usize,
        now: &str,
        body: &mut dyn FnMut(&DuePayout) -> Vec<u8>,
    ) -> Result<Vec<DuePayout>> {
        let mut page = self.pending_after(after_id, batch, limit)?;
        let bodies: Vec<(i64, Vec<u8>)> = page.iter().map(|p| (p.id, body(p))).collect();
        self.start_submissions(&bodies, now)?;
        for (payout, (_, bytes)) in page.iter_mut().zip(bodies) {
            payout.request_body = Some(bytes);
            payout.state = crate::payout::PayoutState::Submitting;
        }
        Ok(page)
    }

    fn record_outcomes(&mut self, outcomes: &[RecordedOutcome], now: &str) -> Result<()> {
        Ledger::record_outcomes(self, outcomes, now)
    }

    fn unsent(&self, batch: Option<i64>) -> Result<Unsent> {
        Ledger::unsent(self, batch)
    }

    fn held_elsewhere(&self, _batch: Option<i64>) -> Result<Option<std::time::Duration>> {
        Ok(None)
    }
}

impl SendLedger for PgLedger {
    fn open_send_windows(&mut self, now: &str) -> Result<usize> {
        PgLedger::open_send_windows(self, now)
    }

    fn note_sent_batches(&mut self, now: &str) -> Result<Vec<LateBatch>> {
        PgLedger::note_sent_batches(self, now)
    }

    fn claim_in_doubt(&mut self, batch: Option<i64>) -> Result<Vec<DuePayout>> {
        PgLedger::claim_in_doubt(self, batch)
    }

    fn claim_pending(
        &mut self,
        after_id: i64,
        batch: Option<i64>,
        limit: usize,
        now: &str,
        body: &mut dyn FnMut(&DuePayout) -> Vec<u8>,
    ) -> Result<Vec<DuePayout>> {
        PgLedger::claim_pending(self, after_id, batch, limit, now, body)
    }

    fn record_outcomes(&mut self, outcomes: &[RecordedOutcome], now: &str) -> Result<()> {
        PgLedger::record_outcomes(self, outcomes, now)
    }

    fn unsent(&self, batch: Option<i64>) -> Result<Unsent> {
        PgLedger::unsent(self, batch)
    }

    fn held_elsewhere(&self, batch: Option<i64>) -> Result<Option<std::time::Duration>> {
        PgLedger::held_elsewhere(self, batch)
    }
}

impl IngestLedger for Ledger {
    fn batches_by_sha256(&self, sha256: &str) -> Result<Vec<ExistingBatch>> {
        Ledger::batches_by_sha256(self, sha256)
    }

    fn payee_funding_sources(&self) -> Result<HashMap<String, String>> {
        Ledger::payee_funding_sources(self)
    }

    fn write_batch<T>(
        &mut self,
        batch: &NewBatch<'_>,
        write: impl FnOnce(&mut dyn BatchWriter) -> Result<T>,
    ) -> Result<T> {
        let tx = self.begin_ingest(batch)?;
        let (written, finished) = {
            let mut writer = super::ingest::SqliteBatch::new(&tx)?;
            let written = write(&mut writer)?;
            (written, writer.finished())
        };
        if finished {
            tx.commit_written()?;
        }
        Ok(written)
    }
}

impl IngestLedger for PgLedger {
    fn batches_by_sha256(&self, sha256: &str) -> Result<Vec<ExistingBatch>> {
        PgLedger::batches_by_sha256(self, sha256)
    }

    fn payee_funding_sources(&self) -> Result<HashMap<String, String>> {
        PgLedger::payee_funding_sources(self)
    }

    fn write_batch<T>(
        &mut self,
        batch: &NewBatch<'_>,
        write: impl FnOnce(&mut dyn BatchWriter) -> Result<T>,
    ) -> Result<T> {
        PgLedger::write_batch(self, batch, write)
    }
}

use super::{NewPayee, Payee};

/// What `payrun payees` needs of a ledger: the payee directory, and the ids Dwolla gives each
/// payee as it is onboarded. Only the last four digits of an account number are ever stored.
pub trait PayeeLedger {
    fn payee(&self, reference: &str) -> Result<Option<Payee>>;
    /// Every payee, by reference.
    fn payees(&self) -> Result<Vec<Payee>>;
    /// Records a payee before anything is created at Dwolla (one already recorded is kept).
    fn insert_payee(&mut self, payee: &NewPayee<'_>, now: &str) -> Result<()>;
    fn set_payee_external_party(
        &mut self,
        reference: &str,
        external_party_id: &str,
        now: &str,
    ) -> Result<()>;
    /// Takes a funding source removed at Dwolla out of the directory; returns who had it.
    fn forget_payee_funding_source(
        &mut self,
        funding_source_id: &str,
        now: &str,
    ) -> Result<Vec<String>>;
    /// From now on payout files may name the payee.
    fn set_payee_funding_source(
        &mut self,
        reference: &str,
        funding_source_id: &str,
        now: &str,
    ) -> Result<()>;
}

impl PayeeLedger for Ledger {
    fn payee(&self, reference: &str) -> Result<Option<Payee>> {
        Ledger::payee(self, reference)
    }

    fn payees(&self) -> Result<Vec<Payee>> {
        Ledger::payees(self)
    }

    fn insert_payee(&mut self, payee: &NewPayee<'_>, now: &str) -> Result<()> {
        Ledger::insert_payee(self, payee, now)
    }

    fn set_payee_external_party(
        &mut self,
        reference: &str,
        external_party_id: &str,
        now: &str,
    ) -> Result<()> {
        Ledger::set_payee_external_party(self, reference, external_party_id, now)
    }

    fn forget_payee_funding_source(
        &mut self,
        funding_source_id: &str,
        now: &str,
    ) -> Result<Vec<String>> {
        Ledger::forget_payee_funding_source(self, funding_source_id, now)
    }

    fn set_payee_funding_source(
        &mut self,
        reference: &str,
        funding_source_id: &str,
        now: &str,
    ) -> Result<()> {
        Ledger::set_payee_funding_source(self, reference, funding_source_id, now)
    }
}

impl PayeeLedger for PgLedger {
    fn payee(&self, reference: &str) -> Result<Option<Payee>> {
        PgLedger::payee(self, reference)
    }

    fn payees(&self) -> Result<Vec<Payee>> {
        PgLedger::payees(self)
    }

    fn insert_payee(&mut self, payee: &NewPayee<'_>, now: &str) -> Result<()> {
        PgLedger::insert_payee(self, payee, now)
    }

    fn set_payee_external_party(
        &mut self,
        reference: &str,
        external_party_id: &str,
        now: &str,
    ) -> Result<()> {
        PgLedger::set_payee_external_party(self, reference, external_party_id, now)
    }

    fn forget_payee_funding_source(
        &mut self,
        funding_source_id: &str,
        now: &str,
    ) -> Result<Vec<String>> {
        PgLedger::forget_payee_funding_source(self, funding_source_id, now)
    }

    fn set_payee_funding_source(
        &mut self,
        reference: &str,
        funding_source_id: &str,
        now: &str,
    ) -> Result<()> {
        PgLedger::set_payee_funding_source(self, reference, funding_source_id, now)
    }
}

/// What `payrun plan` reads of the real ledger; the file itself is checked in a scratch SQLite
/// ledger (`Ledger::open_scratch`), which holds its batch. The payee directory comes from
/// [`IngestLedger::payee_funding_sources`].
pub trait PlanLedger: IngestLedger {
    /// The batch holding these records for this pay date: the same payroll.
    fn batch_by_identity(
        &self,
        records_sha256: &str,
        pay_date: Option<&str>,
    ) -> Result<Option<ExistingBatch>>;
    /// How much batch `planned_batch` of the scratch ledger `planned` repeats a recent batch
    /// of this ledger (received at or after `since`).
    fn repeat_overlap_of(
        &self,
        planned: &Ledger,
        planned_batch: i64,
        since: &str,
        pay_date: Option<&str>,
    ) -> Result<Option<RepeatOverlap>>;
    /// The most recent batch: its id and total.
    fn latest_batch(&self) -> Result<Option<(i64, Cents)>>;
}

impl PlanLedger for Ledger {
    fn batch_by_identity(
        &self,
        records_sha256: &str,
        pay_date: Option<&str>,
    ) -> Result<Option<ExistingBatch>> {
        Ledger::batch_by_identity(self, records_sha256, pay_date)
    }

    fn repeat_overlap_of(
        &self,
        planned: &Ledger,
        planned_batch: i64,
        since: &str,
        pay_date: Option<&str>,
    ) -> Result<Option<RepeatOverlap>> {
        Ledger::repeat_overlap_of(self, planned, planned_batch, since, pay_date)
    }

    fn latest_batch(&self) -> Result<Option<(i64, Cents)>> {
        Ledger::latest_batch(self)
    }
}

impl PlanLedger for PgLedger {
    fn batch_by_identity(
        &self,
        records_sha256: &str,
        pay_date: Option<&str>,
    ) -> Result<Option<ExistingBatch>> {
        PgLedger::batch_by_identity(self, records_sha256, pay_date)
    }

    fn repeat_overlap_of(
        &self,
        planned: &Ledger,
        planned_batch: i64,
        since: &str,
        pay_date: Option<&str>,
    ) -> Result<Option<RepeatOverlap>> {
        PgLedger::repeat_overlap_of(self, planned, planned_batch, since, pay_date)
    }

    fn latest_batch(&self) -> Result<Option<(i64, Cents)>> {
        PgLedger::latest_batch(self)
    }
}
