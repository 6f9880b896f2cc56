//! Banking days: weekends and the Federal Reserve's holidays, for any year, plus closure days
//! from the configuration. Pure: no clock, no I/O.
//!
//! The Fed's rule for observed dates (its holiday schedule, frb services): a holiday that falls
//! on a Sunday is observed on the Monday after; one that falls on a Saturday is not moved, so
//! the Friday before is an ordinary banking day. Juneteenth counts from 2021, when it became a
//! federal holiday. No crate was used: `bdays` and `business-days` are built on chrono and
//! jiff, and their US calendars move Saturday holidays to Friday, which the Fed does not.

use std::collections::BTreeSet;

use time::{Date, Duration, Month, Weekday};

/// A bank holiday: its name and the date it is observed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holiday {
    pub name: &'static str,
    pub observed: Date,
}

/// Weekends, the Fed's holidays, and any extra closure days.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BankCalendar {
    extra_closures: BTreeSet<Date>,
}

impl BankCalendar {
    /// The Fed's calendar with no extra closures.
    pub fn federal_reserve() -> BankCalendar {
        BankCalendar::default()
    }

    /// The Fed's calendar plus days the operator's bank is closed (from `[payday] closures`).
    pub fn with_closures(closures: impl IntoIterator<Item = Date>) -> BankCalendar {
        BankCalendar {
            extra_closures: closures.into_iter().collect(),
        }
    }

    /// Why `date` is not a banking day, or `None` when it is one.
    pub fn closed_because(&self, date: Date) -> Option<String> {
        if matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) {
            return Some(format!("a {}", date.weekday()));
        }
        if let Some(holiday) = federal_holiday_on(date) {
            return Some(format!("a bank holiday ({})", holiday.name));
        }
        self.extra_closures
            .contains(&date)
            .then(|| "a closure day in the configuration".to_string())
    }

    pub fn is_banking_day(&self, date: Date) -> bool {
        self.closed_because(date).is_none()
    }

    /// `date` itself when it is a banking day, else the next one.
    pub fn banking_day_at_or_after(&self, date: Date) -> Date {
        let mut day = date;
        while !self.is_banking_day(day) {
            day += Duration::days(1);
        }
        day
    }

    /// `n` banking days after `date` (`date` itself need not be one).
    pub fn add_banking_days(&self, date: Date, n: u32) -> Date {
        self.step_banking_days(date, n, Duration::days(1))
    }

    /// `n` banking days before `date` (`date` itself need not be one).
    pub fn subtract_banking_days(&self, date: Date, n: u32) -> Date {
        self.step_banking_days(date, n, Duration::days(-1))
    }

    fn step_banking_days(&self, date: Date, n: u32, step: Duration) -> Date {
        let mut day = date;
        let mut left = n;
        while left > 0 {
            day += step;
            if self.is_banking_day(day) {
                left -= 1;
            }
        }
        day
    }
}

/// The Fed's holiday observed on `date`, if any.
pub fn federal_holiday_on(date: Date) -> Option<Holiday> {
    // A Sunday 1 January of the next year is observed on 2 January, never in this year, so the
    // year of the date is the only one to look at.
    federal_holidays(date.year())
        .into_iter()
        .find(|holiday| holiday.observed == date)
}

/// The Fed's holidays of `year`, in date order, on their observed dates. Saturday holidays are
/// listed on the Saturday (the Fed publishes them so, and closes no weekday for them).
pub fn federal_holidays(year: i32) -> Vec<Holiday> {
    let fixed = |name, month, day| Holiday {
        name,
        observed: sunday_to_monday(date(year, month, day)),
    };
    let nth = |name, month, weekday, n| Holiday {
        name,
        observed: nth_weekday(year, month, weekday, n),
    };
    let mut holidays = vec![
        fixed("New Year's Day", Month::January, 1),
        nth(
            "Birthday of Martin Luther King, Jr.",
            Month::January,
            Weekday::Monday,
            3,
        ),
        nth("Washington's Birthday", Month::February, Weekday::Monday, 3),
        Holiday {
            name: "Memorial Day",
            observed: last_weekday(year, Month::May, Weekday::Monday),
        },
        fixed("Independence Day", Month::July, 4),
        nth("Labor Day", Month::September, Weekday::Monday, 1),
        nth("Columbus Day", Month::October, Weekday::Monday, 2),
        fixed("Veterans Day", Month::November, 11),
        nth("Thanksgiving Day", Month::November, Weekday::Thursday, 4),
        fixed("Christmas Day", Month::December, 25),
    ];
    if year >= 2021 {
        holidays.push(fixed(
            "Juneteenth National Independence Day",
            Month::June,
            19,
        ));
    }
    holidays.sort_by_key(|holiday| holiday.observed);
    holidays
}

fn date(year: i32, month: Month, day: u8) -> Date {
    Date::from_calendar_date(year, month, day).expect("a fixed holiday date exists every year")
}

fn sunday_to_monday(day: Date) -> Date {
    if day.weekday() == Weekday::Sunday {
        day + Duration::days(1)
    } else {
        day
    }
}

/// The `n`th `weekday` of the month (1 = the first).
fn nth_weekday(year: i32, month: Month, weekday: Weekday, n: u8) -> Date {
    let first = date(year, month, 1);
    let offset =
        (7 + weekday.number_days_from_monday() - first.weekday().number_days_from_monday()) % 7;
    first + Duration::days(i64::from(offset) + 7 * i64::from(n - 1))
}

fn last_weekday(year: i32, month: Month, weekday: Weekday) -> Date {
    let last = date(year, month, month.length(year));
    let back =
        (7 + last.weekday().number_days_from_monday() - weekday.number_days_from_monday()) % 7;
    last - Duration::days(i64::from(back))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    /// The Federal Reserve's published holiday schedules (frbservices.org, "Holiday schedules"),
    /// dates as listed there; a Saturday date is one the Fed lists and does not move.
    const PUBLISHED: [(i32, [Date; 11]); 3] = [
        (
            2025,
            [
                date!(2025 - 01 - 01),
                date!(2025 - 01 - 20),
                date!(2025 - 02 - 17),
                date!(2025 - 05 - 26),
                date!(2025 - 06 - 19),
                date!(2025 - 07 - 04),
                date!(2025 - 09 - 01),
                date!(2025 - 10 - 13),
                date!(2025 - 11 - 11),
                date!(2025 - 11 - 27),
                date!(2025 - 12 - 25),
            ],
        ),
        (
            2026,
            [
                date!(2026 - 01 - 01),
                date!(2026 - 01 - 19),
                date!(2026 - 02 - 16),
                date!(2026 - 05 - 25),
                date!(2026 - 06 - 19),
                date!(2026 - 07 - 04),
                date!(2026 - 09 - 07),
                date!(2026 - 10 - 12),
                date!(2026 - 11 - 11),
                date!(2026 - 11 - 26),
                date!(2026 - 12 - 25),
            ],
        ),
        (
            2027,
            [
                date!(2027 - 01 - 01),
                date!(2027 - 01 - 18),
                date!(2027 - 02 - 15),
                date!(2027 - 05 - 31),
                date!(2027 - 06 - 19),
                date!(2027 - 07 - 05),
                date!(2027 - 09 - 06),
                date!(2027 - 10 - 11),
                date!(2027 - 11 - 11),
                date!(2027 - 11 - 25),
                date!(2027 - 12 - 25),
            ],
        ),
    ];

    #[test]
    fn the_holidays_are_the_feds_published_dates() {
        for (year, published) in PUBLISHED {
            let computed: Vec<Date> = federal_holidays(year).iter().map(|h| h.observed).collect();
            assert_eq!(computed, published, "{year}");
        }
    }

    #[test]
    fn saturday_holidays_stay_and_sunday_holidays_move_to_monday() {
        assert_eq!(date!(2026 - 07 - 04).weekday(), Weekday::Saturday);
        assert_eq!(date!(2027 - 06 - 19).weekday(), Weekday::Saturday);
        assert_eq!(date!(2027 - 12 - 25).weekday(), Weekday::Saturday);
        assert_eq!(date!(2027 - 07 - 04).weekday(), Weekday::Sunday);
        let fed = BankCalendar::federal_reserve();
        // The Friday before a Saturday holiday is an ordinary banking day.
        assert!(fed.is_banking_day(date!(2026 - 07 - 03)));
        assert!(fed.is_banking_day(date!(2027 - 12 - 24)));
        assert!(!fed.is_banking_day(date!(2027 - 07 - 05)));
        // 2028-01-01 is a Saturday: 2027-12-31 stays open.
        assert!(fed.is_banking_day(date!(2027 - 12 - 31)));
        // 2023-01-01 was a Sunday: observed Monday 2 January.
        assert!(!fed.is_banking_day(date!(2023 - 01 - 02)));
    }

    #[test]
    fn closures_and_reasons() {
        let calendar = BankCalendar::with_closures([date!(2026 - 12 - 24)]);
        assert_eq!(
            calendar.closed_because(date!(2026 - 12 - 25)).as_deref(),
            Some("a bank holiday (Christmas Day)")
        );
        assert_eq!(
            calendar.closed_because(date!(2026 - 12 - 24)).as_deref(),
            Some("a closure day in the configuration")
        );
        assert_eq!(
            calendar.closed_because(date!(2026 - 12 - 26)).as_deref(),
            Some("a Saturday")
        );
        assert!(BankCalendar::federal_reserve().is_banking_day(date!(2026 - 12 - 24)));
    }

    #[test]
    fn banking_day_arithmetic_skips_weekends_and_holidays() {
        let fed = BankCalendar::federal_reserve();
        // Friday 2026-11-27, two banking days back: Tuesday 24th (Thanksgiving is Thursday 26th).
        assert_eq!(
            fed.subtract_banking_days(date!(2026 - 11 - 27), 2),
            date!(2026 - 11 - 24)
        );
        // Tuesday after Labor Day 2026 (7 September), two back: Thursday 3rd.
        assert_eq!(
            fed.subtract_banking_days(date!(2026 - 09 - 08), 2),
            date!(2026 - 09 - 03)
        );
        assert_eq!(
            fed.add_banking_days(date!(2026 - 12 - 24), 1),
            date!(2026 - 12 - 28)
        );
        assert_eq!(
            fed.banking_day_at_or_after(date!(2026 - 12 - 25)),
            date!(2026 - 12 - 28)
        );
        assert_eq!(
            fed.banking_day_at_or_after(date!(2026 - 12 - 23)),
            date!(2026 - 12 - 23)
        );
    }
}
