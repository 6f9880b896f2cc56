//! Ingest: one payout file into the ledger, strictly validated, all or nothing, never twice.
//!
//! Owns reading and hashing files and the duplicate-reference check; the format rules live in
//! [`row`]. It writes only through the ledger's ingest transaction and never talks to Dwolla.

mod lines;
pub mod row;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt::{self, Write as _};
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::mpsc;

use foldhash::fast::RandomState as FastHasher;
use sha2::{Digest, Sha256};
use time::{Date, OffsetDateTime};

use crate::ledger::{
    self, BatchIdentity, BatchSchedule, BatchWriter, ExistingBatch, IngestLedger, LedgerError,
    NewBatch, NewPayout, RepeatOverlap, RowBuffer,
};
use crate::money::Cents;
use crate::payday::{DefaultPayDate, Schedule, SendPolicy};
use lines::LineBreaks;
use row::{FieldError, Layout, Limits, ValidRow};

/// After this many lines the duplicate check sizes its table for the whole file.
const ROWS_BEFORE_ESTIMATE: u64 = 1000;

/// How strict an ingest is.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Accept the valid rows of a file that has invalid ones, recording the rest as rejected.
    pub allow_partial: bool,
    pub limits: Limits,
    /// How many problems to keep for display; all are counted.
    pub max_errors_shown: usize,
    /// New batches wait for `payrun approve` before anything is sent.
    pub awaiting_approval: bool,
    /// Where a batch's pay date comes from and how it is checked.
    pub pay_dates: PayDateRules,
    pub repeat_guard: RepeatGuard,
}

/// The pay date of a batch: the file's `pay_date` column, else `flag` (`--pay-date`), else the
/// inbox's default; none means "send as soon as possible".
#[derive(Debug, Clone, Default)]
pub struct PayDateRules {
    pub policy: SendPolicy,
    pub flag: Option<Date>,
    pub default: Option<DefaultPayDate>,
    /// `--send-late`: accept a pay date that cannot be met and send as soon as possible.
    pub send_late: bool,
}

impl PayDateRules {
    /// The pay date of a file without a `pay_date` column, and where it came from.
    fn outside_the_file(&self, now: OffsetDateTime) -> Option<(Date, &'static str)> {
        match (self.flag, self.default) {
            (Some(date), _) => Some((date, "--pay-date")),
            (None, Some(default)) => Some((
                default.pay_date(now, &self.policy),
                "[payday] default_pay_date",
            )),
            (None, None) => None,
        }
    }
}

/// A file whose payouts largely repeat a recent batch waits for approval.
#[derive(Debug, Clone, Copy)]
pub struct RepeatGuard {
    /// How far back earlier batches are compared, in days.
    pub window_days: u32,
    /// The share of repeated payouts (reference, amount, destination) that holds a batch.
    pub min_overlap_percent: u32,
    /// `--allow-repeat`: a deliberate repeat goes through.
    pub allow_repeat: bool,
}

impl Default for RepeatGuard {
    fn default() -> RepeatGuard {
        RepeatGuard {
            window_days: 31,
            min_overlap_percent: 80,
            allow_repeat: false,
        }
    }
}

/// A problem found in a file, displayed like a compiler's: `payroll.csv:17: amount: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub file: String,
    pub line: u64,
    pub problem: FieldError,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.problem)
    }
}

#[derive(Debug)]
pub enum IngestOutcome {
    /// The file is in the ledger as a new batch.
    Accepted {
        batch_id: i64,
        n_payouts: u64,
        total: Cents,
        /// Rows refused under `--allow-partial` (the first few problems, and how many rows).
        rejected: Vec<FileError>,
        n_rejected_rows: u64,
        schedule: Schedule,
        /// The repeat guard held the batch for approval: the batch it repeats and how much.
        repeats: Option<RepeatOverlap>,
    },
    /// The same content is already in the ledger; nothing was added.
    AlreadyIngested(ExistingBatch),
    /// The file is invalid; nothing of it entered the ledger.
    Invalid {
        errors: Vec<FileError>,
        n_errors: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot read {}: {source}", crate::names::shown(.path))]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The hex SHA-256 of a file's bytes, kept beside the records' hash, which is the identity.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Ingests one file in one transaction. Parsing and validation run on this thread while a
/// second thread writes to the ledger, so the two halves of the work share the machine's cores.
pub fn ingest_file<L: IngestLedger>(
    ledger: &mut L,
    path: &Path,
    options: &IngestOptions,
    now: OffsetDateTime,
) -> Result<IngestOutcome, IngestError> {
    let read_error = |source| IngestError::Read {
        path: path.to_path_buf(),
        source,
    };
    let display_name = crate::names::shown(path);
    let sha256 = file_sha256(path).map_err(read_error)?;
    let mut errors = ErrorList::new(&display_name, options.max_errors_shown);
    let Some((mut reader, mut layout, file_size)) =
        read_header(path, &mut errors).map_err(read_error)?
    else {
        return Ok(errors.into_invalid());
    };
    let outside_pay_date = options.pay_dates.outside_the_file(now);
    if let Some(existing) = same_bytes_and_pay_date(ledger, &sha256, &layout, outside_pay_date)? {
        return Ok(IngestOutcome::AlreadyIngested(existing));
    }
    if layout.names_payees() {
        // The payee directory, once per file, never a query per row.
        layout.set_payee_funding_sources(ledger.payee_funding_sources()?);
    }
    let layout = layout;

    let file_name = path.file_name().map_or_else(
        || display_name.clone(),
        |n| n.to_string_lossy().into_owned(),
    );
    let received_at = ledger::timestamp(now);
    let batch_key = ledger::new_batch_key();
    let batch = NewBatch {
        batch_key: &batch_key,
        file_name: &file_name,
        file_sha256: &sha256,
        received_at: &received_at,
        awaiting_approval: options.awaiting_approval,
    };
    let file = FileToIngest {
        path,
        layout: &layout,
        file_size,
        outside_pay_date,
    };
    ingest_rows(ledger, &batch, &mut reader, &file, options, now, errors)
}

/// What the parsing side of an ingest knows about the file.
struct FileToIngest<'a> {
    path: &'a Path,
    layout: &'a row::Layout,
    file_size: u64,
    outside_pay_date: Option<(Date, &'static str)>,
}

/// The line of the file `record` starts on (see [`lines`]).
fn file_line(reader: &mut CsvReader, record: &csv::ByteRecord) -> u64 {
    let (line, byte) = record.position().map_or((1, 0), |p| (p.line(), p.byte()));
    reader.get_mut().true_line(line, byte)
}

type CsvReader = csv::Reader<LineBreaks<BufReader<File>>>;

/// Opens the file and reads its header: the reader, the layout and the file's size, or `None`
/// with the problems in `errors` when the file is not a payout file.
fn read_header(
    path: &Path,
    errors: &mut ErrorList<'_>,
) -> std::io::Result<Option<(CsvReader, row::Layout, u64)>> {
    let mut file = File::open(path)?;
    let file_size = file.metadata()?.len();
    let whole_file = |message: String| FieldError {
        column: None,
        message,
    };
    if let Some(problem) = sniff_not_csv(&mut file)? {
        errors.push(1, whole_file(problem));
        return Ok(None);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(LineBreaks::new(BufReader::with_capacity(1 << 16, file)));
    let mut record = csv::ByteRecord::new();
    if !reader
        .read_byte_record(&mut record)
        .map_err(std::io::Error::other)?
    {
        errors.push(1, whole_file("the file is empty".to_string()));
        return Ok(None);
    }
    let header_line = file_line(&mut reader, &record);
    match row::parse_header(&record.iter().collect::<Vec<_>>()) {
        Ok(layout) => Ok(Some((reader, layout, file_size))),
        Err(problems) => {
            for problem in problems {
                errors.push(header_line, problem);
            }
            Ok(None)
        }
    }
}

/// Parses the rows on this thread while a second one writes them, then commits or rolls back.
fn ingest_rows<L: IngestLedger>(
    ledger: &mut L,
    batch: &NewBatch<'_>,
    reader: &mut CsvReader,
    file: &FileToIngest<'_>,
    options: &IngestOptions,
    now: OffsetDateTime,
    mut errors: ErrorList<'_>,
) -> Result<IngestOutcome, IngestError> {
    let read_error = |source| IngestError::Read {
        path: file.path.to_path_buf(),
        source,
    };
    std::thread::scope(|scope| {
        let (to_writer, inbox) = mpsc::sync_channel::<ToWriter>(4);
        let (recycle, recycled) = mpsc::channel::<RowBuffer>();
        let writer = scope.spawn(|| write_batch(ledger, batch, inbox, recycle));
        let parsed = parse_rows(
            reader,
            file.layout,
            options,
            file.file_size,
            batch.batch_key,
            &mut errors,
            &to_writer,
            &recycled,
        );
        if let Ok(rows) = &parsed
            && rows.is_acceptable(options)
        {
            let finish = finish(rows, file.outside_pay_date, options, now);
            // A closed channel means the writer failed; its error comes back from join.
            let _ = to_writer.send(ToWriter::Commit(Box::new(finish)));
        }
        drop(to_writer);
        let written = writer.join().expect("the ledger writer thread panicked");
        let rows = match parsed {
            Ok(rows) => rows,
            // A failed write stops parsing with a closed channel; the write error is the cause.
            Err(ParseError::WriterGone) => {
                return Err(IngestError::Ledger(
                    written.expect_err("the writer stopped"),
                ));
            }
            Err(ParseError::Read(source)) => return Err(read_error(source)),
            Err(ParseError::Ledger(error)) => return Err(IngestError::Ledger(error)),
        };
        match written? {
            Written::Committed {
                batch_id,
                schedule,
                repeats,
            } => Ok(IngestOutcome::Accepted {
                batch_id,
                n_payouts: rows.n_payouts,
                total: rows.total,
                rejected: errors.shown,
                n_rejected_rows: rows.n_bad_rows,
                schedule,
                repeats,
            }),
            Written::SamePayroll(existing) => Ok(IngestOutcome::AlreadyIngested(existing)),
            Written::PayDateRefused(line, problem) => {
                errors.push(line, problem);
                Ok(errors.into_invalid())
            }
            Written::Nothing if rows.n_payouts == 0 && rows.n_bad_rows == 0 => {
                errors.push(
                    1,
                    FieldError {
                        column: None,
                        message: "the file has a header but no payout rows".into(),
                    },
                );
                Ok(errors.into_invalid())
            }
            Written::Nothing => Ok(errors.into_invalid()),
        }
    })
}

/// An earlier batch of a byte-identical file for the same pay date: found before parsing. A
/// file with a `pay_date` column carries its date in its bytes; otherwise the date from
/// outside the file must match too, since the same rows for another pay date are another
/// payroll.
fn same_bytes_and_pay_date<L: IngestLedger>(
    ledger: &L,
    sha256: &str,
    layout: &row::Layout,
    outside_pay_date: Option<(Date, &'static str)>,
) -> Result<Option<ExistingBatch>, LedgerError> {
    let wanted = outside_pay_date.map(|(date, _)| date.to_string());
    Ok(ledger
        .batches_by_sha256(sha256)?
        .into_iter()
        .find(|existing| layout.has_pay_date() || existing.pay_date == wanted))
}

/// The batch's schedule, or the line and problem that refuses its pay date.
fn scheduled(
    rows: &ParsedRows,
    outside_pay_date: Option<(Date, &'static str)>,
    options: &IngestOptions,
    now: OffsetDateTime,
) -> Result<Schedule, (u64, FieldError)> {
    let rules = &options.pay_dates;
    let (pay_date, line, column) = match (rows.pay_date, outside_pay_date) {
        (Some((date, line)), _) => (Some(date), line, Some("pay_date".to_string())),
        (None, Some((date, source))) => (Some(date), 1, Some(source.to_string())),
        (None, None) => (None, 1, None),
    };
    crate::payday::schedule(pay_date, now, &rules.policy, rules.send_late).map_err(|problem| {
        (
            line,
            FieldError {
                column,
                message: problem.to_string(),
            },
        )
    })
}

fn stored_schedule(schedule: &Schedule) -> BatchSchedule {
    BatchSchedule {
        pay_date: schedule.pay_date.map(|date| date.to_string()),
        send_after: schedule.send_after.map(ledger::timestamp),
        send_by: schedule.send_by.map(ledger::timestamp),
        send_late: schedule.send_late,
    }
}

/// The repeat guard's window start and threshold, or `None` when `--allow-repeat` is given.
fn repeat_guard_since(options: &IngestOptions, now: OffsetDateTime) -> Option<(String, u32)> {
    let guard = options.repeat_guard;
    (!guard.allow_repeat).then(|| {
        let since = now - time::Duration::days(i64::from(guard.window_days));
        (ledger::timestamp(since), guard.min_overlap_percent)
    })
}

/// What the ledger writer did with a file.
#[derive(Debug)]
enum Written {
    Committed {
        batch_id: i64,
        schedule: Schedule,
        repeats: Option<RepeatOverlap>,
    },
    /// The same records for the same pay date are already a batch; nothing was added.
    SamePayroll(ExistingBatch),
    /// The pay date cannot be met (and `--send-late` was not given): rolled back.
    PayDateRefused(u64, FieldError),
    /// Rolled back: the file is invalid.
    Nothing,
}

/// What the parsing thread sends the ledger writer, in order.
enum ToWriter {
    Rows(RowBuffer),
    Rejected {
        line: u64,
        errors: String,
    },
    /// The exact reference at an earlier line, for the duplicate check; answered after every
    /// row sent before it is written.
    ReferenceAt {
        line: u64,
        reply: mpsc::SyncSender<Result<Option<String>, LedgerError>>,
    },
    /// Everything is sent and valid enough to keep. Without it the transaction rolls back.
    Commit(Box<Finish>),
}

/// What the writer needs to finish a batch whose rows are all written.
struct Finish {
    n_payouts: u64,
    total: Cents,
    n_rejected: u64,
    identity: BatchIdentity,
    /// The schedule, or the line and problem that refuse its pay date; checked after the
    /// identity, so that a re-sent file whose pay date has passed is named as the batch it is.
    schedule: Result<Schedule, (u64, FieldError)>,
    /// The repeat guard's window start and threshold (percent), unless allowed.
    repeat_guard: Option<(String, u32)>,
}

fn finish(
    rows: &ParsedRows,
    outside_pay_date: Option<(Date, &'static str)>,
    options: &IngestOptions,
    now: OffsetDateTime,
) -> Finish {
    let schedule = scheduled(rows, outside_pay_date, options, now);
    let pay_date = match (rows.pay_date, outside_pay_date) {
        (Some((date, _)), _) | (None, Some((date, _))) => Some(date.to_string()),
        (None, None) => None,
    };
    let stored = match &schedule {
        Ok(schedule) => stored_schedule(schedule),
        Err(_) => BatchSchedule {
            pay_date,
            ..BatchSchedule::default()
        },
    };
    Finish {
        n_payouts: rows.n_payouts,
        total: rows.total,
        n_rejected: rows.n_bad_rows,
        identity: BatchIdentity {
            records_sha256: hex::encode(rows.records.clone().finalize()),
            schedule: stored,
            approval_reason: None,
        },
        schedule,
        repeat_guard: repeat_guard_since(options, now),
    }
}

/// Rows per buffer handed to the writer: large enough that the hand-over costs nothing.
const ROWS_PER_BUFFER: usize = 1024;

/// The ledger side of an ingest: one transaction, committed only on [`ToWriter::Commit`].
fn write_batch<L: IngestLedger>(
    ledger: &mut L,
    batch: &NewBatch<'_>,
    inbox: mpsc::Receiver<ToWriter>,
    recycle: mpsc::Sender<RowBuffer>,
) -> Result<Written, LedgerError> {
    ledger.write_batch(batch, |writer| {
        let mut finish = None;
        for message in &inbox {
            match message {
                ToWriter::Rows(mut rows) => {
                    writer.insert_rows(&rows)?;
                    rows.clear();
                    let _ = recycle.send(rows);
                }
                ToWriter::Rejected { line, errors } => writer.insert_rejected_row(line, &errors)?,
                ToWriter::ReferenceAt { line, reply } => {
                    let _ = reply.send(writer.reference_at_line(line));
                }
                ToWriter::Commit(message) => {
                    finish = Some(message);
                    break;
                }
            }
        }
        // Without a finish the transaction rolls back every row written.
        match finish {
            Some(finish) => finish_batch(writer, *finish),
            None => Ok(Written::Nothing),
        }
    })
}

/// The end of an ingest whose rows are written: the same payroll again, a pay date refused,
/// or the commit, with the repeat guard's verdict.
fn finish_batch(writer: &mut dyn BatchWriter, finish: Finish) -> Result<Written, LedgerError> {
    let mut identity = finish.identity;
    let pay_date = identity.schedule.pay_date.clone();
    if let Some(existing) =
        writer.batch_with_identity(&identity.records_sha256, pay_date.as_deref())?
    {
        return Ok(Written::SamePayroll(existing));
    }
    let schedule = match finish.schedule {
        Ok(schedule) => schedule,
        Err((line, problem)) => return Ok(Written::PayDateRefused(line, problem)),
    };
    let mut repeats = None;
    if let Some((since, min_percent)) = finish.repeat_guard
        && let Some(overlap) = writer.repeat_overlap(&since, pay_date.as_deref())?
        && overlap.n_repeated * 100 >= u64::from(min_percent) * overlap.n_payouts.max(1)
    {
        identity.approval_reason = Some(format!("repeat guard: {overlap}"));
        repeats = Some(overlap);
    }
    let batch_id = writer.finish(finish.n_payouts, finish.total, finish.n_rejected, &identity)?;
    Ok(Written::Committed {
        batch_id,
        schedule,
        repeats,
    })
}

enum ParseError {
    Read(std::io::Error),
    Ledger(LedgerError),
    /// The writer stopped (it failed); its own error says why.
    WriterGone,
}

/// What parsing found, beyond the errors.
struct ParsedRows {
    n_payouts: u64,
    total: Cents,
    n_bad_rows: u64,
    /// The hash of the valid records, normalised ([`hash_record`]).
    records: Sha256,
    /// The `pay_date` column's date and the first line that gave it.
    pay_date: Option<(Date, u64)>,
}

impl ParsedRows {
    fn is_acceptable(&self, options: &IngestOptions) -> bool {
        self.n_payouts > 0 && (self.n_bad_rows == 0 || options.allow_partial)
    }

    /// Counts and hashes a valid row and queues it for the writer.
    #[inline]
    fn accept(
        &mut self,
        valid: &ValidRow<'_>,
        line: u64,
        outbox: &mut RowOutbox<'_>,
    ) -> Result<(), ParseError> {
        hash_record(&mut self.records, valid);
        outbox.push(line, valid);
        self.n_payouts += 1;
        self.total = self
            .total
            .checked_add(valid.amount)
            .ok_or_else(|| ParseError::Read(std::io::Error::other("the file's total overflows")))?;
        outbox.send_if_full()
    }

    /// Counts a refused row, records it as rejected under `--allow-partial`, and lists its
    /// problems.
    fn reject(
        &mut self,
        line: u64,
        row_errors: Vec<FieldError>,
        allow_partial: bool,
        outbox: &RowOutbox<'_>,
        errors: &mut ErrorList<'_>,
    ) -> Result<(), ParseError> {
        self.n_bad_rows += 1;
        if allow_partial {
            let joined = row_errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            outbox.send(ToWriter::Rejected {
                line,
                errors: joined,
            })?;
        }
        for problem in row_errors {
            errors.push(line, problem);
        }
        Ok(())
    }
}

/// The parser's end of the channel to the writer, with the valid rows not sent yet.
struct RowOutbox<'a> {
    batch_key: &'a str,
    to_writer: &'a mpsc::SyncSender<ToWriter>,
    recycled: &'a mpsc::Receiver<RowBuffer>,
    buffer: RowBuffer,
    /// Reused for each row's metadata object.
    metadata_json: String,
}

impl RowOutbox<'_> {
    fn send(&self, message: ToWriter) -> Result<(), ParseError> {
        self.to_writer
            .send(message)
            .map_err(|_| ParseError::WriterGone)
    }

    /// The reference of the valid row at `line`: from the rows not sent yet, or else from the
    /// writer.
    fn reference_at_line(&self, line: u64) -> Result<Option<String>, ParseError> {
        match self.buffer.reference_at_line(line) {
            Some(reference) => Ok(Some(reference.to_string())),
            None => {
                let (reply, answer) = mpsc::sync_channel(1);
                self.send(ToWriter::ReferenceAt { line, reply })?;
                answer
                    .recv()
                    .map_err(|_| ParseError::WriterGone)?
                    .map_err(ParseError::Ledger)
            }
        }
    }

    #[inline]
    fn push(&mut self, line: u64, valid: &ValidRow<'_>) {
        write_json_object(&mut self.metadata_json, valid.metadata.as_slice());
        self.buffer.push(
            self.batch_key,
            &NewPayout {
                line,
                reference: valid.reference,
                destination: &valid.destination,
                amount: valid.amount,
                name: valid.name,
                email: valid.email,
                memo: valid.memo,
                metadata: (!self.metadata_json.is_empty()).then_some(self.metadata_json.as_str()),
            },
        );
    }

    /// Hands a full buffer to the writer, taking a recycled one (or a new one) in its place.
    #[inline]
    fn send_if_full(&mut self) -> Result<(), ParseError> {
        if self.buffer.len() >= ROWS_PER_BUFFER {
            let next = self.recycled.try_recv().unwrap_or_default();
            let full = std::mem::replace(&mut self.buffer, next);
            self.send(ToWriter::Rows(full))?;
        }
        Ok(())
    }

    fn flush(mut self) -> Result<(), ParseError> {
        if !self.buffer.is_empty() {
            let rest = std::mem::take(&mut self.buffer);
            self.send(ToWriter::Rows(rest))?;
        }
        Ok(())
    }
}

/// Validates every row after the header, sending valid ones (and, under `--allow-partial`, the
/// refused ones) to the writer and collecting every problem.
#[allow(clippy::too_many_arguments)]
fn parse_rows(
    reader: &mut CsvReader,
    layout: &Layout,
    options: &IngestOptions,
    file_size: u64,
    batch_key: &str,
    errors: &mut ErrorList<'_>,
    to_writer: &mpsc::SyncSender<ToWriter>,
    recycled: &mpsc::Receiver<RowBuffer>,
) -> Result<ParsedRows, ParseError> {
    let mut record = csv::ByteRecord::new();
    let mut outbox = RowOutbox {
        batch_key,
        to_writer,
        recycled,
        buffer: RowBuffer::default(),
        metadata_json: String::new(),
    };
    let mut seen = SeenReferences::default();
    let mut parsed = ParsedRows {
        n_payouts: 0,
        total: Cents::ZERO,
        n_bad_rows: 0,
        records: Sha256::new(),
        pay_date: None,
    };
    while reader
        .read_byte_record(&mut record)
        .map_err(|err| ParseError::Read(std::io::Error::other(err)))?
    {
        let line = file_line(reader, &record);
        if parsed.n_payouts + parsed.n_bad_rows == ROWS_BEFORE_ESTIMATE {
            reserve_for_estimate(&mut seen, &record, file_size);
        }
        let (valid, mut row_errors) = match layout.validate(&record, options.limits) {
            Ok(valid) => (Some(valid), Vec::new()),
            Err(problems) => (None, problems),
        };
        if let Some(problem) =
            reused_reference(layout, &record, line, valid.is_some(), &mut seen, &outbox)?
        {
            row_errors.push(problem);
        }
        if let Some(date) = valid.as_ref().and_then(|valid| valid.pay_date)
            && let Some(problem) = one_pay_date(&mut parsed.pay_date, date, line)
        {
            row_errors.push(problem);
        }
        match valid {
            Some(valid) if row_errors.is_empty() => parsed.accept(&valid, line, &mut outbox)?,
            _ => parsed.reject(line, row_errors, options.allow_partial, &outbox, errors)?,
        }
    }
    outbox.flush()?;
    Ok(parsed)
}

/// Sizes the duplicate check for the whole file, from how many bytes the first rows took.
fn reserve_for_estimate(seen: &mut SeenReferences, record: &csv::ByteRecord, file_size: u64) {
    let bytes_so_far = record.position().map_or(0, |p| p.byte()).max(1);
    let estimate = file_size.saturating_mul(ROWS_BEFORE_ESTIMATE) / bytes_so_far;
    seen.reserve((estimate + estimate / 20) as usize);
}

/// Records this row's reference and returns the problem when an earlier row used it.
#[inline]
fn reused_reference(
    layout: &Layout,
    record: &csv::ByteRecord,
    line: u64,
    row_is_valid: bool,
    seen: &mut SeenReferences,
    outbox: &RowOutbox<'_>,
) -> Result<Option<FieldError>, ParseError> {
    let Some(reference) = layout.reference(record) else {
        return Ok(None);
    };
    let mut lookup = |earlier: u64| outbox.reference_at_line(earlier);
    let first_line = seen.first_use(reference, line, row_is_valid, &mut lookup)?;
    Ok(first_line.map(|first_line| FieldError {
        column: Some("reference".to_string()),
        message: format!("{reference:?} is already used on line {first_line}"),
    }))
}

/// Keeps the first pay date of a file and refuses another one.
fn one_pay_date(first: &mut Option<(Date, u64)>, date: Date, line: u64) -> Option<FieldError> {
    match *first {
        None => {
            *first = Some((date, line));
            None
        }
        Some((first, first_line)) => (first != date).then(|| FieldError {
            column: Some("pay_date".to_string()),
            message: format!(
                "{date} differs from {first} on line {first_line}; a file has one pay date"
            ),
        }),
    }
}

/// Adds one valid payout to the records' hash: its fields as payrun understands them, in a
/// fixed order, each ended by a separator that no valid field contains (a control
/// character), so that line endings, a BOM, spaces around fields, header case and column order
/// do not change the hash; metadata pairs are taken in key order.
fn hash_record(hasher: &mut Sha256, row: &row::ValidRow<'_>) {
    const FIELD: &[u8] = b"\x1f";
    for field in [
        Some(row.reference),
        Some(row.destination.as_ref()),
        row.name,
        row.email,
        row.memo,
    ] {
        hasher.update(field.unwrap_or("").as_bytes());
        hasher.update(FIELD);
    }
    hasher.update(row.amount.get().to_le_bytes());
    let mut metadata: [(&str, &str); row::MAX_METADATA_COLUMNS] = Default::default();
    let pairs = row.metadata.as_slice();
    metadata[..pairs.len()].copy_from_slice(pairs);
    let metadata = &mut metadata[..pairs.len()];
    metadata.sort_unstable();
    for (key, value) in metadata.iter() {
        hasher.update(key.as_bytes());
        hasher.update(b"\x1d");
        hasher.update(value.as_bytes());
        hasher.update(FIELD);
    }
    hasher.update(b"\x1e");
}

/// `{"key":"value",...}` into a reused buffer, or nothing for no pairs.
fn write_json_object(out: &mut String, pairs: &[(&str, &str)]) {
    out.clear();
    for (i, (key, value)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '{' } else { ',' });
        push_json_string(out, key);
        out.push(':');
        push_json_string(out, value);
    }
    if !pairs.is_empty() {
        out.push('}');
    }
}

/// `text` as a JSON string (RFC 8259 section 7: quote, backslash and control characters
/// escaped, everything else as it is), written in place rather than allocated per field.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    let mut plain_from = 0;
    for (at, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x00..=0x1f => None,
            // Every other byte, including those of multi-byte characters, is copied as it is.
            _ => continue,
        };
        out.push_str(&text[plain_from..at]);
        match escape {
            Some(escape) => out.push_str(escape),
            None => {
                let _ = write!(out, "\\u{byte:04x}");
            }
        }
        plain_from = at + 1;
    }
    out.push_str(&text[plain_from..]);
    out.push('"');
}

/// Refuses files that are plainly not CSV text before parsing them.
fn sniff_not_csv(file: &mut File) -> std::io::Result<Option<String>> {
    let mut head = [0u8; 8192];
    let mut n = 0;
    while n < head.len() {
        let read = file.read(&mut head[n..])?;
        if read == 0 {
            break;
        }
        n += read;
    }
    let head = &head[..n];
    std::io::Seek::rewind(file)?;
    Ok(
        if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
            Some("the file is UTF-16 text; save it as CSV UTF-8".to_string())
        } else if head.starts_with(b"PK\x03\x04") {
            Some("not a CSV file: it is a ZIP archive (an .xlsx spreadsheet?); export it as CSV UTF-8".to_string())
        } else if head.starts_with(b"%PDF") {
            Some("not a CSV file: it is a PDF document".to_string())
        } else if head.contains(&0) {
            Some("not a CSV file: it contains binary data (NUL bytes)".to_string())
        } else {
            None
        },
    )
}

/// The problems of one file: the first few kept for display, all counted.
struct ErrorList<'a> {
    file: &'a str,
    limit: usize,
    shown: Vec<FileError>,
    n_errors: u64,
}

impl<'a> ErrorList<'a> {
    fn new(file: &'a str, limit: usize) -> ErrorList<'a> {
        ErrorList {
            file,
            limit,
            shown: Vec::new(),
            n_errors: 0,
        }
    }

    fn push(&mut self, line: u64, problem: FieldError) {
        self.n_errors += 1;
        if self.shown.len() < self.limit {
            self.shown.push(FileError {
                file: self.file.to_string(),
                line,
                problem,
            });
        }
    }

    fn into_invalid(self) -> IngestOutcome {
        IngestOutcome::Invalid {
            errors: self.shown,
            n_errors: self.n_errors,
        }
    }
}

/// Finds repeated references with 8 bytes of memory per row, exactly: a 32-bit hash maps to the
/// first line that used it, and a matching hash is confirmed against the earlier row's real
/// reference, read back from the ingest transaction (valid rows) or kept here (invalid rows,
/// the rare case). Hash collisions between different references only cost a lookup.
///
/// The hashes are foldhash's, seeded at random per process: a third of the cost of std's
/// SipHash on short keys, and a file cannot be built in advance to collide.
#[derive(Default)]
struct SeenReferences {
    hasher: FastHasher,
    first_line_by_hash: HashMap<u32, u32, FastHasher>,
    invalid_row_references: HashMap<u32, Box<str>>,
    /// References whose hash was taken by a different reference.
    colliding: HashMap<Box<str>, u32>,
}

impl SeenReferences {
    /// Makes room for `n_rows` in one step, avoiding the doubling that would briefly hold two
    /// tables at once.
    fn reserve(&mut self, n_rows: usize) {
        self.first_line_by_hash
            .reserve(n_rows.saturating_sub(self.first_line_by_hash.len()));
    }

    /// Records this use of `reference` and returns the line of an earlier use, if any.
    fn first_use<E>(
        &mut self,
        reference: &str,
        line: u64,
        row_is_inserted: bool,
        inserted_reference_at: &mut impl FnMut(u64) -> Result<Option<String>, E>,
    ) -> Result<Option<u64>, E> {
        let line = u32::try_from(line).expect("a payout file has fewer than 4 billion lines");
        if let Some(first_line) = self.colliding.get(reference) {
            return Ok(Some(u64::from(*first_line)));
        }
        let hash = self.hasher.hash_one(reference) as u32;
        match self.first_line_by_hash.entry(hash) {
            Entry::Vacant(slot) => {
                slot.insert(line);
                if !row_is_inserted {
                    self.invalid_row_references.insert(line, reference.into());
                }
                Ok(None)
            }
            Entry::Occupied(slot) => {
                let first_line = *slot.get();
                let earlier = match self.invalid_row_references.get(&first_line) {
                    Some(earlier) => Some(earlier.to_string()),
                    None => inserted_reference_at(u64::from(first_line))?,
                };
                if earlier.as_deref() == Some(reference) {
                    Ok(Some(u64::from(first_line)))
                } else {
                    if !row_is_inserted {
                        self.invalid_row_references.insert(line, reference.into());
                    }
                    self.colliding.insert(reference.into(), line);
                    Ok(None)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn metadata_is_a_json_object_in_column_order() {
        let mut out = String::from("left over");
        write_json_object(&mut out, &[("dept", "ops"), ("note", "a \"b\"\\\n\u{1}é")]);
        assert_eq!(out, r#"{"dept":"ops","note":"a \"b\"\\\n\u0001é"}"#);
        write_json_object(&mut out, &[]);
        assert_eq!(out, "");
    }

    proptest! {
        /// Whatever a field holds, serde_json reads back exactly the text that was written.
        #[test]
        fn json_strings_round_trip(text in any::<String>()) {
            let mut out = String::new();
            push_json_string(&mut out, &text);
            prop_assert_eq!(serde_json::from_str::<String>(&out).unwrap(), text);
        }
    }
}
