//! `payrun send` against the simulator: exactly once under every fault class, token expiry,
//! the 24-hour idempotency-key rule, graceful shutdown, and SIGKILLs at random moments.

use std::time::{Duration, Instant};

use payrun::ledger::Ledger;
use payrun::sim::SimConfig;

use crate::support::SendEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_payout_becomes_one_transfer_on_the_happy_path() {
    let env = SendEnv::start(SimConfig::new()).await;
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
    assert_eq!(payrun::sender::exit_status(&report), payrun::exit::OK);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_errors_timeouts_conflicts_and_429s_still_pay_each_payout_exactly_once() {
    let config = SimConfig {
        drop_rate: 0.15,
        error_rate: 0.15,
        timeout_rate: 0.05,
        timeout_hold: Duration::from_millis(1500),
        rate_limit: Some(150),
        seed: 7,
        ..SimConfig::new()
    };
    let env = SendEnv::start(config).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_that_expires_mid_run_is_renewed() {
    let config = SimConfig {
        token_ttl: Duration::from_secs(1),
        ..SimConfig::new()
    };
    let env = SendEnv::start(config).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payout_past_the_key_lifetime_is_looked_up_never_resent() {
    let env = SendEnv::start(SimConfig::new()).await;
    let file = env.work.file(
        "two.csv",
        "reference,amount,funding_source\nA-1,10.00,fd000000-0000-4000-8000-000000000001\n\
         B-1,12.34,fd000000-0000-4000-8000-000000000002\n",
    );
    env.ingest_file(&file);
    // A day ago both requests were committed; A's POST reached Dwolla and its response was
    // lost, B's never arrived.
    let client = env.client(100, 4, Duration::from_secs(2));
    let mut ledger = Ledger::open_writer(&env.work.ledger()).unwrap();
    let due = ledger.pending_after(0, None, 10).unwrap();
    let bodies: Vec<(i64, Vec<u8>)> = due
        .iter()
        .map(|payout| {
            let request = payrun::dwolla::TransferRequest {
                source_url: env.sim.source_funding_source(),
                destination_url: client.funding_source_url(&payout.destination),
                amount: payrun::dwolla::Amount::usd_cents(payout.amount.get() as u64),
                correlation_id: payout.correlation_id.clone(),
                metadata: Default::default(),
            };
            (payout.id, request.to_body_bytes())
        })
        .collect();
    ledger
        .start_submissions(&bodies, "2020-01-01T00:00:00.000Z")
        .unwrap();
    drop(ledger);
    client
        .create_transfer(&due[0].idempotency_key, &bodies[0].1)
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
    assert_eq!(
        payrun::sender::exit_status(&report),
        payrun::exit::ATTENTION
    );
    env.assert_exactly_once();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_records_every_request_in_flight() {
    let config = SimConfig {
        latency: Duration::from_millis(50),
        ..SimConfig::new()
    };
    let env = SendEnv::start(config).await;
    env.ingest_rows("payouts.csv", 400);
    let ledger = Ledger::open_writer(&env.work.ledger()).unwrap();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let client = env.client(100, 8, Duration::from_secs(5));
    let run = tokio::spawn(payrun::sender::send(
        ledger,
        client,
        env.send_config(8),
        stopping,
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.send(true).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("stops promptly")
        .unwrap()
        .unwrap();
    assert!(report.interrupted);
    assert!(report.n_created > 0 && report.n_created < 400, "{report:?}");
    assert_eq!(payrun::sender::exit_status(&report), payrun::exit::OK);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_payouts_are_rejected_with_dwollas_reason() {
    let env = SendEnv::start(SimConfig::new()).await;
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
    let conn = rusqlite::Connection::open(env.work.ledger()).unwrap();
    let (state, code, description, path): (String, String, String, String) = conn
        .query_row(
            "SELECT state, failure_code, failure_description, failure_path FROM payouts WHERE reference = 'UNKNOWN'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap();
    assert_eq!(state, "rejected");
    assert_eq!(code, "Invalid");
    assert_eq!(description, "Receiver not found.");
    assert_eq!(path, "/_links/destination/href");
    let history: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM payout_history h JOIN payouts p ON p.id = h.payout_id WHERE p.reference = 'UNKNOWN'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(history, 2, "pending -> submitting -> rejected");
    assert_eq!(
        payrun::sender::exit_status(&report),
        payrun::exit::ATTENTION
    );
}

/// Runs `payrun send` as a child process against a faulty simulator, SIGKILLs it at random
/// moments, and restarts it until everything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_never_pays_twice_or_loses_a_payout() {
    let config = SimConfig {
        drop_rate: 0.05,
        error_rate: 0.05,
        latency: Duration::from_millis(5),
        jitter: Duration::from_millis(20),
        seed: 42,
        ..SimConfig::new()
    };
    let env = SendEnv::start(config).await;
    let n_rows = 600;
    env.ingest_rows("payouts.csv", n_rows);
    let mut rng_state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next_delay = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        Duration::from_millis(30 + rng_state % 400)
    };
    let started = Instant::now();
    let mut n_kills = 0;
    let mut finished = false;
    while started.elapsed() < Duration::from_secs(90) {
        let mut child = env
            .work
            .command(&[
                "send",
                "--rate",
                "300",
                "--concurrency",
                "24",
                "--no-progress",
            ])
            .env("DWOLLA_API_URL", env.sim.base_url())
            .env("DWOLLA_KEY", env.sim.key())
            .env("DWOLLA_SECRET", env.sim.secret())
            .env(
                "PAYRUN_SOURCE_FUNDING_SOURCE",
                env.sim.source_funding_source(),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        if n_kills < 12 {
            tokio::time::sleep(next_delay()).await;
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                child.wait().unwrap();
                n_kills += 1;
                env.assert_exactly_once();
                continue;
            }
        }
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        let payouts = env.payouts();
        if payouts.iter().all(|p| p.state == "submitted") {
            assert!(status.success(), "the last run exits 0");
            finished = true;
            break;
        }
    }
    assert!(finished, "not done after {n_kills} kills and 90 s");
    assert!(n_kills >= 6, "only {n_kills} kills landed");
    assert_eq!(env.assert_exactly_once(), n_rows as usize);
    assert_eq!(env.sim.stats().transfers_created, n_rows);
}
