//! What a person should do about a payout: one sentence for the report's `action` column, empty
//! when nothing is needed. Failed and returned payouts take the failure-code advice
//! ([`crate::failure::advice`]); the other states have their own sentences here.

use std::borrow::Cow;

use crate::failure;
use crate::payout::PayoutState;

pub const REJECTED: &str =
    "Correct what Dwolla refused, then ingest the payout again in a new file.";
pub const NEEDS_REVIEW: &str = "Look the payout up at Dwolla by its correlation_id: if a transfer exists, do not pay again; if none exists, ingest it again in a new file.";
pub const SUBMITTING: &str =
    "Wait for the next run; payrun settles the outcome without paying twice.";
pub const AWAITING_APPROVAL: &str = "Approve the batch to send it.";

/// The action for a payout in `state`, with its failure code and the JSON pointer of the field
/// Dwolla refused (for rejected payouts), in a batch whose status is `batch_status`.
pub fn action(
    state: PayoutState,
    failure_code: Option<&str>,
    failure_path: Option<&str>,
    batch_status: &str,
) -> Cow<'static, str> {
    match state {
        PayoutState::Failed | PayoutState::Returned => {
            Cow::Borrowed(failure::advice(failure_code.unwrap_or_default()).action())
        }
        PayoutState::Rejected => match failure_path.filter(|path| !path.is_empty()) {
            Some(path) => Cow::Owned(format!(
                "Correct what Dwolla refused at {path}, then ingest the payout again in a new file."
            )),
            None => Cow::Borrowed(REJECTED),
        },
        PayoutState::NeedsReview => Cow::Borrowed(NEEDS_REVIEW),
        PayoutState::Submitting => Cow::Borrowed(SUBMITTING),
        PayoutState::Pending if batch_status == "awaiting_approval" => {
            Cow::Borrowed(AWAITING_APPROVAL)
        }
        PayoutState::Pending
        | PayoutState::Submitted
        | PayoutState::Processed
        | PayoutState::Cancelled => Cow::Borrowed(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceptions_say_what_to_do_and_settled_payouts_say_nothing() {
        assert_eq!(
            action(PayoutState::Returned, Some("R03"), None, "ready"),
            failure::Advice::FixBankDetails.action()
        );
        assert_eq!(
            action(PayoutState::Failed, None, None, "ready"),
            failure::Advice::Unknown.action()
        );
        assert!(
            action(
                PayoutState::Rejected,
                Some("ValidationError"),
                Some("/amount/value"),
                "ready"
            )
            .contains("/amount/value")
        );
        assert_eq!(
            action(PayoutState::NeedsReview, None, None, "ready"),
            NEEDS_REVIEW
        );
        assert_eq!(
            action(PayoutState::Pending, None, None, "awaiting_approval"),
            AWAITING_APPROVAL
        );
        for state in [
            PayoutState::Pending,
            PayoutState::Submitted,
            PayoutState::Processed,
            PayoutState::Cancelled,
        ] {
            assert_eq!(action(state, None, None, "ready"), "", "{state}");
        }
        for state in PayoutState::ALL.into_iter().filter(|s| s.needs_attention()) {
            assert!(!action(state, None, None, "ready").is_empty(), "{state}");
        }
    }
}
