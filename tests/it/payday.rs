//! Pay dates, banking days, holds, cancellation, re-saved files and the repeat guard, through
//! the real binary against the simulator, with "now" injected by `PAYRUN_NOW`: no assertion
//! depends on the wall clock's date.

use std::process::Command;
use std::time::{Duration, Instant};

use payrun::sim::SimConfig;
use serde_json::Value;

use crate::on_both_engines;
use crate::support::Run;
use crate::support::SendEnv;

/// `payrun ARGS` at the injected instant `now`, pointed at the environment's simulator.
fn payrun_at(env: &SendEnv, now: &str, args: &[&str]) -> Command {
    let mut command = env.command(args);
    command.env("PAYRUN_NOW", now).env("USER", "dana");
    command
}

async fn at(env: &SendEnv, now: &str, args: &[&str]) -> Run {
    let mut command = payrun_at(env, now, args);
    tokio::task::spawn_blocking(move || Run::from(command.output().unwrap()))
        .await
        .unwrap()
}

/// A payout file of `n` rows to the simulator's seeded payees (references REF-00000000...).
fn payout_file(env: &SendEnv, name: &str, n: u64) -> String {
    let path = env.work.path().join(name);
    let file = std::fs::File::create(&path).unwrap();
    payrun::fixtures::write_payout_csv(file, n).unwrap();
    path.to_str().unwrap().to_string()
}

fn batch(status: &Value, id: i64) -> &Value {
    status["batches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == id)
        .unwrap_or_else(|| panic!("no batch {id} in {status}"))
}

/// States of a batch's payouts, counted.
fn states_of(env: &SendEnv, batch_id: i64) -> std::collections::BTreeMap<String, u64> {
    env.query(&format!(
        "SELECT state, count(*) FROM payouts WHERE batch_id = {batch_id} GROUP BY state"
    ))
    .into_iter()
    .map(|row| (row[0].clone(), row[1].parse().unwrap()))
    .collect()
}

const WEDNESDAY: &str = "2026-12-02T15:00:00Z";

on_both_engines!(
    a_wednesday_file_for_next_friday_is_sent_on_wednesday_and_one_for_the_friday_after_waits,
    SimConfig::new(),
    friday_now_and_the_friday_after_later
);

async fn friday_now_and_the_friday_after_later(env: SendEnv) {
    let file = payout_file(&env, "payroll.csv", 3);
    let friday = at(
        &env,
        WEDNESDAY,
        &["ingest", &file, "--pay-date", "2026-12-04"],
    )
    .await;
    assert_eq!(friday.code, 0, "{friday:?}");
    assert!(
        friday.stdout.contains("pay date 2026-12-04, sent now"),
        "{}",
        friday.stdout
    );
    // The same rows for the next payday are the next payroll, not a repeat.
    let later = at(
        &env,
        WEDNESDAY,
        &["ingest", &file, "--pay-date", "2026-12-11"],
    )
    .await;
    assert_eq!(later.code, 0, "{later:?}");
    assert!(
        later
            .stdout
            .contains("pay date 2026-12-11, sent from 2026-12-09T00:00:00.000Z"),
        "{}",
        later.stdout
    );

    let run = at(&env, WEDNESDAY, &["run"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("batch 2 (pay date 2026-12-11) waits for its send window, which opens 2026-12-09T00:00:00.000Z"),
        "{}",
        run.stdout
    );
    assert_eq!(
        env.sim.transfers().len(),
        3,
        "only Friday's payroll is sent"
    );
    assert_eq!(states_of(&env, 2).get("pending"), Some(&3));
    let status = env.work.status_json();
    assert_eq!(batch(&status, 1)["pay_date"], "2026-12-04");
    assert!(
        batch(&status, 1)["sent_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-12-02T15:"),
        "{status}"
    );
    assert_eq!(batch(&status, 2)["sent_at"], Value::Null);
    let table = env.work.run(&["status"]);
    assert!(
        table.stdout.contains("from 2026-12-09T00:00:00.000Z"),
        "{}",
        table.stdout
    );

    // Tuesday the 8th still waits; Wednesday the 9th sends it, on time.
    at(&env, "2026-12-08T23:59:00Z", &["run"]).await;
    assert_eq!(env.sim.transfers().len(), 3);
    let run = at(&env, "2026-12-09T08:00:00Z", &["run"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(env.sim.transfers().len(), 6);
    assert_eq!(env.assert_exactly_once(), 6);
    let report = env.work.path().join("r.json");
    let written = at(
        &env,
        "2026-12-09T08:00:00Z",
        &["report", "--out", report.to_str().unwrap()],
    )
    .await;
    assert_eq!(written.code, 0, "{written:?}");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["batches"][1]["pay_date"], "2026-12-11");
    assert_eq!(json["batches"][1]["late"], false);
}

on_both_engines!(
    a_pay_date_after_a_holiday_is_sent_two_banking_days_before_it,
    SimConfig::new(),
    a_pay_date_after_a_holiday_is_sent_two_banking_days_before_it_on
);

async fn a_pay_date_after_a_holiday_is_sent_two_banking_days_before_it_on(env: SendEnv) {
    let file = payout_file(&env, "payroll.csv", 2);
    // Friday 2026-11-27 follows Thanksgiving (Thursday the 26th): two banking days before
    // it are Wednesday the 25th and Tuesday the 24th.
    let ingest = at(
        &env,
        "2026-11-23T12:00:00Z",
        &["ingest", &file, "--pay-date", "2026-11-27"],
    )
    .await;
    assert_eq!(ingest.code, 0, "{ingest:?}");
    assert!(
        ingest.stdout.contains("sent from 2026-11-24T00:00:00.000Z"),
        "{}",
        ingest.stdout
    );
    at(&env, "2026-11-23T23:00:00Z", &["run"]).await;
    assert!(env.sim.transfers().is_empty(), "Monday is too early");
    at(&env, "2026-11-24T10:00:00Z", &["run"]).await;
    assert_eq!(env.sim.transfers().len(), 2);
    assert_eq!(env.assert_exactly_once(), 2);
}

on_both_engines!(
    a_pay_date_on_a_holiday_or_too_late_is_refused_unless_sent_late,
    SimConfig::new(),
    a_pay_date_on_a_holiday_or_too_late_is_refused_unless_sent_late_on
);

async fn a_pay_date_on_a_holiday_or_too_late_is_refused_unless_sent_late_on(env: SendEnv) {
    let file = payout_file(&env, "payroll.csv", 2);
    let christmas = at(
        &env,
        WEDNESDAY,
        &["ingest", &file, "--pay-date", "2026-12-25"],
    )
    .await;
    assert_eq!(christmas.code, 65, "{christmas:?}");
    assert!(
        christmas.stderr.contains("Christmas Day") && christmas.stderr.contains("2026-12-24"),
        "{}",
        christmas.stderr
    );
    // In the file: the error names the line and the column.
    let column = env.work.file(
        "column.csv",
        "reference,amount,funding_source,pay_date\n\
         A-1,5.00,fd000000-0000-4000-8000-000000000001,2026-12-25\n",
    );
    let refused = at(&env, WEDNESDAY, &["ingest", column.to_str().unwrap()]).await;
    assert_eq!(refused.code, 65, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("column.csv:2: pay_date: pay date 2026-12-25 is a bank holiday"),
        "{}",
        refused.stderr
    );
    let thursday = "2026-12-03T09:00:00Z";
    let missed = at(
        &env,
        thursday,
        &["ingest", &file, "--pay-date", "2026-12-04"],
    )
    .await;
    assert_eq!(missed.code, 65, "{missed:?}");
    assert!(
        missed
            .stderr
            .contains("earliest pay date now is 2026-12-07"),
        "{}",
        missed.stderr
    );
    assert_eq!(env.work.status_json()["batches"], serde_json::json!([]));

    let late = at(
        &env,
        thursday,
        &["ingest", &file, "--pay-date", "2026-12-04", "--send-late"],
    )
    .await;
    assert_eq!(late.code, 0, "{late:?}");
    at(&env, thursday, &["run"]).await;
    assert_eq!(env.sim.transfers().len(), 2, "a late payroll is still sent");
    let report = env.work.path().join("r.csv");
    at(
        &env,
        thursday,
        &["report", "--out", report.to_str().unwrap()],
    )
    .await;
    let mut csv = csv::Reader::from_path(&report).unwrap();
    let headers = csv.headers().unwrap().clone();
    let late_column = headers.iter().position(|h| h == "late").unwrap();
    let pay_date_column = headers.iter().position(|h| h == "pay_date").unwrap();
    for row in csv.records() {
        let row = row.unwrap();
        assert_eq!(&row[late_column], "yes");
        assert_eq!(&row[pay_date_column], "2026-12-04");
    }
}

on_both_engines!(
    a_held_batch_is_not_sent_until_released,
    SimConfig::new(),
    a_held_batch_is_not_sent_until_released_on
);

async fn a_held_batch_is_not_sent_until_released_on(env: SendEnv) {
    let file = payout_file(&env, "payroll.csv", 3);
    assert_eq!(at(&env, WEDNESDAY, &["ingest", &file]).await.code, 0);
    let hold = at(
        &env,
        WEDNESDAY,
        &["hold", "1", "--reason", "bank details to check"],
    )
    .await;
    assert_eq!(hold.code, 0, "{hold:?}");
    let run = at(&env, WEDNESDAY, &["run"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("batch 1 is held (by dana")
            && run.stdout.contains("bank details to check"),
        "{}",
        run.stdout
    );
    let send = at(&env, WEDNESDAY, &["send"]).await;
    assert_eq!(send.code, 0, "{send:?}");
    assert!(env.sim.transfers().is_empty());
    assert_eq!(states_of(&env, 1).get("pending"), Some(&3));
    assert!(env.work.run(&["status"]).stdout.contains("held"));

    let release = at(&env, WEDNESDAY, &["release", "1"]).await;
    assert_eq!(release.code, 0, "{release:?}");
    at(&env, WEDNESDAY, &["run"]).await;
    assert_eq!(env.assert_exactly_once(), 3);
    let unknown = at(&env, WEDNESDAY, &["hold", "7"]).await;
    assert_eq!(unknown.code, 2, "{unknown:?}");
}

on_both_engines!(
    cancelling_one_reference_and_a_whole_batch,
    SimConfig::new(),
    cancelling_one_reference_and_a_whole_batch_on
);

async fn cancelling_one_reference_and_a_whole_batch_on(env: SendEnv) {
    let first = payout_file(&env, "first.csv", 3);
    assert_eq!(at(&env, WEDNESDAY, &["ingest", &first]).await.code, 0);
    let second = env.work.file(
        "second.csv",
        "reference,amount,funding_source\nB-1,7.00,fd000000-0000-4000-8000-000000000001\nB-2,8.00,fd000000-0000-4000-8000-000000000002\n",
    );
    assert_eq!(
        at(&env, WEDNESDAY, &["ingest", second.to_str().unwrap()])
            .await
            .code,
        0
    );

    let one = at(
        &env,
        WEDNESDAY,
        &[
            "cancel",
            "1",
            "--reference",
            "REF-00000001",
            "--reason",
            "left the company",
        ],
    )
    .await;
    assert_eq!(one.code, 0, "{one:?}");
    assert!(
        one.stdout.contains("batch 1: 1 payout cancelled by dana"),
        "{}",
        one.stdout
    );
    let all = at(
        &env,
        WEDNESDAY,
        &["cancel", "2", "--reason", "duplicate upload"],
    )
    .await;
    assert_eq!(all.code, 0, "{all:?}");
    assert!(
        all.stdout.contains("the whole batch is cancelled"),
        "{}",
        all.stdout
    );
    let missing = at(
        &env,
        WEDNESDAY,
        &["cancel", "1", "--reference", "NOPE", "--reason", "x"],
    )
    .await;
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(missing.stderr.contains("\"NOPE\""), "{}", missing.stderr);

    at(&env, WEDNESDAY, &["run"]).await;
    assert_eq!(
        env.sim.transfers().len(),
        2,
        "only batch 1's two others are sent"
    );
    assert_eq!(env.assert_exactly_once(), 2);
    assert_eq!(states_of(&env, 1).get("cancelled"), Some(&1));
    assert_eq!(states_of(&env, 2).get("cancelled"), Some(&2));
    let status = env.work.status_json();
    assert_eq!(batch(&status, 2)["status"], "cancelled");

    let cancelled = env.query(
        "SELECT source, reason FROM payout_history WHERE new_state = 'cancelled' ORDER BY id LIMIT 1",
    );
    let (source, reason) = (&cancelled[0][0], &cancelled[0][1]);
    assert_eq!(
        (source.as_str(), reason.as_str()),
        ("operator:dana", "left the company")
    );

    let report = env.work.path().join("r.json");
    at(
        &env,
        WEDNESDAY,
        &["report", "--out", report.to_str().unwrap()],
    )
    .await;
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let tie = &json["overall"]["tie_out"];
    assert_eq!(tie["ties_out"], true, "{tie}");
    assert_eq!(tie["cancelled_payouts"], 3);
    assert_eq!(tie["cancelled_total"], "18.01", "{tie}");
    assert_eq!(
        json["batches"][1]["cancellations"][0]["reason"],
        "duplicate upload (cancelled by dana)"
    );
    let html = env.work.path().join("r.html");
    at(
        &env,
        WEDNESDAY,
        &["report", "--out", html.to_str().unwrap()],
    )
    .await;
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("Cancelled before sending")
            && page.contains("left the company (cancelled by dana)")
    );
}

on_both_engines!(
    /// A cancel while `send` runs never cancels what the send committed for sending: on SQLite
    /// the sender's writer lock refuses the cancel, which changes nothing, and once the send
    /// stops half-way cancel takes the pending payouts; on PostgreSQL, where workers claim rows
    /// and take no lock, the cancel takes the pending payouts under the running send. Either
    /// way it names the ones committed, which the next send completes: nothing cancelled
    /// reaches Dwolla, nothing committed is cancelled.
    cancelling_races_a_send_and_never_cancels_what_is_committed,
    SimConfig {
        latency: Duration::from_millis(40),
        ..SimConfig::new()
    },
    cancelling_races_a_send_and_never_cancels_what_is_committed_on
);

async fn cancelling_races_a_send_and_never_cancels_what_is_committed_on(env: SendEnv) {
    let file = payout_file(&env, "big.csv", 400);
    assert_eq!(at(&env, WEDNESDAY, &["ingest", &file]).await.code, 0);
    let mut send = payrun_at(
        &env,
        WEDNESDAY,
        &["send", "--concurrency", "2", "--rate", "50"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let started = Instant::now();
    while env.sim.transfers().len() < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the send never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let interrupt = |send: &std::process::Child| {
        let status = Command::new("kill")
            .arg("-INT")
            .arg(send.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    };
    let (before, cancel) = if env.pg.is_none() {
        let locked = at(
            &env,
            WEDNESDAY,
            &["cancel", "1", "--reason", "stop payroll"],
        )
        .await;
        assert_eq!(
            locked.code, 75,
            "the sender holds the writer lock: {locked:?}"
        );
        interrupt(&send);
        let _ = tokio::task::spawn_blocking(move || send.wait())
            .await
            .unwrap();
        assert!(
            states_of(&env, 1).get("pending").copied().unwrap_or(0) > 0,
            "the send was stopped before it took everything: {:?}",
            states_of(&env, 1)
        );
        let before = states_of(&env, 1);
        let cancel = at(
            &env,
            WEDNESDAY,
            &["cancel", "1", "--reason", "stop payroll"],
        )
        .await;
        (before, cancel)
    } else {
        let cancel = at(
            &env,
            WEDNESDAY,
            &["cancel", "1", "--reason", "stop payroll"],
        )
        .await;
        // Then stop the send half-way, leaving some of what it committed in doubt.
        interrupt(&send);
        let _ = tokio::task::spawn_blocking(move || send.wait())
            .await
            .unwrap();
        // What the cancel found: the payouts it cancelled were pending, the others committed.
        let mut before = states_of(&env, 1);
        if let Some(cancelled) = before.remove("cancelled") {
            before.insert("pending".to_string(), cancelled);
        }
        (before, cancel)
    };
    assert_eq!(cancel.code, 3, "some payouts were past pending: {cancel:?}");
    assert!(
        before.get("pending").copied().unwrap_or(0) > 0,
        "the cancel came before the send took everything: {before:?}"
    );
    let committed: u64 = before
        .iter()
        .filter(|(state, _)| *state != "pending")
        .map(|(_, n)| n)
        .sum();
    assert!(
        cancel.stdout.contains(&format!(
            "batch 1: {} payouts cancelled by dana",
            before["pending"]
        )) && cancel.stdout.contains(&format!(
            "{committed} payouts not cancelled: already committed for sending"
        )),
        "{}",
        cancel.stdout
    );
    let after = states_of(&env, 1);
    assert_eq!(after.get("cancelled"), before.get("pending"));
    assert_eq!(after.get("pending"), None, "{after:?}");

    let resend = at(&env, WEDNESDAY, &["send"]).await;
    assert_eq!(resend.code, 0, "{resend:?}");
    let sent = env.assert_exactly_once();
    assert_eq!(
        sent as u64, committed,
        "everything committed is sent, nothing else"
    );
    assert_eq!(env.sim.transfers().len() as u64, committed);
}

on_both_engines!(
    a_resaved_file_is_not_paid_twice_and_a_repeat_waits_for_approval,
    SimConfig::new(),
    a_resaved_file_is_not_paid_twice_and_a_repeat_waits_for_approval_on
);

async fn a_resaved_file_is_not_paid_twice_and_a_repeat_waits_for_approval_on(env: SendEnv) {
    let lf = "reference,amount,funding_source\nC-1,1.00,fd000000-0000-4000-8000-000000000003\nC-2,2.50,fd000000-0000-4000-8000-000000000004\n";
    let a = env.work.file("a.csv", lf);
    // Excel's save: CRLF, a BOM, another header case and column order, spaces, a blank line.
    let b = env.work.file(
        "b.csv",
        "\u{feff}Funding_Source , Amount,REFERENCE\r\nfd000000-0000-4000-8000-000000000003, 1.00 ,C-1\r\nfd000000-0000-4000-8000-000000000004,2.50,C-2\r\n\r\n",
    );
    assert_eq!(
        at(&env, WEDNESDAY, &["ingest", a.to_str().unwrap()])
            .await
            .code,
        0
    );
    let again = at(&env, WEDNESDAY, &["ingest", b.to_str().unwrap()]).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again.stdout.contains("skipped") && again.stdout.contains("already batch 1"),
        "{}",
        again.stdout
    );
    assert_eq!(
        env.work.status_json()["batches"].as_array().unwrap().len(),
        1
    );

    // The same payouts with one more row: not the same records, but a repeat.
    let c = env.work.file(
        "c.csv",
        format!("{lf}C-3,3.00,fd000000-0000-4000-8000-000000000005\n"),
    );
    let plan = at(&env, WEDNESDAY, &["plan", c.to_str().unwrap()]).await;
    assert!(
        plan.stdout
            .contains("repeats: 2 of its 3 payouts repeat batch 1"),
        "{}",
        plan.stdout
    );
    let guard = env
        .work
        .file("payrun.toml", "[repeat_guard]\nmin_overlap_percent = 60\n");
    let mut command = payrun_at(
        &env,
        WEDNESDAY,
        &[
            "--config",
            guard.to_str().unwrap(),
            "ingest",
            c.to_str().unwrap(),
        ],
    );
    let held = Run::from(command.output().unwrap());
    assert_eq!(held.code, 0, "{held:?}");
    assert!(
        held.stdout
            .contains("held by the repeat guard: 2 of its 3 payouts repeat batch 1"),
        "{}",
        held.stdout
    );
    let status = env.work.status_json();
    assert_eq!(batch(&status, 2)["status"], "awaiting_approval");
    at(&env, WEDNESDAY, &["run"]).await;
    assert_eq!(env.sim.transfers().len(), 2, "batch 1 only; batch 2 waits");
    let run = at(&env, WEDNESDAY, &["run"]).await;
    assert!(
        run.stdout
            .contains("batch 2 waits for approval, repeat guard"),
        "{}",
        run.stdout
    );

    // --allow-repeat lets a deliberate repeat through (another pay date is no repeat at all).
    let d = env.work.file(
        "d.csv",
        format!("{lf}C-4,4.00,fd000000-0000-4000-8000-000000000006\n"),
    );
    let mut command = payrun_at(
        &env,
        WEDNESDAY,
        &[
            "--config",
            guard.to_str().unwrap(),
            "ingest",
            d.to_str().unwrap(),
            "--allow-repeat",
        ],
    );
    let allowed = Run::from(command.output().unwrap());
    assert_eq!(allowed.code, 0, "{allowed:?}");
    assert!(
        !allowed.stdout.contains("repeat guard"),
        "{}",
        allowed.stdout
    );
    assert_eq!(batch(&env.work.status_json(), 3)["status"], "ready");

    // Re-saved after its pay date passed, a dated file is still named as the batch it is,
    // not refused for its pay date.
    let dated = "reference,amount,funding_source,pay_date\nD-1,9.00,fd000000-0000-4000-8000-000000000007,2026-12-04\n";
    let e = env.work.file("e.csv", dated);
    assert_eq!(
        at(&env, WEDNESDAY, &["ingest", e.to_str().unwrap()])
            .await
            .code,
        0
    );
    let resaved = env.work.file("e2.csv", dated.replace('\n', "\r\n"));
    let later = at(
        &env,
        "2026-12-07T10:00:00Z",
        &["ingest", resaved.to_str().unwrap()],
    )
    .await;
    assert_eq!(later.code, 0, "{later:?}");
    assert!(
        later
            .stdout
            .contains("the same payouts for pay date 2026-12-04 are already batch 4"),
        "{}",
        later.stdout
    );
}

on_both_engines!(
    a_run_past_the_send_window_still_sends_and_says_it_was_late,
    SimConfig::new(),
    a_run_past_the_send_window_still_sends_and_says_it_was_late_on
);

async fn a_run_past_the_send_window_still_sends_and_says_it_was_late_on(env: SendEnv) {
    let file = payout_file(&env, "payroll.csv", 2);
    let monday = "2026-11-30T12:00:00Z";
    assert_eq!(
        at(&env, monday, &["ingest", &file, "--pay-date", "2026-12-04"])
            .await
            .code,
        0
    );
    at(&env, monday, &["run"]).await;
    assert!(
        env.sim.transfers().is_empty(),
        "Monday is before the window"
    );
    // No run on Wednesday: Thursday's run sends anyway, and says so.
    let thursday = "2026-12-03T10:00:00Z";
    let run = at(&env, thursday, &["run"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains(
            "batch 1 was sent late (its send window closed 2026-12-03T00:00:00.000Z): it may settle after its pay date 2026-12-04"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(env.assert_exactly_once(), 2);
    let report = env.work.path().join("r.json");
    at(
        &env,
        thursday,
        &["report", "--out", report.to_str().unwrap()],
    )
    .await;
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["batches"][0]["late"], true);
    assert!(env.work.run(&["status"]).stdout.contains("(late)"));
}
