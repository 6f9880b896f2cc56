//! README and behaviour agree (issue 16 item 8): a batch whose payouts all reached their end
//! is `settled`; the CSV report carries `email` and `memo`; a `run` without webhooks follows a
//! transfer it just sent in the next run, not ten minutes later.

use std::time::Duration;

use payrun::sim::SimConfig;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::on_both_engines;
use crate::support::SendEnv;

on_both_engines!(
    a_batch_is_settled_once_every_payout_reached_its_end_and_reports_show_email_and_memo,
    SimConfig::new(),
    settled_with_email_and_memo
);

async fn settled_with_email_and_memo(env: SendEnv) {
    // 2.01 goes straight to processed; 9.99 fails with R01.
    let file = env.work.file(
        "pay.csv",
        "reference,amount,funding_source,email,memo\n\
         P-1,2.01,fd000000-0000-4000-8000-000000000001,ana@example.com,June bonus\n\
         P-2,9.99,fd000000-0000-4000-8000-000000000002,,Expenses\n",
    );
    let ingested = env.run(&["ingest", file.to_str().unwrap()]).await;
    assert_eq!(ingested.code, 0, "{ingested:?}");
    assert_eq!(env.work.status_json()["batches"][0]["status"], "ready");

    let sent = env.run(&["send", "--no-progress"]).await;
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(env.work.status_json()["batches"][0]["status"], "ready");
    let tracked = env
        .run(&[
            "track",
            "--until-settled",
            "--timeout",
            "20s",
            "--poll-every",
            "20ms",
        ])
        .await;
    assert_eq!(
        tracked.code, 3,
        "the R01 failure needs a person: {tracked:?}"
    );
    let status = env.work.status_json();
    assert_eq!(status["batches"][0]["status"], "settled", "{status}");
    let shown = env.run(&["status"]).await;
    assert!(shown.stdout.contains("settled"), "{}", shown.stdout);

    let report = env.run(&["report", "--format", "json"]).await;
    assert!(report.stdout.contains("\"settled\""), "{}", report.stdout);
    let csv = env.run(&["report", "--format", "csv"]).await;
    let mut lines = csv.stdout.trim_start_matches('\u{feff}').lines();
    assert!(
        lines.next().unwrap().ends_with(",email,memo"),
        "{}",
        csv.stdout
    );
    let first = lines.next().unwrap();
    assert!(
        first.starts_with("1,pay.csv,2,P-1,") && first.ends_with(",ana@example.com,June bonus"),
        "{first}"
    );
    assert!(lines.next().unwrap().ends_with(",,Expenses"));
}

on_both_engines!(
    run_follows_a_transfer_it_just_sent_in_its_next_run,
    SimConfig::new(),
    run_follows_a_transfer_it_just_sent_in_its_next_run_on
);

async fn run_follows_a_transfer_it_just_sent_in_its_next_run_on(env: SendEnv) {
    let inbox = env.work.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    // 1.02 stops at pending, so the transfer is still unsettled after the run.
    std::fs::write(
        inbox.join("pay.csv"),
        "reference,amount,funding_source\nP-1,1.02,fd000000-0000-4000-8000-000000000001\n",
    )
    .unwrap();
    let args = ["run", "--once", "--inbox", inbox.to_str().unwrap()];
    let ran = env
        .run(&[&args[..], &["--stable-seconds", "0"]].concat())
        .await;
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        ran.stdout
            .contains("1 transfer not settled yet; the next run follows them"),
        "{}",
        ran.stdout
    );
    let rows = env.query("SELECT state, next_poll_at FROM payouts");
    let [row] = &rows[..] else {
        panic!("one payout: {rows:?}")
    };
    let (state, next_poll) = (&row[0], &row[1]);
    assert_eq!(state, "submitted");
    let due_in = OffsetDateTime::parse(next_poll, &Rfc3339).unwrap() - OffsetDateTime::now_utc();
    assert!(
        due_in <= Duration::from_secs(60),
        "a run from a 5-minute crontab must find it due; it is due in {due_in}"
    );
}
