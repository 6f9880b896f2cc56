//! The one clock of a command: the wall clock, or one shifted to an injected start for tests
//! (`PAYRUN_NOW`, read once by the command line). Library code that decides anything by the
//! date takes `now` from here (or as an argument), never from the system directly.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The environment variable that injects "now" (RFC 3339, e.g. `2026-12-02T15:00:00Z`). The
/// clock starts there and runs at the wall clock's pace. For tests and rehearsals.
pub const NOW_ENV: &str = "PAYRUN_NOW";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Added to the wall clock: zero unless "now" was injected.
    shift: time::Duration,
}

impl Clock {
    pub fn wall() -> Clock {
        Clock {
            shift: time::Duration::ZERO,
        }
    }

    /// A clock that reads `start` now and runs on from there.
    pub fn starting_at(start: OffsetDateTime) -> Clock {
        Clock {
            shift: start - OffsetDateTime::now_utc(),
        }
    }

    /// The wall clock, or the injected one when `value` (of [`NOW_ENV`]) is set.
    pub fn from_env_value(value: Option<&str>) -> Result<Clock, String> {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(Clock::wall()),
            Some(text) => OffsetDateTime::parse(text, &Rfc3339)
                .map(Clock::starting_at)
                .map_err(|_| {
                    format!(
                        "{NOW_ENV}={text:?} is not an RFC 3339 time such as 2026-12-02T15:00:00Z"
                    )
                }),
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.shift
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::wall()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_injected_clock_starts_where_it_is_told() {
        let clock = Clock::from_env_value(Some("2026-12-02T15:00:00Z")).unwrap();
        let now = clock.now();
        assert_eq!(now.date(), time::macros::date!(2026 - 12 - 02));
        assert_eq!(now.hour(), 15);
        assert!(Clock::from_env_value(Some("Wednesday")).is_err());
        assert_eq!(Clock::from_env_value(None).unwrap(), Clock::wall());
    }
}
