//! The simulator's own clock: the wall clock at start-up, plus real elapsed time, plus an offset
//! that tests advance (`POST /_sim/advance`, `SimHandle::advance_clock`). Token expiry,
//! idempotency-key expiry, the transfer lifecycle and webhook retries all read this clock, so a
//! test can jump a day ahead without waiting.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use time::macros::format_description;

/// Milliseconds since the Unix epoch, on the simulator's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimTime(pub i64);

impl SimTime {
    pub fn plus(self, by: Duration) -> SimTime {
        SimTime(self.0.saturating_add(duration_ms(by)))
    }

    /// ISO-8601 with milliseconds and `Z`, the form Dwolla uses (`2023-07-17T20:32:55.679Z`).
    pub fn iso(self) -> String {
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&format).ok())
            .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_string())
    }
}

pub fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[derive(Debug)]
pub struct SimClock {
    started: Instant,
    started_wall_ms: i64,
    offset_ms: AtomicI64,
}

impl SimClock {
    pub fn new() -> SimClock {
        let wall = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        SimClock {
            started: Instant::now(),
            started_wall_ms: i64::try_from(wall).unwrap_or(0),
            offset_ms: AtomicI64::new(0),
        }
    }

    pub fn now(&self) -> SimTime {
        let elapsed = duration_ms(self.started.elapsed());
        SimTime(self.started_wall_ms + elapsed + self.offset_ms.load(Ordering::SeqCst))
    }

    pub fn advance(&self, by: Duration) {
        self.offset_ms.fetch_add(duration_ms(by), Ordering::SeqCst);
    }

    /// The real time to wait until the simulator's clock reaches `at` (zero if it already has).
    pub fn real_wait_until(&self, at: SimTime) -> Duration {
        let ms = at.0 - self.now().0;
        Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_dwolla() {
        assert_eq!(SimTime(1_689_626_375_679).iso(), "2023-07-17T20:39:35.679Z");
        assert_eq!(SimTime(0).iso(), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn advancing_moves_now_forward() {
        let clock = SimClock::new();
        let before = clock.now();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now().0 - before.0 >= 3_600_000);
    }
}
