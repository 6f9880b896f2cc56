//! `cargo bench --bench report`: the reports of a 1,000,000-payout ledger. Target on 2 cores:
//! the per-payout CSV in ≤ 2 s and ≤ 64 MiB peak RSS. The JSON summary and the HTML page
//! (which lists the first exceptions) are timed too.
//!
//! The ledger is built by the real ingest of a generated file, then its payouts are spread over
//! the states with SQL, as a day of sending and tracking would leave them.

mod common;

use std::time::Instant;

use payrun::ledger::{BatchSelection, Ledger};
use payrun::report::{Format, write_report_file};

const TARGET_SECONDS: f64 = 2.0;
const TARGET_PEAK_MIB: f64 = 64.0;

fn main() {
    let n_rows: u64 = common::size("PAYRUN_BENCH_ROWS", 1_000_000, 2_000);
    let dir = tempfile::tempdir().expect("scratch directory");
    // PAYRUN_BENCH_LEDGER keeps the built ledger at that path and reuses it on later runs
    // (for profiling the report alone).
    let ledger_path = std::env::var_os("PAYRUN_BENCH_LEDGER")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("payrun.db"));
    if !ledger_path.exists() {
        build_ledger(dir.path(), &ledger_path, n_rows);
    }

    if std::env::var_os("PAYRUN_BENCH_SINK_ONLY").is_some() {
        let ledger = Ledger::open_reader(&ledger_path).unwrap();
        let started = Instant::now();
        let selection = BatchSelection::default();
        payrun::report::write_report(&ledger, &selection, Format::Csv, &mut std::io::sink())
            .unwrap();
        println!("csv into a sink: {:.2} s", started.elapsed().as_secs_f64());
        return;
    }
    common::reset_peak_rss();
    let baseline = common::peak_rss_mib();
    let ledger = Ledger::open_reader(&ledger_path).unwrap();
    let selection = BatchSelection::default();
    for format in [Format::Csv, Format::Json, Format::Html] {
        let path = dir.path().join(format!("report.{}", format.extension()));
        let cpu_before = common::cpu_seconds();
        let started = Instant::now();
        let summary = write_report_file(&ledger, &selection, format, &path).unwrap();
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = common::cpu_seconds() - cpu_before;
        let peak = common::peak_rss_mib();
        assert!(summary.ties_out());
        assert_eq!(summary.overall.payouts, n_rows);
        let size_mib = std::fs::metadata(&path).unwrap().len() as f64 / (1 << 20) as f64;
        let name = format.extension();
        println!(
            "report {name}: {n_rows} payouts in {elapsed:.2} s ({:.0} payouts/s, CPU {cpu:.2} s), {size_mib:.1} MiB written",
            n_rows as f64 / elapsed
        );
        if format == Format::Csv {
            println!(
                "report csv: ratio to the 2 s target = {:.2} ({})",
                elapsed / TARGET_SECONDS,
                if elapsed <= TARGET_SECONDS {
                    "meets it"
                } else {
                    "ABOVE TARGET"
                }
            );
            println!(
                "report csv: peak RSS {peak:.1} MiB (process before the report: {baseline:.1} MiB; target ≤ 64 MiB: {})",
                if peak <= TARGET_PEAK_MIB {
                    "meets it"
                } else {
                    "ABOVE TARGET"
                }
            );
        }
    }
    println!(
        "report: peak RSS over all three reports {:.1} MiB",
        common::peak_rss_mib()
    );
    // The same CSV into a sink: the time the report itself takes, without the 250 MiB write
    // and fsync, which depend on the disk.
    let started = Instant::now();
    payrun::report::write_report(&ledger, &selection, Format::Csv, &mut std::io::sink()).unwrap();
    println!(
        "report csv into a sink (no file): {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

/// Ingests `n_rows` generated payouts, then moves them to a realistic spread of states: most
/// processed, some in flight, a few failed, returned, rejected or needing review.
fn build_ledger(dir: &std::path::Path, ledger_path: &std::path::Path, n_rows: u64) {
    let csv_path = dir.join("payouts.csv");
    let mut ledger = Ledger::open_writer(ledger_path).unwrap();
    payrun::fixtures::ingest_generated(&mut ledger, &csv_path, n_rows).unwrap();
    drop(ledger);
    std::fs::remove_file(&csv_path).unwrap();
    let conn = rusqlite::Connection::open(ledger_path).unwrap();
    conn.execute_batch(
        "UPDATE payouts SET state = 'processed', attempts = 1, transfer_status = 'processed',
             transfer_url = 'https://api.dwolla.com/transfers/' || idempotency_key,
             updated_at = '2026-11-20T12:00:00.000Z' WHERE line % 100 < 90;
         UPDATE payouts SET state = 'submitted', attempts = 1, transfer_status = 'pending',
             transfer_url = 'https://api.dwolla.com/transfers/' || idempotency_key
             WHERE line % 100 BETWEEN 90 AND 95;
         UPDATE payouts SET state = 'failed', attempts = 1, transfer_status = 'failed',
             transfer_url = 'https://api.dwolla.com/transfers/' || idempotency_key,
             failure_code = 'R01', failure_description = 'Insufficient Funds' WHERE line % 100 = 96;
         UPDATE payouts SET state = 'returned', attempts = 1, transfer_status = 'returned',
             transfer_url = 'https://api.dwolla.com/transfers/' || idempotency_key,
             failure_code = 'R03', failure_description = 'No Account/Unable to Locate Account'
             WHERE line % 100 = 97;
         UPDATE payouts SET state = 'rejected', attempts = 1, failure_code = 'ValidationError',
             failure_description = 'Invalid funding source.', failure_path = '/_links/destination/href'
             WHERE line % 1000 = 998;
         UPDATE payouts SET state = 'needs_review', attempts = 12,
             failure_description = 'no answer after 12 attempts' WHERE line % 1000 = 999;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
}
