//! Exit statuses, the contract with cron and scripts. README lists them; keep both in step.

use std::process::ExitCode;

/// Everything asked for was done and nothing needs a person.
pub const OK: u8 = 0;
/// An unexpected internal error (a bug, a full disk, a corrupt ledger).
pub const INTERNAL: u8 = 1;
/// A bad flag or argument (clap's own status).
pub const USAGE: u8 = 2;
/// The run finished, but some payouts need a person: rejected, failed, returned or needs_review;
/// a batch waits for approval (`run`); or reconcile found discrepancies.
pub const ATTENTION: u8 = 3;
/// An input file is invalid and was rejected, or an inbox entry is not a regular file
/// (sysexits EX_DATAERR).
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

/// An error as one line for a person: each cause once. Many errors already quote their
/// source in their own message ("cannot open x: No such file or directory"), and printing the
/// chain after it would say the cause twice; a cause whose text is already there is left out.
pub fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if part.is_empty() || text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the lock file x.lock: {source}")]
    struct Quoting {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_quoted_by_its_error_is_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let quoted = io.to_string();
        let err = anyhow::Error::new(Quoting { source: io }).context("cannot start");
        assert_eq!(
            describe(&err),
            format!("cannot start: cannot open the lock file x.lock: {quoted}")
        );
        let plain = anyhow::anyhow!("disk full").context("cannot write the report");
        assert_eq!(describe(&plain), "cannot write the report: disk full");
    }
}
