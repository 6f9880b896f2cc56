//! Unattended operation through the real binary: the drop folder, `run --once` killed and
//! restarted, overlapping runs, the approval gate, `plan` and `config check`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use payrun::sim::SimConfig;

use crate::on_both_engines;
use crate::support::SendEnv;
use crate::support::{Run, sample};

/// Writes a file into the inbox as if it had been finished a minute ago.
fn drop_file(inbox: &Path, name: &str, contents: &[u8]) -> PathBuf {
    std::fs::create_dir_all(inbox).unwrap();
    let path = inbox.join(name);
    std::fs::write(&path, contents).unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    path
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

on_both_engines!(
    the_drop_folder_takes_finished_files_once_and_explains_rejections,
    SimConfig::new(),
    the_drop_folder_takes_finished_files_once_and_explains_rejections_on
);

async fn the_drop_folder_takes_finished_files_once_and_explains_rejections_on(env: SendEnv) {
    let inbox = env.work.path().join("inbox");
    let payroll = std::fs::read(sample("payroll.csv")).unwrap();
    drop_file(&inbox, "payroll.csv", &payroll);
    drop_file(&inbox, "payroll-resent.csv", &payroll);
    drop_file(
        &inbox,
        "broken.csv",
        &std::fs::read(sample("invalid_amounts.csv")).unwrap(),
    );
    // Still being written, for longer than the run waits for it to settle.
    let writing = inbox.join("contractors.csv");
    std::fs::write(&writing, "reference,amount,funding_source\nC-1,10.00,").unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (done, writing) = (done.clone(), writing.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&writing)
                    .unwrap();
                std::io::Write::write_all(&mut file, b"f").unwrap();
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    std::fs::write(inbox.join("upload.csv.part"), "reference,amount").unwrap();

    let first = env
        .run(&[
            "run",
            "--once",
            "--inbox",
            inbox.to_str().unwrap(),
            "--stable-seconds",
            "2",
        ])
        .await;
    done.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        first
            .stdout
            .contains("contractors.csv: left in the inbox for the next run"),
        "a file still changing is named: {}",
        first.stdout
    );
    assert_eq!(
        first.code, 65,
        "an invalid file makes the run exit 65: {first:?}"
    );
    assert!(
        first
            .stdout
            .contains("payroll.csv: batch 1, 50 payouts, 127913.10 USD"),
        "{}",
        first.stdout
    );
    assert!(
        first
            .stdout
            .contains("payroll-resent.csv: same content as batch 1, not paid again"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("sent 50 payouts: 50 created"),
        "{}",
        first.stdout
    );

    assert_eq!(names_in(&inbox.join("processing")), Vec::<String>::new());
    let archived = names_in(&inbox.join("archive"));
    assert!(
        archived.contains(&"batch-1-payroll.csv".to_string()),
        "{archived:?}"
    );
    assert!(
        archived
            .iter()
            .any(|n| n.starts_with("duplicate-of-batch-1-") && n.ends_with("payroll-resent.csv"))
    );
    let rejected = names_in(&inbox.join("rejected"));
    let errors_file = rejected
        .iter()
        .find(|n| n.ends_with("broken.csv.errors.txt"))
        .expect("an errors file");
    let errors = std::fs::read_to_string(inbox.join("rejected").join(errors_file)).unwrap();
    assert!(
        errors.contains("line 3, amount: \"12.345\" has more than 2 decimal places"),
        "{errors}"
    );
    // A rejected file keeps its name behind the Unix time it was rejected at.
    assert!(
        rejected.iter().any(|n| n
            .split_once('-')
            .is_some_and(|(stamp, rest)| stamp.parse::<i64>().is_ok() && rest == "broken.csv")),
        "{rejected:?}"
    );
    let waiting = names_in(&inbox);
    assert!(
        waiting.contains(&"contractors.csv".to_string()),
        "a half-written file is not taken: {waiting:?}"
    );
    assert!(waiting.contains(&"upload.csv.part".to_string()));
    assert_eq!(env.assert_exactly_once(), 50);

    // The upload finishes; the next run takes it and nothing else.
    drop_file(
        &inbox,
        "contractors.csv",
        b"reference,amount,funding_source\nC-1,10.00,fd000000-0000-4000-8000-000000000003\n",
    );
    let second = env
        .run(&[
            "run",
            "--once",
            "--inbox",
            inbox.to_str().unwrap(),
            "--stable-seconds",
            "30",
        ])
        .await;
    assert_eq!(second.code, 0, "{second:?}");
    assert!(
        second
            .stdout
            .contains("contractors.csv: batch 2, 1 payout,"),
        "{}",
        second.stdout
    );
    assert_eq!(env.assert_exactly_once(), 51);
}

on_both_engines!(
    run_once_waits_for_a_file_just_copied_in_and_rejects_links_with_a_reason,
    SimConfig::new(),
    run_once_waits_for_a_file_just_copied_in_and_rejects_links_with_a_reason_on
);

async fn run_once_waits_for_a_file_just_copied_in_and_rejects_links_with_a_reason_on(env: SendEnv) {
    let inbox = env.work.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    // `cp payroll.csv inbox/` just before the run: inside its stability wait.
    std::fs::copy(sample("payroll.csv"), inbox.join("payroll.csv")).unwrap();
    let elsewhere = env.work.file(
        "elsewhere.csv",
        "reference,amount,funding_source\nL-1,1.00,fd000000-0000-4000-8000-000000000003\n",
    );
    std::os::unix::fs::symlink(&elsewhere, inbox.join("linked.csv")).unwrap();
    std::fs::create_dir(inbox.join("old files")).unwrap();

    let ran = env
        .run(&[
            "run",
            "--once",
            "--inbox",
            inbox.to_str().unwrap(),
            "--stable-seconds",
            "2",
        ])
        .await;
    assert_eq!(
        ran.code, 65,
        "an entry that is not a file is rejected: {ran:?}"
    );
    assert!(
        ran.stdout.contains("payroll.csv: batch 1, 50 payouts"),
        "the settling file is taken in the same run: {}",
        ran.stdout
    );
    for (name, kind) in [("linked.csv", "a symbolic link"), ("old files", "a folder")] {
        assert!(
            ran.stdout.contains(&format!(
                "{name}: not taken: it is {kind}, and payrun takes only regular files"
            )),
            "{}",
            ran.stdout
        );
        let rejected = names_in(&inbox.join("rejected"));
        let errors = rejected
            .iter()
            .find(|n| n.ends_with(&format!("-{name}.errors.txt")))
            .unwrap_or_else(|| panic!("no errors file for {name}: {rejected:?}"));
        let text = std::fs::read_to_string(inbox.join("rejected").join(errors)).unwrap();
        assert!(text.contains(kind), "{text}");
    }
    assert!(!inbox.join("linked.csv").exists());
    assert!(elsewhere.exists(), "the link's target is left alone");
    assert_eq!(env.assert_exactly_once(), 50);
}

on_both_engines!(
    run_once_killed_again_and_again_pays_every_payout_exactly_once,
    SimConfig {
        latency: Duration::from_millis(5),
        drop_rate: 0.05,
        seed: 3,
        ..SimConfig::new()
    },
    run_once_killed_again_and_again_pays_every_payout_exactly_once_on
);

async fn run_once_killed_again_and_again_pays_every_payout_exactly_once_on(env: SendEnv) {
    let inbox = env.work.path().join("inbox");
    let mut csv = Vec::new();
    payrun::fixtures::write_payout_csv(&mut csv, 400).unwrap();
    drop_file(&inbox, "big.csv", &csv);
    let args = [
        "run",
        "--once",
        "--inbox",
        inbox.to_str().unwrap(),
        "--rate",
        "300",
        "--no-progress",
    ];
    let started = Instant::now();
    let mut n_kills = 0;
    for delay_ms in [40u64, 90, 150, 220, 300, 380, 470, 560] {
        let mut child = env
            .command(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            n_kills += 1;
        }
        child.wait().unwrap();
        env.assert_exactly_once();
    }
    let last = loop {
        let last = env.run(&args).await;
        let all_sent = env
            .payouts()
            .iter()
            .all(|p| matches!(p.state.as_str(), "submitted" | "processed"));
        if all_sent || started.elapsed() > Duration::from_secs(60) {
            break last;
        }
    };
    assert_eq!(last.code, 0, "{last:?}");
    assert!(n_kills >= 4, "only {n_kills} kills landed");
    assert_eq!(env.assert_exactly_once(), 400);
    assert_eq!(env.sim.stats().transfers_created, 400);
    let archived = names_in(&inbox.join("archive"));
    assert_eq!(
        archived.iter().filter(|n| n.ends_with("big.csv")).count(),
        1,
        "archived once: {archived:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlapping_run_exits_at_once_with_the_lock_status() {
    let config = SimConfig {
        latency: Duration::from_millis(200),
        ..SimConfig::new()
    };
    let env = SendEnv::start(config).await;
    env.ingest_rows("payouts.csv", 60);
    let mut first = env
        .command(&["run", "--once", "--rate", "20", "--no-progress"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Give the first run time to take the lock and start sending.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let started = Instant::now();
    let second = env.run(&["run", "--once"]).await;
    assert_eq!(second.code, 75, "{second:?}");
    assert!(
        second.stderr.contains("another payrun process"),
        "{}",
        second.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let status = tokio::task::spawn_blocking(move || first.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    assert_eq!(env.assert_exactly_once(), 60);
}

on_both_engines!(
    a_batch_that_needs_approval_is_sent_only_after_approve,
    SimConfig::new(),
    a_batch_that_needs_approval_is_sent_only_after_approve_on
);

async fn a_batch_that_needs_approval_is_sent_only_after_approve_on(env: SendEnv) {
    let payroll = sample("payroll.csv");
    let ingested = env
        .run(&["ingest", "--require-approval", payroll.to_str().unwrap()])
        .await;
    assert!(
        ingested.stdout.contains("waits for `payrun approve 1`"),
        "{}",
        ingested.stdout
    );
    // Waiting for a person is exit 3, the status cron alerts on, with the command to run.
    let held = env.run(&["run", "--once"]).await;
    assert_eq!(held.code, 3, "{held:?}");
    assert!(
        held.stdout
            .contains("batch 1 waits for approval; nothing of it is sent until a person runs `payrun approve 1`"),
        "{}",
        held.stdout
    );
    assert!(env.sim.transfers().is_empty());

    let approved = env.run(&["approve", "1"]).await;
    assert_eq!(approved.code, 0, "{approved:?}");
    let sent = env.run(&["run", "--once"]).await;
    assert_eq!(sent.code, 0, "{sent:?}");
    assert_eq!(env.assert_exactly_once(), 50);
    assert_eq!(env.run(&["approve", "7"]).await.code, 2);
}

on_both_engines!(
    plan_shows_the_batch_and_touches_nothing,
    SimConfig::new(),
    plan_shows_the_batch_and_touches_nothing_on
);

async fn plan_shows_the_batch_and_touches_nothing_on(env: SendEnv) {
    let file = env.work.file(
        "contractors.csv",
        "reference,amount,funding_source,name\nA,100.00,fd000000-0000-4000-8000-000000000001,Ana\n\
         B,250.00,fd000000-0000-4000-8000-000000000001,Ana again\nC,75.50,fd000000-0000-4000-8000-000000000002,Bo\n",
    );
    let plan = env.run(&["plan", file.to_str().unwrap()]).await;
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout.contains("valid, 3 payouts, total 425.50 USD"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("Payees paid more than once in this file: 1"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("2 payouts, 350.00 USD (A, B)"),
        "{}",
        plan.stdout
    );
    assert!(!env.work.ledger_exists(), "plan created no ledger");

    env.ingest_rows("earlier.csv", 10);
    let compared = env.run(&["plan", file.to_str().unwrap()]).await;
    assert!(
        compared.stdout.contains("previous batch 1: total"),
        "{}",
        compared.stdout
    );
    let invalid = env
        .run(&["plan", sample("invalid_amounts.csv").to_str().unwrap()])
        .await;
    assert_eq!(invalid.code, 65);
    assert!(
        invalid
            .stdout
            .contains(":3: amount: \"12.345\" has more than 2 decimal places"),
        "{}",
        invalid.stdout
    );
    assert_eq!(env.payouts().len(), 10, "plan added nothing");
}

on_both_engines!(
    config_check_masks_secrets_and_tests_the_credentials,
    SimConfig::new(),
    config_check_masks_secrets_and_tests_the_credentials_on
);

async fn config_check_masks_secrets_and_tests_the_credentials_on(env: SendEnv) {
    let good = env.work.file(
        "payrun.toml",
        "require_approval = true\nmax_amount = \"2500.00\"\n[inbox]\ndir = \"drop\"\n[send]\nrate = 40\n",
    );
    let check = env
        .run(&["--config", good.to_str().unwrap(), "config", "check"])
        .await;
    assert_eq!(check.code, 0, "{check:?}");
    assert!(
        check.stdout.contains("require_approval     true"),
        "{}",
        check.stdout
    );
    assert!(
        check.stdout.contains("max_amount           2500.00"),
        "{}",
        check.stdout
    );
    assert!(
        check.stdout.contains("rate                 40/s"),
        "{}",
        check.stdout
    );
    assert!(
        check
            .stdout
            .contains("dwolla secret        set (10 characters)"),
        "{}",
        check.stdout
    );
    assert!(
        !check.stdout.contains(env.sim.secret()),
        "the secret is never printed"
    );
    assert!(
        check
            .stdout
            .contains("accepted by Dwolla (account a0000000-0000-4000-8000-000000000001)")
    );

    let typo = env.work.file("typo.toml", "[send]\nrat = 40\n");
    let refused = env
        .run(&["--config", typo.to_str().unwrap(), "status"])
        .await;
    assert_eq!(refused.code, 78, "{refused:?}");
    assert!(refused.stderr.contains("rat"), "{}", refused.stderr);

    let mut bad = env.command(&["config", "check"]);
    bad.env("DWOLLA_SECRET", "not-the-secret");
    let bad = tokio::task::spawn_blocking(move || Run::from(bad.output().unwrap()))
        .await
        .unwrap();
    assert_eq!(bad.code, 69, "{bad:?}");
    assert!(!bad.stdout.contains("not-the-secret") && !bad.stderr.contains("not-the-secret"));
}

on_both_engines!(cli:
    /// On PostgreSQL the demo pays in a schema of its own, which it drops at the end, beside
    /// the ledger's own tables, which it leaves as they were.
    the_demo_runs_the_whole_job_and_ties_out,
    demo_ties_out
);

fn demo_ties_out(work: crate::support::Workdir) {
    let real = work.run(&["ingest", sample("payroll.csv").to_str().unwrap()]);
    assert_eq!(real.code, 0, "{real:?}");
    let dir = work.path().join("demo");
    let started = Instant::now();
    let demo = work.run(&["demo", "--dir", dir.to_str().unwrap()]);
    assert_eq!(demo.code, 0, "{demo:?}");
    // The demo follows its transfers itself; it must not say a later run will.
    assert!(
        !demo.stdout.contains("the next run follows them"),
        "{}",
        demo.stdout
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "well under a minute"
    );
    assert!(
        demo.stdout
            .contains("50 payouts, 127913.10 USD; 50 transfers at Dwolla"),
        "{}",
        demo.stdout
    );
    assert!(
        demo.stdout.contains("ties out to the cent"),
        "{}",
        demo.stdout
    );
    for (state, count) in [("processed", 45), ("failed", 3), ("returned", 2)] {
        let line = demo
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(state))
            .unwrap_or_default();
        assert!(
            line.contains(&format!(" {count} ")),
            "{state}: {line:?}\n{}",
            demo.stdout
        );
    }
    assert!(
        demo.stdout.contains("returned R01"),
        "a late return is caught: {}",
        demo.stdout
    );
    for report in [
        "payrun-report.csv",
        "payrun-report.json",
        "payrun-report.html",
    ] {
        assert!(dir.join("inbox/reports").join(report).exists(), "{report}");
    }
    let html = std::fs::read_to_string(dir.join("inbox/reports/payrun-report.html")).unwrap();
    for fetch in ["<script", "<link", "src=\"http", "url(http", "@import"] {
        assert!(
            !html.contains(fetch),
            "the report fetches nothing, but has {fetch}"
        );
    }
    // The ledger named by --ledger still holds its one batch, unsent.
    assert_eq!(
        work.query("SELECT count(*), min(state), max(state) FROM payouts"),
        [["50", "pending", "pending"]]
    );
    if work.is_postgres() {
        assert!(
            demo.stdout.contains("dropped at the end"),
            "{}",
            demo.stdout
        );
        assert_eq!(
            work.query("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'payrun_demo%'"),
            [["0"]],
            "the demo's schema is dropped"
        );
    }
}

on_both_engines!(
    watch_takes_dropped_files_and_receives_webhooks_in_the_same_process,
    SimConfig::new(),
    watch_takes_dropped_files_and_receives_webhooks_in_the_same_process_on
);

async fn watch_takes_dropped_files_and_receives_webhooks_in_the_same_process_on(env: SendEnv) {
    use std::io::BufRead;
    let inbox = env.work.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let mut child = env
        .command(&[
            "watch",
            "--inbox",
            inbox.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--stable-seconds",
            "0",
        ])
        .env("PAYRUN_WEBHOOK_SECRET", "watch-secret-0123")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    })
    .await
    .unwrap();
    let urls: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("a JSON line, got {line:?}"));
    let health = reqwest::get(urls["health_url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    drop_file(
        &inbox,
        "payroll.csv",
        &std::fs::read(sample("payroll.csv")).unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.sim.transfers().len() < 50 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    nix_terminate(&child);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "SIGTERM stops watch cleanly: {status:?}");
    assert_eq!(env.assert_exactly_once(), 50);
    assert!(names_in(&inbox.join("archive")).contains(&"batch-1-payroll.csv".to_string()));
}

/// SIGTERM, as systemd sends it.
fn nix_terminate(child: &std::process::Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
