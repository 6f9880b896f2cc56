//! The pay-date flags of `ingest`, `run` and `plan`, the `[payday]` and `[repeat_guard]`
//! settings, and the command's clock (`PAYRUN_NOW`).

use clap::Args;

use super::Failure;
use crate::clock::{Clock, NOW_ENV};
use crate::config::FileConfig;
use crate::exit;
use crate::ingest::{IngestOptions, PayDateRules, RepeatGuard};
use crate::payday::{self, DefaultPayDate, SendPolicy};

#[derive(Debug, Args)]
pub struct PaydayArgs {
    /// The pay date (YYYY-MM-DD) of files without a pay_date column [default: [payday]
    /// default_pay_date, else none: sent as soon as possible].
    #[arg(long, value_parser = payday::parse_date)]
    pub pay_date: Option<time::Date>,
    /// Accept a pay date that can no longer be met (too late, or not a banking day) and send
    /// as soon as possible; reports mark the batch late.
    #[arg(long)]
    pub send_late: bool,
    /// Let a file through that largely repeats a recent batch (a deliberate repeat).
    #[arg(long)]
    pub allow_repeat: bool,
}

impl PaydayArgs {
    pub(super) fn apply(&self, options: &mut IngestOptions) {
        if self.pay_date.is_some() {
            options.pay_dates.flag = self.pay_date;
        }
        options.pay_dates.send_late |= self.send_late;
        options.repeat_guard.allow_repeat |= self.allow_repeat;
    }
}

/// The command's clock: the wall clock, or one starting at `PAYRUN_NOW`.
pub(super) fn clock() -> Result<Clock, Failure> {
    Clock::from_env_value(std::env::var(NOW_ENV).ok().as_deref()).map_err(Failure::config)
}

/// `[payday]`: the send policy and the default pay date.
pub(super) fn pay_date_rules(file: &FileConfig) -> Result<PayDateRules, Failure> {
    let section = &file.payday;
    let setting = |key: &str, message: String| Failure {
        status: exit::CONFIG,
        message: format!("[payday] {key}: {message}"),
    };
    let mut policy = SendPolicy::default();
    if let Some(days) = section.lead_banking_days {
        policy.lead_banking_days = days;
    }
    if let Some(text) = &section.cutoff {
        policy.cutoff = Some(payday::parse_time_of_day(text).map_err(|m| setting("cutoff", m))?);
    }
    if let Some(text) = &section.utc_offset {
        policy.utc_offset = payday::parse_utc_offset(text).map_err(|m| setting("utc_offset", m))?;
    }
    let closures = section
        .closures
        .iter()
        .map(|text| payday::parse_date(text))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| setting("closures", m))?;
    policy.calendar = crate::calendar::BankCalendar::with_closures(closures);
    let default = section
        .default_pay_date
        .as_deref()
        .map(DefaultPayDate::parse)
        .transpose()
        .map_err(|m| setting("default_pay_date", m))?;
    Ok(PayDateRules {
        policy,
        flag: None,
        default,
        send_late: false,
    })
}

/// `[repeat_guard]`.
pub(super) fn repeat_guard(file: &FileConfig) -> RepeatGuard {
    let section = &file.repeat_guard;
    let default = RepeatGuard::default();
    RepeatGuard {
        window_days: section.window_days.unwrap_or(default.window_days),
        min_overlap_percent: section
            .min_overlap_percent
            .unwrap_or(default.min_overlap_percent),
        allow_repeat: false,
    }
}

/// When a batch goes, for a person: "now", "from <time>", "held", ...
pub(super) fn when_it_goes(batch: &crate::ledger::BatchRow) -> String {
    if batch.status == "cancelled" {
        return "cancelled".into();
    }
    if let Some(sent) = &batch.sent_at {
        let late = batch.send_late || batch.send_by.as_ref().is_some_and(|by| sent > by);
        return format!("sent {sent}{}", if late { " (late)" } else { "" });
    }
    if batch.held_at.is_some() {
        return "held".into();
    }
    if batch.status == "awaiting_approval" {
        return "after approval".into();
    }
    match (&batch.send_open_at, &batch.send_after) {
        (None, Some(after)) => format!("from {after}"),
        _ if batch.send_late => "now (late)".into(),
        _ => "now".into(),
    }
}
