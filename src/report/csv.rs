//! The per-payout CSV: one row per payout in payout-id order (batch, then file line), a stable
//! column order, amounts as plain decimals (`1234.56`), and text that a spreadsheet would run as
//! a formula neutralised with a leading `'`. The file starts with a UTF-8 byte-order mark so
//! that Excel reads names such as "José" correctly; CSV readers (the `csv` crate, Python's
//! `utf-8-sig`) skip it.

use std::borrow::Cow;
use std::io::Write;
use std::sync::mpsc;

use super::action;
use super::summary::{Summary, SummaryBuilder};
use crate::ledger::{self, PayoutRecord, ReportLedger};
use crate::payout::PayoutState;

/// The columns, in order. The first eighteen are the stable contract; later additions go at
/// the end.
pub const COLUMNS: [&str; 27] = [
    "batch_id",
    "file",
    "line",
    "reference",
    "name",
    "destination",
    "amount",
    "currency",
    "state",
    "transfer_id",
    "failure_code",
    "failure_description",
    "action",
    "attempts",
    "idempotency_key",
    "correlation_id",
    "created_at",
    "updated_at",
    "transfer_status",
    "failure_explanation",
    "failure_path",
    "pay_date",
    "sent_at",
    "late",
    "cancel_reason",
    "email",
    "memo",
];

pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A text value a spreadsheet would evaluate (it starts with `=`, `+`, `-`, `@`, a tab or a
/// carriage return) gets a leading `'`, so it shows as text and runs nothing. Others are kept.
pub fn neutralise(value: &str) -> Cow<'_, str> {
    if needs_neutralising(value.as_bytes()) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// [`neutralise`] for the ledger's text as bytes.
pub fn neutralise_bytes(value: &[u8]) -> Cow<'_, [u8]> {
    if needs_neutralising(value) {
        let mut quoted = Vec::with_capacity(value.len() + 1);
        quoted.push(b'\'');
        quoted.extend_from_slice(value);
        Cow::Owned(quoted)
    } else {
        Cow::Borrowed(value)
    }
}

fn needs_neutralising(value: &[u8]) -> bool {
    matches!(
        value.first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

/// Writes the CSV of the builder's batches, streaming each batch's payouts from the ledger
/// once, and totals them on the way: returns the summary of what was written.
///
/// Two threads share the work: this one steps SQLite and copies each row into a chunk (the
/// connection cannot leave its thread), the other encodes the CSV, totals, and writes. On two
/// cores that halves the time of a million-row report. At most [`CHUNKS_IN_FLIGHT`] chunks of
/// [`ROWS_PER_CHUNK`] rows exist at once, so memory stays flat whatever the ledger's size.
pub fn write_payouts_csv(
    ledger: &impl ReportLedger,
    summary: SummaryBuilder,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Summary> {
    let batch_ids: Vec<i64> = summary.batches.iter().map(|batch| batch.id).collect();
    let (full_tx, full_rx) = mpsc::sync_channel::<Chunk>(CHUNKS_IN_FLIGHT);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Chunk>(CHUNKS_IN_FLIGHT + 2);
    std::thread::scope(|scope| {
        let encoder = scope.spawn(move || encode(summary, full_rx, empty_tx, out));
        let read = (|| -> anyhow::Result<()> {
            let mut chunk = Chunk::default();
            for (index, batch_id) in batch_ids.iter().enumerate() {
                ledger.for_each_batch_payout(*batch_id, false, |payout| -> anyhow::Result<()> {
                    chunk.push(index, payout);
                    if chunk.rows.len() == ROWS_PER_CHUNK {
                        let next = empty_rx.try_recv().unwrap_or_default();
                        full_tx
                            .send(std::mem::replace(&mut chunk, next))
                            .map_err(|_| EncoderStopped)?;
                    }
                    Ok(())
                })?;
            }
            if !chunk.rows.is_empty() {
                full_tx.send(chunk).map_err(|_| EncoderStopped)?;
            }
            Ok(())
        })();
        drop(full_tx);
        let encoded = encoder
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the CSV encoder panicked")));
        match (read, encoded) {
            // The encoder's own error says why it stopped.
            (Err(err), Ok(_)) if !err.is::<EncoderStopped>() => Err(err),
            (_, Err(err)) => Err(err),
            (Err(err), Ok(_)) => Err(err),
            (Ok(()), Ok(summary)) => Ok(summary),
        }
    })
}

/// Rows per chunk handed from the reading thread to the encoding one.
pub const ROWS_PER_CHUNK: usize = 2048;
/// Chunks queued between the threads.
pub const CHUNKS_IN_FLIGHT: usize = 4;

#[derive(Debug, thiserror::Error)]
#[error("the CSV encoder stopped")]
struct EncoderStopped;

/// Text columns copied per row, in the order of [`Chunk::record`].
const TEXT_FIELDS: usize = 17;

/// Copied rows: their text in one reused buffer, so the hot path does not allocate.
#[derive(Default)]
struct Chunk {
    text: Vec<u8>,
    rows: Vec<ChunkRow>,
}

struct ChunkRow {
    batch_index: usize,
    batch_id: i64,
    line: i64,
    amount_cents: i64,
    attempts: i64,
    state: PayoutState,
    /// Byte ranges in `Chunk::text`; `None` for NULL.
    spans: [Option<(u32, u32)>; TEXT_FIELDS],
}

impl Chunk {
    fn push(&mut self, batch_index: usize, payout: &PayoutRecord<'_>) {
        let fields = [
            Some(payout.reference),
            payout.name,
            Some(payout.destination),
            Some(payout.currency),
            payout.transfer_url,
            payout.transfer_status,
            payout.failure_code,
            payout.failure_description,
            payout.failure_explanation,
            payout.failure_path,
            Some(payout.idempotency_key),
            Some(payout.correlation_id),
            Some(payout.created_at),
            Some(payout.updated_at),
            payout.cancel_reason,
            payout.email,
            payout.memo,
        ];
        let mut spans = [None; TEXT_FIELDS];
        for (span, field) in spans.iter_mut().zip(fields) {
            if let Some(field) = field {
                let start = self.text.len() as u32;
                self.text.extend_from_slice(field);
                *span = Some((start, self.text.len() as u32));
            }
        }
        self.rows.push(ChunkRow {
            batch_index,
            batch_id: payout.batch_id,
            line: payout.line,
            amount_cents: payout.amount_cents,
            attempts: payout.attempts,
            state: payout.state,
            spans,
        });
    }

    fn record(&self, row: &ChunkRow) -> PayoutRecord<'_> {
        let field = |index: usize| {
            row.spans[index].map(|(start, end)| &self.text[start as usize..end as usize])
        };
        let required = |index: usize| field(index).unwrap_or_default();
        PayoutRecord {
            batch_id: row.batch_id,
            line: row.line,
            amount_cents: row.amount_cents,
            attempts: row.attempts,
            state: row.state,
            reference: required(0),
            name: field(1),
            destination: required(2),
            currency: required(3),
            transfer_url: field(4),
            transfer_status: field(5),
            failure_code: field(6),
            failure_description: field(7),
            failure_explanation: field(8),
            failure_path: field(9),
            idempotency_key: required(10),
            correlation_id: required(11),
            created_at: required(12),
            updated_at: required(13),
            cancel_reason: field(14),
            email: field(15),
            memo: field(16),
        }
    }

    fn clear(&mut self) {
        self.text.clear();
        self.rows.clear();
    }
}

/// The encoding thread: CSV rows and totals from the chunks, in order.
fn encode(
    mut summary: SummaryBuilder,
    chunks: mpsc::Receiver<Chunk>,
    recycle: mpsc::SyncSender<Chunk>,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Summary> {
    out.write_all(UTF8_BOM)?;
    let mut writer = ::csv::WriterBuilder::new()
        .buffer_capacity(1 << 16)
        .from_writer(out);
    writer.write_record(COLUMNS)?;
    let batches: Vec<BatchFields> = summary
        .batches
        .iter()
        .map(|batch| BatchFields {
            id: batch.id.to_string(),
            file: neutralise(&batch.file_name).into_owned(),
            status: batch.status.clone(),
            pay_date: batch.pay_date.clone().unwrap_or_default(),
            sent_at: batch.sent_at.clone().unwrap_or_default(),
            late: if batch.late { "yes" } else { "" },
        })
        .collect();
    let mut numbers = Numbers::default();
    for mut chunk in chunks {
        for row in &chunk.rows {
            let payout = chunk.record(row);
            summary.add(row.batch_index, &payout);
            write_row(
                &mut writer,
                &mut numbers,
                &batches[row.batch_index],
                &payout,
            )?;
        }
        chunk.clear();
        let _ = recycle.try_send(chunk);
    }
    writer.flush()?;
    Ok(summary.finish())
}

/// The columns every payout of a batch shares, formatted once.
struct BatchFields {
    id: String,
    file: String,
    status: String,
    pay_date: String,
    sent_at: String,
    late: &'static str,
}

fn write_row<W: Write>(
    writer: &mut ::csv::Writer<W>,
    numbers: &mut Numbers,
    batch: &BatchFields,
    payout: &PayoutRecord<'_>,
) -> anyhow::Result<()> {
    let batch_status = batch.status.as_str();
    fn text(value: Option<&[u8]>) -> Cow<'_, [u8]> {
        neutralise_bytes(value.unwrap_or_default())
    }
    let action = if payout.state.needs_attention() || payout.state == PayoutState::Submitting {
        let code = payout.failure_code.map(ledger::text);
        let path = payout.failure_path.map(ledger::text);
        action(payout.state, code.as_deref(), path.as_deref(), batch_status)
    } else {
        action(payout.state, None, None, batch_status)
    };
    let (line, amount, attempts) =
        numbers.format(payout.line, payout.amount_cents, payout.attempts);
    // One statement, so the neutralised temporaries live until the record is written.
    writer.write_record::<[&[u8]; 27], &[u8]>([
        batch.id.as_bytes(),
        batch.file.as_bytes(),
        line,
        &text(Some(payout.reference)),
        &text(payout.name),
        &text(Some(payout.destination)),
        amount,
        &text(Some(payout.currency)),
        payout.state.as_str().as_bytes(),
        &text(payout.transfer_url.map(transfer_id_bytes)),
        &text(payout.failure_code),
        &text(payout.failure_description),
        neutralise(&action).as_bytes(),
        attempts,
        &text(Some(payout.idempotency_key)),
        &text(Some(payout.correlation_id)),
        payout.created_at,
        payout.updated_at,
        &text(payout.transfer_status),
        &text(payout.failure_explanation),
        &text(payout.failure_path),
        batch.pay_date.as_bytes(),
        batch.sent_at.as_bytes(),
        batch.late.as_bytes(),
        &text(payout.cancel_reason),
        &text(payout.email),
        &text(payout.memo),
    ])?;
    Ok(())
}

/// The id at the end of a transfer URL (see [`super::transfer_id`]), on bytes.
fn transfer_id_bytes(url: &[u8]) -> &[u8] {
    let end = url
        .iter()
        .position(|b| matches!(b, b'?' | b'#'))
        .unwrap_or(url.len());
    let path = url[..end].strip_suffix(b"/").unwrap_or(&url[..end]);
    match path.iter().rposition(|b| *b == b'/') {
        Some(slash) => &path[slash + 1..],
        None => path,
    }
}

/// Reused buffers for the numeric fields, so the hot loop does not allocate.
#[derive(Default)]
struct Numbers {
    line: String,
    amount: String,
    attempts: String,
}

impl Numbers {
    fn format(&mut self, line: i64, amount_cents: i64, attempts: i64) -> (&[u8], &[u8], &[u8]) {
        use std::fmt::Write as _;
        self.line.clear();
        self.amount.clear();
        self.attempts.clear();
        let _ = write!(self.line, "{line}");
        let _ = crate::money::write_decimal(&mut self.amount, amount_cents);
        let _ = write!(self.attempts, "{attempts}");
        (
            self.line.as_bytes(),
            self.amount.as_bytes(),
            self.attempts.as_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_a_spreadsheet_would_run_are_neutralised() {
        for evil in [
            "=1+2",
            "+1",
            "-2+3",
            "@SUM(A1)",
            "\t=1",
            "\r=1",
            "=HYPERLINK(\"x\")",
        ] {
            assert_eq!(neutralise(evil), format!("'{evil}"), "{evil:?}");
        }
        for plain in ["Dana Whitfield", "", "1234.56", "a=b", "'quoted", " =1"] {
            assert_eq!(neutralise(plain), plain, "{plain:?}");
        }
        assert_eq!(&*neutralise_bytes(b"-5"), b"'-5");
        assert_eq!(&*neutralise_bytes(b"5"), b"5");
    }

    #[test]
    fn a_transfer_id_is_the_last_segment_of_its_url() {
        for url in [
            "https://api.dwolla.com/transfers/abc-1",
            "https://api.dwolla.com/transfers/abc-1/",
            "https://api.dwolla.com/transfers/abc-1?x=1",
            "abc-1",
        ] {
            assert_eq!(transfer_id_bytes(url.as_bytes()), b"abc-1", "{url}");
            assert_eq!(super::super::transfer_id(url), "abc-1", "{url}");
        }
    }
}
