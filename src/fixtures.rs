//! Generated payout files for tests and benchmarks: realistic rows, deterministic, any size.

use std::io::{self, Write};

/// The simulator's ordinary seeded payees' funding sources (see `sim`), cycled through.
const SEEDED_PAYEES: u32 = 8;

/// Writes a valid payout file of `n_rows` rows. Row `i` pays `1.00 + (i % 500000) cents`
/// dollars, never one of the simulator's sentinel amounts, to one of the seeded payees.
pub fn write_payout_csv(mut out: impl Write, n_rows: u64) -> io::Result<()> {
    writeln!(
        out,
        "reference,amount,funding_source,currency,name,email,memo,metadata.department"
    )?;
    for i in 0..n_rows {
        let payee = (i % u64::from(SEEDED_PAYEES)) + 1;
        let cents = 300 + (i % 500_000);
        writeln!(
            out,
            "REF-{i:08},{}.{:02},fd000000-0000-4000-8000-0000000000{payee:02},USD,Payee {i},payee{i}@example.com,Invoice {i},dept-{}",
            cents / 100,
            cents % 100,
            i % 7
        )?;
    }
    out.flush()
}

/// The total in cents of a file written by [`write_payout_csv`].
pub fn payout_csv_total_cents(n_rows: u64) -> i64 {
    (0..n_rows).map(|i| 300 + (i % 500_000) as i64).sum()
}
