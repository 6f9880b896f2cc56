//! The state shared by every connection: the store, statistics, access tokens, the
//! idempotency table, the rate limiter and the fault settings, all under one lock. Each
//! critical section is short (microseconds), which keeps one lock fast enough for thousands of
//! requests per second on two cores and makes every request's effect atomic.
//!
//! This file owns the lock and the tables it guards; the rules that act on them live in
//! `admission`, `tokens`, `idempotency` and `inspect`, which import this file, never the
//! reverse. Must not touch: HTTP types beyond `Bytes`, or the store's internals.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::body::Bytes;
use tokio::sync::Notify;

use crate::sim::clock::{SimClock, SimTime};
use crate::sim::config::{Faults, SimConfig, SimStats};
use crate::sim::store::Store;

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
            state: Mutex::new(State::new(store, faults)),
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
pub(super) struct IdempotencyEntry {
    pub(super) fingerprint: [u8; 32],
    pub(super) created: SimTime,
    /// `None` while the first request is still being processed.
    pub(super) response: Option<StoredResponse>,
}

pub struct State {
    pub store: Store,
    pub faults: Faults,
    pub stats: SimStats,
    pub(super) arrivals: VecDeque<Instant>,
    pub(super) admitted: VecDeque<Instant>,
    pub(super) penalty_until: Option<Instant>,
    pub(super) tokens: HashMap<String, SimTime>,
    pub(super) idempotency: HashMap<String, IdempotencyEntry>,
    pub(super) idempotency_order: VecDeque<(SimTime, String)>,
}

impl State {
    fn new(store: Store, faults: Faults) -> State {
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

    pub fn record_status(&mut self, status: u16) {
        *self.stats.responses_by_status.entry(status).or_insert(0) += 1;
    }
}

/// A state over an empty store, for the unit tests of the files that act on `State`.
#[cfg(test)]
pub(super) fn test_state(faults: Faults) -> State {
    use crate::sim::store::{Account, StoreConfig};
    use rand::SeedableRng;
    use std::time::Duration;
    use uuid::Uuid;

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
    State::new(store, faults)
}
