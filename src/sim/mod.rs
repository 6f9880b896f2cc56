//! A local Dwolla Connect simulator (issue 3): the Connect API over real HTTP, in memory, with
//! fault injection, its own clock, a transfer lifecycle and signed webhooks.
//!
//! It is a black box to the rest of payrun: it imports only `signature` (to sign webhooks) and
//! `secret` (so secrets never print). Tests run it in-process with [`spawn`]; `payrun sim` runs
//! it standalone through [`serve`].
//!
//! # Layout
//! - `api`: the Connect endpoints (routing, validation, HAL+JSON responses) and `/_sim/*`;
//! - `pipeline`: what every request passes through: request id, statistics, rate limit,
//!   injected faults, `Accept` and bearer-token checks, Idempotency-Key handling;
//! - `server`: the accept loop, which can close a connection without a response (drop faults);
//! - `engine`: moves transfers along on the simulator's clock and delivers webhooks;
//! - `state`: the lock-protected shared state (tokens, idempotency keys, limiter, statistics);
//! - `store`: resources, lifecycle, events and webhook records, and their JSON renderings;
//! - `seed`: the fixed ids every start has; `validate`, `failures`, `error`, `clock`: pure
//!   helpers.
//!
//! # Choices where Dwolla documents nothing (also in README)
//! - Idempotency-Key reused with a different method, path or body (after the first request
//!   finished, within 24 h): **400 ValidationError** naming the key reuse; nothing is created.
//!   Dwolla only says the key deduplicates "the same key and request body"; silently creating
//!   a second transfer is the dangerous outcome for a payout worker, and a replay of a
//!   different request would hide a client bug, so the simulator refuses loudly. While the
//!   first request is in flight any reuse gets 409 `Conflict`. Only 2xx outcomes are
//!   remembered: a request refused with 4xx/5xx created nothing, so its key is free again.
//! - Webhook topics: `transfer:created|pending|processed|failed|returned`,
//!   `external_party:created`, `funding_source:created|removed` and
//!   `external_party.funding_source:created|removed`, the list in Dwolla's Connect
//!   webhook-events page (the sandbox table's `account.transfer:*` form is not used).
//! - The clock: real time plus an offset (`POST /_sim/advance`); tokens, keys, the lifecycle
//!   and webhook retries all follow it.

mod api;
mod clock;
mod engine;
mod error;
mod failures;
mod pipeline;
mod seed;
mod server;
mod state;
mod store;
mod validate;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::secret::Secret;
pub use seed::{
    ACCOUNT_ID, SOURCE_FUNDING_SOURCE_ID, TREASURY_ACCOUNT_ID, UNLINKED_FUNDING_SOURCE_ID,
};
use state::Shared;

pub const DEFAULT_KEY: &str = "sim-key.dwolla.connect";
pub const DEFAULT_SECRET: &str = "sim-secret";

/// Everything a simulator starts with. Build with [`SimConfig::new`] and struct update syntax.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Client key and secret accepted by `POST /token`.
    pub key: String,
    pub secret: Secret,
    /// Lifetime of access tokens (Dwolla: 1 hour).
    pub token_ttl: Duration,
    /// Simulated time between lifecycle steps (created -> pending -> processed ...).
    pub settle: Duration,
    /// Added to every API response, plus a uniform random 0..=jitter.
    pub latency: Duration,
    pub jitter: Duration,
    /// Requests per second over a sliding one-second window; beyond it 429 `TooManyRequests`.
    pub rate_limit: Option<u32>,
    /// Once the limit trips, every request gets 429 for this long (Dwolla: 5 minutes).
    pub rate_limit_penalty: Option<Duration>,
    /// Send `Retry-After` with 429s. Dwolla documents none, so off by default.
    pub retry_after: bool,
    /// Share of requests answered 429 without taking effect, whatever the rate: Dwolla's limit
    /// is per application, so another process of the same application can spend it.
    pub throttle_rate: f64,
    /// Share of requests answered 500 `ServerError` without taking effect.
    pub error_rate: f64,
    /// Share of requests that take effect and then lose their connection with no response.
    pub drop_rate: f64,
    /// Share of requests that take effect and whose response is held for `timeout_hold`.
    pub timeout_rate: f64,
    pub timeout_hold: Duration,
    /// Seeds ids and fault draws.
    pub seed: u64,
    /// Dwolla's webhook retry schedule (15 min ... 72 h) is divided by this.
    pub webhook_time_scale: f64,
    /// Share of successfully delivered webhooks delivered a second time.
    pub webhook_duplicate_rate: f64,
    /// Share of webhooks whose first attempt is delayed by a random 0..`webhook_reorder_delay`
    /// (simulated time), so that later events can arrive first.
    pub webhook_reorder_rate: f64,
    pub webhook_reorder_delay: Duration,
    /// How long a receiver may take (Dwolla: 10 s).
    pub webhook_timeout: Duration,
    /// Per-transfer limit in cents (default $10,000.00, Dwolla's default for verified senders).
    pub max_amount_cents: i64,
    /// Round amounts with more than two decimals by banker's rounding, as Dwolla's docs
    /// describe, instead of refusing them with 400 (the default, as issue 3 asks).
    pub bankers_rounding: bool,
    /// How long an Idempotency-Key is remembered (Dwolla: 24 hours).
    pub idempotency_ttl: Duration,
    /// Dwolla's sandbox allows 10 webhook subscriptions (production 5).
    pub max_webhook_subscriptions: usize,
    /// A subscription is paused after this many consecutive failed deliveries once a day
    /// (divided by `webhook_time_scale`) has passed without a success (Dwolla: 400).
    pub webhook_auto_pause_failures: u32,
}

impl SimConfig {
    /// Fast defaults: no faults, a lifecycle step every second, webhook retries 900 times faster
    /// than Dwolla's (15 min becomes 1 s).
    pub fn new() -> SimConfig {
        SimConfig {
            key: DEFAULT_KEY.to_string(),
            secret: Secret::new(DEFAULT_SECRET),
            token_ttl: Duration::from_secs(3600),
            settle: Duration::from_millis(1000),
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            rate_limit: None,
            rate_limit_penalty: None,
            retry_after: false,
            throttle_rate: 0.0,
            error_rate: 0.0,
            drop_rate: 0.0,
            timeout_rate: 0.0,
            // Longer than the 60 s request timeout of Dwolla's own SDK, so a client gives up.
            timeout_hold: Duration::from_secs(65),
            seed: 0,
            webhook_time_scale: 900.0,
            webhook_duplicate_rate: 0.0,
            webhook_reorder_rate: 0.0,
            webhook_reorder_delay: Duration::from_secs(2),
            webhook_timeout: Duration::from_secs(10),
            max_amount_cents: 1_000_000,
            bankers_rounding: false,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            max_webhook_subscriptions: 10,
            webhook_auto_pause_failures: 400,
        }
    }

    /// The fault settings in this configuration.
    pub fn faults(&self) -> Faults {
        Faults {
            latency: self.latency,
            jitter: self.jitter,
            rate_limit: self.rate_limit,
            rate_limit_penalty: self.rate_limit_penalty,
            retry_after: self.retry_after,
            throttle_rate: self.throttle_rate,
            error_rate: self.error_rate,
            drop_rate: self.drop_rate,
            timeout_rate: self.timeout_rate,
            timeout_hold: self.timeout_hold,
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig::new()
    }
}

/// The fault settings that can change while the simulator runs ([`SimHandle::set_faults`],
/// `POST /_sim/faults`). Same meaning as the fields of [`SimConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    #[serde(with = "millis", rename = "latency_ms")]
    pub latency: Duration,
    #[serde(with = "millis", rename = "jitter_ms")]
    pub jitter: Duration,
    pub rate_limit: Option<u32>,
    #[serde(with = "opt_millis", rename = "rate_limit_penalty_ms")]
    pub rate_limit_penalty: Option<Duration>,
    pub retry_after: bool,
    pub throttle_rate: f64,
    pub error_rate: f64,
    pub drop_rate: f64,
    pub timeout_rate: f64,
    #[serde(with = "millis", rename = "timeout_hold_ms")]
    pub timeout_hold: Duration,
}

impl Faults {
    pub fn none() -> Faults {
        SimConfig::new().faults()
    }
}

impl Default for Faults {
    fn default() -> Self {
        Faults::none()
    }
}

/// Counters for tests and `GET /_sim/stats`. `/_sim/*` requests are not counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimStats {
    /// API requests received (including refused ones).
    pub total_requests: u64,
    /// Responses sent, by HTTP status (dropped ones are not sent and not counted here).
    pub responses_by_status: BTreeMap<u16, u64>,
    pub transfers_created: u64,
    /// POSTs answered from an Idempotency-Key's stored response.
    pub idempotent_replays: u64,
    /// 409s: an Idempotency-Key reused while its first request was in flight.
    pub conflicts: u64,
    /// 429s.
    pub rate_limited: u64,
    /// Injected 500s.
    pub server_errors: u64,
    /// Requests that took effect and whose connection was then closed without a response.
    pub dropped_responses: u64,
    /// Responses held back by the timeout fault.
    pub held_responses: u64,
    /// The most API requests that arrived within any one-second sliding window.
    pub max_requests_per_second: u64,
    pub events: u64,
    pub webhook_attempts: u64,
    /// Attempts answered 2xx.
    pub webhook_deliveries: u64,
    pub webhook_failures: u64,
}

/// A transfer as the simulator holds it, for exactly-once assertions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimTransfer {
    pub id: String,
    /// As Dwolla shows it: `"10.00"`.
    pub amount: String,
    /// Funding-source ids (not URLs).
    pub source_funding_source: String,
    pub destination_funding_source: String,
    pub correlation_id: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub status: String,
    pub failure_code: Option<String>,
    pub idempotency_key: Option<String>,
    pub created: String,
}

/// A running simulator.
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn key(&self) -> &str {
        &self.shared.config.key
    }

    pub fn secret(&self) -> &str {
        self.shared.config.secret.expose()
    }

    pub fn account_id(&self) -> &str {
        ACCOUNT_ID
    }

    /// The full URL of the seeded source funding source.
    pub fn source_funding_source(&self) -> String {
        format!(
            "{}/funding-sources/{SOURCE_FUNDING_SOURCE_ID}",
            self.base_url()
        )
    }

    /// The full URL of seeded external party `n`'s funding source (`n` in 1..=13).
    pub fn party_funding_source(&self, n: u8) -> String {
        format!(
            "{}/funding-sources/{}",
            self.base_url(),
            seed::party_funding_source_id(n)
        )
    }

    /// The full URL of seeded external party `n` (`n` in 1..=13).
    pub fn external_party(&self, n: u8) -> String {
        format!(
            "{}/external-parties/{}",
            self.base_url(),
            seed::external_party_id(n)
        )
    }

    pub fn stats(&self) -> SimStats {
        api::stats(&self.shared)
    }

    pub fn faults(&self) -> Faults {
        self.shared.with(|st, _| st.faults.clone())
    }

    pub fn set_faults(&self, faults: Faults) {
        self.shared.with(|st, _| st.faults = faults);
    }

    /// Moves the simulator's clock forward and applies every lifecycle step now due.
    pub fn advance_clock(&self, by: Duration) {
        api::advance(&self.shared, by);
    }

    pub fn transfers(&self) -> Vec<SimTransfer> {
        api::sim_transfers(&self.shared)
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds 127.0.0.1 on a free port and serves in a tokio task until [`SimHandle::shutdown`].
pub async fn spawn(config: SimConfig) -> anyhow::Result<SimHandle> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shared = build(config, addr);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server::run(listener, shared.clone(), async move {
        let _ = rx.await;
    }));
    Ok(SimHandle {
        shared,
        addr,
        shutdown: Some(tx),
        task,
    })
}

/// Serves on an already-bound listener until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: SimConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let shared = build(config, addr);
    server::run(listener, shared, shutdown).await
}

fn base_url_for(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        match addr.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            std::net::IpAddr::V4(v4) => v4.to_string(),
        }
    };
    format!("http://{ip}:{}", addr.port())
}

fn build(config: SimConfig, addr: SocketAddr) -> Arc<Shared> {
    let base_url = base_url_for(addr);
    let store_config = store::StoreConfig {
        settle: config.settle,
        webhook_time_scale: config.webhook_time_scale,
        webhook_duplicate_rate: config.webhook_duplicate_rate,
        webhook_reorder_rate: config.webhook_reorder_rate,
        webhook_reorder_delay: config.webhook_reorder_delay,
        webhook_auto_pause_failures: config.webhook_auto_pause_failures,
    };
    let mut store = store::Store::new(
        base_url.clone(),
        store_config,
        rand::rngs::StdRng::seed_from_u64(config.seed),
        store::Account {
            id: seed::id(ACCOUNT_ID),
            name: seed::ACCOUNT_NAME.to_string(),
            created: clock::SimTime(1_736_175_600_000),
        },
    );
    seed::seed(&mut store);
    Shared::new(config, base_url, store)
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

mod opt_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let config = SimConfig {
            secret: Secret::new("top-secret-value"),
            ..SimConfig::new()
        };
        assert!(!format!("{config:?}").contains("top-secret-value"));
    }

    #[test]
    fn holds_100k_transfers_and_pages_them_without_scanning() {
        let shared = build(
            SimConfig {
                settle: Duration::from_secs(3600),
                ..SimConfig::new()
            },
            "127.0.0.1:1".parse().unwrap(),
        );
        let source = seed::id(SOURCE_FUNDING_SOURCE_ID);
        shared.with(|st, now| {
            for i in 0..100_000u32 {
                let dest = seed::party_funding_source_id((i % 8 + 1) as u8);
                st.store.add_transfer(
                    source,
                    dest,
                    1_000 + i64::from(i),
                    Some(format!("c-{}", i % 50_000)),
                    None,
                    None,
                    now,
                );
            }
        });
        let started = Instant::now();
        shared.with(|st, _| {
            let s = &st.store;
            let seqs = s.transfers_for_correlation("c-7");
            let p = store::page(|i| seqs[i], seqs.len(), 25, None);
            assert_eq!(p.items, vec![50_007, 7]);
            // The oldest page of the unfiltered list, reached by cursor.
            let p = store::page(|i| i as u32, s.transfers.len(), 200, Some(150));
            assert_eq!(p.items.len(), 150);
            assert_eq!(p.next, None);
            let party = seed::external_party_id(3);
            let seqs = s.transfers_for_party(party);
            assert_eq!(seqs.len(), 12_500);
            let p = store::page(|i| seqs[i], seqs.len(), 200, Some(seqs[100]));
            assert_eq!(p.items.len(), 100);
            for &i in &p.items {
                assert_eq!(s.transfers[i as usize].party, party);
            }
        });
        // Index lookups, not scans: far below what one scan of 100,000 transfers costs.
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "{:?}",
            started.elapsed()
        );
    }
}
