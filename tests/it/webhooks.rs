//! `payrun serve` against the simulator's signed webhooks: convergence driven by events
//! (duplicated and out of order), signature and size checks, unknown topics, paused
//! subscriptions with polling as the backstop, and SIGKILL of the real binary.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use payrun::dwolla::Client;
use payrun::dwolla::wire::CreateWebhookSubscription;
use payrun::ledger::postgres::PgLedger;
use payrun::ledger::{Ledger, LedgerPlace};
use payrun::secret::Secret;
use payrun::signature::{SIGNATURE_HEADER, sign};
use payrun::sim::SimConfig;
use payrun::tracking::{self, ListMode};
use payrun::webhooks::{ApplierConfig, ServeConfig, WEBHOOK_PATH};
use serde_json::json;

use crate::on_both_engines;
use crate::support::{SendEnv, Workdir};
use crate::track::{
    OUTCOMES, assert_history_forward, assert_outcomes, converged, fast_config, mixed_file,
    sent_mixed_file, settled_by_hand, sweep,
};

/// `serve` running in this process on 127.0.0.1.
struct Receiver {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Receiver {
    async fn start(
        ledger: LedgerPlace,
        env_secret: Option<&str>,
        client: Option<Client>,
    ) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = ServeConfig {
            ledger,
            env_secret: env_secret.map(Secret::new),
            limits: payrun::listener::ConnectionLimits::standard(4096),
            applier: client.map(|client| ApplierConfig {
                client,
                track: fast_config(ListMode::Auto),
                every: Duration::from_millis(50),
            }),
            extra_routes: None,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(payrun::webhooks::serve(listener, config, async move {
            let _ = stopped.await;
        }));
        Receiver {
            addr,
            stop: Some(stop),
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}{WEBHOOK_PATH}", self.addr)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

/// Subscribes `url` at the simulator and stores the secret where serve finds it.
async fn subscribe(client: &Client, ledger: &LedgerPlace, url: &str, secret: &str) -> String {
    let created = client
        .create_webhook_subscription(
            &CreateWebhookSubscription {
                url: url.to_string(),
                secret: Secret::new(secret),
            },
            None,
        )
        .await
        .unwrap();
    let id = created.id().to_string();
    let mut spool = ledger.open_spool().unwrap();
    spool
        .save_subscription(&id, url, &Secret::new(secret), "2026-01-01T00:00:00.000Z")
        .unwrap();
    id
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "not {what} after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn event_body(id: &str, topic: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id,
        "resourceId": "00000000-0000-4000-8000-000000000001",
        "topic": topic,
        "timestamp": "2026-01-01T00:00:00.000Z",
        "created": "2026-01-01T00:00:00.000Z",
        "_links": {"resource": {"href": "http://127.0.0.1:9/transfers/00000000-0000-4000-8000-000000000001"}},
    }))
    .unwrap()
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    body: &[u8],
    signature: Option<&str>,
) -> reqwest::StatusCode {
    let mut request = http
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Dwolla-Topic", "transfer:created")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    request.send().await.unwrap().status()
}

on_both_engines!(
    duplicated_and_reordered_webhooks_drive_payouts_to_their_end,
    SimConfig {
        settle: Duration::from_secs(60),
        webhook_duplicate_rate: 0.5,
        webhook_reorder_rate: 0.5,
        webhook_reorder_delay: Duration::from_secs(90),
        seed: 7,
        ..SimConfig::new()
    },
    webhooks_drive_payouts
);

async fn webhooks_drive_payouts(env: SendEnv) {
    env.ingest_file(&mixed_file(&env));
    let client = env.client(1000, 8, Duration::from_secs(5));
    let place = env.work.place();
    let receiver = Receiver::start(place.clone(), None, Some(client.clone())).await;
    subscribe(&client, &place, &receiver.url(), "s3cret").await;
    // On a ledger file, send holds the writer lock: events that arrive meanwhile wait in the
    // spool. On PostgreSQL they are applied beside the sender.
    env.send(client.clone(), env.send_config(8)).await;
    for _ in 0..6 {
        env.sim.advance_clock(Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until("converged by webhooks", Duration::from_secs(15), || {
        converged(&env)
    })
    .await;
    let stats = env.sim.stats();
    receiver.stop().await;
    assert_outcomes(&env);
    assert_history_forward(&env, "webhook:");
    assert!(
        stats.webhook_deliveries > stats.events,
        "duplicates were delivered: {stats:?}"
    );
    let counts = place.open_spool().unwrap().counts().unwrap();
    assert_eq!(counts.n_pending, 0);
    // created, pending and processed or failed for each transfer, and one return.
    assert_eq!(counts.n_done, 3 * OUTCOMES.len() as u64 + 1);
}

on_both_engines!(async cli:
    forged_absent_and_stale_signatures_get_401_and_big_bodies_413,
    checks_signatures
);

async fn checks_signatures(work: Workdir) {
    let ledger = work.place();
    let mut spool = ledger.open_spool().unwrap();
    spool
        .save_subscription(
            "sub-a",
            "http://x/webhooks/dwolla",
            &Secret::new("secret-a"),
            "t",
        )
        .unwrap();
    let receiver = Receiver::start(ledger.clone(), Some("env-secret"), None).await;
    let http = reqwest::Client::new();
    let url = receiver.url();

    let body = event_body("ev-1", "transfer:created");
    let good = sign(b"secret-a", &body);
    assert_eq!(post(&http, &url, &body, Some(&good)).await, 200);
    // A duplicate is answered 2xx and stored once.
    assert_eq!(post(&http, &url, &body, Some(&good)).await, 200);
    let from_env = event_body("ev-2", "transfer:pending");
    let env_signature = sign(b"env-secret", &from_env);
    assert_eq!(
        post(&http, &url, &from_env, Some(&env_signature)).await,
        200
    );

    let forged = event_body("ev-3", "transfer:processed");
    assert_eq!(post(&http, &url, &forged, None).await, 401, "absent");
    let wrong = sign(b"not-the-secret", &forged);
    assert_eq!(
        post(&http, &url, &forged, Some(&wrong)).await,
        401,
        "forged"
    );
    assert_eq!(
        post(&http, &url, &forged, Some("zz")).await,
        401,
        "malformed"
    );
    // A signature for other bytes does not cover these.
    assert_eq!(
        post(&http, &url, &forged, Some(&good)).await,
        401,
        "replayed signature"
    );

    // The subscription is deleted: its secret stops working once serve rereads them.
    spool.remove_subscription("sub-a").unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let stale = event_body("ev-4", "transfer:processed");
    let stale_signature = sign(b"secret-a", &stale);
    assert_eq!(
        post(&http, &url, &stale, Some(&stale_signature)).await,
        401,
        "stale"
    );

    let big = vec![b' '; 5000];
    let big_signature = sign(b"env-secret", &big);
    assert_eq!(post(&http, &url, &big, Some(&big_signature)).await, 413);

    let health: serde_json::Value = http
        .get(format!("http://{}/healthz", receiver.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["stored"], 2);
    assert_eq!(health["duplicates"], 1);
    assert_eq!(health["rejected"], 5);
    receiver.stop().await;
    assert_eq!(spool.event_ids().unwrap(), ["ev-1", "ev-2"]);
}

on_both_engines!(
    unknown_topics_and_foreign_transfers_are_stored_and_ignored,
    settled_by_hand(),
    unknown_topics_ignored
);

async fn unknown_topics_ignored(env: SendEnv) {
    let (env, client) = sent_mixed_file(env).await;
    let place = env.work.place();
    let receiver = Receiver::start(place.clone(), Some("k"), None).await;
    let http = reqwest::Client::new();
    let before = crate::track::tracked_rows(&env);
    let events = [
        ("ev-topic", event_body("ev-topic", "external_party:created")),
        ("ev-odd", event_body("ev-odd", "transfer:teleported")),
        (
            "ev-foreign",
            serde_json::to_vec(&json!({
                "id": "ev-foreign", "topic": "transfer:processed",
                "correlationId": "pr-0123456789ab-1",
                "_links": {"resource": {"href": format!("{}/transfers/x", env.sim.base_url())}},
            }))
            .unwrap(),
        ),
    ];
    for (_, body) in &events {
        assert_eq!(
            post(&http, &receiver.url(), body, Some(&sign(b"k", body))).await,
            200
        );
    }
    receiver.stop().await;
    let mut spool = place.open_spool().unwrap();
    let requests = env.sim.stats().total_requests;
    let config = fast_config(ListMode::Auto);
    let report = match &env.pg {
        Some(pg) => {
            let mut ledger = PgLedger::open(&pg.url).unwrap();
            tracking::apply_spooled_events(&mut ledger, spool.as_mut(), &client, &config).await
        }
        None => {
            let mut ledger = Ledger::open_writer(&env.work.ledger()).unwrap();
            tracking::apply_spooled_events(&mut ledger, spool.as_mut(), &client, &config).await
        }
    }
    .unwrap();
    assert_eq!(
        (report.n_events, report.n_ignored, report.n_fetches),
        (3, 3, 0)
    );
    assert_eq!(env.sim.stats().total_requests, requests, "nothing fetched");
    assert_eq!(
        spool.outcome("ev-topic").unwrap().as_deref(),
        Some("ignored_topic")
    );
    assert_eq!(
        spool.outcome("ev-odd").unwrap().as_deref(),
        Some("ignored_topic")
    );
    assert_eq!(
        spool.outcome("ev-foreign").unwrap().as_deref(),
        Some("not_payrun")
    );
    assert_eq!(
        crate::track::tracked_rows(&env),
        before,
        "the ledger is untouched"
    );
}

on_both_engines!(
    with_webhooks_paused_polling_still_converges,
    settled_by_hand(),
    paused_webhooks_polling_converges
);

async fn paused_webhooks_polling_converges(env: SendEnv) {
    let (env, client) = sent_mixed_file(env).await;
    let place = env.work.place();
    let receiver = Receiver::start(place.clone(), None, Some(client.clone())).await;
    let id = subscribe(&client, &place, &receiver.url(), "s").await;
    // Pause it through the API, as Dwolla does after 400 failures.
    let http = reqwest::Client::new();
    let token =
        crate::support::sim_token(&http, env.sim.base_url(), env.sim.key(), env.sim.secret()).await;
    let paused = http
        .post(format!("{}/webhook-subscriptions/{id}", env.sim.base_url()))
        .header("Accept", crate::support::HAL)
        .header("Content-Type", crate::support::HAL)
        .bearer_auth(token)
        .body(r#"{"paused": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(paused.status(), 200);
    let config = fast_config(ListMode::Auto);
    let account_id = tracking::account_id(&client, &config).await.unwrap();
    for _ in 0..4 {
        env.sim.advance_clock(Duration::from_secs(60));
        sweep(&env, &client, &account_id, &config).await;
    }
    receiver.stop().await;
    assert_eq!(env.sim.stats().webhook_attempts, 0, "nothing was delivered");
    assert_outcomes(&env);
    assert_history_forward(&env, "poll");
}

// ----- The real binary, killed -----

fn spawn_serve(ledger: &OsString, secret: &str) -> (Child, String) {
    let mut command = std::process::Command::new(crate::support::payrun_bin());
    command.args(["--ledger"]).arg(ledger).args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--store-only",
    ]);
    start_serve(command, secret)
}

/// Starts `command` (a `payrun serve`) with `secret`; returns it and its webhook URL.
fn start_serve(mut command: std::process::Command, secret: &str) -> (Child, String) {
    let mut child = command
        .env(payrun::webhooks::SECRET_ENV, secret)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let started: serde_json::Value =
        serde_json::from_str(&line).expect("serve prints one JSON line");
    (child, started["webhook_url"].as_str().unwrap().to_string())
}

/// Posts signed events from 8 tasks until told to stop; returns the ids answered 2xx, and
/// counts them in `answered` as they come.
async fn post_until_stopped(
    url: String,
    secret: &str,
    prefix: &str,
    stop: Arc<Mutex<bool>>,
    answered: Arc<AtomicUsize>,
) -> Vec<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..8 {
        let (http, url, stop, answered) =
            (http.clone(), url.clone(), stop.clone(), answered.clone());
        let (secret, prefix) = (secret.to_string(), prefix.to_string());
        tasks.spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0.. {
                if *stop.lock().unwrap() {
                    break;
                }
                let id = format!("{prefix}-{task}-{n}");
                let body = event_body(&id, "transfer:pending");
                let signature = sign(secret.as_bytes(), &body);
                let sent = http
                    .post(&url)
                    .header(SIGNATURE_HEADER, signature)
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => {
                        answered.fetch_add(1, Ordering::Relaxed);
                        acknowledged.push(id);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            acknowledged
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.unwrap());
    }
    all
}

fn stored_ids(work: &Workdir) -> HashSet<String> {
    let spool = work.place().open_spool().unwrap();
    spool.event_ids().unwrap().into_iter().collect()
}

on_both_engines!(async cli:
    serve_killed_mid_burst_and_restarted_loses_no_acknowledged_event,
    serve_killed_loses_nothing
);

async fn serve_killed_loses_nothing(work: Workdir) {
    let ledger = work.ledger_arg();
    let secret = "kill-test-secret";

    let (mut first, url) = spawn_serve(&ledger, secret);
    let stop = Arc::new(Mutex::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let posting = tokio::spawn(post_until_stopped(
        url,
        secret,
        "a",
        stop.clone(),
        answered.clone(),
    ));
    // Mid-burst, however slow the machine: once 25 events are acknowledged.
    wait_until("25 events acknowledged", Duration::from_secs(20), || {
        answered.load(Ordering::Relaxed) >= 25
    })
    .await;
    first.kill().unwrap(); // SIGKILL, mid-burst
    first.wait().unwrap();
    *stop.lock().unwrap() = true;
    let acknowledged = posting.await.unwrap();
    let stored = stored_ids(&work);
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");

    // Restarted, it takes the redeliveries as duplicates and new events as new; a graceful
    // stop (SIGTERM) also keeps everything it acknowledged.
    let (second, url) = spawn_serve(&ledger, secret);
    let http = reqwest::Client::new();
    let again = event_body(&acknowledged[0], "transfer:pending");
    let response = http
        .post(&url)
        .header(SIGNATURE_HEADER, sign(secret.as_bytes(), &again))
        .body(again)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["duplicate"], true);
    let stop = Arc::new(Mutex::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let posting = tokio::spawn(post_until_stopped(
        url,
        secret,
        "b",
        stop.clone(),
        answered.clone(),
    ));
    wait_until("5 events acknowledged", Duration::from_secs(20), || {
        answered.load(Ordering::Relaxed) >= 5
    })
    .await;
    let term = std::process::Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exited = tokio::task::spawn_blocking(move || {
        let mut second = second;
        second.wait().unwrap()
    })
    .await
    .unwrap();
    *stop.lock().unwrap() = true;
    let acknowledged_b = posting.await.unwrap();
    assert_eq!(exited.code(), Some(0), "a graceful stop exits 0");
    let stored = stored_ids(&work);
    for id in acknowledged.iter().chain(&acknowledged_b) {
        assert!(
            stored.contains(id),
            "{id} was acknowledged but is not stored"
        );
    }
}

/// Two `payrun serve` processes on one PostgreSQL ledger, as on two machines behind a load
/// balancer: Dwolla's deliveries reach both (a subscription each, and the simulator's own
/// duplicates), each spools what it receives in the database and applies what is pending;
/// every event is stored once and applied once, and every payout reaches its end. (A ledger
/// file has one machine's disk: this is PostgreSQL's alone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_on_one_postgres_ledger_apply_each_event_once() {
    let config = SimConfig {
        settle: Duration::from_secs(60),
        webhook_duplicate_rate: 0.5,
        seed: 11,
        ..SimConfig::new()
    };
    let test = "webhooks::two_serve_processes_on_one_postgres_ledger_apply_each_event_once";
    let Some(env) = SendEnv::start_on_postgres(config, test).await else {
        return;
    };
    env.ingest_file(&mixed_file(&env));
    let client = env.client(1000, 8, Duration::from_secs(5));
    let secret = "two-serves-secret";
    let mut serves = Vec::new();
    for _ in 0..2 {
        let command = env.command(&["serve", "--listen", "127.0.0.1:0", "--apply-every", "50ms"]);
        let (child, url) = start_serve(command, secret);
        let subscription = CreateWebhookSubscription {
            url,
            secret: Secret::new(secret),
        };
        client
            .create_webhook_subscription(&subscription, None)
            .await
            .unwrap();
        serves.push(child);
    }
    env.send(client.clone(), env.send_config(8)).await;
    for _ in 0..6 {
        env.sim.advance_clock(Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until("converged by both servers", Duration::from_secs(30), || {
        converged(&env)
            && env.query("SELECT count(*) FROM webhook_events WHERE applied_at IS NULL") == [["0"]]
    })
    .await;
    for mut serve in serves {
        serve.kill().unwrap();
        serve.wait().unwrap();
    }
    assert_outcomes(&env);
    assert_history_forward(&env, "webhook:");
    let stats = env.sim.stats();
    assert!(
        stats.webhook_deliveries >= 2 * stats.events,
        "every event went to both servers: {stats:?}"
    );
    // created, pending and processed or failed for each transfer, and one return: each once.
    let stored = env.query("SELECT count(*) FROM webhook_events WHERE applied_at IS NOT NULL");
    assert_eq!(stored, [[(3 * OUTCOMES.len() + 1).to_string()]]);
}
