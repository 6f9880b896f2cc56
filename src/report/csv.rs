//! The per-payout CSV: one row per payout in payout-id order (batch, then file line), a stable
//! column order, amounts as plain decimals (`1234.56`), and text that a spreadsheet would run as
//! a formula neutralised with a leading `'`. The file starts with a UTF-8 byte-order mark so
//! that Excel reads names such as "José" correctly; CSV readers (the `csv` crate, Python's
//! `utf-8-sig`) skip it.

use std::borrow::Cow;
use std::io::Write;

use super::summary::Summary;
use super::{action, transfer_id};
use crate::ledger::{Ledger, PayoutRecord};

/// The columns, in order. The first eighteen are the stable contract; later additions go at
/// the end.
pub const COLUMNS: [&str; 21] = [
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
];

pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A text value a spreadsheet would evaluate (it starts with `=`, `+`, `-`, `@`, a tab or a
/// carriage return) gets a leading `'`, so it shows as text and runs nothing. Others are kept.
pub fn neutralise(value: &str) -> Cow<'_, str> {
    match value.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{value}")),
        _ => Cow::Borrowed(value),
    }
}

/// Writes the CSV of the summary's batches, streaming each batch's payouts from the ledger.
pub fn write_payouts_csv(
    ledger: &Ledger,
    summary: &Summary,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    out.write_all(UTF8_BOM)?;
    let mut writer = ::csv::WriterBuilder::new()
        .buffer_capacity(1 << 16)
        .from_writer(out);
    writer.write_record(COLUMNS)?;
    let mut numbers = Numbers::default();
    for batch in &summary.batches {
        let file = neutralise(&batch.file).into_owned();
        let batch_id = batch.batch_id.to_string();
        ledger.for_each_batch_payout(batch.batch_id, false, |payout| -> anyhow::Result<()> {
            write_row(&mut writer, &mut numbers, &batch_id, &file, &batch.status, payout)
        })?;
    }
    writer.flush()?;
    Ok(())
}

fn write_row<W: Write>(
    writer: &mut ::csv::Writer<W>,
    numbers: &mut Numbers,
    batch_id: &str,
    file: &str,
    batch_status: &str,
    payout: &PayoutRecord<'_>,
) -> anyhow::Result<()> {
    fn text(value: Option<&str>) -> Cow<'_, str> {
        neutralise(value.unwrap_or_default())
    }
    let action = action(
        payout.state,
        payout.failure_code,
        payout.failure_path,
        batch_status,
    );
    let (line, amount, attempts) = numbers.format(payout.line, payout.amount_cents, payout.attempts);
    // One statement, so the neutralised temporaries live until the record is written.
    writer.write_record::<[&[u8]; 21], &[u8]>([
        batch_id.as_bytes(),
        file.as_bytes(),
        line,
        text(Some(payout.reference)).as_bytes(),
        text(payout.name).as_bytes(),
        text(Some(payout.destination)).as_bytes(),
        amount,
        text(Some(payout.currency)).as_bytes(),
        payout.state.as_str().as_bytes(),
        text(payout.transfer_url.map(transfer_id)).as_bytes(),
        text(payout.failure_code).as_bytes(),
        text(payout.failure_description).as_bytes(),
        neutralise(&action).as_bytes(),
        attempts,
        text(Some(payout.idempotency_key)).as_bytes(),
        text(Some(payout.correlation_id)).as_bytes(),
        payout.created_at.as_bytes(),
        payout.updated_at.as_bytes(),
        text(payout.transfer_status).as_bytes(),
        text(payout.failure_explanation).as_bytes(),
        text(payout.failure_path).as_bytes(),
    ])?;
    Ok(())
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
        let sign = if amount_cents < 0 { "-" } else { "" };
        let cents = amount_cents.unsigned_abs();
        let _ = write!(self.amount, "{sign}{}.{:02}", cents / 100, cents % 100);
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
        for evil in ["=1+2", "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "=HYPERLINK(\"x\")"] {
            assert_eq!(neutralise(evil), format!("'{evil}"), "{evil:?}");
        }
        for plain in ["Dana Whitfield", "", "1234.56", "a=b", "'quoted", " =1"] {
            assert_eq!(neutralise(plain), plain, "{plain:?}");
        }
    }
}
