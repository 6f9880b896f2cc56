//! Admission of an API request (the faults family): counting it, the sliding-window rate
//! limit and its penalty, the throttle fault, and the per-request draw of the error, drop,
//! timeout and latency faults.
//!
//! Must not touch: how a refusal is answered (the HTTP pipeline does that) or any resource.

use std::time::{Duration, Instant};

use rand::Rng;

use super::shared::State;

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
}

#[cfg(test)]
mod tests {
    use super::super::shared::test_state as state;
    use super::*;
    use crate::sim::config::Faults;

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
}
