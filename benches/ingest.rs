//! `cargo bench --bench ingest`: a generated 1,000,000-row payout file through full validation
//! into a fresh ledger. Target on 2 cores: ≥ 300,000 rows/s and ≤ 64 MiB peak RSS.

mod common;

use std::time::Instant;

use payrun::ingest::{IngestOutcome, ingest_file};
use payrun::ledger::Ledger;

const TARGET_ROWS_PER_SECOND: f64 = 300_000.0;

fn main() {
    let n_rows: u64 = common::size("PAYRUN_BENCH_ROWS", 1_000_000, 2_000);
    let dir = tempfile::tempdir().expect("scratch directory");
    let csv_path = dir.path().join("payouts.csv");
    let file = std::io::BufWriter::new(std::fs::File::create(&csv_path).unwrap());
    payrun::fixtures::write_payout_csv(file, n_rows).unwrap();
    let size_mib = std::fs::metadata(&csv_path).unwrap().len() as f64 / (1 << 20) as f64;

    let options = payrun::fixtures::ingest_options();
    common::reset_peak_rss();
    let mut ledger = Ledger::open_writer(&dir.path().join("payrun.db")).unwrap();
    let cpu_before = common::cpu_seconds();
    let started = Instant::now();
    let outcome = ingest_file(
        &mut ledger,
        &csv_path,
        &options,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = common::cpu_seconds() - cpu_before;
    let peak = common::peak_rss_mib();
    let IngestOutcome::Accepted {
        n_payouts, total, ..
    } = outcome
    else {
        panic!("the generated file must be valid: {outcome:?}");
    };
    assert_eq!(n_payouts, n_rows);
    assert_eq!(
        total.get(),
        payrun::fixtures::payout_csv_total_cents(n_rows)
    );
    let rate = n_rows as f64 / elapsed;
    println!("ingest: {n_rows} rows ({size_mib:.0} MiB) in {elapsed:.2} s = {rate:.0} rows/s");
    println!(
        "ingest: CPU time {cpu:.2} s = {:.0} rows per CPU-second",
        n_rows as f64 / cpu
    );
    println!(
        "ingest: ratio to the 300,000 rows/s target = {:.2} ({})",
        rate / TARGET_ROWS_PER_SECOND,
        if rate >= TARGET_ROWS_PER_SECOND {
            "meets it"
        } else {
            "BELOW TARGET"
        }
    );
    println!(
        "ingest: peak RSS {peak:.1} MiB (target ≤ 64 MiB: {})",
        if peak <= 64.0 {
            "meets it"
        } else {
            "ABOVE TARGET"
        }
    );
}
