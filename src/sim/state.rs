//! The state shared by every connection: the store, statistics, access tokens, the
//! idempotency table, the rate limiter and the fault settings, all under one lock. Each
//! critical section is short (microseconds), which keeps one lock fast enough for thousands of
//! requests per second on two cores and makes every request's effect atomic.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::clock::{SimClock, SimTime};
use super::store::Store;
use super::{Faults, SimConfig, SimStats};

pub struct Shared {
    pub clock: SimClock,
    pub config: SimConfig,
    pub base_url: String,
    state: Mutex<State>,
    /// Wakes the engine (lifecycle and webhook delivery) when something new is scheduled.
    pub wake: Notify,
}

impl Shared {
    pub fn new(config: SimConfig, base_url: String, store: Store) -> Arc<Shared> {
        let faults = config.faults();
        Arc::new(Shared {
            clock: SimClock::new(),
            base_url,
            state: Mutex::new(State {
                store,
                faults,
                stats: SimStats::default(),
                arrivals: VecDeque::new(),
                admitted: VecDeque::new(),
                penalty_until: None,
                tokens: HashMap::new(),
                idempotency: HashMap::new(),
                idempotency_order: VecDeque::new(),
            }),
            config,
            wake: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the whole simulator down with poisoned-lock panics.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` under the lock after bringing the transfer lifecycle up to the simulator's
    /// `now`, then wakes the engine if `f` scheduled anything.
    pub fn with<R>(&self, f: impl FnOnce(&mut State, SimTime) -> R) -> R {
        let now = self.clock.now();
        let (result, wake) = {
            let mut state = self.lock();
            let before = (
                state.store.next_webhook_due(),
                state.store.next_lifecycle_due(),
            );
            state.store.catch_up(now);
            let result = f(&mut state, now);
            let after = (
                state.store.next_webhook_due(),
                state.store.next_lifecycle_due(),
            );
            (result, before != after)
        };
        if wake {
            self.wake.notify_one();
        }
        result
    }
}

/// A response remembered for an idempotency key.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: u16,
    pub location: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
}

#[derive(Debug)]
struct IdempotencyEntry {
    fingerprint: [u8; 32],
    created: SimTime,
    /// `None` while the first request is still being processed.
    response: Option<StoredResponse>,
}

/// What to do with a POST that carries an Idempotency-Key.
#[derive(Debug)]
pub enum Claim {
    /// First use (or the earlier use expired or failed): process it.
    Fresh,
    /// Same key, same request, already done: send the original response again.
    Replay(StoredResponse),
    /// Same key while the first request is in flight: 409.
    InFlight,
    /// Same key, different method, path or body: refused (see `api::key_reused`).
    Mismatch,
}

/// Per-request fault decisions, drawn once on arrival.
#[derive(Debug, Clone, Copy)]
pub struct Draw {
    pub error: bool,
    pub drop: bool,
    pub timeout: bool,
    pub latency: Duration,
    pub timeout_hold: Duration,
}

pub enum Admission {
    Admitted(Draw),
    Limited { retry_after: Option<Duration> },
}

pub enum TokenCheck {
    Valid,
    Expired,
    Unknown,
}

pub struct State {
    pub store: Store,
    pub faults: Faults,
    pub stats: SimStats,
    arrivals: VecDeque<Instant>,
    admitted: VecDeque<Instant>,
    penalty_until: Option<Instant>,
    tokens: HashMap<String, SimTime>,
    idempotency: HashMap<String, IdempotencyEntry>,
    idempotency_order: VecDeque<(SimTime, String)>,
}

const WINDOW: Duration = Duration::from_secs(1);

impl State {
    /// Counts an API request on arrival, applies the sliding-window rate limit, and draws the
    /// request's faults. Only admitted requests count toward the limit, so a client that backs
    /// off is served again after at most one window (or the penalty).
    pub fn arrive(&mut self, at: Instant) -> Admission {
        self.stats.total_requests += 1;
        while self
            .arrivals
            .front()
            .is_some_and(|&t| at.duration_since(t) >= WINDOW)
        {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back(at);
        self.stats.max_requests_per_second = self
            .stats
            .max_requests_per_second
            .max(self.arrivals.len() as u64);

        if let Some(limit) = self.faults.rate_limit {
            if let Some(until) = self.penalty_until {
                if at < until {
                    return self.limited(until - at);
                }
                self.penalty_until = None;
            }
            while self
                .admitted
                .front()
                .is_some_and(|&t| at.duration_since(t) >= WINDOW)
            {
                self.admitted.pop_front();
            }
            if self.admitted.len() >= limit as usize {
                let wait = match self.faults.rate_limit_penalty {
                    Some(penalty) => {
                        self.penalty_until = Some(at + penalty);
                        penalty
                    }
                    None => self
                        .admitted
                        .front()
                        .map_or(WINDOW, |&t| WINDOW.saturating_sub(at.duration_since(t))),
                };
                return self.limited(wait);
            }
            self.admitted.push_back(at);
        }

        let throttle_rate = self.faults.throttle_rate;
        if throttle_rate > 0.0 && self.store.rng.random_bool(throttle_rate.min(1.0)) {
            return self.limited(WINDOW);
        }
        let faults = &self.faults;
        let rng = &mut self.store.rng;
        let mut chance = |p: f64| p > 0.0 && rng.random_bool(p.min(1.0));
        let error = chance(faults.error_rate);
        let drop = chance(faults.drop_rate);
        let timeout = chance(faults.timeout_rate);
        let jitter_ms = faults.jitter.as_millis() as u64;
        let jitter = if jitter_ms > 0 {
            Duration::from_millis(rng.random_range(0..=jitter_ms))
        } else {
            Duration::ZERO
        };
        Admission::Admitted(Draw {
            error,
            drop,
            timeout,
            latency: faults.latency + jitter,
            timeout_hold: faults.timeout_hold,
        })
    }

    fn limited(&mut self, wait: Duration) -> Admission {
        Admission::Limited {
            retry_after: self.faults.retry_after.then_some(wait),
        }
    }

    pub fn record_status(&mut self, status: u16) {
        *self.stats.responses_by_status.entry(status).or_insert(0) += 1;
    }

    // ----- access tokens -----

    pub fn mint_token(&mut self, now: SimTime, ttl: Duration) -> String {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use rand::RngCore;
        let expires = now.plus(ttl);
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"iss":"payrun-sim","iat":{},"exp":{},"jti":"{}"}}"#,
            now.0 / 1000,
            expires.0 / 1000,
            self.store.new_id()
        ));
        let mut sig = [0u8; 32];
        self.store.rng.fill_bytes(&mut sig);
        let token = format!("connect.{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(sig));
        self.tokens.insert(token.clone(), expires);
        token
    }

    pub fn check_token(&self, token: &str, now: SimTime) -> TokenCheck {
        match self.tokens.get(token) {
            None => TokenCheck::Unknown,
            Some(&expires) if now >= expires => TokenCheck::Expired,
            Some(_) => TokenCheck::Valid,
        }
    }

    // ----- idempotency keys -----

    pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(method.as_bytes());
        hasher.update(b" ");
        hasher.update(path.as_bytes());
        hasher.update(b"\n");
        hasher.update(body);
        hasher.finalize().into()
    }

    pub fn claim(
        &mut self,
        key: &str,
        fingerprint: [u8; 32],
        now: SimTime,
        ttl: Duration,
    ) -> Claim {
        self.expire_keys(now, ttl);
        if let Some(entry) = self.idempotency.get(key) {
            if now >= entry.created.plus(ttl) {
                // Expired but not yet swept: forgotten.
                self.idempotency.remove(key);
            } else {
                return match &entry.response {
                    None => Claim::InFlight,
                    Some(_) if entry.fingerprint != fingerprint => Claim::Mismatch,
                    Some(stored) => {
                        self.stats.idempotent_replays += 1;
                        Claim::Replay(stored.clone())
                    }
                };
            }
        }
        self.idempotency.insert(
            key.to_string(),
            IdempotencyEntry {
                fingerprint,
                created: now,
                response: None,
            },
        );
        self.idempotency_order.push_back((now, key.to_string()));
        Claim::Fresh
    }

    /// Ends a claim: remembers a successful response for 24 h, or forgets the key when the
    /// request failed (nothing was created, so a retry must be processed afresh).
    pub fn finish_claim(&mut self, key: &str, response: Option<StoredResponse>) {
        match response {
            Some(stored) => {
                if let Some(entry) = self.idempotency.get_mut(key) {
                    entry.response = Some(stored);
                }
            }
            None => {
                if self
                    .idempotency
                    .get(key)
                    .is_some_and(|e| e.response.is_none())
                {
                    self.idempotency.remove(key);
                }
            }
        }
    }

    fn expire_keys(&mut self, now: SimTime, ttl: Duration) {
        while let Some((created, _)) = self.idempotency_order.front() {
            if now < created.plus(ttl) {
                break;
            }
            let (created, key) = self.idempotency_order.pop_front().expect("peeked");
            if self
                .idempotency
                .get(&key)
                .is_some_and(|e| e.created == created && e.response.is_some())
            {
                self.idempotency.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::store::{Account, Store, StoreConfig};
    use rand::SeedableRng;
    use uuid::Uuid;

    fn state(faults: Faults) -> State {
        let store = Store::new(
            "http://x".into(),
            StoreConfig {
                settle: Duration::from_secs(1),
                webhook_time_scale: 1.0,
                webhook_duplicate_rate: 0.0,
                webhook_reorder_rate: 0.0,
                webhook_reorder_delay: Duration::ZERO,
                webhook_auto_pause_failures: 400,
            },
            rand::rngs::StdRng::seed_from_u64(1),
            Account {
                id: Uuid::nil(),
                name: "x".into(),
                created: SimTime(0),
            },
        );
        State {
            store,
            faults,
            stats: SimStats::default(),
            arrivals: VecDeque::new(),
            admitted: VecDeque::new(),
            penalty_until: None,
            tokens: HashMap::new(),
            idempotency: HashMap::new(),
            idempotency_order: VecDeque::new(),
        }
    }

    #[test]
    fn sliding_window_admits_n_per_second_and_tracks_the_peak() {
        let mut st = state(Faults {
            rate_limit: Some(3),
            ..Faults::none()
        });
        let t0 = Instant::now();
        let admitted = |a: Admission| matches!(a, Admission::Admitted(_));
        assert!(admitted(st.arrive(t0)));
        assert!(admitted(st.arrive(t0 + Duration::from_millis(100))));
        assert!(admitted(st.arrive(t0 + Duration::from_millis(200))));
        assert!(!admitted(st.arrive(t0 + Duration::from_millis(300))));
        assert!(!admitted(st.arrive(t0 + Duration::from_millis(999))));
        // The first arrival has left the window.
        assert!(admitted(st.arrive(t0 + Duration::from_millis(1000))));
        assert_eq!(st.stats.max_requests_per_second, 5);
    }

    #[test]
    fn penalty_holds_the_limit_after_it_trips() {
        let mut st = state(Faults {
            rate_limit: Some(1),
            rate_limit_penalty: Some(Duration::from_secs(5)),
            retry_after: true,
            ..Faults::none()
        });
        let t0 = Instant::now();
        assert!(matches!(st.arrive(t0), Admission::Admitted(_)));
        assert!(matches!(
            st.arrive(t0 + Duration::from_millis(10)),
            Admission::Limited {
                retry_after: Some(_)
            }
        ));
        assert!(matches!(
            st.arrive(t0 + Duration::from_secs(3)),
            Admission::Limited { .. }
        ));
        assert!(matches!(
            st.arrive(t0 + Duration::from_millis(5_011)),
            Admission::Admitted(_)
        ));
    }

    #[test]
    fn throttle_rate_answers_that_share_with_429_whatever_the_rate() {
        let mut st = state(Faults {
            throttle_rate: 0.2,
            ..Faults::none()
        });
        let t0 = Instant::now();
        let limited = (0..10_000u64)
            .filter(|&i| {
                let at = t0 + Duration::from_micros(i * 100);
                matches!(st.arrive(at), Admission::Limited { .. })
            })
            .count();
        assert!(
            (1_700..2_300).contains(&limited),
            "{limited} of 10000 limited"
        );
        let mut none = state(Faults::none());
        assert!((0..1_000).all(|_| matches!(none.arrive(t0), Admission::Admitted(_))));
    }

    #[test]
    fn keys_replay_conflict_mismatch_and_expire() {
        let mut st = state(Faults::none());
        let day = Duration::from_secs(86_400);
        let fp = State::fingerprint("POST", "/transfers", b"{}");
        let other = State::fingerprint("POST", "/transfers", b"{ }");
        assert!(matches!(st.claim("k", fp, SimTime(0), day), Claim::Fresh));
        assert!(matches!(
            st.claim("k", fp, SimTime(1), day),
            Claim::InFlight
        ));
        st.finish_claim(
            "k",
            Some(StoredResponse {
                status: 201,
                location: Some("l".into()),
                content_type: None,
                body: Bytes::new(),
            }),
        );
        assert!(matches!(
            st.claim("k", fp, SimTime(2), day),
            Claim::Replay(_)
        ));
        assert!(matches!(
            st.claim("k", other, SimTime(3), day),
            Claim::Mismatch
        ));
        assert_eq!(st.stats.idempotent_replays, 1);
        let later = SimTime(86_400_000);
        assert!(matches!(st.claim("k", other, later, day), Claim::Fresh));
        // A failed first attempt frees the key.
        assert!(matches!(st.claim("j", fp, SimTime(0), day), Claim::Fresh));
        st.finish_claim("j", None);
        assert!(matches!(st.claim("j", fp, SimTime(1), day), Claim::Fresh));
    }
}
