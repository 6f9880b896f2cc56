//! `payrun ingest` and `payrun status` through the real binary: good and bad files, the
//! re-ingest no-op, the writer lock, and a kill in the middle of a large ingest.

use std::time::{Duration, Instant};

use crate::on_both_engines;
use crate::support::{Workdir, sample};

fn state(status: &serde_json::Value, state: &str) -> (u64, i64) {
    let entry = &status["payouts"][state];
    (
        entry["count"].as_u64().unwrap(),
        entry["amount_cents"].as_i64().unwrap(),
    )
}

on_both_engines!(cli: the_sample_payroll_is_ingested_once_and_shows_in_status, ingested_once);

fn ingested_once(work: Workdir) {
    let payroll = sample("payroll.csv");
    let first = work.run(&["ingest", payroll.to_str().unwrap()]);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(
        first.stdout.contains("50 payouts, total 127913.10 USD"),
        "{}",
        first.stdout
    );

    let status = work.status_json();
    assert_eq!(state(&status, "pending"), (50, 12_791_310));
    assert_eq!(status["batches"].as_array().unwrap().len(), 1);
    assert_eq!(status["batches"][0]["total_cents"], 12_791_310);
    assert_eq!(status["batches"][0]["row_count"], 50);

    // The same bytes under another name are the same file.
    let copy = work.file("payroll-copy.csv", std::fs::read(&payroll).unwrap());
    for again in [payroll.to_str().unwrap(), copy.to_str().unwrap()] {
        let run = work.run(&["ingest", again]);
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stdout.contains("already batch 1"), "{}", run.stdout);
    }
    assert_eq!(work.status_json(), status, "a re-ingest must add nothing");
}

on_both_engines!(cli: every_invalid_sample_is_rejected_with_line_numbered_errors_and_the_ledger_unchanged, invalid_samples_rejected);

fn invalid_samples_rejected(work: Workdir) {
    assert_eq!(
        work.run(&["ingest", sample("payroll.csv").to_str().unwrap()])
            .code,
        0
    );
    let before = work.status_json();
    let expected: &[(&str, &[&str])] = &[
        (
            "invalid_amounts.csv",
            &[
                ":2: amount: \"-120.00\" has a sign",
                ":3: amount: \"12.345\" has more than 2 decimal places",
                ":4: amount: \"1,250.00\" has a thousands separator",
                ":5: amount: \"1e3\" is in exponent notation",
                ":6: amount: \"$80.00\" has a currency symbol",
                ":7: amount: \"0.00\" must be greater than 0.00",
                ":8: amount: \"25000.00\" is above the per-payout maximum of 10000.00",
                ":9: amount: \"twelve\" is not a decimal number",
                ":10: amount: is empty",
            ],
        ),
        (
            "invalid_duplicate_reference.csv",
            &[":4: reference: \"CTR-7001\" is already used on line 2"],
        ),
        ("invalid_encoding.csv", &[":2: name: is not valid UTF-8"]),
        (
            "invalid_fields.csv",
            &[
                ":3: funding_source: \"not-a-funding-source\" is not a Dwolla funding source",
                ":4: currency: \"EUR\" is not supported",
                ":5: email: \"pat-at-example.com\" is not an email address",
                ":6: reference: is empty",
                ":7: funding_source: is empty",
                ":8: the row has 3 fields, the header has 5",
                ":9: the row has 6 fields, the header has 5",
            ],
        ),
        (
            "invalid_header.csv",
            &[
                ":1: unknown column \"amout\"",
                ":1: unknown column \"iban\"",
                ":1: required column \"amount\" is missing",
            ],
        ),
        (
            "invalid_header_only.csv",
            &[":1: the file has a header but no payout rows"],
        ),
        (
            "invalid_not_csv.csv",
            &[":1: not a CSV file: it is a ZIP archive"],
        ),
    ];
    let mut n_samples = 0;
    for entry in std::fs::read_dir(crate::support::repo_root().join("samples")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("invalid_") {
            n_samples += 1;
            assert!(
                expected.iter().any(|(file, _)| *file == name),
                "sample {name} has no expectation here"
            );
        }
    }
    assert_eq!(n_samples, expected.len());
    for (file, problems) in expected {
        let path = sample(file);
        let run = work.run(&["ingest", path.to_str().unwrap()]);
        assert_eq!(run.code, 65, "{file}: {run:?}");
        for problem in *problems {
            let wanted = format!("{}{problem}", path.display());
            assert!(
                run.stderr.contains(&wanted),
                "{file}: expected {wanted:?} in\n{}",
                run.stderr
            );
        }
        assert!(
            run.stdout.contains("nothing was ingested"),
            "{}",
            run.stdout
        );
        assert_eq!(work.status_json(), before, "{file} changed the ledger");
    }
}

on_both_engines!(cli: a_bom_reordered_case_insensitive_header_is_accepted, bom_reordered_header);

fn bom_reordered_header(work: Workdir) {
    let file = work.file(
        "contractors.csv",
        "\u{feff} Funding_Source ,AMOUNT,Reference,Metadata.Project\n\
         https://api-sandbox.dwolla.com/funding-sources/FD000000-0000-4000-8000-000000000003,250.5,INV-1,apollo\n\
         fd000000-0000-4000-8000-000000000004,\" 1000 \",INV-2,\n",
    );
    let run = work.run(&["ingest", file.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(state(&work.status_json(), "pending"), (2, 25_050 + 100_000));
}

on_both_engines!(cli: allow_partial_keeps_the_valid_rows_and_records_the_rest, allow_partial);

fn allow_partial(work: Workdir) {
    let path = sample("invalid_fields.csv");
    let run = work.run(&["ingest", "--allow-partial", path.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("batch 1, 1 payout,"), "{}", run.stdout);
    assert!(
        run.stdout.contains("7 invalid rows left out"),
        "{}",
        run.stdout
    );
    let status = work.status_json();
    assert_eq!(state(&status, "pending"), (1, 10_000));
    assert_eq!(status["batches"][0]["rejected_rows"], 7);
}

on_both_engines!(cli: errors_are_capped_with_a_count_of_the_rest, errors_capped);

fn errors_capped(work: Workdir) {
    let mut text = String::from("reference,amount,funding_source\n");
    for i in 0..120 {
        text.push_str(&format!(
            "R{i},1.234,fd000000-0000-4000-8000-000000000001\n"
        ));
    }
    let file = work.file("many-errors.csv", text);
    let run = work.run(&["ingest", "--max-errors", "10", file.to_str().unwrap()]);
    assert_eq!(run.code, 65);
    assert_eq!(
        run.stderr.matches("has more than 2 decimal places").count(),
        10
    );
    assert!(
        run.stderr.contains("... and 110 more problems"),
        "{}",
        run.stderr
    );
}

// SQLite only: the writer lock is the ledger file's; PostgreSQL writers do not exclude each other.
#[test]
fn a_second_writer_exits_at_once_naming_the_holder_while_readers_still_work() {
    let work = Workdir::new();
    assert_eq!(
        work.run(&["ingest", sample("payroll.csv").to_str().unwrap()])
            .code,
        0
    );
    let holder = payrun::ledger::Ledger::open_writer(&work.ledger()).expect("take the writer lock");

    let started = Instant::now();
    let blocked = work.run(&["ingest", sample("invalid_amounts.csv").to_str().unwrap()]);
    assert_eq!(blocked.code, 75, "{blocked:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the second writer must not wait"
    );
    let pid = std::process::id().to_string();
    assert!(
        blocked.stderr.contains(&format!("pid {pid}")),
        "{}",
        blocked.stderr
    );
    assert!(
        !blocked.stderr.to_lowercase().contains("busy"),
        "{}",
        blocked.stderr
    );

    assert_eq!(
        state(&work.status_json(), "pending").0,
        50,
        "status reads while a writer holds the lock"
    );
    drop(holder);
    let after = work.run(&["ingest", sample("invalid_amounts.csv").to_str().unwrap()]);
    assert_eq!(
        after.code, 65,
        "the lock is free once the holder is gone: {after:?}"
    );
}

on_both_engines!(cli:
    a_kill_during_a_large_ingest_leaves_the_whole_batch_or_none_of_it,
    killed_large_ingest
);

fn killed_large_ingest(work: Workdir) {
    let n_rows = 300_000;
    let path = work.path().join("large.csv");
    payrun::fixtures::write_payout_csv(
        std::io::BufWriter::new(std::fs::File::create(&path).unwrap()),
        n_rows,
    )
    .unwrap();
    let wal = work.path().join("payrun.db-wal");

    // Kill while rows are being written, nothing committed yet: on SQLite the WAL is growing,
    // on PostgreSQL the COPY into payouts has written many rows of its open transaction.
    let mut n_killed_mid_write = 0;
    for _ in 0..3 {
        let mut child = work
            .command(&["ingest", path.to_str().unwrap()])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !writing_rows(&work, &wal) && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let finished_already = child.try_wait().unwrap().is_some();
        child.kill().unwrap();
        child.wait().unwrap();
        let (batches, n_payouts) = batches_and_payouts(&work);
        match batches.as_slice() {
            [] => {
                assert_eq!(n_payouts, 0);
                n_killed_mid_write += 1;
            }
            [row_count] => {
                assert!(
                    finished_already,
                    "a batch appeared although the ingest was killed mid-write"
                );
                assert_eq!((*row_count, n_payouts), (n_rows, n_rows));
                return;
            }
            more => panic!("one file made {} batches", more.len()),
        }
        let _ = std::fs::remove_file(&wal);
    }
    assert!(n_killed_mid_write > 0);

    // After the kills, the file ingests whole.
    let run = work.run(&["ingest", path.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    let status = work.status_json();
    assert_eq!(
        state(&status, "pending"),
        (n_rows, payrun::fixtures::payout_csv_total_cents(n_rows))
    );
}

/// Whether an ingest is well into writing its rows, uncommitted: SQLite's WAL holds 2 MiB, or
/// a PostgreSQL COPY has written 20,000 rows.
fn writing_rows(work: &Workdir, wal: &std::path::Path) -> bool {
    if !work.is_postgres() {
        return std::fs::metadata(wal).map_or(0, |m| m.len()) >= 2 << 20;
    }
    let copied = work.query(
        "SELECT COALESCE(MAX(tuples_processed), 0) FROM pg_stat_progress_copy
         WHERE datname = current_database()",
    );
    copied[0][0].parse::<u64>().unwrap() >= 20_000
}

/// The row count of each batch, and the number of payouts, read from the ledger as it is
/// (nothing before the ingest made its tables).
fn batches_and_payouts(work: &Workdir) -> (Vec<u64>, u64) {
    let has_tables = if work.is_postgres() {
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'payouts'"
    } else {
        "SELECT COUNT(*) FROM sqlite_master WHERE name = 'payouts'"
    };
    if work.query(has_tables) == [["0"]] {
        return (Vec::new(), 0);
    }
    let batches = work
        .query("SELECT row_count FROM batches ORDER BY id")
        .into_iter()
        .map(|row| row[0].parse().unwrap())
        .collect();
    let n_payouts = work.query("SELECT COUNT(*) FROM payouts")[0][0]
        .parse()
        .unwrap();
    (batches, n_payouts)
}

on_both_engines!(cli: a_bad_flag_is_a_usage_error, bad_flag);

fn bad_flag(work: Workdir) {
    let run = work.run(&["ingest", "--max-amount", "1,000", "x.csv"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--max-amount"), "{}", run.stderr);
    assert!(!work.ledger_exists(), "a usage error makes no ledger");
    if work.is_postgres() {
        // Status on a database payrun has not used yet shows an empty ledger, not an error.
        return;
    }
    let run = work.run(&["status"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("no ledger at"), "{}", run.stderr);
}

on_both_engines!(cli: a_duplicate_far_from_its_first_use_is_found_exactly, duplicate_far_from_first_use);

fn duplicate_far_from_first_use(work: Workdir) {
    let mut text = String::from("reference,amount,funding_source\n");
    for i in 0..5000 {
        // Line 3001 repeats line 2's reference, long after that row went to the ledger writer;
        // line 4001 repeats the reference of line 3, which was itself invalid.
        let reference = match i {
            2999 => "R0".to_string(),
            3999 => "R1".to_string(),
            _ => format!("R{i}"),
        };
        let amount = if i == 1 { "1.005" } else { "1.00" };
        text.push_str(&format!(
            "{reference},{amount},fd000000-0000-4000-8000-000000000001\n"
        ));
    }
    let file = work.file("far.csv", text);
    let run = work.run(&["ingest", file.to_str().unwrap()]);
    assert_eq!(run.code, 65, "{run:?}");
    let problems: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(problems.len(), 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("far.csv:3: amount: \"1.005\" has more than 2 decimal places")
    );
    assert!(
        run.stderr
            .contains("far.csv:3001: reference: \"R0\" is already used on line 2")
    );
    assert!(
        run.stderr
            .contains("far.csv:4001: reference: \"R1\" is already used on line 3")
    );
}

on_both_engines!(cli:
    /// Excel saves CRLF; people leave blank lines. Errors, `plan` and the report still name the
    /// line of the file each row is on (the csv crate alone would number such rows a line early).
    crlf_files_and_blank_lines_keep_true_file_line_numbers, crlf_and_blank_lines);

fn crlf_and_blank_lines(work: Workdir) {
    let dest = "fd000000-0000-4000-8000-000000000003";
    let bad = work.file(
        "bad.csv",
        format!(
            "reference,amount,funding_source\r\nC-1,1.00,{dest}\r\n\r\nC-2,1.0x,{dest}\r\n\nC-3,-1,{dest}\n"
        ),
    );
    let run = work.run(&["ingest", bad.to_str().unwrap()]);
    assert_eq!(run.code, 65, "{run:?}");
    assert!(run.stderr.contains("bad.csv:4: amount"), "{}", run.stderr);
    assert!(run.stderr.contains("bad.csv:6: amount"), "{}", run.stderr);
    let plan = work.run(&["plan", bad.to_str().unwrap()]);
    assert!(plan.stdout.contains("bad.csv:4: amount"), "{}", plan.stdout);

    let good = work.file(
        "good.csv",
        format!("reference,amount,funding_source\r\nC-1,1.00,{dest}\r\n\r\nC-2,2.00,{dest}\r\n"),
    );
    assert_eq!(work.run(&["ingest", good.to_str().unwrap()]).code, 0);
    let report = work.run(&["report", "--format", "csv"]);
    let lines: Vec<String> = report
        .stdout
        .lines()
        .skip(1)
        .map(|row| row.split(',').nth(2).unwrap().to_string())
        .collect();
    assert_eq!(lines, ["2", "4"], "{}", report.stdout);
}
