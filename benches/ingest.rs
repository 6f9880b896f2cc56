//! `cargo bench --bench ingest`: a generated 1,000,000-row payout file through full validation
//! into a fresh ledger, on each engine. Targets on 2 cores: SQLite ≥ 300,000 rows/s, PostgreSQL
//! ≥ 150,000 rows/s, both ≤ 64 MiB peak RSS (of payrun; the server's is its own).
//!
//! PostgreSQL: the server `PAYRUN_TEST_POSTGRES_URL` names, or a throwaway cluster started as
//! the tests do (`tests/it/support/postgres.rs`); skipped with a note where neither can be had.

mod common;
#[path = "../tests/it/support/postgres.rs"]
#[allow(dead_code)]
mod pg_support;

use std::path::Path;
use std::time::Instant;

use payrun::ingest::{IngestOptions, IngestOutcome, ingest_file};
use payrun::ledger::postgres::PgLedger;
use payrun::ledger::{IngestLedger, Ledger};

const SQLITE_TARGET: f64 = 300_000.0;
const POSTGRES_TARGET: f64 = 150_000.0;

fn main() {
    let n_rows: u64 = common::size("PAYRUN_BENCH_ROWS", 1_000_000, 2_000);
    let dir = tempfile::tempdir().expect("scratch directory");
    let csv_path = dir.path().join("payouts.csv");
    let file = std::io::BufWriter::new(std::fs::File::create(&csv_path).unwrap());
    payrun::fixtures::write_payout_csv(file, n_rows).unwrap();
    let size_mib = std::fs::metadata(&csv_path).unwrap().len() as f64 / (1 << 20) as f64;
    println!("ingest: {n_rows} rows ({size_mib:.0} MiB)");
    let options = payrun::fixtures::ingest_options();

    common::reset_peak_rss();
    let mut sqlite = Ledger::open_writer(&dir.path().join("payrun.db")).unwrap();
    let sqlite_rate = measure(
        "SQLite",
        &mut sqlite,
        &csv_path,
        &options,
        n_rows,
        SQLITE_TARGET,
    );

    let Some(database) = pg_support::database("the ingest benchmark") else {
        println!("ingest (PostgreSQL): skipped, no server (see above)");
        return;
    };
    common::reset_peak_rss();
    let mut postgres = PgLedger::open(&database.url).unwrap();
    let fsync = database.query("SHOW fsync");
    println!("ingest (PostgreSQL): server fsync = {}", fsync[0][0]);
    let postgres_rate = measure(
        "PostgreSQL",
        &mut postgres,
        &csv_path,
        &options,
        n_rows,
        POSTGRES_TARGET,
    );
    println!(
        "ingest: PostgreSQL / SQLite in this run = {:.2}",
        postgres_rate / sqlite_rate
    );
}

/// Ingests the file into `ledger` and prints the figures; returns rows per second.
fn measure(
    engine: &str,
    ledger: &mut impl IngestLedger,
    csv_path: &Path,
    options: &IngestOptions,
    n_rows: u64,
    target: f64,
) -> f64 {
    let cpu_before = common::cpu_seconds();
    let started = Instant::now();
    let outcome = ingest_file(ledger, csv_path, options, time::OffsetDateTime::now_utc()).unwrap();
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
    let verdict = |ok: bool| if ok { "meets it" } else { "BELOW TARGET" };
    println!("ingest ({engine}): {elapsed:.2} s = {rate:.0} rows/s");
    println!(
        "ingest ({engine}): CPU time of payrun {cpu:.2} s = {:.0} rows per CPU-second",
        n_rows as f64 / cpu
    );
    println!(
        "ingest ({engine}): ratio to the {target:.0} rows/s target = {:.2} ({})",
        rate / target,
        verdict(rate >= target)
    );
    println!(
        "ingest ({engine}): peak RSS {peak:.1} MiB (target ≤ 64 MiB: {})",
        if peak <= 64.0 {
            "meets it"
        } else {
            "ABOVE TARGET"
        }
    );
    rate
}
