//! `payrun serve`: the HTTP endpoint Dwolla delivers webhooks to, and webhook subscriptions.
//!
//! - `POST /webhooks/dwolla`: checks `X-Request-Signature-SHA-256` (HMAC-SHA256 of the raw
//!   body, constant-time) against `PAYRUN_WEBHOOK_SECRET` and the secrets of the subscriptions
//!   payrun created; a missing or wrong signature gets 401 (logged without the body), a body
//!   over the cap 413. A verified event is stored in the spool (`<ledger>.events`), durably
//!   and once per event id, before the 2xx; duplicates get 2xx too.
//! - `GET /healthz`: 200 with counters.
//! - An applier task applies stored events to the ledger when it can take the ledger's writer
//!   lock without waiting (`tracking::apply_opportunistically`), so `serve` runs beside
//!   `send`; `track` and other writers drain the spool as well.
//!
//! Owns the receiving side only: it never calls Dwolla while answering a delivery, and it
//! writes the ledger only through `tracking`.

pub mod subscriptions;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::dwolla::Client;
use crate::ledger::{self, EventSpool, IncomingEvent, LedgerPlace};
use crate::listener::ConnectionLimits;
use crate::secret::Secret;
use crate::signature::{self, SIGNATURE_HEADER};
use crate::tracking::{self, Opportunity, TrackConfig};

pub use subscriptions::generate_secret;

/// Where Dwolla delivers: the path of the subscription URL.
pub const WEBHOOK_PATH: &str = "/webhooks/dwolla";
pub const HEALTH_PATH: &str = "/healthz";
/// Dwolla's webhook bodies are a few hundred bytes; anything near this is not one.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// The environment variable with a webhook secret (for a subscription made elsewhere).
pub const SECRET_ENV: &str = "PAYRUN_WEBHOOK_SECRET";

/// How `serve` behaves.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The ledger whose spool stores the events (beside a ledger file, or in PostgreSQL).
    pub ledger: LedgerPlace,
    /// A secret from the environment, accepted beside the stored subscriptions' secrets.
    pub env_secret: Option<Secret>,
    /// The body cap, and what a slow client may hold (`crate::listener`).
    pub limits: ConnectionLimits,
    /// How stored events reach the ledger; `None` stores only (then `track` applies them).
    pub applier: Option<ApplierConfig>,
    /// More endpoints served on the same port: `POST /client-tokens` for drop-in components
    /// when it is configured.
    pub extra_routes: Option<Router>,
}

#[derive(Debug, Clone)]
pub struct ApplierConfig {
    pub client: Client,
    pub track: TrackConfig,
    /// How often to look for pending events (it also wakes when one arrives).
    pub every: Duration,
}

/// Counters for `GET /healthz` and tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub rejected: AtomicU64,
}

struct App {
    secrets: Secrets,
    writer: SpoolWriter,
    counters: Arc<Counters>,
    wake_applier: Arc<Notify>,
}

/// Serves on an already-bound listener until `shutdown` completes. On shutdown it stops
/// accepting, lets every request in flight finish (so each event that got a 2xx is on disk),
/// lets the applier finish its batch, and returns.
pub async fn serve(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let spool = config.ledger.open_spool()?;
    let secrets = Secrets::load(config.env_secret.clone(), config.ledger.clone())?;
    if secrets.is_empty() {
        tracing::warn!(
            "no webhook secret: set {SECRET_ENV} or run `payrun webhooks subscribe`; every delivery gets 401 until then"
        );
    }
    let (writer, writer_thread) = SpoolWriter::start(spool);
    let counters = Arc::new(Counters::default());
    let wake_applier = Arc::new(Notify::new());
    let app = Arc::new(App {
        secrets,
        writer,
        counters,
        wake_applier: wake_applier.clone(),
    });
    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let applier = config.applier.clone().map(|applier| {
        let ledger = config.ledger.clone();
        let (wake, stopping) = (wake_applier.clone(), stopping.clone());
        tokio::spawn(run_applier(ledger, applier, wake, stopping))
    });
    let refresher = {
        let (app, mut stopping) = (app.clone(), stopping.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(SECRETS_REFRESH) => app.secrets.reload(),
                    _ = stopping.changed() => break,
                }
            }
        })
    };
    let mut router = router(app.clone(), config.limits.max_body_bytes);
    if let Some(extra) = config.extra_routes.clone() {
        router = router.merge(extra);
    }
    crate::listener::serve(listener, router, config.limits, stopping.clone()).await;
    let _ = refresher.await;
    if let Some(applier) = applier {
        let _ = applier.await;
    }
    // Every handler is done; closing the channel lets the writer finish and stop.
    drop(app);
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await
        .context("the spool writer did not stop")?
        .map_err(|_| anyhow::anyhow!("the spool writer panicked"))?;
    Ok(())
}

fn router(app: Arc<App>, max_body_bytes: usize) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, post(receive))
        .route(HEALTH_PATH, get(health))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(app)
}

async fn receive(
    State(app): State<Arc<App>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let topic = header_text(&headers, "x-dwolla-topic").unwrap_or("-");
    let reject = |reason: &str| {
        app.counters.rejected.fetch_add(1, Ordering::Relaxed);
        // Never the body: it is unauthenticated input.
        tracing::warn!(%remote, topic, body_bytes = body.len(), "webhook rejected: {reason}");
        (StatusCode::UNAUTHORIZED, "invalid signature\n").into_response()
    };
    let Some(signature) = header_text(&headers, SIGNATURE_HEADER) else {
        return reject("no signature header");
    };
    if !app.secrets.verify(&body, signature) {
        return reject("the signature does not match any webhook secret");
    }
    let event = match parse_event(&body) {
        Ok(event) => event,
        Err(reason) => {
            tracing::warn!(%remote, topic, "signed webhook is not an event: {reason}");
            return (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response();
        }
    };
    let event_id = event.event_id.clone();
    match app.writer.store(event).await {
        Ok(fresh) => {
            let counter = if fresh {
                &app.counters.stored
            } else {
                &app.counters.duplicates
            };
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%event_id, topic, duplicate = !fresh, "webhook stored");
            app.wake_applier.notify_one();
            let body = json!({ "event_id": event_id, "duplicate": !fresh });
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err(reason) => {
            // Not stored: Dwolla must deliver it again.
            tracing::error!(%event_id, "cannot store the webhook event: {reason}");
            (StatusCode::SERVICE_UNAVAILABLE, "cannot store the event\n").into_response()
        }
    }
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let counters = &app.counters;
    axum::Json(json!({
        "status": "ok",
        "stored": counters.stored.load(Ordering::Relaxed),
        "duplicates": counters.duplicates.load(Ordering::Relaxed),
        "rejected": counters.rejected.load(Ordering::Relaxed),
    }))
    .into_response()
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The fields of an event the spool keeps beside the raw bytes.
fn parse_event(body: &[u8]) -> Result<IncomingEvent, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|err| format!("the body is not JSON: {err}"))?;
    let text = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let event_id = text("/id").ok_or("the event has no id")?;
    if event_id.is_empty() || event_id.len() > 200 {
        return Err("the event id is empty or too long".into());
    }
    Ok(IncomingEvent {
        event_id,
        topic: text("/topic").unwrap_or_default(),
        resource_id: text("/resourceId"),
        resource_url: text("/_links/resource/href"),
        correlation_id: text("/correlationId"),
        event_created: text("/created").or_else(|| text("/timestamp")),
        body: body.to_vec(),
    })
}

// --- Secrets -------------------------------------------------------------------------------

/// How often `serve` rereads the stored subscriptions' secrets (new subscriptions start
/// working, deleted ones stop).
const SECRETS_REFRESH: Duration = Duration::from_secs(1);

struct Secrets {
    env: Option<Secret>,
    stored: RwLock<Vec<Secret>>,
    ledger: LedgerPlace,
    /// The spool connection the secrets are reread from (opened again after an error).
    reader: Mutex<Option<Box<dyn EventSpool + Send>>>,
    last_reload: Mutex<Instant>,
}

impl Secrets {
    fn load(env: Option<Secret>, ledger: LedgerPlace) -> anyhow::Result<Secrets> {
        let reader = ledger.open_spool()?;
        let stored = stored_secrets(reader.as_ref())?;
        Ok(Secrets {
            env: env.filter(|secret| !secret.is_empty()),
            stored: RwLock::new(stored),
            ledger,
            reader: Mutex::new(Some(reader)),
            last_reload: Mutex::new(Instant::now()),
        })
    }

    fn reread(&self) -> anyhow::Result<Vec<Secret>> {
        let mut reader = self.reader.lock().expect("not poisoned");
        let spool = match reader.take() {
            Some(spool) => spool,
            None => self.ledger.open_spool()?,
        };
        let stored = stored_secrets(spool.as_ref())?;
        *reader = Some(spool);
        Ok(stored)
    }

    fn is_empty(&self) -> bool {
        self.env.is_none() && self.stored.read().expect("not poisoned").is_empty()
    }

    fn reload(&self) {
        match self.reread() {
            Ok(stored) => *self.stored.write().expect("not poisoned") = stored,
            Err(err) => tracing::warn!(
                "cannot reread the webhook secrets: {}",
                crate::exit::describe(&err)
            ),
        }
        *self.last_reload.lock().expect("not poisoned") = Instant::now();
    }

    fn matches(&self, body: &[u8], signature_hex: &str) -> bool {
        let check =
            |secret: &Secret| signature::verify(secret.expose().as_bytes(), body, signature_hex);
        self.env.as_ref().is_some_and(check)
            || self.stored.read().expect("not poisoned").iter().any(check)
    }

    /// Whether any current secret signed `body`. A miss rereads the stored secrets first (at
    /// most a few times a second), so a subscription made a moment ago works at once.
    fn verify(&self, body: &[u8], signature_hex: &str) -> bool {
        if self.matches(body, signature_hex) {
            return true;
        }
        let stale =
            self.last_reload.lock().expect("not poisoned").elapsed() > Duration::from_millis(250);
        if stale {
            self.reload();
            return self.matches(body, signature_hex);
        }
        false
    }
}

fn stored_secrets(spool: &(dyn EventSpool + Send)) -> anyhow::Result<Vec<Secret>> {
    Ok(spool
        .subscriptions()?
        .into_iter()
        .map(|subscription| subscription.secret)
        .collect())
}

// --- The spool writer ----------------------------------------------------------------------

type StoreJob = (IncomingEvent, oneshot::Sender<Result<bool, String>>);

/// One thread owns the spool's writing connection and commits whatever events are waiting in
/// one transaction (group commit): a burst of deliveries costs one fsync, not one each, and
/// every handler still answers only after its event is on disk.
struct SpoolWriter {
    jobs: mpsc::Sender<StoreJob>,
}

impl SpoolWriter {
    const GROUP: usize = 256;

    fn start(mut spool: Box<dyn EventSpool + Send>) -> (SpoolWriter, std::thread::JoinHandle<()>) {
        let (jobs, mut incoming) = mpsc::channel::<StoreJob>(4096);
        let thread = std::thread::spawn(move || {
            while let Some(first) = incoming.blocking_recv() {
                let mut group = vec![first];
                while group.len() < Self::GROUP {
                    match incoming.try_recv() {
                        Ok(job) => group.push(job),
                        Err(_) => break,
                    }
                }
                let now = ledger::timestamp(time::OffsetDateTime::now_utc());
                let (events, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
                match spool.store(&events, &now) {
                    Ok(fresh) => {
                        for (reply, fresh) in replies.into_iter().zip(fresh) {
                            let _ = reply.send(Ok(fresh));
                        }
                    }
                    Err(err) => {
                        for reply in replies {
                            let _ = reply.send(Err(err.to_string()));
                        }
                    }
                }
            }
        });
        (SpoolWriter { jobs }, thread)
    }

    async fn store(&self, event: IncomingEvent) -> Result<bool, String> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((event, reply))
            .await
            .map_err(|_| "the spool writer stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the spool writer stopped".to_string())?
    }
}

// --- The applier ---------------------------------------------------------------------------

async fn run_applier(
    ledger: LedgerPlace,
    config: ApplierConfig,
    wake: Arc<Notify>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut spool = match ledger.open_spool() {
        Ok(spool) => spool,
        Err(err) => {
            tracing::error!(
                "the applier cannot open the spool: {err}; events wait for `payrun track`"
            );
            return;
        }
    };
    let mut shared_ledger = None;
    let mut busy_logged = false;
    loop {
        if *stopping.borrow() {
            break;
        }
        let outcome = apply_once(&ledger, &mut shared_ledger, spool.as_mut(), &config).await;
        match outcome {
            Ok(Opportunity::Applied(report)) => {
                busy_logged = false;
                tracing::info!(
                    events = report.n_events,
                    fetched = report.n_fetches,
                    stale = report.n_stale,
                    ignored = report.n_ignored,
                    retry_later = report.n_retry_later,
                    "webhook events applied"
                );
                if let Some(reason) = &report.tally.unreachable {
                    tracing::warn!("{reason}; the events are tried again later");
                }
            }
            Ok(Opportunity::LedgerBusy) => {
                if !busy_logged {
                    tracing::info!(
                        "another payrun process is writing the ledger; events wait until it is done"
                    );
                    busy_logged = true;
                }
            }
            Ok(Opportunity::NoLedger | Opportunity::NothingPending) => {}
            Err(err) => tracing::warn!(
                "cannot apply webhook events now: {}",
                crate::exit::describe(&err)
            ),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.every) => {}
            _ = wake.notified() => {
                // Let a burst of deliveries arrive, then apply them together.
                tokio::time::sleep(config.every.min(Duration::from_millis(50))).await;
            }
            _ = stopping.changed() => {}
        }
    }
}

/// One pass of the applier. A ledger file is written only under its writer lock, taken
/// without waiting; a PostgreSQL ledger is written by any process at once, through a
/// connection kept between passes (opened again after an error).
async fn apply_once(
    ledger: &LedgerPlace,
    shared_ledger: &mut Option<ledger::postgres::PgLedger>,
    spool: &mut (dyn EventSpool + Send),
    config: &ApplierConfig,
) -> anyhow::Result<Opportunity> {
    let (client, track) = (&config.client, &config.track);
    match ledger {
        LedgerPlace::File(path) => {
            tracking::apply_opportunistically(path, spool, client, track).await
        }
        LedgerPlace::Postgres(url) => {
            let mut open = match shared_ledger.take() {
                Some(open) => open,
                None => ledger::postgres::PgLedger::open(url)?,
            };
            let outcome = tracking::apply_pending(&mut open, spool, client, track).await;
            if outcome.is_ok() {
                *shared_ledger = Some(open);
            }
            outcome
        }
    }
}

/// The webhook endpoint inside a process that holds the ledger's writer lock (`watch`): it
/// stores events in the spool, and that process's tracking applies them. Prints one JSON line
/// with the URLs, like `serve`, and stops when `stopping` turns true.
pub async fn serve_beside(
    ledger: LedgerPlace,
    listen: &str,
    secret: Option<Secret>,
    limits: ConnectionLimits,
    client: &Client,
    mut stopping: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let extra_routes = match crate::drop_in::ClientTokenConfig::from_env() {
        Ok(tokens) => Some(crate::drop_in::router(tokens, client.clone())),
        Err(crate::drop_in::ClientTokenConfigError::Missing) => None,
        Err(other) => return Err(other.into()),
    };
    let config = ServeConfig {
        ledger,
        env_secret: secret,
        limits,
        applier: None,
        extra_routes,
    };
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    println!(
        "{}",
        json!({ "webhook_url": format!("http://{addr}{WEBHOOK_PATH}"), "health_url": format!("http://{addr}{HEALTH_PATH}") })
    );
    tracing::info!(%addr, "receiving webhooks beside the inbox");
    Ok(tokio::spawn(serve(listener, config, async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    })))
}
