//! `cargo bench --bench track`: what following transfers costs.
//!
//! 1. Requests per full polling sweep of 10,000 unsettled transfers in list mode, against the
//!    ideal of N/200 (one page of 200 per request). Target: ≤ 1.1 × N/200.
//! 2. Webhook-driven convergence: the time from the simulator settling every transfer until
//!    the ledger shows every payout processed, through `serve`'s spool and applier.
//!
//! `PAYRUN_BENCH_TRANSFERS` (default 10,000) and `PAYRUN_BENCH_WEBHOOK_TRANSFERS` (default
//! 2,000) change the sizes.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use payrun::dwolla::wire::CreateWebhookSubscription;
use payrun::dwolla::{Client, DwollaConfig};
use payrun::ledger::{Ledger, Spool, spool_path_for};
use payrun::secret::Secret;
use payrun::sender::{SendConfig, progress::Display};
use payrun::sim::{SimConfig, SimHandle};
use payrun::tracking::{self, ListMode, TrackConfig};
use payrun::webhooks::{ApplierConfig, ServeConfig, WEBHOOK_PATH};

const TARGET_RATIO: f64 = 1.1;

fn env_size(name: &str, default: u64) -> u64 {
    common::size(name, default, (default / 50).max(100))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        list_sweep(env_size("PAYRUN_BENCH_TRANSFERS", 10_000)).await;
        webhook_convergence(env_size("PAYRUN_BENCH_WEBHOOK_TRANSFERS", 2_000)).await;
    });
    println!("peak RSS: {:.1} MiB", common::peak_rss_mib());
}

fn client(sim: &SimHandle) -> Client {
    Client::new(DwollaConfig {
        base_url: sim.base_url().to_string(),
        key: sim.key().to_string(),
        secret: Secret::new(sim.secret()),
        rate_per_second: 20_000,
        max_in_flight: 64,
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
    })
    .unwrap()
}

/// A fresh ledger with `n` payouts sent to `sim`.
async fn sent_ledger(dir: &Path, sim: &SimHandle, client: &Client, n: u64) -> std::path::PathBuf {
    let ledger_path = dir.join("payrun.db");
    let mut ledger = Ledger::open_writer(&ledger_path).unwrap();
    payrun::fixtures::ingest_generated(&mut ledger, &dir.join("payouts.csv"), n).unwrap();
    let mut config = SendConfig::new(sim.source_funding_source(), 64);
    config.progress = Display::Off;
    let (_stop, stopping) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let report = payrun::sender::send(ledger, client.clone(), config, stopping)
        .await
        .unwrap();
    assert_eq!(report.n_created, n);
    eprintln!(
        "(sent {n} transfers in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    ledger_path
}

async fn list_sweep(n: u64) {
    let sim = payrun::sim::spawn(SimConfig {
        settle: Duration::from_secs(3600),
        ..SimConfig::new()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = client(&sim);
    let ledger_path = sent_ledger(dir.path(), &sim, &client, n).await;
    let config = TrackConfig {
        list_mode: ListMode::Auto,
        ..TrackConfig::standard()
    };
    let account_id = tracking::account_id(&client, &config).await.unwrap();
    let mut ledger = Ledger::open_writer(&ledger_path).unwrap();
    let before = sim.stats().total_requests;
    let started = Instant::now();
    let sweep = tracking::sweep(&mut ledger, &client, &account_id, &config)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let requests = sim.stats().total_requests - before;
    let ideal = n as f64 / 200.0;
    let ratio = requests as f64 / ideal;
    assert_eq!(sweep.tally.n_observed, n, "every transfer seen");
    println!(
        "list sweep: {n} transfers, {requests} requests ({} pages, {} GETs), {:.4} requests per transfer, {:.2}x the ideal N/200 = {ideal:.0} (target <= {TARGET_RATIO}), {:.2} s",
        sweep.n_pages,
        sweep.n_gets,
        requests as f64 / n as f64,
        ratio,
        elapsed.as_secs_f64()
    );
    if ratio > TARGET_RATIO {
        println!("  ABOVE TARGET");
    }
}

async fn webhook_convergence(n: u64) {
    let sim = payrun::sim::spawn(SimConfig {
        settle: Duration::from_secs(600),
        ..SimConfig::new()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = client(&sim);
    let ledger_path = dir.path().join("payrun.db");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{WEBHOOK_PATH}", listener.local_addr().unwrap());
    let serve_config = ServeConfig {
        ledger: payrun::ledger::LedgerPlace::File(ledger_path.clone()),
        env_secret: Some(Secret::new("bench")),
        limits: payrun::listener::ConnectionLimits::standard(
            payrun::webhooks::DEFAULT_MAX_BODY_BYTES,
        ),
        applier: Some(ApplierConfig {
            client: client.clone(),
            track: TrackConfig::standard(),
            every: Duration::from_millis(200),
        }),
        extra_routes: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(payrun::webhooks::serve(
        listener,
        serve_config,
        async move {
            let _ = stopped.await;
        },
    ));
    client
        .create_webhook_subscription(
            &CreateWebhookSubscription {
                url,
                secret: Secret::new("bench"),
            },
            None,
        )
        .await
        .unwrap();
    sent_ledger(dir.path(), &sim, &client, n).await;
    // Let the created events be applied (stale: no GETs), then settle everything.
    wait_for_spool(&ledger_path, n, Duration::from_secs(120)).await;
    let requests_before = sim.stats().total_requests;
    let started = Instant::now();
    sim.advance_clock(Duration::from_secs(1200)); // pending, then processed
    let reader = loop {
        match Ledger::open_reader(&ledger_path) {
            Ok(reader) => break reader,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    loop {
        let settled: u64 = reader
            .count_by_state(None)
            .unwrap()
            .into_iter()
            .filter(|(state, _)| state.as_str() == "processed")
            .map(|(_, n)| n)
            .sum();
        if settled == n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not converged: {settled}/{n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let stats = sim.stats();
    let fetches = stats.total_requests - requests_before;
    println!(
        "webhook convergence: {n} transfers settled in the ledger {:.2} s after Dwolla settled them ({:.0} payouts/s), {} webhook deliveries, {fetches} transfer GETs ({:.2} per transfer)",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        stats.webhook_deliveries,
        fetches as f64 / n as f64,
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// Waits until `n` events were applied and none is pending.
async fn wait_for_spool(ledger_path: &Path, n: u64, timeout: Duration) {
    let started = Instant::now();
    let spool = Spool::open(&spool_path_for(ledger_path)).unwrap();
    loop {
        let counts = spool.counts().unwrap();
        if counts.n_done >= n && counts.n_pending == 0 {
            return;
        }
        assert!(started.elapsed() < timeout, "spool stuck: {counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
