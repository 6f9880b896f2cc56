//! Exit statuses, the contract with cron and scripts. README lists them; keep both in step.

use std::process::ExitCode;

/// Everything asked for was done and nothing needs a person.
pub const OK: u8 = 0;
/// An unexpected internal error (a bug, a full disk, a corrupt ledger).
pub const INTERNAL: u8 = 1;
/// A bad flag or argument (clap's own status).
pub const USAGE: u8 = 2;
/// The run finished, but some payouts need a person: rejected, failed, returned or needs_review,
/// or reconcile found discrepancies.
pub const ATTENTION: u8 = 3;
/// An input file is invalid and was rejected (sysexits EX_DATAERR).
pub const INVALID_INPUT: u8 = 65;
/// Dwolla (or the configured API) could not be reached or refused our credentials
/// (sysexits EX_UNAVAILABLE).
pub const UNAVAILABLE: u8 = 69;
/// Another payrun process holds the ledger's writer lock; try again later (sysexits EX_TEMPFAIL).
pub const LOCKED: u8 = 75;
/// A temporary stop with work left: a signal stopped a send before every payout was sent; the
/// next run finishes it (the same EX_TEMPFAIL as [`LOCKED`]: run again later).
pub const TEMPORARY: u8 = LOCKED;
/// The configuration is invalid or incomplete (sysexits EX_CONFIG).
pub const CONFIG: u8 = 78;

pub fn code(status: u8) -> ExitCode {
    ExitCode::from(status)
}
