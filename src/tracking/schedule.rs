//! Time arithmetic for tracking, pure: banking days (crate::calendar) for the returns window, the poll times an
//! observation stores, and the duration syntax of the command line (`500ms`, `10s`, `5m`,
//! `2h`, `1d`).

use std::time::Duration;

use time::OffsetDateTime;

use super::TrackConfig;
use crate::calendar::BankCalendar;
use crate::ledger::{self, PollTimes};

/// `at` plus `n` banking days of `calendar` (weekends, the Fed's holidays and configured
/// closures skipped), keeping the time of day.
pub fn add_banking_days(at: OffsetDateTime, n: u32, calendar: &BankCalendar) -> OffsetDateTime {
    let date = calendar.add_banking_days(at.date(), n);
    at.replace_date(date)
}

/// The instants an observation made at `now` stores.
pub fn poll_times(now: OffsetDateTime, config: &TrackConfig) -> PollTimes {
    PollTimes {
        now: ledger::timestamp(now),
        next_unsettled: ledger::timestamp(now + config.poll_unsettled_every),
        next_processed: ledger::timestamp(now + config.poll_processed_every),
        watch_until: ledger::timestamp(add_banking_days(
            now,
            config.returns_window_banking_days,
            &config.calendar,
        )),
    }
}

/// Parses `250ms`, `30s`, `10m`, `2h`, `5d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 30s, 10m or 2h"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        other => {
            return Err(format!(
                "{other:?} is not a duration unit (ms, s, m, h or d)"
            ));
        }
    };
    if !(0.0..=10.0 * 365.0 * 86_400.0).contains(&seconds) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a ledger timestamp back into an instant.
pub fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn banking_days_skip_weekends_and_holidays() {
        let fed = BankCalendar::federal_reserve();
        // Friday noon + 5 banking days = the Monday after next (Thanksgiving, 26th, is skipped).
        let friday = datetime!(2026-11-20 12:00 UTC);
        assert_eq!(
            add_banking_days(friday, 5, &fed),
            datetime!(2026-11-30 12:00 UTC)
        );
        // Friday + 1 = Monday.
        assert_eq!(
            add_banking_days(friday, 1, &fed),
            datetime!(2026-11-23 12:00 UTC)
        );
        // Saturday + 1 = Monday.
        assert_eq!(
            add_banking_days(datetime!(2026-11-21 09:00 UTC), 1, &fed),
            datetime!(2026-11-23 09:00 UTC)
        );
        assert_eq!(add_banking_days(friday, 0, &fed), friday);
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("ten minutes").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn timestamps_round_trip() {
        let at = datetime!(2026-11-20 21:24:21.123 UTC);
        assert_eq!(parse_timestamp(&ledger::timestamp(at)), Some(at));
    }
}
