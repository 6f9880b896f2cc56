//! The exit status of each kind of run: the library reports what happened, the command line
//! alone turns that into the documented statuses of `crate::exit` (README's table).

use crate::exit;
use crate::inbox::FileResult;
use crate::operate::CycleSummary;
use crate::sender::SendReport;
use crate::tracking::TrackReport;

/// A send. A run that leaves anything unsent never exits 0: 69 when Dwolla kept failing or
/// refused the credentials, 75 when a signal stopped it first.
pub fn send_status(report: &SendReport) -> u8 {
    if report.unauthorized.is_some() {
        exit::UNAVAILABLE
    } else if report.n_refused > 0 || report.n_needs_review > 0 {
        exit::ATTENTION
    } else if report.left.total() > 0 && report.interrupted {
        exit::TEMPORARY
    } else if report.left.total() > 0 || report.n_deferred > 0 {
        exit::UNAVAILABLE
    } else {
        exit::OK
    }
}

/// A tracking sweep: Dwolla unreachable, then payouts that need a person.
pub fn track_status(report: &TrackReport) -> u8 {
    let unreachable =
        report.tally.unreachable.is_some() || report.events.tally.unreachable.is_some();
    let attention = report.tally.attention.len() + report.events.tally.attention.len();
    let conflicts = report.tally.n_conflicts + report.events.tally.n_conflicts;
    if unreachable {
        exit::UNAVAILABLE
    } else if attention > 0 || conflicts > 0 {
        exit::ATTENTION
    } else {
        exit::OK
    }
}

/// One cycle of `run`/`watch`: Dwolla unreachable (or a send stopped with work left), then
/// invalid input, then payouts or batches that need a person (a batch waiting for approval is
/// one), else clean.
pub fn cycle_status(summary: &CycleSummary) -> u8 {
    let rejected_file = summary.files.iter().any(|(_, result)| {
        matches!(
            result,
            FileResult::Rejected { .. } | FileResult::NotAFile { .. }
        )
    });
    let send = summary.send.as_ref().map_or(exit::OK, send_status);
    let track = summary.track.as_ref().map_or(exit::OK, track_status);
    if summary.unreachable.is_some() || send == exit::UNAVAILABLE || track == exit::UNAVAILABLE {
        exit::UNAVAILABLE
    } else if send == exit::TEMPORARY {
        exit::TEMPORARY
    } else if rejected_file {
        exit::INVALID_INPUT
    } else if send == exit::ATTENTION
        || track == exit::ATTENTION
        || !summary.awaiting_approval.is_empty()
    {
        exit::ATTENTION
    } else {
        exit::OK
    }
}
