//! Generated payout files for tests and benchmarks: realistic rows, deterministic, any size.

use std::io::{self, Write};

/// The simulator's ordinary seeded payees' funding sources (see `sim`), cycled through.
const SEEDED_PAYEES: u32 = 8;

/// Writes a valid payout file of `n_rows` rows: row `i` pays [`amount_cents`]`(i)` to one of
/// the seeded ordinary payees.
pub fn write_payout_csv(mut out: impl Write, n_rows: u64) -> io::Result<()> {
    writeln!(
        out,
        "reference,amount,funding_source,currency,name,email,memo,metadata.department"
    )?;
    for i in 0..n_rows {
        let payee = (i % u64::from(SEEDED_PAYEES)) + 1;
        let cents = amount_cents(i);
        writeln!(
            out,
            "REF-{i:08},{},fd000000-0000-4000-8000-0000000000{payee:02},USD,Payee {i},payee{i}@example.com,Invoice {i},dept-{}",
            crate::money::decimal(cents),
            i % 7
        )?;
    }
    out.flush()
}

/// The amount of row `i`: from 3.00 up, never one of the simulator's sentinel amounts (1.01,
/// 1.02 and 2.01 are below the range; 9.99, which fails, is skipped).
pub fn amount_cents(i: u64) -> u64 {
    let cents = 300 + (i % 500_000);
    if cents == 999 { 1000 } else { cents }
}

/// The total in cents of a file written by [`write_payout_csv`].
pub fn payout_csv_total_cents(n_rows: u64) -> i64 {
    (0..n_rows).map(|i| amount_cents(i) as i64).sum()
}

/// The options tests and benchmarks ingest generated files with: strict, all or nothing, the
/// default $10,000.00 limit, no approval gate, no pay date, and no repeat guard (generated
/// files reuse references from file to file).
pub fn ingest_options() -> crate::ingest::IngestOptions {
    crate::ingest::IngestOptions {
        allow_partial: false,
        limits: crate::ingest::row::Limits {
            max_amount: crate::money::Cents::new(1_000_000).expect("positive"),
        },
        max_errors_shown: 10,
        awaiting_approval: false,
        pay_dates: crate::ingest::PayDateRules::default(),
        repeat_guard: crate::ingest::RepeatGuard {
            allow_repeat: true,
            ..crate::ingest::RepeatGuard::default()
        },
    }
}

/// Ingests `path` with [`ingest_options`] and returns its batch id; anything but acceptance is
/// an error (a generated file is always valid).
pub fn ingest(
    ledger: &mut impl crate::ledger::IngestLedger,
    path: &std::path::Path,
) -> anyhow::Result<i64> {
    let now = time::OffsetDateTime::now_utc();
    match crate::ingest::ingest_file(ledger, path, &ingest_options(), now)? {
        crate::ingest::IngestOutcome::Accepted { batch_id, .. } => Ok(batch_id),
        other => anyhow::bail!("{} was not accepted: {other:?}", path.display()),
    }
}

/// Writes `n_rows` generated payouts to `path` and ingests them: the set-up of every test and
/// benchmark that needs a ledger full of payouts.
pub fn ingest_generated(
    ledger: &mut impl crate::ledger::IngestLedger,
    path: &std::path::Path,
    n_rows: u64,
) -> anyhow::Result<i64> {
    write_payout_csv(io::BufWriter::new(std::fs::File::create(path)?), n_rows)?;
    ingest(ledger, path)
}
