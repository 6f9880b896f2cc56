//! Polling against the simulator: convergence to processed, failed and returned in list and
//! GET mode, the cost of a list sweep, and `payrun track`'s exit statuses.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use payrun::dwolla::Client;
use payrun::ledger::postgres::PgLedger;
use payrun::ledger::{Ledger, TrackLedger, TrackingCounts};
use payrun::sim::SimConfig;
use payrun::tracking::{self, ListMode, SweepMode, SweepReport, TrackConfig};

use crate::on_both_engines;
use crate::support::SendEnv;

/// (payee suffix, payout state, Dwolla status, failure code, advice)
pub type Outcome = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

/// The simulator's seeded payees by funding-source suffix, and how each transfer ends:
/// (payout state, Dwolla status, failure code, advice).
pub const OUTCOMES: [Outcome; 6] = [
    ("01", "processed", "processed", None, None),
    ("02", "processed", "processed", None, None),
    (
        "09",
        "failed",
        "failed",
        Some("R01"),
        Some("retry_may_succeed"),
    ),
    (
        "10",
        "failed",
        "failed",
        Some("R03"),
        Some("fix_bank_details"),
    ),
    (
        "11",
        "returned",
        "returned",
        Some("R01"),
        Some("retry_may_succeed"),
    ),
    (
        "13",
        "failed",
        "failed",
        Some("R02"),
        Some("fix_bank_details"),
    ),
];

/// A payout file paying each of [`OUTCOMES`]' payees once; returns its path.
pub fn mixed_file(env: &SendEnv) -> PathBuf {
    let mut text = String::from(
        "reference,amount,funding_source,currency,name,email,memo,metadata.department\n",
    );
    for (suffix, ..) in OUTCOMES {
        text.push_str(&format!(
            "REF-{suffix},10.00,fd000000-0000-4000-8000-0000000000{suffix},USD,Payee {suffix},p{suffix}@example.com,Invoice,ops\n"
        ));
    }
    env.work.file("mixed.csv", text)
}

/// One payout's tracking columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedRow {
    pub state: String,
    pub transfer_status: Option<String>,
    pub failure_code: Option<String>,
    pub failure_advice: Option<String>,
    pub failure_explanation: Option<String>,
}

/// Tracking columns by destination suffix (the last two characters of the funding source).
pub fn tracked_rows(env: &SendEnv) -> HashMap<String, TrackedRow> {
    let present = |text: &String| Some(text.clone()).filter(|text| !text.is_empty());
    env.query(
        "SELECT destination, state, transfer_status, failure_code, failure_advice, failure_explanation
         FROM payouts",
    )
    .into_iter()
    .map(|row| {
        let destination = &row[0];
        (
            destination[destination.len() - 2..].to_string(),
            TrackedRow {
                state: row[1].clone(),
                transfer_status: present(&row[2]),
                failure_code: present(&row[3]),
                failure_advice: present(&row[4]),
                failure_explanation: present(&row[5]),
            },
        )
    })
    .collect()
}

/// Whether every payout reached the end [`OUTCOMES`] gives it.
pub fn converged(env: &SendEnv) -> bool {
    let rows = tracked_rows(env);
    OUTCOMES
        .iter()
        .all(|(suffix, state, ..)| rows.get(*suffix).is_some_and(|row| row.state == *state))
}

/// Every payout ended as [`OUTCOMES`] says, with Dwolla's reason and payrun's advice.
pub fn assert_outcomes(env: &SendEnv) {
    let rows = tracked_rows(env);
    for (suffix, state, status, code, advice) in OUTCOMES {
        let row = &rows[suffix];
        assert_eq!(row.state, state, "payee {suffix}: {row:?}");
        assert_eq!(
            row.transfer_status.as_deref(),
            Some(status),
            "payee {suffix}"
        );
        assert_eq!(row.failure_code.as_deref(), code, "payee {suffix}");
        assert_eq!(row.failure_advice.as_deref(), advice, "payee {suffix}");
        assert_eq!(
            row.failure_explanation.is_some(),
            code.is_some(),
            "payee {suffix}"
        );
    }
}

/// (old state, new state, source) of every history row tracking wrote, by payout.
pub fn tracking_history(env: &SendEnv) -> HashMap<i64, Vec<(String, String, String)>> {
    let mut history: HashMap<i64, Vec<_>> = HashMap::new();
    let rows = env.query(
        "SELECT payout_id, old_state, new_state, source FROM payout_history
         WHERE source NOT IN ('send', 'lookup') ORDER BY id",
    );
    for row in rows {
        let change = (row[1].clone(), row[2].clone(), row[3].clone());
        history
            .entry(row[0].parse().unwrap())
            .or_default()
            .push(change);
    }
    history
}

/// Each payout's tracking history only moves forward, and every row names `source_prefix`.
pub fn assert_history_forward(env: &SendEnv, source_prefix: &str) {
    let rank = |state: &str| match state {
        "submitted" => 0,
        "processed" | "failed" => 1,
        "returned" => 2,
        other => panic!("tracking moved a payout to {other}"),
    };
    let history = tracking_history(env);
    assert!(!history.is_empty(), "tracking wrote no history");
    for (id, changes) in history {
        for (old, new, source) in &changes {
            assert!(rank(new) > rank(old), "payout {id} moved back: {changes:?}");
            assert!(
                source.starts_with(source_prefix),
                "payout {id}: source {source}"
            );
        }
    }
}

/// Test-sized tracking: every unsettled or processed payout due again at once.
pub fn fast_config(mode: ListMode) -> TrackConfig {
    TrackConfig {
        poll_unsettled_every: Duration::ZERO,
        poll_processed_every: Duration::ZERO,
        list_mode: mode,
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ..TrackConfig::standard()
    }
}

/// A simulator whose clock moves only when the test advances it.
pub fn settled_by_hand() -> SimConfig {
    SimConfig {
        settle: Duration::from_secs(60),
        ..SimConfig::new()
    }
}

/// `env` (on a [`settled_by_hand`] simulator) with the mixed file sent.
pub async fn sent_mixed_file(env: SendEnv) -> (SendEnv, Client) {
    env.ingest_file(&mixed_file(&env));
    let client = env.client(1000, 8, Duration::from_secs(5));
    let report = env.send(client.clone(), env.send_config(8)).await;
    assert_eq!(report.n_created, OUTCOMES.len() as u64);
    (env, client)
}

/// One sweep of the ledger, whichever engine keeps it.
pub async fn sweep(
    env: &SendEnv,
    client: &Client,
    account_id: &str,
    config: &TrackConfig,
) -> SweepReport {
    let swept = match &env.pg {
        Some(pg) => {
            let mut ledger = PgLedger::open(&pg.url).unwrap();
            tracking::sweep(&mut ledger, client, account_id, config).await
        }
        None => {
            let mut ledger = Ledger::open_writer(&env.work.ledger()).unwrap();
            tracking::sweep(&mut ledger, client, account_id, config).await
        }
    };
    swept.expect("the sweep runs")
}

pub fn tracking_counts(env: &SendEnv) -> TrackingCounts {
    match &env.pg {
        Some(pg) => PgLedger::open(&pg.url).unwrap().tracking_counts(),
        None => Ledger::open_reader(&env.work.ledger())
            .unwrap()
            .tracking_counts(),
    }
    .unwrap()
}

async fn polls_converge(env: SendEnv, mode: ListMode) {
    let (env, client) = sent_mixed_file(env).await;
    let config = fast_config(mode);
    let account_id = tracking::account_id(&client, &config).await.unwrap();
    let mut sweeps = Vec::new();
    // created -> pending -> processed/failed -> returned: one settle step each.
    for _ in 0..4 {
        env.sim.advance_clock(Duration::from_secs(60));
        sweeps.push(sweep(&env, &client, &account_id, &config).await);
    }
    assert_outcomes(&env);
    assert_history_forward(&env, "poll");
    let expected_mode = match mode {
        ListMode::List => SweepMode::List,
        _ => SweepMode::Get,
    };
    assert_eq!(sweeps[0].mode, Some(expected_mode));
    // The returns watch keeps polling the processed ones; failed and returned are done.
    let counts = tracking_counts(&env);
    assert_eq!(counts.n_unsettled, 0);
    assert_eq!(counts.n_watched, 2);
}

on_both_engines!(
    polling_the_transfer_list_converges_to_processed_failed_and_returned,
    settled_by_hand(),
    list_polls_converge
);

async fn list_polls_converge(env: SendEnv) {
    polls_converge(env, ListMode::List).await;
}

on_both_engines!(
    polling_each_transfer_converges_to_processed_failed_and_returned,
    settled_by_hand(),
    get_polls_converge
);

async fn get_polls_converge(env: SendEnv) {
    polls_converge(env, ListMode::Get).await;
}

on_both_engines!(
    a_list_sweep_costs_one_request_per_200_transfers,
    SimConfig {
        settle: Duration::from_secs(3600),
        ..SimConfig::new()
    },
    list_sweep_cost
);

async fn list_sweep_cost(env: SendEnv) {
    let n_rows = 450;
    env.ingest_rows("payouts.csv", n_rows);
    let client = env.client(5000, 32, Duration::from_secs(5));
    env.send(client.clone(), env.send_config(32)).await;
    let config = fast_config(ListMode::Auto);
    let account_id = tracking::account_id(&client, &config).await.unwrap();
    let before = env.sim.stats().total_requests;
    let first = sweep(&env, &client, &account_id, &config).await;
    let requests = env.sim.stats().total_requests - before;
    assert_eq!(first.mode, Some(SweepMode::List));
    assert_eq!(first.n_due, n_rows);
    assert_eq!((first.n_pages, first.n_gets), (3, 0));
    assert_eq!(requests, 3, "450 transfers in pages of 200");
    assert_eq!(first.tally.n_observed, n_rows);
    // Nothing is due again until its poll time: a second sweep asks nothing.
    let config = TrackConfig {
        poll_unsettled_every: Duration::from_secs(600),
        ..config
    };
    env.sim.advance_clock(Duration::from_secs(3600));
    sweep(&env, &client, &account_id, &config).await;
    let again = sweep(&env, &client, &account_id, &config).await;
    assert_eq!((again.n_due, again.n_requests), (0, 0));
}

on_both_engines!(
    track_exits_3_on_failures_and_a_later_run_catches_the_late_return,
    // Real time: one lifecycle step every 100 ms.
    SimConfig {
        settle: Duration::from_millis(100),
        ..SimConfig::new()
    },
    track_exits_3_then_catches_the_return
);

async fn track_exits_3_then_catches_the_return(env: SendEnv) {
    env.ingest_file(&mixed_file(&env));
    let client = env.client(1000, 8, Duration::from_secs(5));
    env.send(client, env.send_config(8)).await;
    let track = |args: &[&str]| {
        let mut all = vec![
            "track",
            "--poll-every",
            "20ms",
            "--processed-poll-every",
            "0s",
        ];
        all.extend_from_slice(args);
        env.work
            .command(&all)
            .env("DWOLLA_API_URL", env.sim.base_url())
            .env("DWOLLA_KEY", env.sim.key())
            .env("DWOLLA_SECRET", env.sim.secret())
            .output()
            .unwrap()
    };
    let first = track(&["--until-settled", "--timeout", "20s"]);
    let stdout = String::from_utf8_lossy(&first.stdout);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("0 still unsettled"), "{stdout}");
    assert!(
        stderr.contains("R03") && stderr.contains("Get corrected bank details"),
        "failures are explained: {stderr}"
    );
    // The log names each failed payout the way finance does, with Dwolla's code.
    let logged = stderr
        .lines()
        .find(|l| l.contains("WARN payout failed") && l.contains("code=\"R03\""))
        .unwrap_or_else(|| panic!("no log line for the R03 failure: {stderr}"));
    assert!(
        logged.contains("batch=1")
            && logged.contains("line=5")
            && logged.contains("reference=REF-10"),
        "{logged}"
    );
    // The R01-late transfer is returned one step after it was processed; unless the first run
    // started late enough to see that already, the returns watch of a later run catches it.
    let seen_returned = tracked_rows(&env)["11"].state == "returned";
    std::thread::sleep(Duration::from_millis(300));
    let second = track(&[]);
    let stdout = String::from_utf8_lossy(&second.stdout);
    if !seen_returned {
        assert_eq!(second.status.code(), Some(3), "{stdout}");
        assert!(stdout.contains("1 returned"), "{stdout}");
    }
    assert_outcomes(&env);
    let status = env.work.status_json();
    assert_eq!(status["payouts"]["returned"]["count"], 1);
    assert_eq!(status["payouts"]["failed"]["count"], 3);
}

on_both_engines!(
    track_exits_69_when_dwolla_cannot_be_reached,
    SimConfig::new(),
    track_exits_69
);

async fn track_exits_69(env: SendEnv) {
    env.ingest_rows("payouts.csv", 2);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let started = Instant::now();
    let output = env
        .work
        .command(&["track"])
        .env("DWOLLA_API_URL", &url)
        .env("DWOLLA_KEY", "k")
        .env("DWOLLA_SECRET", "s")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(69), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));
    // The request that failed is the token's, the first one a fresh process makes.
    assert!(
        stderr.contains("payrun: error: cannot reach Dwolla (POST /token): "),
        "{stderr}"
    );
    assert!(!stderr.contains("GET /"), "{stderr}");
}
