//! State changes on PostgreSQL, many at once: the caller has read and locked each payout's
//! state, [`transition`] decides each change, and the moves are written in two statements (the
//! states, then their history rows) instead of two per payout.

use tokio_postgres::Transaction;

use crate::payout::{Decision, Event, IllegalTransition, PayoutState, transition};

/// One change to decide: the payout, its locked current state, what happened, and why.
pub(super) struct Change<'a> {
    pub id: i64,
    pub from: PayoutState,
    pub event: Event,
    pub source: &'a str,
    pub reason: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum ApplyError {
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("payout {id}: {source}")]
    Illegal { id: i64, source: IllegalTransition },
    /// What the ledger holds makes no sense (an unknown state, a payout that is not there).
    #[error("{0}")]
    Invalid(String),
}

/// Applies every change; returns the decisions in the order given.
pub(super) async fn apply_all(
    tx: &Transaction<'_>,
    changes: &[Change<'_>],
    now: &str,
) -> Result<Vec<Decision>, ApplyError> {
    let mut decisions = Vec::with_capacity(changes.len());
    let (mut ids, mut olds, mut news, mut sources, mut reasons) =
        (vec![], vec![], vec![], vec![], vec![]);
    for change in changes {
        let decision =
            transition(change.from, change.event).map_err(|source| ApplyError::Illegal {
                id: change.id,
                source,
            })?;
        if let Decision::Move(to) = decision {
            ids.push(change.id);
            olds.push(change.from.as_str());
            news.push(to.as_str());
            sources.push(change.source);
            reasons.push(change.reason);
        }
        decisions.push(decision);
    }
    if ids.is_empty() {
        return Ok(decisions);
    }
    tx.execute(
        "UPDATE payouts p SET state = m.new_state, updated_at = $3
         FROM unnest($1::bigint[], $2::text[]) AS m(id, new_state) WHERE p.id = m.id",
        &[&ids, &news, &now],
    )
    .await?;
    tx.execute(
        "INSERT INTO payout_history (payout_id, at, old_state, new_state, source, reason)
         SELECT id, $6, old_state, new_state, source, reason
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])
              AS m(id, old_state, new_state, source, reason)",
        &[&ids, &olds, &news, &sources, &reasons, &now],
    )
    .await?;
    Ok(decisions)
}

/// The state text of a row, parsed.
pub(super) fn parse_state(id: i64, text: &str) -> Result<PayoutState, String> {
    text.parse()
        .map_err(|_| format!("payout {id} has an unknown state {text:?}"))
}
