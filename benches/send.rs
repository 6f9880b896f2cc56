//! `cargo bench --bench send`: N payouts through the real sender against the in-process
//! simulator, in the two configurations of issue 4:
//!   (a) R = 200/s, 100 ms latency, no faults            target elapsed / ideal ≤ 1.05
//!   (b) R = 100/s, 50 ms latency, 2 % 500s, 2 % dropped
//!       responses, 1 % timeouts                         target elapsed / ideal ≤ 1.15
//! and the fault mix of issue 12:
//!   (c) R = 100/s, N = 5,000, 30 ms latency, 2 % 429s
//!       without Retry-After, 5 % 500s, 5 % dropped
//!       responses, access tokens living 20 s            target elapsed / ideal ≤ 1.3
//! with ideal = N / R + latency, zero duplicates, and never more than R requests in any
//! one-second window at the simulator. It also measures sending one at a time (what a loop
//! over the CSV with Dwolla's SDK does) on a sample, for the speed-up.

mod common;

use std::time::{Duration, Instant};

use payrun::dwolla::{Client, DwollaConfig, ThrottleStats};
use payrun::ledger::Ledger;
use payrun::secret::Secret;
use payrun::sender::{SendConfig, SendReport, progress::Display};
use payrun::sim::SimConfig;

struct Scenario {
    name: &'static str,
    payouts: u64,
    rate: u32,
    latency: Duration,
    error_rate: f64,
    drop_rate: f64,
    timeout_rate: f64,
    /// Share of requests answered 429 without Retry-After, whatever the rate.
    throttle_rate: f64,
    token_ttl: Duration,
    target: f64,
}

struct Outcome {
    elapsed: Duration,
    report: SendReport,
    max_per_second: u64,
    duplicates: usize,
    transfers: usize,
    throttle: ThrottleStats,
    token_fetches: u64,
}

fn main() {
    let n: u64 = common::size("PAYRUN_BENCH_PAYOUTS", 10_000, 300);
    let n_faulty: u64 = common::size("PAYRUN_BENCH_PAYOUTS_C", 5_000, 300);
    let hour = Duration::from_secs(3600);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let scenarios = [
        Scenario {
            name: "(a) R=200/s, 100 ms latency",
            payouts: n,
            rate: 200,
            latency: Duration::from_millis(100),
            error_rate: 0.0,
            drop_rate: 0.0,
            timeout_rate: 0.0,
            throttle_rate: 0.0,
            token_ttl: hour,
            target: 1.05,
        },
        Scenario {
            name: "(b) R=100/s, 50 ms latency, 2% 500s, 2% drops, 1% timeouts",
            payouts: n,
            rate: 100,
            latency: Duration::from_millis(50),
            error_rate: 0.02,
            drop_rate: 0.02,
            timeout_rate: 0.01,
            throttle_rate: 0.0,
            token_ttl: hour,
            target: 1.15,
        },
        Scenario {
            name: "(c) R=100/s, 30 ms latency, 2% 429s without Retry-After, 5% 500s, 5% drops, 20 s tokens",
            payouts: n_faulty,
            rate: 100,
            latency: Duration::from_millis(30),
            error_rate: 0.05,
            drop_rate: 0.05,
            timeout_rate: 0.0,
            throttle_rate: 0.02,
            token_ttl: Duration::from_secs(20),
            target: 1.3,
        },
    ];
    let mut all_met = true;
    for scenario in &scenarios {
        let n = scenario.payouts;
        common::reset_peak_rss();
        let outcome = runtime.block_on(run(scenario, n, None));
        let ideal = n as f64 / scenario.rate as f64 + scenario.latency.as_secs_f64();
        let ratio = outcome.elapsed.as_secs_f64() / ideal;
        let met = ratio <= scenario.target
            && outcome.duplicates == 0
            && outcome.max_per_second <= u64::from(scenario.rate)
            && outcome.transfers == n as usize
            && outcome.report.left.total() == 0;
        all_met &= met;
        println!("send {}:", scenario.name);
        println!(
            "  {n} payouts in {:.2} s, ideal {ideal:.2} s, elapsed / ideal = {ratio:.3} (target ≤ {:.2})",
            outcome.elapsed.as_secs_f64(),
            scenario.target
        );
        println!(
            "  most requests in any 1 s window: {} (limit {}); duplicates: {}; transfers created: {}; needs review: {}",
            outcome.max_per_second,
            scenario.rate,
            outcome.duplicates,
            outcome.transfers,
            outcome.report.n_needs_review
        );
        println!(
            "  429s seen: {}; rate cuts: {}; time paused: {:.2} s; token fetches: {}; left unsent: {}",
            outcome.throttle.rate_limited,
            outcome.throttle.rate_cuts,
            outcome.throttle.paused_total.as_secs_f64(),
            outcome.token_fetches,
            outcome.report.left.total()
        );
        println!(
            "  peak RSS {:.1} MiB; {}",
            common::peak_rss_mib(),
            if met {
                "meets the targets"
            } else {
                "MISSES A TARGET"
            }
        );

        // Sequential: one request at a time, as an SDK loop sends, on a sample.
        let sample = 100.min(n / 3).max(1);
        let sequential = runtime.block_on(run(scenario, sample, Some(1)));
        let per_payout = sequential.elapsed.as_secs_f64() / sample as f64;
        let sequential_total = per_payout * n as f64;
        println!(
            "  sequentially: {:.1} ms per payout ({sample} sampled) → {:.0} s for {n}; payrun is {:.1}x faster",
            per_payout * 1000.0,
            sequential_total,
            sequential_total / outcome.elapsed.as_secs_f64()
        );
    }
    println!(
        "send: {}",
        if all_met {
            "all targets met"
        } else {
            "SOME TARGETS MISSED"
        }
    );
}

async fn run(scenario: &Scenario, n: u64, concurrency_override: Option<usize>) -> Outcome {
    let sim = payrun::sim::spawn(SimConfig {
        latency: scenario.latency,
        error_rate: scenario.error_rate,
        drop_rate: scenario.drop_rate,
        timeout_rate: scenario.timeout_rate,
        timeout_hold: Duration::from_secs(5),
        throttle_rate: scenario.throttle_rate,
        retry_after: false,
        token_ttl: scenario.token_ttl,
        seed: 1,
        ..SimConfig::new()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ledger_path = dir.path().join("payrun.db");
    let mut ledger = Ledger::open_writer(&ledger_path).unwrap();
    payrun::fixtures::ingest_generated(&mut ledger, &dir.path().join("payouts.csv"), n).unwrap();
    drop(ledger);
    // Little's law: rate x latency requests in flight keep the rate busy; the rest is headroom
    // for latency jitter and for requests that time out.
    let concurrency = concurrency_override.unwrap_or_else(|| {
        (scenario.rate as f64 * scenario.latency.as_secs_f64() * 1.5) as usize + 16
    });
    let client = Client::new(DwollaConfig {
        base_url: sim.base_url().to_string(),
        key: sim.key().to_string(),
        secret: Secret::new(sim.secret()),
        rate_per_second: scenario.rate,
        max_in_flight: concurrency,
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
    })
    .unwrap();
    let mut config = SendConfig::new(sim.source_funding_source(), concurrency);
    config.progress = Display::Off;
    config.backoff_min = Duration::from_millis(100);
    config.backoff_max = Duration::from_secs(2);
    config.attempts_per_run = 20;
    config.max_attempts = 40;
    let ledger = Ledger::open_writer(&ledger_path).unwrap();
    let (_stop, stopping) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let report = payrun::sender::send(ledger, client.clone(), config, stopping)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let transfers = sim.transfers();
    let mut correlation_ids: Vec<_> = transfers
        .iter()
        .filter_map(|t| t.correlation_id.clone())
        .collect();
    correlation_ids.sort();
    let unique = {
        let mut ids = correlation_ids.clone();
        ids.dedup();
        ids.len()
    };
    let stats = sim.stats();
    sim.shutdown().await;
    Outcome {
        elapsed,
        report,
        max_per_second: stats.max_requests_per_second,
        duplicates: correlation_ids.len() - unique,
        transfers: unique,
        throttle: client.throttle_stats(),
        token_fetches: client.token_fetches(),
    }
}
