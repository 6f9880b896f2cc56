//! Payout states and the one function that decides every change of state.
//!
//! The ledger, the sender and status tracking never write a state of their own choosing: they
//! describe what happened as an [`Event`] and store whatever [`transition`] decides. That keeps
//! the rules (no payout sent twice, no stale event moving a payout backwards) in one pure place.
//!
//! Dwolla's own transfer status (`created`, `pending`, …) is kept beside the payout state as a
//! [`TransferStatus`]: payrun's `pending` means "not yet sent", so Dwolla's `pending` is recorded
//! as a submitted payout whose transfer status is `pending`.

use std::fmt;
use std::str::FromStr;

/// Where a payout stands, as stored in the ledger and printed by `status --json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PayoutState {
    /// Ingested, not yet sent.
    Pending,
    /// The request is committed and may have reached Dwolla; the outcome is unknown.
    Submitting,
    /// Dwolla created the transfer; it has not settled yet.
    Submitted,
    /// The transfer settled.
    Processed,
    /// The transfer failed at the bank.
    Failed,
    /// The transfer settled and was then returned (an ACH return).
    Returned,
    /// Dwolla refused the request; nothing was created.
    Rejected,
    /// payrun cannot decide alone; a person must look.
    NeedsReview,
    /// Withdrawn before it was sent.
    Cancelled,
}

/// Dwolla Connect's status of a created transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferStatus {
    Created,
    Pending,
    Processed,
    Failed,
    Returned,
}

/// Something that happened to a payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The request body and key were committed and the first (or a further) POST is about to go.
    SubmitStarted,
    /// Dwolla answered 201: the transfer exists.
    TransferCreated,
    /// Dwolla refused the request with a definite error: nothing was created.
    RequestRefused,
    /// Retries ran out, or the outcome can no longer be settled automatically.
    GaveUp,
    /// A person or the approval gate withdrew the payout before it was sent.
    Cancelled,
    /// A webhook, a poll or a lookup saw the transfer in this status.
    TransferObserved(TransferStatus),
}

/// What [`transition`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Store the new state and append a history row.
    Move(PayoutState),
    /// Nothing changes: a duplicate, a stale observation, or a further attempt of the same step.
    Stay,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a payout in state {from} cannot take the event {event:?}")]
pub struct IllegalTransition {
    pub from: PayoutState,
    pub event: Event,
}

/// The only place that decides payout state changes. Pure: same input, same answer.
pub fn transition(from: PayoutState, event: Event) -> Result<Decision, IllegalTransition> {
    use Decision::{Move, Stay};
    use PayoutState as S;
    let illegal = Err(IllegalTransition { from, event });
    match (from, event) {
        (S::Pending, Event::SubmitStarted) => Ok(Move(S::Submitting)),
        // A retry of a request whose outcome is unknown: same key, same body, same state.
        (S::Submitting, Event::SubmitStarted) => Ok(Stay),
        (S::Submitting, Event::TransferCreated) => Ok(Move(S::Submitted)),
        // A late 201 replay for a payout already tracked further along.
        (S::Submitted | S::Processed | S::Failed | S::Returned, Event::TransferCreated) => Ok(Stay),
        (S::Submitting, Event::RequestRefused) => Ok(Move(S::Rejected)),
        (S::Submitting, Event::GaveUp) => Ok(Move(S::NeedsReview)),
        (S::NeedsReview, Event::GaveUp) => Ok(Stay),
        (S::Pending, Event::Cancelled) => Ok(Move(S::Cancelled)),
        (S::Cancelled, Event::Cancelled) => Ok(Stay),
        (_, Event::TransferObserved(status)) => {
            observe(from, status).ok_or(IllegalTransition { from, event })
        }
        _ => illegal,
    }
}

/// A transfer seen at Dwolla. States only move forward: settled outcomes never go back to
/// submitted, and a returned payout stays returned whatever arrives late.
fn observe(from: PayoutState, status: TransferStatus) -> Option<Decision> {
    use Decision::{Move, Stay};
    use PayoutState as S;
    use TransferStatus as T;
    let target = match status {
        T::Created | T::Pending => S::Submitted,
        T::Processed => S::Processed,
        T::Failed => S::Failed,
        T::Returned => S::Returned,
    };
    match from {
        // A transfer for a payout that was never sent, refused or withdrawn contradicts the
        // ledger: the caller must flag it, not adopt it.
        S::Pending | S::Rejected | S::Cancelled => None,
        // The outcome was unknown (or given up on); seeing the transfer settles it.
        S::Submitting | S::NeedsReview => Some(Move(target)),
        S::Submitted => Some(if target == S::Submitted {
            Stay
        } else {
            Move(target)
        }),
        S::Processed => Some(if target == S::Returned {
            Move(S::Returned)
        } else {
            Stay
        }),
        S::Failed | S::Returned => Some(Stay),
    }
}

impl TransferStatus {
    /// How far along the transfer is; a status of lower rank than the one stored is stale.
    pub fn rank(self) -> u8 {
        match self {
            TransferStatus::Created => 0,
            TransferStatus::Pending => 1,
            TransferStatus::Processed | TransferStatus::Failed => 2,
            TransferStatus::Returned => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TransferStatus::Created => "created",
            TransferStatus::Pending => "pending",
            TransferStatus::Processed => "processed",
            TransferStatus::Failed => "failed",
            TransferStatus::Returned => "returned",
        }
    }
}

impl FromStr for TransferStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<TransferStatus, String> {
        Ok(match text {
            "created" => TransferStatus::Created,
            // Dwolla's docs show "submitted" once although the enum lacks it; it means created.
            "submitted" => TransferStatus::Created,
            "pending" => TransferStatus::Pending,
            "processed" => TransferStatus::Processed,
            "failed" => TransferStatus::Failed,
            "returned" => TransferStatus::Returned,
            other => return Err(format!("unknown transfer status {other:?}")),
        })
    }
}

impl PayoutState {
    pub const ALL: [PayoutState; 9] = [
        PayoutState::Pending,
        PayoutState::Submitting,
        PayoutState::Submitted,
        PayoutState::Processed,
        PayoutState::Failed,
        PayoutState::Returned,
        PayoutState::Rejected,
        PayoutState::NeedsReview,
        PayoutState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PayoutState::Pending => "pending",
            PayoutState::Submitting => "submitting",
            PayoutState::Submitted => "submitted",
            PayoutState::Processed => "processed",
            PayoutState::Failed => "failed",
            PayoutState::Returned => "returned",
            PayoutState::Rejected => "rejected",
            PayoutState::NeedsReview => "needs_review",
            PayoutState::Cancelled => "cancelled",
        }
    }

    /// States that need a person: the exceptions a report lists first.
    pub fn needs_attention(self) -> bool {
        matches!(
            self,
            PayoutState::Failed
                | PayoutState::Returned
                | PayoutState::Rejected
                | PayoutState::NeedsReview
        )
    }
}

impl fmt::Display for PayoutState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PayoutState {
    type Err = String;

    fn from_str(text: &str) -> Result<PayoutState, String> {
        PayoutState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| format!("unknown payout state {text:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::{Move, Stay};
    use PayoutState as S;
    use TransferStatus as T;

    const ALL_EVENTS: [Event; 11] = [
        Event::SubmitStarted,
        Event::TransferCreated,
        Event::RequestRefused,
        Event::GaveUp,
        Event::Cancelled,
        Event::TransferObserved(T::Created),
        Event::TransferObserved(T::Pending),
        Event::TransferObserved(T::Processed),
        Event::TransferObserved(T::Failed),
        Event::TransferObserved(T::Returned),
        Event::TransferObserved(T::Pending),
    ];

    #[test]
    fn the_sending_path_moves_pending_to_submitted() {
        assert_eq!(
            transition(S::Pending, Event::SubmitStarted),
            Ok(Move(S::Submitting))
        );
        assert_eq!(transition(S::Submitting, Event::SubmitStarted), Ok(Stay));
        assert_eq!(
            transition(S::Submitting, Event::TransferCreated),
            Ok(Move(S::Submitted))
        );
        assert_eq!(
            transition(S::Submitting, Event::RequestRefused),
            Ok(Move(S::Rejected))
        );
        assert_eq!(
            transition(S::Submitting, Event::GaveUp),
            Ok(Move(S::NeedsReview))
        );
    }

    #[test]
    fn tracking_moves_forward_to_settled_and_returned() {
        assert_eq!(
            transition(S::Submitted, Event::TransferObserved(T::Pending)),
            Ok(Stay)
        );
        assert_eq!(
            transition(S::Submitted, Event::TransferObserved(T::Processed)),
            Ok(Move(S::Processed))
        );
        assert_eq!(
            transition(S::Submitted, Event::TransferObserved(T::Failed)),
            Ok(Move(S::Failed))
        );
        assert_eq!(
            transition(S::Processed, Event::TransferObserved(T::Returned)),
            Ok(Move(S::Returned))
        );
        assert_eq!(
            transition(S::Submitted, Event::TransferObserved(T::Returned)),
            Ok(Move(S::Returned))
        );
    }

    #[test]
    fn stale_or_duplicate_observations_never_move_a_payout_backwards() {
        for late in [T::Created, T::Pending, T::Processed] {
            assert_eq!(
                transition(S::Processed, Event::TransferObserved(late)),
                Ok(Stay)
            );
            assert_eq!(
                transition(S::Returned, Event::TransferObserved(late)),
                Ok(Stay)
            );
            assert_eq!(
                transition(S::Failed, Event::TransferObserved(late)),
                Ok(Stay)
            );
        }
        assert_eq!(
            transition(S::Returned, Event::TransferObserved(T::Returned)),
            Ok(Stay)
        );
        assert_eq!(transition(S::Processed, Event::TransferCreated), Ok(Stay));
    }

    #[test]
    fn an_unknown_outcome_is_settled_by_seeing_the_transfer() {
        assert_eq!(
            transition(S::Submitting, Event::TransferObserved(T::Pending)),
            Ok(Move(S::Submitted))
        );
        assert_eq!(
            transition(S::NeedsReview, Event::TransferObserved(T::Processed)),
            Ok(Move(S::Processed))
        );
    }

    #[test]
    fn a_payout_that_was_never_sent_cannot_be_sent_twice_or_adopt_a_transfer() {
        for from in [
            S::Rejected,
            S::Cancelled,
            S::Submitted,
            S::Processed,
            S::Failed,
            S::Returned,
            S::NeedsReview,
        ] {
            assert!(
                transition(from, Event::SubmitStarted).is_err(),
                "{from} must not be sent again"
            );
        }
        for from in [S::Pending, S::Rejected, S::Cancelled] {
            assert!(transition(from, Event::TransferObserved(T::Processed)).is_err());
        }
        assert!(transition(S::Submitted, Event::Cancelled).is_err());
    }

    #[test]
    fn every_settled_state_is_final_for_the_sender() {
        for from in PayoutState::ALL {
            for event in ALL_EVENTS {
                if let Ok(Move(to)) = transition(from, event) {
                    assert_ne!(
                        to,
                        S::Pending,
                        "nothing moves back to pending ({from}, {event:?})"
                    );
                    assert!(
                        !matches!(from, S::Failed | S::Returned | S::Rejected | S::Cancelled),
                        "{from} is final but moved to {to} on {event:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn state_names_round_trip() {
        for state in PayoutState::ALL {
            assert_eq!(state.as_str().parse::<PayoutState>(), Ok(state));
        }
        assert!("paid".parse::<PayoutState>().is_err());
    }
}
