//! `payrun send` against the simulator: exactly once under every fault class, token expiry,
//! the 24-hour idempotency-key rule, graceful shutdown, and SIGKILLs at random moments.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use payrun::ledger::Ledger;
use payrun::ledger::SendLedger;
use payrun::ledger::postgres::PgLedger;
use payrun::sim::{Faults, SimConfig};

use crate::on_both_engines;
use crate::support::SendEnv;

on_both_engines!(
    every_payout_becomes_one_transfer_on_the_happy_path,
    SimConfig::new(),
    happy_path
);

async fn happy_path(env: SendEnv) {
    env.ingest_rows("payouts.csv", 300);
    let report = env
        .send(
            env.client(500, 32, Duration::from_secs(5)),
            env.send_config(32),
        )
        .await;
    assert_eq!(
        (report.n_claimed, report.n_created),
        (300, 300),
        "{report:?}"
    );
    assert_eq!(payrun::cli::send_status(&report), payrun::exit::OK);
    assert_eq!(env.assert_exactly_once(), 300);
    assert!(
        env.payouts()
            .iter()
            .all(|p| p.state == "submitted" && p.attempts == 1)
    );

    // A second run finds nothing to do and sends nothing.
    let before = env.sim.stats().total_requests;
    let again = env
        .send(
            env.client(500, 32, Duration::from_secs(5)),
            env.send_config(32),
        )
        .await;
    assert_eq!(again.n_claimed, 0);
    assert!(
        env.sim.stats().total_requests - before <= 2,
        "only the token and the root resource"
    );
}

on_both_engines!(
    drops_errors_timeouts_conflicts_and_429s_still_pay_each_payout_exactly_once,
    every_fault_class(),
    every_fault_class_once
);

fn every_fault_class() -> SimConfig {
    SimConfig {
        drop_rate: 0.15,
        error_rate: 0.15,
        timeout_rate: 0.05,
        timeout_hold: Duration::from_millis(1500),
        rate_limit: Some(150),
        seed: 7,
        ..SimConfig::new()
    }
}

async fn every_fault_class_once(env: SendEnv) {
    env.ingest_rows("payouts.csv", 400);
    // Faster than the simulator allows, so 429s come; a short timeout, so held responses time
    // out and their retries meet the first request still in flight (409).
    let client = env.client(400, 48, Duration::from_millis(700));
    let report = env.send(client, env.send_config(48)).await;
    assert_eq!(report.n_created, 400, "{report:?}");
    assert_eq!(env.assert_exactly_once(), 400);
    let stats = env.sim.stats();
    assert!(
        stats.dropped_responses > 0 && stats.server_errors > 0 && stats.held_responses > 0,
        "{stats:?}"
    );
    assert!(
        stats.rate_limited > 0,
        "the 429 path was not exercised: {stats:?}"
    );
    assert!(
        stats.idempotent_replays > 0,
        "dropped responses are recovered by replaying the key: {stats:?}"
    );
    assert_eq!(stats.transfers_created, 400);
}

on_both_engines!(
    an_access_token_that_expires_mid_run_is_renewed,
    SimConfig {
        token_ttl: Duration::from_secs(1),
        ..SimConfig::new()
    },
    token_renewed_mid_run
);

async fn token_renewed_mid_run(env: SendEnv) {
    env.ingest_rows("payouts.csv", 150);
    // 150 payouts at 60/s take 2.5 s: the run outlives at least two tokens.
    let started = std::time::Instant::now();
    let client = env.client(60, 8, Duration::from_secs(5));
    let report = env.send(client, env.send_config(8)).await;
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "the run must outlive its first tokens"
    );
    assert_eq!(report.n_created, 150, "{report:?}");
    assert_eq!(env.assert_exactly_once(), 150);
}

on_both_engines!(
    a_payout_past_the_key_lifetime_is_looked_up_never_resent,
    SimConfig::new(),
    past_the_key_lifetime
);

async fn past_the_key_lifetime(env: SendEnv) {
    let file = env.work.file(
        "two.csv",
        "reference,amount,funding_source\nA-1,10.00,fd000000-0000-4000-8000-000000000001\n\
         B-1,12.34,fd000000-0000-4000-8000-000000000002\n",
    );
    env.ingest_file(&file);
    // A day ago both requests were committed; A's POST reached Dwolla and its response was
    // lost, B's never arrived.
    let client = env.client(100, 4, Duration::from_secs(2));
    let mut body = |payout: &payrun::ledger::DuePayout| {
        payrun::dwolla::TransferRequest {
            source_url: env.sim.source_funding_source(),
            destination_url: client.funding_source_url(&payout.destination),
            amount: payrun::dwolla::Amount::usd_cents(payout.amount.get() as u64),
            correlation_id: payout.correlation_id.clone(),
            metadata: Default::default(),
        }
        .to_body_bytes()
    };
    let due = commit_requests_then_die(&env, "2020-01-01T00:00:00.000Z", &mut body);
    client
        .create_transfer(
            &due[0].idempotency_key,
            due[0].request_body.as_ref().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(env.sim.transfers().len(), 1);

    let created_before = env.sim.stats().responses_by_status.get(&201).copied();
    let report = env.send(client, env.send_config(4)).await;
    assert_eq!(
        (report.n_found, report.n_needs_review),
        (1, 1),
        "{report:?}"
    );
    let states: Vec<String> = env.payouts().into_iter().map(|p| p.state).collect();
    assert_eq!(states, vec!["submitted", "needs_review"]);
    assert_eq!(env.sim.transfers().len(), 1, "nothing was re-POSTed");
    assert_eq!(
        env.sim.stats().responses_by_status.get(&201).copied(),
        created_before
    );
    assert_eq!(payrun::cli::send_status(&report), payrun::exit::ATTENTION);
    env.assert_exactly_once();
}

/// Commits, as of `now`, the request of every pending payout the way a sender does before
/// its first POST, by a worker that then is gone (on PostgreSQL it leaves the workers, so
/// the next run takes its payouts over at once); returns them.
fn commit_requests_then_die(
    env: &SendEnv,
    now: &str,
    body: &mut dyn FnMut(&payrun::ledger::DuePayout) -> Vec<u8>,
) -> Vec<payrun::ledger::DuePayout> {
    if let Some(pg) = &env.pg {
        let mut ledger = PgLedger::open(&pg.url).unwrap();
        ledger.set_leases(crate::support::TEST_LEASES);
        ledger.join_as_worker().unwrap();
        let due = ledger.claim_pending(0, None, 10, now, body).unwrap();
        ledger.leave().unwrap();
        return due;
    }
    let mut ledger = Ledger::open_writer(&env.work.ledger()).unwrap();
    SendLedger::claim_pending(&mut ledger, 0, None, 10, now, body).unwrap()
}

on_both_engines!(
    a_graceful_stop_records_every_request_in_flight,
    SimConfig {
        latency: Duration::from_millis(50),
        ..SimConfig::new()
    },
    graceful_stop
);

async fn graceful_stop(env: SendEnv) {
    env.ingest_rows("payouts.csv", 400);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let client = env.client(100, 8, Duration::from_secs(5));
    let run = env.send_until_stopped(client, env.send_config(8), stopping);
    let stop_later = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        stop.send(true).unwrap();
        // Stopped then: the run has this long to end.
        tokio::time::sleep(Duration::from_secs(10)).await;
    };
    let report = tokio::select! {
        report = run => report,
        () = stop_later => panic!("the run did not stop promptly"),
    };
    assert!(report.interrupted);
    assert!(report.n_created > 0 && report.n_created < 400, "{report:?}");
    // Stopped with payouts left: never exit 0, but "run again", not "Dwolla is failing".
    // Claimed ahead in a committed page but never POSTed, some are in doubt; the next run
    // resends those with their keys.
    assert_eq!(report.left.total(), 400 - report.n_created, "{report:?}");
    assert_eq!(payrun::cli::send_status(&report), payrun::exit::TEMPORARY);
    // Every transfer Dwolla created is recorded as such: none is left in doubt.
    let sent = env.assert_exactly_once();
    assert_eq!(sent, env.sim.transfers().len());

    let rest = env
        .send(
            env.client(500, 16, Duration::from_secs(5)),
            env.send_config(16),
        )
        .await;
    assert_eq!(
        report.n_created + rest.n_created + rest.n_found,
        400,
        "{rest:?}"
    );
    assert_eq!(env.assert_exactly_once(), 400);
}

on_both_engines!(
    refused_payouts_are_rejected_with_dwollas_reason,
    SimConfig::new(),
    refused_payouts
);

async fn refused_payouts(env: SendEnv) {
    let file = env.work.file(
        "refused.csv",
        "reference,amount,funding_source\nGOOD,10.00,fd000000-0000-4000-8000-000000000001\n\
         UNKNOWN,10.00,fd000000-0000-4000-8000-0000000009ff\n",
    );
    env.ingest_file(&file);
    let report = env
        .send(
            env.client(100, 4, Duration::from_secs(2)),
            env.send_config(4),
        )
        .await;
    assert_eq!((report.n_created, report.n_refused), (1, 1), "{report:?}");
    assert_eq!(
        env.query(
            "SELECT state, failure_code, failure_description, failure_path FROM payouts WHERE reference = 'UNKNOWN'"
        ),
        [[
            "rejected",
            "Invalid",
            "Receiver not found.",
            "/_links/destination/href"
        ]]
    );
    let history = env.query(
        "SELECT COUNT(*) FROM payout_history h JOIN payouts p ON p.id = h.payout_id WHERE p.reference = 'UNKNOWN'",
    );
    assert_eq!(history, [["2"]], "pending -> submitting -> rejected");
    assert_eq!(payrun::cli::send_status(&report), payrun::exit::ATTENTION);
}

impl SendEnv {
    /// `payrun send` against this simulator, as cron would start it.
    fn send_command(&self, rate: &str, concurrency: &str) -> std::process::Command {
        let mut command = self.work.command(&[
            "send",
            "--rate",
            rate,
            "--concurrency",
            concurrency,
            "--no-progress",
        ]);
        command
            .env("DWOLLA_API_URL", self.sim.base_url())
            .env("DWOLLA_KEY", self.sim.key())
            .env("DWOLLA_SECRET", self.sim.secret())
            .env(
                "PAYRUN_SOURCE_FUNDING_SOURCE",
                self.sim.source_funding_source(),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        crate::support::with_test_leases(&mut command);
        command
    }

    /// Payouts by state, read straight from the ledger.
    fn states(&self) -> HashMap<String, usize> {
        let mut states = HashMap::new();
        for payout in self.payouts() {
            *states.entry(payout.state).or_default() += 1;
        }
        states
    }
}

/// Issue 12's fault mix: 2 % of requests 429 without Retry-After, 5 % 500, 5 % dropped after
/// the commit, 30 ms latency, access tokens living 20 s.
fn ordinary_faults() -> SimConfig {
    SimConfig {
        throttle_rate: 0.02,
        retry_after: false,
        error_rate: 0.05,
        drop_rate: 0.05,
        latency: Duration::from_millis(30),
        token_ttl: Duration::from_secs(20),
        seed: 42,
        ..SimConfig::new()
    }
}

on_both_engines!(
    /// Runs `payrun send` as a child process against that fault mix, SIGKILLs it ten times at
    /// random moments, then lets one run go to the end: it exits 0 with every payout paid once.
    ten_sigkills_under_the_ordinary_fault_mix_then_one_run_pays_every_payout_once, ordinary_faults(), ten_sigkills);

async fn ten_sigkills(env: SendEnv) {
    let n_rows = 3000;
    env.ingest_rows("payouts.csv", n_rows);
    let mut next_delay = crate::support::random_delays(0x9E37_79B9_7F4A_7C15, 100, 1500);
    let mut n_kills = 0;
    while n_kills < 10 {
        let mut child = env.send_command("100", "8").spawn().unwrap();
        tokio::time::sleep(next_delay()).await;
        assert!(
            child.try_wait().unwrap().is_none(),
            "a run ended before its kill: {:?}",
            env.states()
        );
        child.kill().unwrap();
        child.wait().unwrap();
        n_kills += 1;
        env.assert_exactly_once();
    }
    let states = env.states();
    assert!(
        states.get("submitting").copied().unwrap_or(0) > 0,
        "the kills left payouts in doubt: {states:?}"
    );

    // The run to the end gets a budget that 12 % faults cannot spend by chance (6 tries in a
    // row fail for about 1 in 100 such runs of 3,000 payouts).
    let mut last = env.send_command("100", "8");
    last.args(["--attempts-per-run", "30", "--max-attempts", "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let output = tokio::task::spawn_blocking(move || last.output().unwrap())
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "the last run exits 0: {:?}\n{}\n{}\n{:?}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        env.states()
    );
    assert_eq!(
        env.states(),
        HashMap::from([("submitted".to_string(), 3000)])
    );
    assert_eq!(env.assert_exactly_once(), n_rows as usize);
    assert_eq!(env.sim.transfers().len(), n_rows as usize);
    assert_eq!(env.sim.stats().transfers_created, n_rows);
}

on_both_engines!(
    /// The case issue 12 saw: a run killed while payouts wait for a planned retry, then a
    /// second run at once, before those retries are due. The second run must wait for them and
    /// send them, not leave them `submitting` and exit 0.
    a_kill_after_a_retry_was_planned_leaves_nothing_in_doubt_after_the_next_run,
    SimConfig::new(),
    kill_after_a_planned_retry
);

async fn kill_after_a_planned_retry(env: SendEnv) {
    let n_rows = 60;
    env.ingest_rows("payouts.csv", n_rows);
    let mut child = env.send_command("20", "4").spawn().unwrap();
    wait_for(&env, |_| env.sim.stats().transfers_created > 0).await;
    env.sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::none()
    });
    // Killed once some payout has a retry planned a good while ahead.
    wait_for(&env, |_| {
        planned_retries(&env, Duration::from_millis(400)) > 0
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    env.sim.set_faults(Faults::none());
    let states = env.states();
    assert!(states["submitting"] > 0, "{states:?}");

    let output = env
        .send_command("20", "4")
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains("nothing left to send"), "{summary}");
    assert_eq!(env.states(), HashMap::from([("submitted".to_string(), 60)]));
    assert_eq!(env.assert_exactly_once(), n_rows as usize);
}

/// Payouts in doubt whose next attempt is at least `ahead` away.
fn planned_retries(env: &SendEnv, ahead: Duration) -> usize {
    // Both engines keep next_attempt_at as the same text, which sorts as time does.
    let threshold = payrun::ledger::timestamp(time::OffsetDateTime::now_utc() + ahead);
    env.query(&format!(
        "SELECT COUNT(*) FROM payouts WHERE state = 'submitting' AND next_attempt_at > '{threshold}'"
    ))[0][0]
        .parse()
        .unwrap()
}

/// Polls `done` every 20 ms for at most 30 s.
async fn wait_for(env: &SendEnv, done: impl Fn(&SendEnv) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(env) {
        assert!(Instant::now() < deadline, "timed out: {:?}", env.states());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

on_both_engines!(
    /// Tokens that live shorter than the longest throttle wait (a 3 s Retry-After against 2 s
    /// tokens): each request takes its token when it leaves, so none reaches Dwolla expired and
    /// no 401 reaches the run's outcome.
    tokens_shorter_than_the_throttles_waits_never_reach_dwolla_expired, short_tokens_long_waits(), short_tokens);

fn short_tokens_long_waits() -> SimConfig {
    SimConfig {
        token_ttl: Duration::from_secs(2),
        rate_limit: Some(40),
        rate_limit_penalty: Some(Duration::from_secs(3)),
        retry_after: true,
        ..SimConfig::new()
    }
}

async fn short_tokens(env: SendEnv) {
    env.ingest_rows("payouts.csv", 300);
    let client = env.client(80, 8, Duration::from_secs(5));
    let report = env.send(client.clone(), env.send_config(8)).await;

    let stats = env.sim.stats();
    assert!(stats.rate_limited > 0, "the limit was hit: {stats:?}");
    assert!(client.throttle_stats().paused_total >= Duration::from_secs(3));
    assert!(client.token_fetches() >= 3, "tokens were renewed");
    assert_eq!(stats.responses_by_status.get(&401), None, "{stats:?}");
    assert_eq!(report.unauthorized, None);
    assert_eq!(report.n_created, 300, "{report:?}");
    assert_eq!(report.left.total(), 0);
    assert_eq!(payrun::cli::send_status(&report), payrun::exit::OK);
    env.assert_exactly_once();
}

on_both_engines!(
    /// `--attempts-per-run` bounds a run's tries per payout: with Dwolla failing everything, each
    /// payout the run starts gets exactly that many POSTs, and the run exits 69 with them in doubt.
    attempts_per_run_bounds_the_tries_of_one_run, SimConfig::new(), attempts_per_run_bound);

async fn attempts_per_run_bound(env: SendEnv) {
    env.ingest_rows("payouts.csv", 20);
    let mut command = env.send_command("50", "4");
    command.args(["--attempts-per-run", "2"]);
    let child = command.spawn().unwrap();
    wait_for(&env, |_| env.sim.stats().transfers_created > 0).await;
    env.sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::none()
    });
    let status = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap().status)
        .await
        .unwrap();
    assert_eq!(status.code(), Some(69), "{status:?}");
    let in_doubt: Vec<i64> = env
        .payouts()
        .into_iter()
        .filter(|p| p.state == "submitting")
        .map(|p| p.attempts)
        .collect();
    assert!(!in_doubt.is_empty(), "{:?}", env.states());
    assert!(in_doubt.iter().all(|&n| n <= 2), "{in_doubt:?}");
    assert!(in_doubt.contains(&2), "{in_doubt:?}");
}
