//! payrun on a PostgreSQL ledger: several `payrun` processes on one ledger, one of them killed
//! at random moments; a dead worker's claims taken over after its lease; one payroll ingested
//! by two workers at once. Each test has a database of its own on a real server
//! (`support::postgres`), and skips with a note where none can be had outside CI.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use payrun::sim::SimConfig;

use crate::support::SendEnv;

fn send_worker(env: &SendEnv, rate: &str, concurrency: &str) -> Command {
    let mut command = env.command(&[
        "send",
        "--rate",
        rate,
        "--concurrency",
        concurrency,
        "--no-progress",
        "--attempts-per-run",
        "30",
        "--max-attempts",
        "60",
    ]);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

fn states(env: &SendEnv) -> HashMap<String, usize> {
    let mut states = HashMap::new();
    for payout in env.payouts() {
        *states.entry(payout.state).or_default() += 1;
    }
    states
}

/// Waits for `child` off the async threads; returns its exit code and output.
async fn finish(child: Child) -> (i32, String) {
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// Issue 14's chaos test: three `payrun send` processes on one ledger under drops, 500s and
/// 429s; one is SIGKILLed at random moments and restarted each time. Every payout is paid
/// exactly once, none is left, and the simulator never sees more than R requests in a second
/// from all of them together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_one_killed_at_random_pay_every_payout_once_within_one_rate_limit() {
    let faults = SimConfig {
        throttle_rate: 0.01,
        retry_after: false,
        error_rate: 0.05,
        drop_rate: 0.05,
        latency: Duration::from_millis(30),
        seed: 14,
        ..SimConfig::new()
    };
    let Some(env) = SendEnv::start_on_postgres(faults, "three_workers").await else {
        return;
    };
    let (n_rows, rate) = (3000, 150);
    env.ingest_rows("payouts.csv", n_rows);
    let steady: Vec<Child> = (0..2)
        .map(|_| send_worker(&env, &rate.to_string(), "8").spawn().unwrap())
        .collect();
    let mut next_delay = crate::support::random_delays(0x2545_F491_4F6C_DD1D, 300, 1700);
    let mut n_kills = 0;
    while n_kills < 5 {
        let mut victim = send_worker(&env, &rate.to_string(), "8").spawn().unwrap();
        tokio::time::sleep(next_delay()).await;
        if victim.try_wait().unwrap().is_some() {
            break; // The others finished the ledger first.
        }
        victim.kill().unwrap();
        victim.wait().unwrap();
        n_kills += 1;
        env.assert_exactly_once();
    }
    assert!(
        n_kills >= 3,
        "the steady workers finished too early to test kills"
    );
    let last = send_worker(&env, &rate.to_string(), "8").spawn().unwrap();
    let mut results = vec![finish(last).await];
    for worker in steady {
        results.push(finish(worker).await);
    }
    for (code, output) in &results {
        assert_eq!(
            *code,
            0,
            "every worker exits 0: {output}\n{:?}",
            states(&env)
        );
    }
    assert_eq!(
        states(&env),
        HashMap::from([("submitted".to_string(), 3000)])
    );
    assert_eq!(env.assert_exactly_once(), n_rows as usize);
    assert_eq!(env.sim.transfers().len(), n_rows as usize);
    let stats = env.sim.stats();
    eprintln!(
        "three workers, {n_kills} kills: busiest second {} of {rate}; {} requests, {} 500s, {} dropped, {} 429s, {} replays",
        stats.max_requests_per_second,
        stats.total_requests,
        stats.server_errors,
        stats.dropped_responses,
        stats.rate_limited,
        stats.idempotent_replays
    );
    assert!(
        stats.max_requests_per_second <= rate,
        "{} requests in one second from all workers together, over the limit of {rate}",
        stats.max_requests_per_second
    );
    assert!(
        stats.dropped_responses > 0 && stats.server_errors > 0,
        "{stats:?}"
    );
}

/// A worker killed while it holds claims: another worker leaves them alone while the lease
/// holds, then takes them over and sends them with the same keys, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_holding_claims_is_taken_over_after_its_lease() {
    let Some(env) = SendEnv::start_on_postgres(SimConfig::new(), "takeover").await else {
        return;
    };
    let pg = env.pg.as_ref().unwrap();
    let n_rows = 40;
    env.ingest_rows("payouts.csv", n_rows);
    // Slow enough that it is killed with most of its claims unsent.
    let mut doomed = send_worker(&env, "2", "1").spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while states(&env).contains_key("pending") {
        assert!(Instant::now() < deadline, "{:?}", states(&env));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    let killed_at = Instant::now();
    let n_held = states(&env)["submitting"];
    assert!(n_held >= 30, "{:?}", states(&env));
    let holder = pg.query("SELECT DISTINCT claimed_by FROM payouts WHERE state = 'submitting'");
    assert_eq!(holder.len(), 1, "one worker holds them all: {holder:?}");

    let taker = send_worker(&env, "20", "4").spawn().unwrap();
    // Well inside the 3 s lease (renewed every 0.5 s until the kill), nothing is taken.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = pg.query(&format!(
        "SELECT count(*) FROM payouts WHERE state = 'submitting' AND claimed_by = '{}'",
        holder[0][0]
    ));
    if killed_at.elapsed() < Duration::from_millis(2500) {
        assert_eq!(
            held,
            [vec![n_held.to_string()]],
            "taken before the lease passed"
        );
    }
    let (code, output) = finish(taker).await;
    assert_eq!(code, 0, "{output}");
    assert!(
        killed_at.elapsed() >= Duration::from_secs(2),
        "the takeover waited for the lease"
    );
    assert!(output.contains("nothing left to send"), "{output}");
    assert_eq!(states(&env), HashMap::from([("submitted".to_string(), 40)]));
    assert_eq!(env.assert_exactly_once(), n_rows as usize);
    let keys = pg.query("SELECT count(DISTINCT idempotency_key) FROM payouts");
    assert_eq!(keys, [vec![n_rows.to_string()]]);
}

/// Two workers ingest the same payroll at the same moment: one batch, the other adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_ingesting_the_same_file_at_once_make_one_batch() {
    let Some(env) = SendEnv::start_on_postgres(SimConfig::new(), "same_file").await else {
        return;
    };
    let pg = env.pg.as_ref().unwrap();
    let path = env.work.path().join("payroll.csv");
    payrun::fixtures::write_payout_csv(
        std::io::BufWriter::new(std::fs::File::create(&path).unwrap()),
        20_000,
    )
    .unwrap();
    // The schema first, so that both start their ingest rather than their migration.
    env.work.run(&["status"]);
    let path_text = path.to_str().unwrap();
    let both: Vec<Child> = (0..2)
        .map(|_| {
            env.work
                .command(&["ingest", path_text])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut outputs = Vec::new();
    for child in both {
        outputs.push(finish(child).await);
    }
    for (code, output) in &outputs {
        assert_eq!(*code, 0, "{output}");
    }
    let accepted = outputs
        .iter()
        .filter(|(_, o)| o.contains("accepted"))
        .count();
    let skipped = outputs
        .iter()
        .filter(|(_, o)| o.contains("skipped"))
        .count();
    assert_eq!((accepted, skipped), (1, 1), "{outputs:?}");
    assert_eq!(
        pg.query("SELECT count(*) FROM batches"),
        [vec!["1".to_string()]]
    );
    assert_eq!(
        pg.query("SELECT count(*) FROM payouts"),
        [vec!["20000".to_string()]]
    );
}

/// Two processes opening a new ledger at once apply its schema once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_starting_together_migrate_once() {
    let Some(env) = SendEnv::start_on_postgres(SimConfig::new(), "migrate_once").await else {
        return;
    };
    let pg = env.pg.as_ref().unwrap();
    let both: Vec<Child> = (0..4)
        .map(|_| {
            env.work
                .command(&["status", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in both {
        let (code, output) = finish(child).await;
        assert_eq!(code, 0, "{output}");
    }
    assert_eq!(
        pg.query("SELECT version FROM payrun_schema ORDER BY version"),
        [vec!["1".to_string()]]
    );
}

/// Commands on a database that cannot be reached: try again later (75), like a held writer
/// lock, naming the URL with its password hidden. A funding source's removal stops before
/// Dwolla is asked. (On SQLite a plan needs no ledger.)
#[test]
fn commands_on_an_unreachable_database_exit_75_and_hide_the_password() {
    let work = crate::support::Workdir::on_postgres("postgres://payrun:s3cret@127.0.0.1:1/none");
    let payouts = work.file("payouts.csv", "reference,amount,payee\nP-1,10.00,V-ACME\n");
    let payees = work.file(
        "payees.csv",
        "reference,business_name,first_name,last_name,email,routing_number,account_number,account_type\n\
         V-ACME,Acme Tools LLC,,,ap@acme-tools.example.com,222222226,73950184627,checking\n",
    );
    let demo = work.path().join("demo");
    for args in [
        vec!["status"],
        vec!["ingest", payouts.to_str().unwrap()],
        vec!["report"],
        vec!["funding-sources", "remove", "fs-1"],
        vec!["plan", payouts.to_str().unwrap()],
        vec!["payees", "list"],
        vec!["payees", "import", payees.to_str().unwrap()],
        vec!["demo", "--dir", demo.to_str().unwrap()],
    ] {
        let run = crate::support::Run::from(
            work.command(&args)
                .env("DWOLLA_API_URL", "http://127.0.0.1:1")
                .env("DWOLLA_KEY", "key")
                .env("DWOLLA_SECRET", "secret")
                .env_remove("DWOLLA_ENV")
                .output()
                .unwrap(),
        );
        assert_eq!(run.code, 75, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("postgres://payrun@127.0.0.1:1/none")
                && !run.stderr.contains("s3cret"),
            "{args:?}: {}",
            run.stderr
        );
    }
}

/// Two `payees import`s of one file at once on PostgreSQL, where no writer lock serializes
/// them: the second waits for the first's lock on the directory, then finds every payee
/// complete and sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_payee_imports_at_once_create_each_payee_once() {
    let Some(env) = SendEnv::start_on_postgres(SimConfig::new(), "two_imports").await else {
        return;
    };
    let payees = env.work.file(
        "payees.csv",
        "reference,business_name,first_name,last_name,email,routing_number,account_number,account_type\n\
         V-ACME,Acme Tools LLC,,,ap@acme-tools.example.com,222222226,73950184627,checking\n\
         V-ADA,,Ada,Lovelace,ada@example.com,021000021,4408812390655,savings\n",
    );
    let both: Vec<Child> = (0..2)
        .map(|_| {
            env.command(&["payees", "import", payees.to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut verdicts = Vec::new();
    for child in both {
        let (code, output) = finish(child).await;
        assert_eq!(code, 0, "{output}");
        let verdict = output
            .lines()
            .find_map(|line| {
                line.split_once("payees.csv: ")
                    .filter(|_| line.starts_with("imported "))
            })
            .unwrap_or_else(|| panic!("no verdict: {output}"))
            .1
            .to_string();
        verdicts.push(verdict);
    }
    verdicts.sort();
    assert_eq!(
        verdicts,
        [
            "0 created, 2 unchanged, 0 failed",
            "2 created, 0 unchanged, 0 failed",
        ]
    );
    assert_eq!(
        env.sim.stats().idempotent_replays,
        0,
        "nothing was sent twice"
    );
}

/// A batch that waits for approval on PostgreSQL: status says so, the sender leaves it alone,
/// `payrun approve` lets the next send pay it, the report ties out, and reconcile agrees with
/// Dwolla until the ledger is made to disagree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_waiting_for_approval_is_sent_once_approved_reported_and_reconciled() {
    let Some(env) = SendEnv::start_on_postgres(SimConfig::new(), "approval").await else {
        return;
    };
    let path = env.work.path().join("payroll.csv");
    payrun::fixtures::write_payout_csv(
        std::io::BufWriter::new(std::fs::File::create(&path).unwrap()),
        25,
    )
    .unwrap();
    let ingest = env
        .run(&["ingest", "--require-approval", path.to_str().unwrap()])
        .await;
    assert_eq!(ingest.code, 0, "{}", ingest.stderr);
    let status = env.work.status_json();
    assert_eq!(
        status["batches"][0]["status"], "awaiting_approval",
        "{status}"
    );
    let before = send_worker(&env, "50", "4").spawn().unwrap();
    let (code, output) = finish(before).await;
    assert_eq!(code, 0, "{output}");
    assert_eq!(states(&env), HashMap::from([("pending".to_string(), 25)]));

    let approve = env.run(&["approve", "1"]).await;
    assert_eq!(approve.code, 0, "{}", approve.stderr);
    assert!(
        approve.stdout.contains("batch 1 approved"),
        "{}",
        approve.stdout
    );
    let after = send_worker(&env, "50", "4").spawn().unwrap();
    let (code, output) = finish(after).await;
    assert_eq!(code, 0, "{output}");
    assert_eq!(env.assert_exactly_once(), 25);
    let unknown = env.run(&["approve", "7"]).await;
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);

    // The report finance reads, from the PostgreSQL ledger: it ties out to the file.
    let json = env.run(&["report", "--format", "json"]).await;
    assert_eq!(json.code, 0, "{}", json.stderr);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let total = payrun::money::Cents::new(payrun::fixtures::payout_csv_total_cents(25))
        .unwrap()
        .to_string();
    assert_eq!(
        report["overall"]["tie_out"]["input_total"], total,
        "{report}"
    );
    assert_eq!(report["overall"]["payouts"], 25, "{report}");
    assert!(
        json.stderr.contains("ties out to the input files"),
        "{}",
        json.stderr
    );
    let csv = env.run(&["report", "--format", "csv"]).await;
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    assert_eq!(
        csv.stdout.lines().count(),
        26,
        "a header and a row per payout"
    );
    assert_eq!(
        csv.stdout.matches(",submitted,").count(),
        25,
        "{}",
        csv.stdout
    );

    // Reconcile against the simulator: the ledger and Dwolla agree ...
    let agree = env.run(&["reconcile"]).await;
    assert_eq!(agree.code, 0, "{}{}", agree.stdout, agree.stderr);
    // ... until one payout's correlation id is not the one its transfer carries: an orphan
    // transfer at Dwolla and a payout whose transfer Dwolla does not list.
    let pg = env.pg.as_ref().unwrap();
    pg.query("UPDATE payouts SET correlation_id = correlation_id || '0' WHERE line = 3");
    let differ = env.run(&["reconcile"]).await;
    assert_eq!(differ.code, 3, "{}{}", differ.stdout, differ.stderr);
    assert_eq!(
        differ.stdout.lines().count(),
        3,
        "a header and two rows: {}",
        differ.stdout
    );
}

/// The operator's brakes on PostgreSQL: a held batch is not sent, a released one is, and
/// cancelled payouts stay unpaid with the operator's reason in the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_release_and_cancel_work_on_postgres() {
    let Some(env) = SendEnv::start_on_postgres(SimConfig::new(), "brakes").await else {
        return;
    };
    env.ingest_rows("payroll.csv", 30);
    let hold = env
        .run(&["hold", "1", "--reason", "bank details in question"])
        .await;
    assert_eq!(hold.code, 0, "{}", hold.stderr);
    let (code, output) = finish(send_worker(&env, "50", "4").spawn().unwrap()).await;
    assert_eq!(code, 0, "{output}");
    assert_eq!(states(&env), HashMap::from([("pending".to_string(), 30)]));
    let status = env.run(&["status"]).await;
    assert!(
        status.stdout.contains("batch 1 is held"),
        "{}",
        status.stdout
    );

    let cancel = env
        .run(&[
            "cancel",
            "1",
            "--reference",
            "REF-00000003",
            "--reference",
            "REF-00000007",
            "--reason",
            "left the company",
        ])
        .await;
    assert_eq!(cancel.code, 0, "{}", cancel.stderr);
    let release = env.run(&["release", "1"]).await;
    assert_eq!(release.code, 0, "{}", release.stderr);
    let (code, output) = finish(send_worker(&env, "50", "4").spawn().unwrap()).await;
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        states(&env),
        HashMap::from([("submitted".to_string(), 28), ("cancelled".to_string(), 2)])
    );
    assert_eq!(env.assert_exactly_once(), 28);
    let csv = env.run(&["report", "--format", "csv"]).await;
    assert_eq!(
        csv.stdout.matches("left the company").count(),
        2,
        "{}",
        csv.stdout
    );
    let again = env.run(&["cancel", "1", "--reason", "too late"]).await;
    assert_eq!(
        again.code, 3,
        "committed payouts are reported: {}",
        again.stdout
    );
}

/// The ledgers one process opens on a URL share its pool: opened and dropped again and again
/// they hold one connection, not one each; a ledger holding the payee directory's session lock
/// closes its connection when it goes, so the lock is free for another process at once.
#[test]
fn ledgers_of_one_process_share_pooled_connections_and_release_session_locks() {
    let Some(pg) = crate::support::postgres::database(
        "postgres::ledgers_of_one_process_share_pooled_connections_and_release_session_locks",
    ) else {
        return;
    };
    // A name of this test's own, so that the server's view counts only these connections.
    let url = format!("{}?application_name=payrun-pool-test", pg.url);
    let connections = || {
        pg.query(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'payrun-pool-test'",
        )
    };
    for _ in 0..20 {
        let ledger = payrun::ledger::postgres::PgLedger::open(&url).unwrap();
        assert!(ledger.payees().unwrap().is_empty());
    }
    assert_eq!(
        connections(),
        [["1"]],
        "20 opens in turn reuse one connection"
    );
    let first = payrun::ledger::postgres::PgLedger::open(&url).unwrap();
    let beside = first.reconnect().unwrap();
    assert_eq!(connections(), [["2"]], "two at once hold two");
    drop(beside);

    let advisory_locks =
        || pg.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted");
    first.lock_payee_directory().unwrap();
    assert_eq!(advisory_locks(), [["1"]]);
    drop(first);
    // The server notices the closed socket at once, but the backend exits in its own time.
    let deadline = Instant::now() + Duration::from_secs(10);
    while advisory_locks() != [["0"]] {
        assert!(
            Instant::now() < deadline,
            "the payee directory's lock is never released"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let again = payrun::ledger::postgres::PgLedger::open(&url).unwrap();
    assert!(again.payees().unwrap().is_empty());
    assert_eq!(
        connections(),
        [["1"]],
        "the locked connection was closed, not reused"
    );
}

/// A throwaway PostgreSQL cluster of one test's own that speaks TLS (`ssl=on`), its
/// certificate for `localhost` and 127.0.0.1 signed by a test CA made here with the `openssl`
/// command; the server logs each connection, with "SSL enabled" for a TLS one. Stopped when
/// this goes (and by the support's watchdog if the test process dies first).
struct TlsCluster {
    cluster: crate::support::postgres::Cluster,
    port: u16,
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let _ = crate::support::postgres::as_server_user(&self.cluster.pg_ctl)
            .arg("-D")
            .arg(&self.cluster.data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl TlsCluster {
    /// The cluster, or why it cannot be had on this machine.
    fn start() -> Result<TlsCluster, String> {
        use crate::support::postgres::{Cluster, is_root, run};
        let cluster = Cluster::init("payrun-pg-tls-")?;
        let certs = cluster.dir.join("certs");
        make_certificates(&certs)?;
        let data = &cluster.data;
        for file in ["server.crt", "server.key"] {
            std::fs::copy(certs.join(file), data.join(file)).map_err(|e| e.to_string())?;
        }
        // PostgreSQL refuses a key that others can read.
        let (key, crt) = (data.join("server.key"), data.join("server.crt"));
        run(
            Command::new("chmod").arg("0600").arg(&key).arg(&crt),
            "chmod",
        )?;
        if is_root() {
            run(
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(&key)
                    .arg(&crt),
                "chown",
            )?;
        }
        let port = cluster.start(
            "-c listen_addresses=127.0.0.1,127.0.0.2 -c ssl=on -c ssl_cert_file=server.crt \
             -c ssl_key_file=server.key -c log_connections=on",
        )?;
        Ok(TlsCluster { cluster, port })
    }

    fn ca_file(&self) -> std::path::PathBuf {
        self.cluster.dir.join("certs").join("ca.pem")
    }

    /// The server's log: one "connection authorized" line per connection.
    fn log(&self) -> String {
        std::fs::read_to_string(self.cluster.dir.join("log")).unwrap_or_default()
    }

    /// The "connection authorized" lines of the connections named `application_name`.
    fn connections_of(&self, application_name: &str) -> Vec<String> {
        let name = format!("application_name={application_name}");
        self.log()
            .lines()
            .filter(|line| line.contains("connection authorized") && line.contains(&name))
            .map(str::to_string)
            .collect()
    }
}

/// A test CA (`ca.pem`) and a certificate for `localhost` and 127.0.0.1 that it signed
/// (`server.crt`, `server.key`), made in `certs` with the `openssl` command.
fn make_certificates(certs: &std::path::Path) -> Result<(), String> {
    use crate::support::postgres::run;
    std::fs::create_dir(certs).map_err(|e| e.to_string())?;
    std::fs::write(
        certs.join("ca.cnf"),
        "[req]\ndistinguished_name = dn\nx509_extensions = ca\nprompt = no\n\
         [dn]\nCN = payrun test CA\n\
         [ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n",
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(
        certs.join("server.ext"),
        "subjectAltName = DNS:localhost,IP:127.0.0.1\nbasicConstraints = CA:FALSE\n\
         keyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n\
         authorityKeyIdentifier = keyid\n",
    )
    .map_err(|e| e.to_string())?;
    let openssl = |args: &[&str]| {
        let mut command = Command::new("openssl");
        command.current_dir(certs).args(args);
        command
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    run(
        openssl(&["req", "-x509", "-config", "ca.cnf", "-nodes", "-days", "2"])
            .args(ec)
            .args(["-keyout", "ca.key", "-out", "ca.pem"]),
        "openssl req (the test CA)",
    )?;
    run(
        openssl(&["req", "-new", "-nodes", "-subj", "/CN=localhost"])
            .args(ec)
            .args(["-keyout", "server.key", "-out", "server.csr"]),
        "openssl req (the server's key)",
    )?;
    run(
        &mut openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ]),
        "openssl x509 (the server's certificate)",
    )?;
    Ok(())
}

/// TLS to a PostgreSQL ledger, over loopback to a server of the test's own whose certificate a
/// private CA signed. With `sslmode=require` and that CA named (`PAYRUN_POSTGRES_CA_FILE`, or
/// `[postgres] ca_file` in payrun.toml), `ingest` and `status` work and the server saw TLS
/// connections. Without the CA, the certificate does not verify: exit 78, the reason in the
/// message, and the URL's password nowhere; with the CA but an address the certificate does
/// not name (127.0.0.2), exit 78 too. A CA file that is not there is a configuration error
/// naming it. `sslmode=disable` still connects to the same server, in plain text.
#[test]
fn tls_connections_verify_the_server_against_the_named_ca() {
    let test = "postgres::tls_connections_verify_the_server_against_the_named_ca";
    let cluster = match TlsCluster::start() {
        Ok(cluster) => cluster,
        Err(why) => {
            if std::env::var_os("PAYRUN_REQUIRE_POSTGRES").is_some() {
                panic!("PostgreSQL tests must run here (PAYRUN_REQUIRE_POSTGRES): {why}");
            }
            eprintln!("skipped {test}: no PostgreSQL server with TLS: {why}");
            return;
        }
    };
    let password = "tls-s3cret";
    let url = |sslmode: &str, application_name: &str| {
        format!(
            "postgres://payrun:{password}@127.0.0.1:{}/postgres?sslmode={sslmode}&application_name={application_name}",
            cluster.port
        )
    };
    let payrun = |url: &str, args: &[&str]| {
        let work = crate::support::Workdir::on_postgres(url);
        let mut command = work.command(args);
        command
            .env_remove("PAYRUN_POSTGRES_CA_FILE")
            .env_remove("PAYRUN_CONFIG");
        (work, command)
    };
    let payroll = crate::support::sample("payroll.csv");
    let payroll = payroll.to_str().unwrap();

    // No CA named: the test CA is in no system store, so the handshake fails.
    let (_work, mut command) = payrun(&url("require", "payrun-tls-unknown"), &["status"]);
    let refused = crate::support::Run::from(command.output().unwrap());
    assert_eq!(refused.code, 78, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("certificate")
            && refused.stderr.contains("UnknownIssuer")
            && refused.stderr.contains("PAYRUN_POSTGRES_CA_FILE"),
        "the reason is said: {}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains(&format!(
            "postgres://payrun@127.0.0.1:{}/postgres",
            cluster.port
        )) && !refused.stderr.contains(password),
        "the URL is shown without its password: {}",
        refused.stderr
    );
    assert!(cluster.connections_of("payrun-tls-unknown").is_empty());

    // A CA file that is not there: a configuration error that names it.
    let (_work, mut command) = payrun(&url("require", "payrun-tls-missing"), &["status"]);
    let missing = crate::support::Run::from(
        command
            .env(
                "PAYRUN_POSTGRES_CA_FILE",
                cluster.cluster.dir.join("no-such-ca.pem"),
            )
            .output()
            .unwrap(),
    );
    assert_eq!(missing.code, 78, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("no-such-ca.pem") && !missing.stderr.contains(password),
        "{}",
        missing.stderr
    );

    // The CA named by the environment: ingest over TLS.
    let (_work, mut command) = payrun(&url("require", "payrun-tls-ingest"), &["ingest", payroll]);
    let ingested = crate::support::Run::from(
        command
            .env("PAYRUN_POSTGRES_CA_FILE", cluster.ca_file())
            .output()
            .unwrap(),
    );
    assert_eq!(ingested.code, 0, "{}", ingested.stderr);
    assert!(!ingested.stdout.contains(password) && !ingested.stderr.contains(password));
    let ingest_connections = cluster.connections_of("payrun-tls-ingest");
    assert!(
        !ingest_connections.is_empty()
            && ingest_connections
                .iter()
                .all(|line| line.contains("SSL enabled")),
        "the server saw TLS connections: {ingest_connections:?}"
    );

    // The same server by an address its certificate does not name: the host name is checked.
    let elsewhere = url("require", "payrun-tls-elsewhere").replace("127.0.0.1", "127.0.0.2");
    let (_work, mut command) = payrun(&elsewhere, &["status"]);
    let wrong_name = crate::support::Run::from(
        command
            .env("PAYRUN_POSTGRES_CA_FILE", cluster.ca_file())
            .output()
            .unwrap(),
    );
    assert_eq!(wrong_name.code, 78, "{}", wrong_name.stderr);
    assert!(
        wrong_name
            .stderr
            .contains("not valid for name \"127.0.0.2\"")
            && !wrong_name.stderr.contains(password),
        "{}",
        wrong_name.stderr
    );

    // The CA named in payrun.toml: status over TLS, seeing the batch.
    let (work, mut command) = payrun(&url("require", "payrun-tls-status"), &["status", "--json"]);
    work.file(
        "payrun.toml",
        format!(
            "[postgres]\nca_file = {:?}\n",
            cluster.ca_file().to_str().unwrap()
        ),
    );
    let status = crate::support::Run::from(command.output().unwrap());
    assert_eq!(status.code, 0, "{}", status.stderr);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(
        status["batches"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );
    let status_connections = cluster.connections_of("payrun-tls-status");
    assert!(
        !status_connections.is_empty()
            && status_connections
                .iter()
                .all(|line| line.contains("SSL enabled")),
        "the server saw TLS connections: {status_connections:?}"
    );

    // From inside a ledger this process opened, the server's own view says TLS too.
    payrun::ledger::postgres::use_ca_file(Some(cluster.ca_file()));
    let inside = url("require", "payrun-tls-inside");
    let ledger = payrun::ledger::postgres::PgLedger::open(&inside).unwrap();
    let admin = format!(
        "postgres://payrun@127.0.0.1:{}/postgres?sslmode=disable",
        cluster.port
    );
    assert_eq!(
        crate::support::postgres::query(
            &admin,
            "SELECT ssl FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE application_name = 'payrun-tls-inside'"
        ),
        [["t"]]
    );
    drop(ledger);

    // sslmode=disable: plain text to the same server, no CA needed.
    let (_work, mut command) = payrun(&url("disable", "payrun-plain"), &["status"]);
    let plain = crate::support::Run::from(command.output().unwrap());
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    let plain_connections = cluster.connections_of("payrun-plain");
    assert!(
        !plain_connections.is_empty()
            && plain_connections
                .iter()
                .all(|line| !line.contains("SSL enabled")),
        "the server saw plain connections: {plain_connections:?}"
    );
}
