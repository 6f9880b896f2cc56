//! The simulator's public settings and reports: [`SimConfig`], the run-time [`Faults`],
//! [`SimStats`] and [`SimTransfer`], with their JSON forms (`/_sim/faults`, `/_sim/stats`,
//! `/_sim/transfers`). Re-exported as `payrun::sim::*`.
//!
//! Must not touch: anything else in `sim`; every other file may import this one.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

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

/// The fault settings that can change while the simulator runs ([`SimHandle::set_faults`](crate::sim::SimHandle::set_faults),
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
