//! The one gate for everything sent to Dwolla, token requests included: a GCRA rate limiter
//! (governor), a cap on requests in flight, and a shared cool-down after any 429.
//!
//! # The promise: never more than R request starts in any sliding second
//!
//! Two mechanisms, one for the promise and one for the shape of the flow:
//!
//! - **A log of the last R starts** enforces the promise exactly: a start is admitted only if it
//!   comes at least `W = 1 s + m` after the start R places before it. So any R + 1 starts span
//!   at least `W`, and as long as the delay between a start and its arrival at Dwolla differs
//!   between two requests by less than `m` (the *jitter allowance*, 25 ms by default), their
//!   arrivals span more than one second: no sliding second at Dwolla sees more than R.
//! - **governor's GCRA**, 10 % faster than `R / W` with a small burst `b` (about 2 % of R, at
//!   least 3), spreads those starts evenly instead of letting the log release R at once after
//!   an idle spell. Alone, GCRA with burst `b` would let `R + b − 1` starts into some window
//!   (the pitfall in the engineering notes); the log trims that. Being a little faster than the
//!   log, it lets the throttle catch up after a late wake-up (tokio's 1 ms timer, a busy CPU)
//!   instead of losing that time.
//!
//! Every other gate (the cool-down, the ramp, requests in flight) only postpones starts, so
//! none can break the promise; nor can tokio waking us late, since the log compares actual
//! start instants. Throughput in steady state is `R / W`: 97.6 % of R, for any R.
//!
//! Why m = 25 ms: with a loopback server and three busy loops competing for two cores, 10 ms
//! and 20 ms of allowance were exceeded now and then (51 arrivals in one second at R = 50);
//! 25 ms held in every run.
//!
//! # Requests in flight
//!
//! A semaphore of `max_in_flight` permits is taken *before* the rate slot, and the start is
//! recorded only once both are held, so the recorded start is when the request leaves.
//! Waiting for a rate slot is serialized through a fair mutex: at any time one caller waits on
//! the timer, the rest queue in FIFO order behind it (a dispatcher without a dispatcher task).
//!
//! # 429: one cool-down for everyone
//!
//! Any 429 pauses all new starts: for `Retry-After` when Dwolla sends it, else for 1 s, doubling
//! with each further 429 (up to 60 s) until 60 s pass without one. A 429 for a request that
//! started before the current pause began is part of the same storm and does not lengthen the
//! pause further than its own `Retry-After`. After the pause the rate ramps linearly from 25 %
//! to 100 % over 4 s.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How the throttle behaves. [`ThrottleConfig::new`] fills in the documented defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct ThrottleConfig {
    /// R: never more than this many request starts in any sliding second.
    pub rate_per_second: u32,
    pub max_in_flight: usize,
    /// How much the delay between a request's start and its arrival at Dwolla may vary
    /// between two requests without breaking the promise (the `m` above).
    pub jitter_allowance: Duration,
    /// The pause after a 429 without `Retry-After`; it doubles with each further 429.
    pub first_cool_down: Duration,
    pub max_cool_down: Duration,
    /// Without a 429 for this long, the next 429 starts again from `first_cool_down`.
    pub strike_memory: Duration,
    /// After a pause the rate restarts at this fraction of the full rate...
    pub ramp_floor: f64,
    /// ...and reaches the full rate after this long.
    pub ramp_duration: Duration,
}

impl ThrottleConfig {
    pub fn new(rate_per_second: u32, max_in_flight: usize) -> ThrottleConfig {
        ThrottleConfig {
            rate_per_second,
            max_in_flight,
            jitter_allowance: Duration::from_millis(25),
            first_cool_down: Duration::from_secs(1),
            max_cool_down: Duration::from_secs(60),
            strike_memory: Duration::from_secs(60),
            ramp_floor: 0.25,
            ramp_duration: Duration::from_secs(4),
        }
    }

    /// The GCRA burst `b` for this rate: about 2 % of R, at least 3 (at most R).
    pub fn burst(&self) -> u32 {
        let rate = self.rate_per_second.max(1);
        rate.div_ceil(50).max(3).min(rate)
    }

    /// `W = 1 s + m`: no window this long holds more than R starts.
    pub fn window(&self) -> Duration {
        Duration::from_secs(1) + self.jitter_allowance
    }

    /// The GCRA emission interval, `W / (1.1 R)`: 10 % faster than the log allows, so that
    /// the log sets the pace and GCRA only smooths it and catches up after a late wake-up.
    pub fn emission_interval(&self) -> Duration {
        let rate = u128::from(self.rate_per_second.max(1)) * 11;
        Duration::from_nanos((self.window().as_nanos() * 10).div_ceil(rate) as u64)
    }

    /// Starts per second in steady state, `R / W`, when nothing else holds the throttle back.
    pub fn effective_rate(&self) -> f64 {
        f64::from(self.rate_per_second.max(1)) / self.window().as_secs_f64()
    }
}

/// Counters for a progress display.
#[derive(Clone, Debug, PartialEq)]
pub struct ThrottleStats {
    pub requests_started: u64,
    pub rate_limited: u64,
    pub cool_downs: u64,
    /// Starts per second allowed right now: 0 while paused, less than full while ramping up.
    pub effective_rate: f64,
    pub in_flight: usize,
    /// How much longer the current cool-down lasts.
    pub paused_for: Option<Duration>,
}

/// Held while a request is in flight; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    _in_flight: OwnedSemaphorePermit,
    started_at: Instant,
}

impl Permit {
    /// When the request was let through: pass it to [`Throttle::note_rate_limited`].
    pub fn started_at(&self) -> Instant {
        self.started_at
    }
}

pub struct Throttle {
    config: ThrottleConfig,
    limiter: RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<std::time::Instant>>,
    clock: TokioClock,
    in_flight: Arc<Semaphore>,
    /// Serializes waiting for a rate slot.
    gate: Mutex<Gate>,
    cool_down: SyncMutex<CoolDown>,
    requests_started: AtomicU64,
    rate_limited: AtomicU64,
}

/// What the caller holding the gate needs.
#[derive(Debug, Default)]
struct Gate {
    /// The last R starts, oldest first.
    recent_starts: VecDeque<Instant>,
}

#[derive(Debug, Default)]
struct CoolDown {
    /// The end of the current (or last) pause.
    until: Option<Instant>,
    strikes: u32,
    last_429: Option<Instant>,
    cool_downs: u64,
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Throttle {
        let clock = TokioClock;
        let quota = Quota::with_period(config.emission_interval())
            .expect("the emission interval is never zero")
            .allow_burst(NonZeroU32::new(config.burst()).expect("the burst is at least 1"));
        Throttle {
            limiter: RateLimiter::direct_with_clock(quota, clock),
            clock,
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            gate: Mutex::new(Gate::default()),
            cool_down: SyncMutex::new(CoolDown::default()),
            requests_started: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            config,
        }
    }

    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// Waits for a slot in flight, then for the rate, the cool-down and the ramp to allow a
    /// start. Send the request as soon as this returns; hold the permit until the response has
    /// been read.
    pub async fn acquire(&self) -> Permit {
        let in_flight = Arc::clone(&self.in_flight)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut gate = self.gate.lock().await;
        let rate = self.config.rate_per_second.max(1) as usize;
        loop {
            let now = Instant::now();
            let (paused_until, ramp) = self.pause_and_ramp(now);
            if let Some(until) = paused_until {
                tokio::time::sleep_until(until).await;
                continue;
            }
            if let (Some(ramp_rate), Some(&last)) = (ramp, gate.recent_starts.back()) {
                let next = last + Duration::from_secs_f64(1.0 / ramp_rate);
                if now < next {
                    tokio::time::sleep_until(next).await;
                    continue;
                }
            }
            if gate.recent_starts.len() == rate {
                let free_at = gate.recent_starts[0] + self.config.window();
                if now < free_at {
                    tokio::time::sleep_until(free_at).await;
                    continue;
                }
            }
            // Last, because a successful check consumes GCRA capacity.
            match self.limiter.check() {
                Ok(()) => {
                    if gate.recent_starts.len() == rate {
                        gate.recent_starts.pop_front();
                    }
                    gate.recent_starts.push_back(now);
                    self.requests_started.fetch_add(1, Ordering::Relaxed);
                    return Permit {
                        _in_flight: in_flight,
                        started_at: now,
                    };
                }
                Err(not_until) => {
                    tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await;
                }
            }
        }
    }

    /// Reports a 429 for a request that started at `started_at`. Pauses every new start.
    pub fn note_rate_limited(&self, started_at: Instant, retry_after: Option<Duration>) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut cool = self.cool_down.lock().expect("cool-down lock");
        // Nothing starts during a pause, so a request that started before the pause ended
        // started before it began: its 429 is old news about the same storm.
        let same_storm = cool.until.is_some_and(|until| started_at < until);
        let retry_after = retry_after.map(|after| after.min(Duration::from_secs(15 * 60)));
        if same_storm {
            if let Some(after) = retry_after {
                let until = now + after;
                if cool.until.is_none_or(|current| current < until) {
                    cool.until = Some(until);
                }
            }
            cool.last_429 = Some(now);
            return;
        }
        let remembered = cool
            .last_429
            .is_some_and(|last| now.duration_since(last) < self.config.strike_memory);
        cool.strikes = if remembered { cool.strikes + 1 } else { 1 };
        cool.last_429 = Some(now);
        cool.cool_downs += 1;
        let pause = retry_after.unwrap_or_else(|| {
            let doublings = (cool.strikes - 1).min(16);
            (self.config.first_cool_down * 2u32.pow(doublings)).min(self.config.max_cool_down)
        });
        cool.until = Some(now + pause);
        tracing::warn!(
            pause_ms = pause.as_millis() as u64,
            strikes = cool.strikes,
            "Dwolla answered 429; pausing every request"
        );
    }

    pub fn stats(&self) -> ThrottleStats {
        let now = Instant::now();
        let (paused_until, ramp) = self.pause_and_ramp(now);
        let in_flight = self.config.max_in_flight.max(1) - self.in_flight.available_permits();
        let cool_downs = self.cool_down.lock().expect("cool-down lock").cool_downs;
        ThrottleStats {
            requests_started: self.requests_started.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            cool_downs,
            effective_rate: match (paused_until, ramp) {
                (Some(_), _) => 0.0,
                (None, Some(rate)) => rate,
                (None, None) => self.config.effective_rate(),
            },
            in_flight,
            paused_for: paused_until.map(|until| until - now),
        }
    }

    /// `(Some(until), _)` while paused; else the ramp's current rate, if ramping.
    fn pause_and_ramp(&self, now: Instant) -> (Option<Instant>, Option<f64>) {
        let cool = self.cool_down.lock().expect("cool-down lock");
        let Some(until) = cool.until else {
            return (None, None);
        };
        if now < until {
            return (Some(until), None);
        }
        let ramp = &self.config.ramp_duration;
        let into_ramp = now.duration_since(until);
        if into_ramp >= *ramp {
            return (None, None);
        }
        let fraction = self.config.ramp_floor
            + (1.0 - self.config.ramp_floor) * into_ramp.as_secs_f64() / ramp.as_secs_f64();
        (None, Some(self.config.effective_rate() * fraction))
    }
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

/// governor's clock, read from tokio's clock so that governor and our sleeps agree, and so
/// that tests can run on paused (virtual) time.
#[derive(Clone, Copy, Debug, Default)]
struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most starts in any half-open window `[t, t + width)`.
    fn most_in_any_window(starts: &[Instant], width: Duration) -> usize {
        let mut sorted = starts.to_vec();
        sorted.sort();
        let mut most = 0;
        let mut first = 0;
        for last in 0..sorted.len() {
            while sorted[last] - sorted[first] >= width {
                first += 1;
            }
            most = most.max(last - first + 1);
        }
        most
    }

    async fn run_flat_out(throttle: &Throttle, n_starts: usize) -> Vec<Instant> {
        let mut starts = Vec::with_capacity(n_starts);
        for _ in 0..n_starts {
            starts.push(throttle.acquire().await.started_at());
        }
        starts
    }

    #[test]
    fn the_quota_is_r_per_window_with_a_small_burst() {
        let config = ThrottleConfig::new(50, 10);
        assert_eq!(config.burst(), 3);
        assert_eq!(config.window(), Duration::from_millis(1025));
        assert!((config.effective_rate() - 50.0 / 1.025).abs() < 1e-3);
        assert_eq!(ThrottleConfig::new(1, 1).burst(), 1);
        assert_eq!(ThrottleConfig::new(200, 1).burst(), 4);
        assert_eq!(ThrottleConfig::new(1000, 1).burst(), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn callers_that_come_and_go_never_push_a_window_past_r() {
        // Idle gaps let GCRA's burst refill and tokio wake us late; the log still holds.
        let rate = 100;
        let throttle = Throttle::new(ThrottleConfig::new(rate, 4));
        let mut starts = Vec::new();
        let mut seed = 7u64;
        for _ in 0..1500 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if seed >> 60 == 0 {
                tokio::time::advance(Duration::from_millis(seed >> 56 & 0x3f)).await;
            }
            starts.push(throttle.acquire().await.started_at());
        }
        assert!(most_in_any_window(&starts, Duration::from_millis(1025)) <= rate as usize);
    }

    #[tokio::test(start_paused = true)]
    async fn no_sliding_second_sees_more_than_r_starts_and_throughput_stays_near_r() {
        for (rate, seconds) in [(20u32, 5u32), (50, 5), (200, 5), (1000, 3)] {
            let throttle = Throttle::new(ThrottleConfig::new(rate, 4));
            let begin = Instant::now();
            let starts = run_flat_out(&throttle, (rate * seconds) as usize).await;
            let elapsed = starts.last().unwrap().duration_since(begin).as_secs_f64();
            let most = most_in_any_window(&starts, Duration::from_secs(1));
            assert!(
                most <= rate as usize,
                "R={rate}: {most} starts in one second"
            );
            // With the jitter allowance, even windows of 1 s + m hold at most R.
            let most = most_in_any_window(&starts, Duration::from_millis(1025));
            assert!(most <= rate as usize, "R={rate}: {most} in 1.025 s");
            let achieved = (starts.len() - 1) as f64 / elapsed;
            assert!(
                achieved >= 0.975 * rate as f64,
                "R={rate}: only {achieved:.1}/s"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_every_start_for_retry_after_then_ramps_up() {
        let throttle = Throttle::new(ThrottleConfig::new(100, 8));
        let first = throttle.acquire().await;
        throttle.note_rate_limited(first.started_at(), Some(Duration::from_secs(2)));
        let stats = throttle.stats();
        assert_eq!(stats.effective_rate, 0.0);
        assert_eq!(stats.cool_downs, 1);
        drop(first);
        let noted = Instant::now();
        let starts = run_flat_out(&throttle, 10).await;
        assert!(starts[0] - noted >= Duration::from_secs(2));
        assert!(starts[0] - noted < Duration::from_millis(2_020));
        // Ramping from 25 % of 97.6/s: about 40 ms apart at first, not 10 ms.
        let gap = starts[1] - starts[0];
        assert!(gap >= Duration::from_millis(39), "{gap:?}");
        let ramp_rate = throttle.stats().effective_rate;
        assert!(ramp_rate > 20.0 && ramp_rate < 40.0, "{ramp_rate}");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!((throttle.stats().effective_rate - 97.6).abs() < 0.1);
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_429s_without_retry_after_double_the_pause() {
        let throttle = Throttle::new(ThrottleConfig::new(100, 8));
        for expected_secs in [1u64, 2, 4, 8] {
            let permit = throttle.acquire().await;
            let noted = Instant::now();
            throttle.note_rate_limited(permit.started_at(), None);
            drop(permit);
            let next = throttle.acquire().await;
            let pause = next.started_at() - noted;
            assert!(
                pause >= Duration::from_secs(expected_secs)
                    && pause < Duration::from_secs(expected_secs) + Duration::from_millis(20),
                "expected {expected_secs} s, paused {pause:?}"
            );
        }
        assert_eq!(throttle.stats().cool_downs, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limits_for_requests_sent_before_the_pause_do_not_lengthen_it() {
        let throttle = Throttle::new(ThrottleConfig::new(100, 8));
        let mut earlier = Vec::new();
        for _ in 0..5 {
            earlier.push(throttle.acquire().await);
        }
        let noted = Instant::now();
        for permit in &earlier {
            throttle.note_rate_limited(permit.started_at(), None);
        }
        drop(earlier);
        let next = throttle.acquire().await;
        assert!(next.started_at() - noted < Duration::from_millis(1_020));
        let stats = throttle.stats();
        assert_eq!((stats.rate_limited, stats.cool_downs), (5, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_permits_are_capped() {
        let throttle = Arc::new(Throttle::new(ThrottleConfig::new(1000, 2)));
        let a = throttle.acquire().await;
        let _b = throttle.acquire().await;
        assert_eq!(throttle.stats().in_flight, 2);
        let waiting = tokio::spawn({
            let throttle = Arc::clone(&throttle);
            async move { throttle.acquire().await.started_at() }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished());
        drop(a);
        let started = waiting.await.unwrap();
        assert!(started >= Instant::now() - Duration::from_millis(5));
    }
}
