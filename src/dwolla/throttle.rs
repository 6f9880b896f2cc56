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
//! # 429: pause when told, cut the rate when overloaded, recover additively (AIMD)
//!
//! Dwolla's limit is per application, so a 429 may be caused by another process of the same
//! application and says little on its own; a run of them says the application is over its
//! limit. The throttle therefore keeps a *strike* score: each 429 adds one, each other
//! response takes off 0.1 (so a background of 429s below about 9 % of responses never builds
//! up), and when the score reaches 3 the throttle acts as if Dwolla had said "slow down":
//!
//! - **Retry-After** is always honoured: every start waits until it has passed (at most
//!   15 minutes), and the rate is cut as below.
//! - **A cut**: all starts pause briefly (250 ms, doubling with each further cut before the
//!   rate is back at R, at most 30 s), and the rate is halved (never below R / 20, at least
//!   1/s).
//! - **Recovery**: each clean second (a whole second after the pause without another cut)
//!   adds R / 10 to the rate, until it is back at R: 5 s from a single halving.
//!
//! A 429 for a request that started before the last cut was answered to the old rate: it adds
//! no strike and cannot cut again (it may only lengthen the pause to its own Retry-After).
//! The rate only spaces starts further apart; the log above still caps every second at R.

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
    /// The shared pause of a cut without `Retry-After`; it doubles with each further cut
    /// until the rate is back at R...
    pub first_pause: Duration,
    /// ...up to this.
    pub max_pause: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
    /// Strikes taken off by each response that is not a 429.
    pub strike_decay: f64,
    /// Strikes that cut the rate.
    pub strikes_to_cut: f64,
    /// A cut multiplies the rate by this...
    pub cut_factor: f64,
    /// ...but never below this fraction of R.
    pub min_rate_fraction: f64,
    /// Each clean second adds this fraction of R back.
    pub recovery_per_second: f64,
}

impl ThrottleConfig {
    pub fn new(rate_per_second: u32, max_in_flight: usize) -> ThrottleConfig {
        ThrottleConfig {
            rate_per_second,
            max_in_flight,
            jitter_allowance: Duration::from_millis(25),
            first_pause: Duration::from_millis(250),
            max_pause: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(15 * 60),
            strike_decay: 0.1,
            strikes_to_cut: 3.0,
            cut_factor: 0.5,
            min_rate_fraction: 0.05,
            recovery_per_second: 0.1,
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
    /// Shared pauses: one per cut, and one per `Retry-After` that lengthened a pause.
    pub cool_downs: u64,
    /// Multiplicative cuts of the rate.
    pub rate_cuts: u64,
    /// Starts per second allowed right now: 0 while paused, less than full while recovering.
    pub effective_rate: f64,
    pub in_flight: usize,
    /// How much longer the current pause lasts.
    pub paused_for: Option<Duration>,
    /// All the time every start was held by pauses, so far.
    pub paused_total: Duration,
}

/// Held while a request is in flight; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    _in_flight: OwnedSemaphorePermit,
    started_at: Instant,
}

impl Permit {
    /// When the request was let through: pass it to [`Throttle::note_answered`].
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
    congestion: SyncMutex<Congestion>,
    requests_started: AtomicU64,
    rate_limited: AtomicU64,
    fleet: SyncMutex<FleetPace>,
}

/// This process's part of an application-wide limit shared by several workers (a PostgreSQL
/// ledger's fleet): `1 / workers` of R, times the lowest rate factor among them.
#[derive(Debug, Clone, Copy)]
struct FleetPace {
    workers: u32,
    factor: f64,
}

impl Default for FleetPace {
    fn default() -> FleetPace {
        FleetPace {
            workers: 1,
            factor: 1.0,
        }
    }
}

/// What the caller holding the gate needs.
#[derive(Debug, Default)]
struct Gate {
    /// The last R starts, oldest first.
    recent_starts: VecDeque<Instant>,
}

/// The AIMD state. The rate is computed lazily from the last cut: `cut_to` plus one step per
/// whole second since `recovering_from`.
#[derive(Debug, Default)]
struct Congestion {
    strikes: f64,
    /// The end of the current (or last) pause.
    paused_until: Option<Instant>,
    /// When the last cut happened: 429s for requests started before it are old news.
    last_cut: Option<Instant>,
    /// The rate right after the last cut, and when its recovery starts.
    cut_to: f64,
    recovering_from: Option<Instant>,
    /// Cuts since the rate was last back at R: the next pause doubles with each.
    cuts_in_a_row: u32,
    rate_cuts: u64,
    cool_downs: u64,
    paused_total: Duration,
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
            congestion: SyncMutex::new(Congestion::default()),
            requests_started: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            fleet: SyncMutex::new(FleetPace::default()),
            config,
        }
    }

    /// Shares the rate with other workers of the same application: from now on this throttle
    /// starts at most `R / workers` requests in any window (and paces them at that rate, times
    /// `factor`, the slowest worker's congestion factor).
    pub fn set_fleet_share(&self, workers: u32, factor: f64) {
        let mut fleet = self.fleet.lock().expect("fleet lock");
        *fleet = FleetPace {
            workers: workers.max(1),
            factor: factor.clamp(0.01, 1.0),
        };
    }

    /// This throttle's own congestion: its AIMD rate as a fraction of R (1 when clean), for
    /// the other workers to follow.
    pub fn congestion_factor(&self) -> f64 {
        let state = self.congestion.lock().expect("congestion lock");
        self.current_rate(&state, Instant::now()) / self.full_rate()
    }

    /// Starts this process may make in one window: all of R alone, its share in a fleet.
    fn window_cap(&self) -> usize {
        let workers = self.fleet.lock().expect("fleet lock").workers;
        (self.config.rate_per_second.max(1) / workers).max(1) as usize
    }

    /// The pace the fleet allows this process, in starts per second.
    fn fleet_rate(&self) -> f64 {
        let fleet = *self.fleet.lock().expect("fleet lock");
        self.full_rate() * fleet.factor / f64::from(fleet.workers)
    }

    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// Waits for a slot in flight, then for the rate, any pause and the AIMD rate to allow a
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
            let (paused_until, reduced) = self.pace(now);
            if let Some(until) = paused_until {
                tokio::time::sleep_until(until).await;
                continue;
            }
            if let (Some(reduced), Some(&last)) = (reduced, gate.recent_starts.back()) {
                let next = last + Duration::from_secs_f64(1.0 / reduced);
                if now < next {
                    tokio::time::sleep_until(next).await;
                    continue;
                }
            }
            let cap = self.window_cap();
            if gate.recent_starts.len() >= cap {
                let free_at =
                    gate.recent_starts[gate.recent_starts.len() - cap] + self.config.window();
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

    /// Reports an answer other than 429 for a request: strikes decay with every one.
    pub fn note_answered(&self) {
        let mut state = self.congestion.lock().expect("congestion lock");
        state.strikes = (state.strikes - self.config.strike_decay).max(0.0);
    }

    /// Reports a 429 for a request that started at `started_at`.
    pub fn note_rate_limited(&self, started_at: Instant, retry_after: Option<Duration>) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut state = self.congestion.lock().expect("congestion lock");
        let retry_after = retry_after.map(|after| after.min(self.config.max_retry_after));
        let old_news = state.last_cut.is_some_and(|cut| started_at < cut);
        if old_news {
            if let Some(after) = retry_after {
                let until = self.pause_until(&mut state, now, now + after);
                if state.recovering_from.is_some_and(|from| from < until) {
                    state.recovering_from = Some(until);
                }
            }
            return;
        }
        state.strikes += 1.0;
        if retry_after.is_none() && state.strikes < self.config.strikes_to_cut {
            return;
        }
        let pause = retry_after.unwrap_or_else(|| {
            let doublings = state.cuts_in_a_row.min(16);
            (self.config.first_pause * 2u32.pow(doublings)).min(self.config.max_pause)
        });
        let current = self.current_rate(&state, now);
        let floor = (self.full_rate() * self.config.min_rate_fraction).max(1.0);
        state.cut_to = (current * self.config.cut_factor).max(floor);
        state.strikes = 0.0;
        state.last_cut = Some(now);
        state.cuts_in_a_row += 1;
        state.rate_cuts += 1;
        let until = self.pause_until(&mut state, now, now + pause);
        state.recovering_from = Some(until);
        tracing::warn!(
            pause_ms = pause.as_millis() as u64,
            rate = state.cut_to,
            retry_after = retry_after.is_some(),
            "Dwolla answered 429; pausing every request and cutting the rate"
        );
    }

    /// Extends the shared pause to `until` (never shortens it); returns its end.
    fn pause_until(&self, state: &mut Congestion, now: Instant, until: Instant) -> Instant {
        let current = state.paused_until.filter(|&end| end > now);
        match current {
            Some(end) if end >= until => end,
            _ => {
                state.paused_total += until - current.unwrap_or(now);
                state.cool_downs += 1;
                state.paused_until = Some(until);
                until
            }
        }
    }

    pub fn stats(&self) -> ThrottleStats {
        let now = Instant::now();
        let (paused_until, reduced) = self.pace(now);
        let in_flight = self.config.max_in_flight.max(1) - self.in_flight.available_permits();
        let state = self.congestion.lock().expect("congestion lock");
        ThrottleStats {
            requests_started: self.requests_started.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            cool_downs: state.cool_downs,
            rate_cuts: state.rate_cuts,
            effective_rate: match (paused_until, reduced) {
                (Some(_), _) => 0.0,
                (None, Some(rate)) => rate,
                (None, None) => self.full_rate(),
            },
            in_flight,
            paused_for: paused_until.map(|until| until - now),
            // Only the part of the current pause that has passed.
            paused_total: state.paused_total - paused_until.map_or(Duration::ZERO, |u| u - now),
        }
    }

    fn full_rate(&self) -> f64 {
        self.config.effective_rate()
    }

    /// `(Some(until), _)` while paused; else the reduced rate, if the rate is below full.
    fn pace(&self, now: Instant) -> (Option<Instant>, Option<f64>) {
        let mut state = self.congestion.lock().expect("congestion lock");
        if let Some(until) = state.paused_until
            && now < until
        {
            return (Some(until), None);
        }
        let rate = self.current_rate(&state, now);
        if rate >= self.full_rate() {
            state.cuts_in_a_row = 0;
        }
        let rate = rate.min(self.fleet_rate());
        if rate >= self.full_rate() {
            return (None, None);
        }
        (None, Some(rate))
    }

    /// The AIMD rate at `now`: the last cut plus one step per clean second since.
    fn current_rate(&self, state: &Congestion, now: Instant) -> f64 {
        let full = self.full_rate();
        let Some(from) = state.recovering_from else {
            return full;
        };
        let clean_seconds = now.saturating_duration_since(from).as_secs() as f64;
        let step = full * self.config.recovery_per_second;
        (state.cut_to + step * clean_seconds).min(full)
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

    /// A fleet of four shares R = 100: this worker's window holds at most 25 starts, its pace
    /// is near 25/s, and a slower worker's factor slows it further; alone again, it is back
    /// at full rate.
    #[tokio::test(start_paused = true)]
    async fn a_fleet_share_caps_every_window_at_r_over_the_workers() {
        let throttle = Throttle::new(ThrottleConfig::new(100, 8));
        throttle.set_fleet_share(4, 1.0);
        let started = Instant::now();
        let starts = run_flat_out(&throttle, 100).await;
        let window = Duration::from_millis(1025);
        assert!(most_in_any_window(&starts, window) <= 25);
        let pace = 100.0 / (Instant::now() - started).as_secs_f64();
        assert!((22.0..=26.0).contains(&pace), "{pace}/s");

        throttle.set_fleet_share(4, 0.5);
        let started = Instant::now();
        run_flat_out(&throttle, 50).await;
        let pace = 50.0 / (Instant::now() - started).as_secs_f64();
        assert!(
            (11.0..=13.5).contains(&pace),
            "{pace}/s with the fleet at half rate"
        );
        assert!(
            (throttle.congestion_factor() - 1.0).abs() < 1e-9,
            "its own rate is clean"
        );

        throttle.set_fleet_share(1, 1.0);
        tokio::time::advance(window).await;
        let started = Instant::now();
        run_flat_out(&throttle, 90).await;
        assert!(
            Instant::now() - started < Duration::from_secs(1),
            "full rate alone"
        );
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

    /// Starts per second between consecutive starts.
    fn gap_rate(starts: &[Instant]) -> f64 {
        1.0 / (starts[1] - starts[0]).as_secs_f64()
    }

    /// Within what tokio's timer can do: it wakes on whole milliseconds, rounding a sleep of
    /// 20.5 ms up to 21 ms, so a paced rate lands up to one millisecond's worth below.
    fn is_about(rate: f64, expected: f64) -> bool {
        let slowest = 1.0 / (1.0 / expected + 0.001);
        rate <= expected + 0.1 && rate >= slowest - 0.1
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_every_start_then_the_rate_halves_and_recovers_each_clean_second() {
        let throttle = Throttle::new(ThrottleConfig::new(100, 8));
        let first = throttle.acquire().await;
        throttle.note_rate_limited(first.started_at(), Some(Duration::from_secs(2)));
        let stats = throttle.stats();
        assert_eq!(stats.effective_rate, 0.0);
        assert_eq!((stats.cool_downs, stats.rate_cuts), (1, 1));
        drop(first);
        let noted = Instant::now();
        let starts = run_flat_out(&throttle, 10).await;
        assert!(starts[0] - noted >= Duration::from_secs(2));
        assert!(starts[0] - noted < Duration::from_millis(2_020));
        // Half of 97.6/s: about 20.5 ms apart, not 10 ms.
        let rate = gap_rate(&starts);
        assert!(is_about(rate, 48.8), "{rate}");
        assert_eq!(throttle.stats().paused_total, Duration::from_secs(2));
        // R / 10 back per clean second: 5 s from half to full.
        tokio::time::sleep_until(noted + Duration::from_millis(3_500)).await;
        let rate = throttle.stats().effective_rate;
        assert!((rate - 58.6).abs() < 0.1, "{rate}");
        tokio::time::sleep_until(noted + Duration::from_secs(7)).await;
        assert!((throttle.stats().effective_rate - 97.6).abs() < 0.1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_background_of_isolated_429s_neither_pauses_nor_cuts() {
        let throttle = Throttle::new(ThrottleConfig::new(100, 8));
        let begin = Instant::now();
        for i in 0..1000 {
            let permit = throttle.acquire().await;
            // 4 % of answers are 429s, one in 25: strikes decay faster than they come.
            if i % 25 == 24 {
                throttle.note_rate_limited(permit.started_at(), None);
            } else {
                throttle.note_answered();
            }
        }
        let stats = throttle.stats();
        assert_eq!(
            (stats.rate_limited, stats.rate_cuts, stats.cool_downs),
            (40, 0, 0)
        );
        let achieved = 999.0 / (Instant::now() - begin).as_secs_f64();
        assert!(achieved > 0.97 * 100.0, "{achieved}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_of_429s_pauses_briefly_and_halves_the_rate_and_a_further_run_doubles_the_pause()
    {
        let throttle = Throttle::new(ThrottleConfig::new(100, 8));
        for (pause_ms, rate) in [(250u64, 48.8), (500, 24.4)] {
            let mut noted = Instant::now();
            for strike in 0..3 {
                let permit = throttle.acquire().await;
                noted = Instant::now();
                throttle.note_rate_limited(permit.started_at(), None);
                let cut = throttle.stats().paused_for.is_some();
                assert_eq!(cut, strike == 2, "strike {strike}");
            }
            let starts = run_flat_out(&throttle, 2).await;
            assert_eq!(starts[0] - noted, Duration::from_millis(pause_ms));
            let achieved = gap_rate(&starts);
            assert!(is_about(achieved, rate), "{achieved} for {rate}");
        }
        let stats = throttle.stats();
        assert_eq!((stats.rate_cuts, stats.cool_downs), (2, 2));
        assert_eq!(stats.paused_total, Duration::from_millis(750));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limits_for_requests_sent_before_the_cut_do_not_cut_again() {
        let throttle = Throttle::new(ThrottleConfig::new(100, 8));
        let mut earlier = Vec::new();
        for _ in 0..8 {
            earlier.push(throttle.acquire().await);
        }
        let noted = Instant::now();
        for permit in &earlier {
            throttle.note_rate_limited(permit.started_at(), None);
        }
        drop(earlier);
        let next = throttle.acquire().await;
        assert_eq!(next.started_at() - noted, Duration::from_millis(250));
        let stats = throttle.stats();
        assert_eq!((stats.rate_limited, stats.rate_cuts), (8, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn cuts_and_recoveries_never_push_a_window_past_r() {
        let rate = 100;
        let throttle = Throttle::new(ThrottleConfig::new(rate, 8));
        let mut starts = Vec::new();
        for i in 0..3000u32 {
            let permit = throttle.acquire().await;
            starts.push(permit.started_at());
            if i % 400 < 3 {
                throttle.note_rate_limited(permit.started_at(), None);
            } else {
                throttle.note_answered();
            }
        }
        assert!(throttle.stats().rate_cuts >= 5);
        assert!(most_in_any_window(&starts, Duration::from_secs(1)) <= rate as usize);
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
