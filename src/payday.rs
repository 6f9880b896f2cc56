//! Pay dates and send windows: when a batch with a pay date must be sent so that it settles on
//! payday, whether a pay date can still be met, and the default pay date of an inbox. Pure:
//! callers pass `now`.
//!
//! A batch for pay date D is sent on its *send day*: `lead` banking days before D (standard
//! ACH settles in about two). The window opens at the start of the send day and closes at the
//! cut-off time of that day (or at its end when there is none), in the configured fixed UTC
//! offset (time zones with daylight saving are not modelled: give the offset in force).

use std::fmt;

use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset, Weekday};

use crate::calendar::BankCalendar;

/// How batches with a pay date are scheduled (`[payday]` in payrun.toml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendPolicy {
    /// Banking days between the send day and the pay date (default 2).
    pub lead_banking_days: u32,
    /// The send day's last moment for sending on time; `None` is the end of the day.
    pub cutoff: Option<Time>,
    /// The offset the send day and the cut-off are read in (default UTC).
    pub utc_offset: UtcOffset,
    pub calendar: BankCalendar,
}

impl Default for SendPolicy {
    fn default() -> SendPolicy {
        SendPolicy {
            lead_banking_days: 2,
            cutoff: None,
            utc_offset: UtcOffset::UTC,
            calendar: BankCalendar::federal_reserve(),
        }
    }
}

/// When a pay date's payouts are to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow {
    pub send_day: Date,
    pub opens_at: OffsetDateTime,
    /// Sending after this is late: the payouts may settle after the pay date.
    pub closes_at: OffsetDateTime,
}

impl SendPolicy {
    pub fn window(&self, pay_date: Date) -> SendWindow {
        let send_day = self
            .calendar
            .subtract_banking_days(pay_date, self.lead_banking_days);
        let at = |day: Date, time: Time| {
            PrimitiveDateTime::new(day, time)
                .assume_offset(self.utc_offset)
                .to_offset(UtcOffset::UTC)
        };
        let closes_at = match self.cutoff {
            Some(cutoff) => at(send_day, cutoff),
            None => at(send_day.next_day().unwrap_or(send_day), Time::MIDNIGHT),
        };
        SendWindow {
            send_day,
            opens_at: at(send_day, Time::MIDNIGHT),
            closes_at,
        }
    }

    /// The local date of an instant, in the policy's offset.
    pub fn local_date(&self, at: OffsetDateTime) -> Date {
        at.to_offset(self.utc_offset).date()
    }

    /// The earliest pay date whose window has not closed at `now`.
    pub fn earliest_pay_date(&self, now: OffsetDateTime) -> Date {
        let mut day = self.calendar.banking_day_at_or_after(self.local_date(now));
        loop {
            let pay_date = self.calendar.add_banking_days(day, self.lead_banking_days);
            if self.window(pay_date).closes_at > now {
                return pay_date;
            }
            day = self.calendar.add_banking_days(day, 1);
        }
    }
}

/// What the ledger stores about a batch's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Schedule {
    pub pay_date: Option<Date>,
    /// Not sent before this; `None` is at once.
    pub send_after: Option<OffsetDateTime>,
    /// Sent after this, the batch is late.
    pub send_by: Option<OffsetDateTime>,
    /// Accepted with `--send-late` although the pay date could not be met.
    pub send_late: bool,
}

/// Why a pay date cannot be met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayDateProblem {
    NotABankingDay {
        pay_date: Date,
        why: String,
        banking_day_before: Date,
    },
    TooLate {
        pay_date: Date,
        window: SendWindow,
        lead: u32,
        earliest: Date,
    },
}

impl fmt::Display for PayDateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayDateProblem::NotABankingDay {
                pay_date,
                why,
                banking_day_before,
            } => write!(
                f,
                "pay date {pay_date} is {why}, when no payment settles; use the banking day before ({banking_day_before}), or --send-late to send as soon as possible"
            ),
            PayDateProblem::TooLate {
                pay_date,
                window,
                lead,
                earliest,
            } => write!(
                f,
                "pay date {pay_date} can no longer be met: with a lead of {lead} banking days it had to be sent by {} UTC (send day {}); the earliest pay date now is {earliest}, or --send-late sends as soon as possible",
                window.closes_at.format(&HUMAN_TIME).unwrap_or_default(),
                window.send_day
            ),
        }
    }
}

const HUMAN_TIME: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");

/// The schedule of a batch for `pay_date` received at `now`: refused when the date cannot be
/// met, unless `send_late`, which sends as soon as possible and marks the batch late.
pub fn schedule(
    pay_date: Option<Date>,
    now: OffsetDateTime,
    policy: &SendPolicy,
    send_late: bool,
) -> Result<Schedule, PayDateProblem> {
    let Some(pay_date) = pay_date else {
        return Ok(Schedule::default());
    };
    let window = policy.window(pay_date);
    let problem = if let Some(why) = policy.calendar.closed_because(pay_date) {
        Some(PayDateProblem::NotABankingDay {
            pay_date,
            why,
            banking_day_before: policy.calendar.subtract_banking_days(pay_date, 1),
        })
    } else if now >= window.closes_at {
        Some(PayDateProblem::TooLate {
            pay_date,
            window,
            lead: policy.lead_banking_days,
            earliest: policy.earliest_pay_date(now),
        })
    } else {
        None
    };
    match problem {
        Some(problem) if !send_late => Err(problem),
        Some(_) => Ok(Schedule {
            pay_date: Some(pay_date),
            send_after: None,
            send_by: Some(window.closes_at),
            send_late: true,
        }),
        None => Ok(Schedule {
            pay_date: Some(pay_date),
            send_after: Some(window.opens_at),
            send_by: Some(window.closes_at),
            send_late: false,
        }),
    }
}

/// An inbox's default pay date for files that name none (`[payday] default_pay_date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultPayDate {
    /// `"next friday"`: the next such weekday after the day the file arrives (the banking
    /// day before it when it is a holiday, as payroll is paid early, never late).
    Next(Weekday),
    /// `"3 banking days"`: that many banking days after the day the file arrives.
    BankingDaysAhead(u32),
}

impl DefaultPayDate {
    pub fn parse(text: &str) -> Result<DefaultPayDate, String> {
        let lower = text.trim().to_ascii_lowercase();
        let words: Vec<&str> = lower.split_whitespace().collect();
        let weekday = |name: &str| {
            [
                Weekday::Monday,
                Weekday::Tuesday,
                Weekday::Wednesday,
                Weekday::Thursday,
                Weekday::Friday,
            ]
            .into_iter()
            .find(|day| day.to_string().eq_ignore_ascii_case(name))
        };
        match words.as_slice() {
            ["next", day] => weekday(day).map(DefaultPayDate::Next),
            [n, "banking", "days" | "day"] => n.parse().ok().map(DefaultPayDate::BankingDaysAhead),
            _ => None,
        }
        .ok_or_else(|| {
            format!(
                "{text:?} is not a default pay date such as \"next friday\" or \"3 banking days\""
            )
        })
    }

    pub fn pay_date(self, now: OffsetDateTime, policy: &SendPolicy) -> Date {
        let today = policy.local_date(now);
        match self {
            DefaultPayDate::Next(weekday) => {
                let mut day = today.next_day().unwrap_or(today);
                while day.weekday() != weekday {
                    day = day.next_day().unwrap_or(day);
                }
                if policy.calendar.is_banking_day(day) {
                    day
                } else {
                    policy.calendar.subtract_banking_days(day, 1)
                }
            }
            DefaultPayDate::BankingDaysAhead(n) => policy.calendar.add_banking_days(today, n),
        }
    }
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text.trim(), &format).map_err(|_| {
        format!(
            "{:?} is not a date such as 2026-12-04 (YYYY-MM-DD)",
            text.trim()
        )
    })
}

/// Parses `HH:MM` (a cut-off time of day).
pub fn parse_time_of_day(text: &str) -> Result<Time, String> {
    let format = time::macros::format_description!("[hour]:[minute]");
    Time::parse(text.trim(), &format).map_err(|_| {
        format!(
            "{:?} is not a time of day such as 14:30 (HH:MM, 24-hour)",
            text.trim()
        )
    })
}

/// Parses a fixed UTC offset: `+00:00`, `-05:00`, or `UTC`.
pub fn parse_utc_offset(text: &str) -> Result<UtcOffset, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("utc") || text == "Z" {
        return Ok(UtcOffset::UTC);
    }
    let format = time::macros::format_description!("[offset_hour sign:mandatory]:[offset_minute]");
    UtcOffset::parse(text, &format)
        .map_err(|_| format!("{text:?} is not a UTC offset such as -05:00 or +01:00"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime, time};

    #[test]
    fn a_friday_pay_date_is_sent_on_wednesday() {
        let window = SendPolicy::default().window(date!(2026 - 12 - 04));
        assert_eq!(window.send_day, date!(2026 - 12 - 02));
        assert_eq!(window.opens_at, datetime!(2026-12-02 00:00 UTC));
        assert_eq!(window.closes_at, datetime!(2026-12-03 00:00 UTC));
    }

    #[test]
    fn the_cutoff_is_read_in_the_configured_offset() {
        let policy = SendPolicy {
            cutoff: Some(time!(14:00)),
            utc_offset: parse_utc_offset("-05:00").unwrap(),
            ..SendPolicy::default()
        };
        let window = policy.window(date!(2026 - 12 - 04));
        assert_eq!(window.opens_at, datetime!(2026-12-02 05:00 UTC));
        assert_eq!(window.closes_at, datetime!(2026-12-02 19:00 UTC));
    }

    #[test]
    fn a_holiday_or_a_missed_window_is_refused_unless_sent_late() {
        let policy = SendPolicy::default();
        let wednesday = datetime!(2026-12-02 15:00 UTC);
        let christmas = schedule(Some(date!(2026 - 12 - 25)), wednesday, &policy, false);
        let message = christmas.unwrap_err().to_string();
        assert!(message.contains("Christmas Day"), "{message}");
        assert!(message.contains("2026-12-24"), "{message}");
        let thursday = datetime!(2026-12-03 09:00 UTC);
        let missed = schedule(Some(date!(2026 - 12 - 04)), thursday, &policy, false).unwrap_err();
        let message = missed.to_string();
        assert!(
            message.contains("earliest pay date now is 2026-12-07"),
            "{message}"
        );
        let late = schedule(Some(date!(2026 - 12 - 04)), thursday, &policy, true).unwrap();
        assert!(late.send_late);
        assert_eq!(late.send_after, None);
        let on_time = schedule(Some(date!(2026 - 12 - 11)), thursday, &policy, false).unwrap();
        assert_eq!(on_time.send_after, Some(datetime!(2026-12-09 00:00 UTC)));
        assert!(!on_time.send_late);
    }

    #[test]
    fn default_pay_dates() {
        let policy = SendPolicy::default();
        let wednesday = datetime!(2026-12-02 15:00 UTC);
        let next_friday = DefaultPayDate::parse("Next Friday").unwrap();
        assert_eq!(
            next_friday.pay_date(wednesday, &policy),
            date!(2026 - 12 - 04)
        );
        // Christmas 2026 is a Friday: paid on Thursday the 24th.
        let before_christmas = datetime!(2026-12-21 10:00 UTC);
        assert_eq!(
            next_friday.pay_date(before_christmas, &policy),
            date!(2026 - 12 - 24)
        );
        let ahead = DefaultPayDate::parse("3 banking days").unwrap();
        assert_eq!(ahead.pay_date(wednesday, &policy), date!(2026 - 12 - 07));
        assert!(DefaultPayDate::parse("someday").is_err());
    }

    #[test]
    fn text_forms() {
        assert_eq!(parse_date("2026-12-04"), Ok(date!(2026 - 12 - 04)));
        assert!(parse_date("04/12/2026").is_err());
        assert_eq!(parse_time_of_day("14:30"), Ok(time!(14:30)));
        assert_eq!(parse_utc_offset("UTC"), Ok(UtcOffset::UTC));
        assert!(parse_utc_offset("EST").is_err());
    }
}
