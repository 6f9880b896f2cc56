//! `payrun report` and `payrun reconcile` through the real binary, over ledgers whose payouts
//! were really sent to the simulator.

use std::collections::HashMap;
use std::time::Duration;

use payrun::ledger::postgres::PgLedger;
use payrun::ledger::{BatchSelection, Ledger};
use payrun::sim::SimConfig;
use serde_json::Value;

use crate::on_both_engines;
use crate::support::SendEnv;
use crate::support::{HAL, sim_token};

/// File lines of [`EVERY_STATE_FILE`] (the header is line 1) and the state each is put in.
const STATES_BY_LINE: [(u32, &str); 10] = [
    (2, "processed"),
    (3, "failed"),
    (4, "returned"),
    (5, "rejected"),
    (6, "needs_review"),
    (7, "submitting"),
    (8, "pending"),
    (9, "cancelled"),
    (10, "submitted"),
    (11, "submitted"),
];

/// Names and references a spreadsheet would run as formulas, on lines 2, 3 and 11.
const EVERY_STATE_FILE: &str = "reference,amount,funding_source,name\n\
    +SUM(A1),100.10,fd000000-0000-4000-8000-000000000001,=HYPERLINK(\"http://evil.example\")\n\
    PAY-2,200.20,fd000000-0000-4000-8000-000000000002,-Bob Minus\n\
    PAY-3,300.30,fd000000-0000-4000-8000-000000000003,Cara Return\n\
    PAY-4,400.40,fd000000-0000-4000-8000-000000000004,Dan Reject\n\
    PAY-5,500.50,fd000000-0000-4000-8000-000000000005,Eve <b>Review</b>\n\
    PAY-6,600.60,fd000000-0000-4000-8000-000000000006,Finn Flight\n\
    PAY-7,700.70,fd000000-0000-4000-8000-000000000007,Gus Pending\n\
    PAY-8,800.80,fd000000-0000-4000-8000-000000000008,Hal Cancel\n\
    PAY-9,900.90,fd000000-0000-4000-8000-000000000001,Ida Sent\n\
    @PAY-10,1000.00,fd000000-0000-4000-8000-000000000002,José Muñoz <b>\n";

const EVERY_STATE_TOTAL_CENTS: i64 =
    10_010 + 20_020 + 30_030 + 40_040 + 50_050 + 60_060 + 70_070 + 80_080 + 90_090 + 100_000;

/// A simulator whose transfers stay `created`/`pending` for the length of a test.
fn slow_lifecycle() -> SimConfig {
    SimConfig {
        settle: Duration::from_secs(3600),
        ..SimConfig::new()
    }
}

/// Sends every payout of `env`'s ledger through the real sender.
async fn send_all(env: &SendEnv) {
    let report = env
        .send(
            env.client(500, 16, Duration::from_secs(5)),
            env.send_config(16),
        )
        .await;
    assert_eq!(report.n_deferred, 0, "{report:?}");
}

/// Puts `env`'s ledger in every state: ten payouts really sent to the simulator, then moved
/// to their states with SQL, because the sender and tracking do not produce failed, returned,
/// cancelled or in-doubt payouts in a test of this length. The failure columns are what
/// tracking and the sender store.
async fn put_in_every_state(env: &SendEnv) {
    let file = env.work.file("every-state.csv", EVERY_STATE_FILE);
    env.ingest_file(&file);
    send_all(env).await;
    for (line, state) in STATES_BY_LINE {
        let unsent = if matches!(state, "pending" | "cancelled" | "rejected" | "submitting") {
            ", transfer_url = NULL, transfer_status = NULL"
        } else {
            ""
        };
        let unattempted = if matches!(state, "pending" | "cancelled") {
            ", attempts = 0"
        } else {
            ""
        };
        env.query(&format!(
            "UPDATE payouts SET state = '{state}'{unsent}{unattempted} WHERE line = {line}"
        ));
    }
    for update in [
        "UPDATE payouts SET transfer_status = 'processed' WHERE line = 2",
        "UPDATE payouts SET transfer_status = 'failed', failure_code = 'R01',
             failure_description = 'Insufficient Funds' WHERE line = 3",
        "UPDATE payouts SET transfer_status = 'returned', failure_code = 'R03',
             failure_description = 'No Account/Unable to Locate Account' WHERE line = 4",
        "UPDATE payouts SET failure_code = 'ValidationError',
             failure_description = '=Amount exceeds the limit.', failure_path = '/amount/value' WHERE line = 5",
        "UPDATE payouts SET failure_description = 'no answer after 12 attempts' WHERE line = 6",
    ] {
        env.query(update);
    }
}

fn read(env: &SendEnv, name: &str) -> Vec<u8> {
    std::fs::read(env.work.path().join(name)).unwrap_or_else(|err| panic!("{name}: {err}"))
}

/// The CSV report as maps from column name to value, in file order.
fn csv_rows(bytes: &[u8]) -> (Vec<String>, Vec<HashMap<String, String>>) {
    assert!(
        bytes.starts_with(b"\xEF\xBB\xBF"),
        "the CSV starts with a BOM"
    );
    let mut reader = csv::Reader::from_reader(&bytes[3..]);
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            header
                .iter()
                .cloned()
                .zip(record.iter().map(str::to_string))
                .collect()
        })
        .collect();
    (header, rows)
}

on_both_engines!(
    a_report_over_every_state_ties_out_lists_exceptions_first_and_neutralises_formulas,
    slow_lifecycle(),
    every_state_report
);

async fn every_state_report(env: SendEnv) {
    put_in_every_state(&env).await;

    // JSON: every state, exceptions first, and the tie-out.
    let run = env.run(&["report", "--out", "summary.json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("ties out"), "{}", run.stderr);
    let summary: Value = serde_json::from_slice(&read(&env, "summary.json")).unwrap();
    let overall = &summary["overall"];
    let states: Vec<&str> = overall["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "rejected",
            "failed",
            "returned",
            "needs_review",
            "pending",
            "submitting",
            "submitted",
            "processed",
            "cancelled"
        ]
    );
    for state in &overall["states"].as_array().unwrap()[..] {
        let name = state["state"].as_str().unwrap();
        let expected = STATES_BY_LINE.iter().filter(|(_, s)| *s == name).count();
        assert_eq!(state["count"], expected as u64, "{name}");
    }
    let tie = &overall["tie_out"];
    assert_eq!(tie["ties_out"], true);
    assert_eq!(tie["input_total_cents"], EVERY_STATE_TOTAL_CENTS);
    assert_eq!(tie["sum_over_states"], "5504.50");
    assert_eq!(tie["difference"], "0.00");
    assert_eq!(overall["needing_attention"], 4);
    assert_eq!(overall["needing_attention_total"], "1401.40");
    assert_eq!(summary["batches"][0]["tie_out"]["ties_out"], true);
    let exceptions = summary["exceptions"].as_array().unwrap();
    assert_eq!(
        exceptions
            .iter()
            .map(|e| e["state"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["rejected", "failed", "returned", "needs_review"]
    );
    assert_eq!(
        exceptions[1]["action"],
        payrun::failure::advice("R01").action()
    );

    // CSV: one row per payout in line order, stable columns, plain amounts, actions.
    let run = env
        .run(&["report", "--format", "csv", "--out", "payouts.csv"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (header, rows) = csv_rows(&read(&env, "payouts.csv"));
    assert_eq!(
        header[..18],
        [
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
            "updated_at"
        ]
    );
    assert_eq!(rows.len(), 10);
    for (row, (line, state)) in rows.iter().zip(STATES_BY_LINE) {
        assert_eq!(row["line"], line.to_string());
        assert_eq!(row["state"], state);
        assert_eq!(row["file"], "every-state.csv");
        let needs_action = matches!(
            state,
            "failed" | "returned" | "rejected" | "needs_review" | "submitting"
        );
        assert_eq!(!row["action"].is_empty(), needs_action, "line {line}");
        assert_eq!(
            !row["transfer_id"].is_empty(),
            matches!(
                state,
                "processed" | "failed" | "returned" | "needs_review" | "submitted"
            ),
            "line {line}"
        );
    }
    assert_eq!(rows[0]["amount"], "100.10");
    assert_eq!(rows[9]["amount"], "1000.00");
    assert_eq!(rows[0]["reference"], "'+SUM(A1)");
    assert_eq!(rows[0]["name"], "'=HYPERLINK(\"http://evil.example\")");
    assert_eq!(rows[1]["name"], "'-Bob Minus");
    assert_eq!(rows[9]["reference"], "'@PAY-10");
    assert_eq!(rows[9]["name"], "José Muñoz <b>");
    assert_eq!(
        rows[3]["failure_description"],
        "'=Amount exceeds the limit."
    );
    assert!(rows[3]["action"].contains("/amount/value"));
    assert_eq!(rows[2]["action"], payrun::failure::advice("R03").action());
    let total: i64 = rows
        .iter()
        .map(|row| {
            payrun::money::Cents::parse_payout_amount(&row["amount"])
                .unwrap()
                .get()
        })
        .sum();
    assert_eq!(total, EVERY_STATE_TOTAL_CENTS, "the CSV ties out too");

    // HTML: self-contained, escaped, exceptions with their actions.
    let run = env.run(&["report", "--out", "report.html"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let html = String::from_utf8(read(&env, "report.html")).unwrap();
    assert!(html.contains("<svg"), "an inline chart");
    assert!(html.contains("Ties out to the cent"));
    for fetch in ["<script", "<link", "src=", "url(", "@import"] {
        assert!(
            !html.contains(fetch),
            "the page fetches nothing: found {fetch}"
        );
    }
    assert!(!html.contains("<b>"), "payout text is escaped");
    assert!(html.contains("Eve &lt;b&gt;Review&lt;/b&gt;"));
    assert!(html.contains(&payrun::report::html::escape(
        payrun::failure::advice("R01").action()
    )));
    assert!(html.contains("PAY-5"), "needs_review is listed");
    assert!(
        !html.contains("PAY-6"),
        "submitting is in progress, not an exception"
    );
    assert!(
        !html.contains("PAY-9"),
        "submitted and cancelled payouts are not exceptions"
    );

    // Exit statuses: payouts need attention, so --fail-on-exceptions exits 3.
    let run = env
        .run(&["report", "--fail-on-exceptions", "--out", "x.json"])
        .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    let run = env.run(&["report", "--batch", "99"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);

    // A ledger that no longer ties out to its file is reported, loudly, with exit 3.
    env.query("UPDATE payouts SET amount_cents = amount_cents - 1 WHERE line = 9");
    let run = env.run(&["report", "--out", "broken.html"]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("DOES NOT TIE OUT"), "{}", run.stderr);
    let html = String::from_utf8(read(&env, "broken.html")).unwrap();
    assert!(html.contains("Does NOT tie out"));
    assert!(html.contains("-$0.01"));
}

on_both_engines!(
    the_same_ledger_gives_byte_identical_reports,
    slow_lifecycle(),
    byte_identical_reports
);

async fn byte_identical_reports(env: SendEnv) {
    put_in_every_state(&env).await;
    // Reports read beside a writer: on SQLite, hold the file's writer lock throughout
    // (PostgreSQL has no writer lock; its reports read in one snapshot beside the workers).
    let _writer = env
        .pg
        .is_none()
        .then(|| Ledger::open_writer(&env.work.ledger()).unwrap());
    for format in ["csv", "json", "html"] {
        let first = format!("first.{format}");
        let second = format!("second.{format}");
        for out in [&first, &second] {
            let run = env.run(&["report", "--out", out]).await;
            assert_eq!(run.code, 0, "{}", run.stderr);
        }
        let run = env.run(&["report", "--format", format]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(read(&env, &first), read(&env, &second), "{format}");
        assert_eq!(
            run.stdout.as_bytes(),
            read(&env, &first),
            "{format} on stdout"
        );
    }
    // The library call a whole run uses writes the same three files from one snapshot.
    let dir = env.work.path().join("reports");
    let everything = BatchSelection::default();
    let (paths, summary) = match &env.pg {
        Some(pg) => {
            let ledger = PgLedger::open(&pg.url).unwrap();
            payrun::report::write_reports(&ledger, &everything, &dir)
        }
        None => {
            let ledger = Ledger::open_reader(&env.work.ledger()).unwrap();
            payrun::report::write_reports(&ledger, &everything, &dir)
        }
    }
    .unwrap();
    assert!(summary.ties_out());
    for (path, format) in paths.iter().zip(["csv", "json", "html"]) {
        assert_eq!(
            std::fs::read(path).unwrap(),
            read(&env, &format!("first.{format}")),
            "{}",
            path.display()
        );
    }
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        3,
        "no temporary files are left behind"
    );
}

/// Creates a transfer directly on the simulator, as someone using Dwolla's dashboard or
/// another tool would: payrun did not make it.
async fn create_orphan_transfer(env: &SendEnv, amount: &str) -> String {
    let http = reqwest::Client::new();
    let token = sim_token(&http, env.sim.base_url(), env.sim.key(), env.sim.secret()).await;
    let body = serde_json::json!({
        "_links": {
            "source": {"href": env.sim.source_funding_source()},
            "destination": {"href": env.sim.party_funding_source(3)},
        },
        "amount": {"currency": "USD", "value": amount},
    });
    let response = http
        .post(format!("{}/transfers", env.sim.base_url()))
        .header("Accept", HAL)
        .header("Content-Type", HAL)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .bearer_auth(token)
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    location.rsplit('/').next().unwrap().to_string()
}

on_both_engines!(
    reconcile_finds_an_orphan_transfer_an_amount_mismatch_and_a_missing_transfer,
    slow_lifecycle(),
    reconcile_finds_discrepancies
);

async fn reconcile_finds_discrepancies(env: SendEnv) {
    // More than one page of 200, so the cursor is followed.
    let batch = env.ingest_rows("payouts.csv", 205);
    send_all(&env).await;

    let run = env.run(&["reconcile", "--out", "clean.csv"]).await;
    assert_eq!(run.code, 0, "the ledger and Dwolla agree: {}", run.stderr);
    assert!(
        run.stderr.contains("205 transfers at Dwolla"),
        "{}",
        run.stderr
    );
    let clean = read(&env, "clean.csv");
    assert_eq!(
        csv::Reader::from_reader(&clean[3..]).records().count(),
        0,
        "a header and no discrepancies"
    );

    // Someone pays outside payrun; the ledger's amount for the first row (file line 2) differs
    // from its transfer; the ledger says line 3 settled while Dwolla has not settled it; a second batch's payout
    // is marked sent although it never was (SQL, as the test's way to corrupt the ledger).
    let orphan = create_orphan_transfer(&env, "42.00").await;
    env.query(&format!(
        "UPDATE payouts SET amount_cents = amount_cents + 1 WHERE batch_id = {batch} AND line = 2"
    ));
    env.query(&format!(
        "UPDATE payouts SET state = 'processed' WHERE batch_id = {batch} AND line = 3"
    ));
    let unsent_batch = env.ingest_rows("more.csv", 1);
    let ghost = uuid::Uuid::new_v4();
    env.query(&format!(
        "UPDATE payouts SET state = 'submitted', attempts = 1,
             transfer_url = '{}/transfers/{ghost}',
             transfer_status = 'created', first_attempt_at = updated_at
         WHERE batch_id = {unsent_batch}",
        env.sim.base_url()
    ));

    let run = env.run(&["reconcile", "--out", "discrepancies.json"]).await;
    assert_eq!(run.code, 3, "discrepancies alert cron: {}", run.stderr);
    let report: Value = serde_json::from_slice(&read(&env, "discrepancies.json")).unwrap();
    // Transfers come in Dwolla's listing order (newest first), missing transfers after them.
    let mut found: Vec<(String, Option<i64>, Option<i64>, String)> = report["discrepancies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["batch_id"].as_i64(),
                d["line"].as_i64(),
                d["transfer_id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(found.last().unwrap().0, "missing_transfer");
    found.sort();
    let kinds: Vec<(&str, Option<i64>, Option<i64>)> =
        found.iter().map(|f| (f.0.as_str(), f.1, f.2)).collect();
    assert_eq!(
        kinds,
        [
            ("amount_mismatch", Some(batch), Some(2)),
            ("missing_transfer", Some(unsent_batch), Some(2)),
            ("orphan_transfer", None, None),
            ("status_mismatch", Some(batch), Some(3)),
        ],
        "{report:#}"
    );
    assert_eq!(found[2].3, orphan, "the orphan is named by its transfer id");
    assert_eq!(found[1].3, ghost.to_string());
    let amount = report["discrepancies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "amount_mismatch")
        .unwrap();
    let cents = |field: &str| {
        payrun::money::Cents::parse_payout_amount(amount[field].as_str().unwrap())
            .unwrap()
            .get()
    };
    assert_eq!(cents("ledger_amount"), cents("dwolla_amount") + 1);
    assert_eq!(report["summary"]["transfers_listed"], 206);
    assert_eq!(report["summary"]["discrepancies"], 4);
    assert_eq!(report["summary"]["by_kind"]["orphan_transfer"], 1);

    // The same in CSV, formula-safe and with an action on every row.
    let run = env.run(&["reconcile", "--format", "csv"]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    let mut reader = csv::Reader::from_reader(run.stdout.trim_start_matches('\u{feff}').as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|row| !row[12].is_empty()));
    let orphan_row = rows
        .iter()
        .find(|row| &row[0] == "orphan_transfer")
        .unwrap();
    assert_eq!(&orphan_row[5], orphan.as_str());

    // --since after everything: nothing to compare, nothing wrong.
    let run = env
        .run(&["reconcile", "--since", "2999-01-01", "--format", "json"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
}
