//! What a new user (and an attacker) hits first (issue 16): read-only ledgers, error messages
//! that say what to do, file names that cannot forge output.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::on_both_engines;
use crate::support::{Run, Workdir, payrun_bin};

const ONE_PAYOUT: &str =
    "reference,amount,funding_source\nC-1,1.00,fd000000-0000-4000-8000-000000000003\n";
const OTHER_PAYOUT: &str =
    "reference,amount,funding_source\nC-2,2.00,fd000000-0000-4000-8000-000000000004\n";

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `payrun --ledger LEDGER ARGS` as the unprivileged user `nobody`, or `None` (with a message)
/// where `setpriv` is missing.
fn as_nobody(ledger: &Path, args: &[&str]) -> Option<Run> {
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: setpriv is not installed, so the test cannot drop to another user");
        return None;
    }
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(payrun_bin())
        .arg("--ledger")
        .arg(ledger)
        .args(args)
        .current_dir(ledger.parent().unwrap())
        .env_remove("RUST_LOG")
        .output()
        .expect("run setpriv");
    Some(Run::from(output))
}

/// A copy of the files of `ledger` (the database and any -wal and -shm) in a new folder inside
/// `work`, all readable by everyone and writable by no one but root.
fn read_only_copy(work: &Workdir, ledger: &Path) -> std::path::PathBuf {
    chmod(work.path(), 0o755);
    let dir = work.path().join("auditor");
    std::fs::create_dir(&dir).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let from = format!("{}{suffix}", ledger.display());
        if Path::new(&from).exists() {
            let to = dir.join(format!("payrun.db{suffix}"));
            std::fs::copy(&from, &to).unwrap();
            chmod(&to, 0o444);
        }
    }
    chmod(&dir, 0o555);
    dir.join("payrun.db")
}

fn batches_in_status(run: &Run) -> usize {
    let value: serde_json::Value = serde_json::from_str(&run.stdout).expect("status --json");
    value["batches"].as_array().unwrap().len()
}

// SQLite only: a ledger file's permissions; a PostgreSQL ledger's are the server's roles.
#[test]
fn read_only_commands_work_on_a_ledger_the_user_can_only_read() {
    let work = Workdir::new();
    let file = work.file("a.csv", ONE_PAYOUT);
    assert_eq!(work.run(&["ingest", file.to_str().unwrap()]).code, 0);
    let ledger = read_only_copy(&work, &work.ledger());
    assert!(!Path::new(&format!("{}-wal", ledger.display())).exists());
    let Some(status) = as_nobody(&ledger, &["status", "--json"]) else {
        return;
    };
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert_eq!(batches_in_status(&status), 1);
    let report = as_nobody(&ledger, &["report", "--format", "json"]).unwrap();
    assert_eq!(report.code, 0, "{}", report.stderr);
    assert!(report.stdout.contains("\"tie_out\""), "{}", report.stdout);
    let other = work.file("b.csv", OTHER_PAYOUT);
    let plan = as_nobody(&ledger, &["plan", other.to_str().unwrap()]).unwrap();
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(plan.stdout.contains("valid, 1 payout,"), "{}", plan.stdout);
    // reconcile reads the ledger first and then needs Dwolla: it gets past the ledger.
    let reconcile = as_nobody(&ledger, &["reconcile"]).unwrap();
    assert!(
        !reconcile.stderr.contains("readonly"),
        "{}",
        reconcile.stderr
    );
    assert!(!reconcile.stderr.contains("ledger"), "{}", reconcile.stderr);
}

// SQLite only: the -wal and -shm files of a ledger file.
#[test]
fn a_killed_writers_log_is_read_and_a_log_that_cannot_be_read_is_named() {
    let work = Workdir::new();
    let file = work.file("a.csv", ONE_PAYOUT);
    assert_eq!(work.run(&["ingest", file.to_str().unwrap()]).code, 0);
    // A writer that dies after committing batch 2 to the write-ahead log, before any
    // checkpoint: its connection is never closed, so -wal and -shm stay as a kill leaves them.
    let mut writer = payrun::ledger::Ledger::open_writer(&work.ledger()).unwrap();
    let other = work.file("b.csv", OTHER_PAYOUT);
    let options = payrun::ingest::IngestOptions {
        allow_partial: false,
        limits: payrun::ingest::row::Limits {
            max_amount: payrun::money::Cents::new(1_000_000).unwrap(),
        },
        max_errors_shown: 10,
        awaiting_approval: false,
        pay_dates: Default::default(),
        repeat_guard: Default::default(),
    };
    payrun::ingest::ingest_file(
        &mut writer,
        &other,
        &options,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let wal = format!("{}-wal", work.ledger().display());
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 0,
        "batch 2 is in the log"
    );

    let ledger = read_only_copy(&work, &work.ledger());
    let Some(status) = as_nobody(&ledger, &["status", "--json"]) else {
        std::mem::forget(writer);
        return;
    };
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert_eq!(batches_in_status(&status), 2, "the log's batch is read");
    let report = as_nobody(&ledger, &["report", "--format", "csv"]).unwrap();
    assert_eq!(report.code, 0, "{}", report.stderr);
    assert!(report.stdout.contains("C-2"), "{}", report.stdout);

    // Without the -shm file, in a folder nobody may write, SQLite cannot read the log: the
    // message says so instead of answering from the stale database file.
    let dir = ledger.parent().unwrap();
    chmod(dir, 0o755);
    std::fs::remove_file(dir.join("payrun.db-shm")).unwrap();
    chmod(dir, 0o555);
    let status = as_nobody(&ledger, &["status"]).unwrap();
    assert_eq!(status.code, 1, "{}", status.stdout);
    assert!(
        status
            .stderr
            .contains("payrun.db-wal holds changes not yet in the ledger file")
            && status.stderr.contains("payrun.db-shm"),
        "{}",
        status.stderr
    );
    std::mem::forget(writer);
}

// SQLite only: a ledger path on disk; a PostgreSQL ledger is a URL.
#[test]
fn a_ledger_in_a_missing_folder_or_a_folder_as_ledger_is_said_plainly() {
    let work = Workdir::new();
    let file = work.file("a.csv", ONE_PAYOUT);
    let missing = work.path().join("no-such-folder/x.db");
    let run = Run::from(
        Command::new(payrun_bin())
            .arg("--ledger")
            .arg(&missing)
            .args(["ingest", file.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no-such-folder does not exist"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches("os error").count(),
        0,
        "no raw OS error, and nothing said twice: {}",
        run.stderr
    );
    let run = Run::from(
        Command::new(payrun_bin())
            .arg("--ledger")
            .arg(work.path())
            .arg("status")
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("is a folder, not a ledger file"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("disk I/O"), "{}", run.stderr);
}

on_both_engines!(cli: one_problem_is_one_problem, one_problem);

fn one_problem(work: Workdir) {
    let file = work.file(
        "bad.csv",
        "reference,amount,funding_source\nC-1,1.005,fd000000-0000-4000-8000-000000000003\n",
    );
    let plan = work.run(&["plan", file.to_str().unwrap()]);
    assert_eq!(plan.code, 65);
    assert!(
        plan.stdout.contains("invalid (1 problem)"),
        "{}",
        plan.stdout
    );
    let inbox = work.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    std::fs::copy(&file, inbox.join("bad.csv")).unwrap();
    // Dwolla is not needed to reject a file: an address where nothing listens will do.
    let run = Run::from(
        work.command(&[
            "run",
            "--inbox",
            inbox.to_str().unwrap(),
            "--stable-seconds",
            "0",
            "--source",
            "f0000000-0000-4000-8000-000000000001",
        ])
        .env("DWOLLA_API_URL", "http://127.0.0.1:9")
        .env("DWOLLA_KEY", "k")
        .env("DWOLLA_SECRET", "s")
        .output()
        .unwrap(),
    );
    assert!(
        run.stdout.contains("rejected (1 problem)"),
        "{}",
        run.stdout
    );
    let errors = std::fs::read_dir(inbox.join("rejected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".errors.txt"))
        .unwrap();
    assert!(
        std::fs::read_to_string(errors)
            .unwrap()
            .contains("line 2, amount")
    );
}

on_both_engines!(cli: control_characters_in_a_file_name_are_escaped_in_output, control_characters_escaped);

fn control_characters_escaped(work: Workdir) {
    let file = work.file("pay\nforged: accepted evil.csv\u{1b}[2K", ONE_PAYOUT);
    let run = work.run(&["ingest", file.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("pay\\nforged: accepted evil.csv\\u{1b}[2K"),
        "{}",
        run.stdout
    );
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(!run.stderr.contains('\u{1b}'), "{}", run.stderr);
    let plan = work.run(&["plan", file.to_str().unwrap()]);
    assert_eq!(plan.stdout.lines().count(), 1, "{}", plan.stdout);
    assert!(!plan.stdout.contains('\u{1b}'));
}

on_both_engines!(cli: plan_errors_and_reports_number_a_row_by_its_line_in_the_file, rows_numbered_by_file_line);

fn rows_numbered_by_file_line(work: Workdir) {
    // The memo spans two lines, so C-2 is the second row but on line 4.
    let rows = "reference,amount,funding_source,memo\n\
                C-1,1.00,fd000000-0000-4000-8000-000000000003,\"June\nand July\"\n\
                C-2,3.00,fd000000-0000-4000-8000-000000000004,x\n";
    let file = work.file("pay.csv", rows);
    let plan = work.run(&["plan", file.to_str().unwrap()]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let largest = plan
        .stdout
        .lines()
        .find(|l| l.contains("C-2"))
        .expect("C-2 among the largest payouts");
    assert!(
        largest.trim_start().starts_with("line      4 "),
        "{largest}"
    );

    let bad = work.file("bad.csv", rows.replace("3.00", "3.005"));
    let refused = work.run(&["plan", bad.to_str().unwrap()]);
    assert!(
        refused.stdout.contains("bad.csv:4: amount"),
        "{}",
        refused.stdout
    );

    assert_eq!(work.run(&["ingest", file.to_str().unwrap()]).code, 0);
    let report = work.run(&["report", "--format", "csv"]);
    assert!(
        report.stdout.contains("\n1,pay.csv,4,C-2,"),
        "{}",
        report.stdout
    );
}

on_both_engines!(cli: a_report_into_a_missing_folder_names_the_file_asked_for, report_into_a_missing_folder);

fn report_into_a_missing_folder(work: Workdir) {
    let file = work.file("one.csv", ONE_PAYOUT);
    assert_eq!(work.run(&["ingest", file.to_str().unwrap()]).code, 0);
    let out = work.path().join("missing").join("r.csv");
    let run = work.run(&["report", "--out", out.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    let expected = format!(
        "payrun: error: cannot write {}: the folder {} does not exist",
        out.display(),
        out.parent().unwrap().display()
    );
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert!(
        !run.stderr.contains(".r.csv."),
        "no temporary name: {}",
        run.stderr
    );
}

on_both_engines!(cli:
    /// `payrun status | head -1`: the reader goes away before payrun writes. As xsv does, that
    /// is a quiet exit 0, not a panic in `println!` (exit 101) or an error message.
    a_reader_that_stops_early_is_a_quiet_exit_0, reader_stops_early);

fn reader_stops_early(work: Workdir) {
    let payroll = crate::support::sample("payroll.csv");
    assert_eq!(work.run(&["ingest", payroll.to_str().unwrap()]).code, 0);
    for args in [&["status"][..], &["report", "--format", "csv"][..]] {
        let mut child = work
            .command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Closed before the child, still starting up, writes anything.
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
