//! The one way the ledger changes a payout's state: read it, ask [`transition`], and store the
//! decision together with a history row, inside the caller's transaction.

use rusqlite::{OptionalExtension, Transaction, params};

use crate::payout::{Decision, Event, IllegalTransition, PayoutState, transition};

/// What a history row says about a change: who saw it and why.
#[derive(Debug, Clone, Copy)]
pub struct Provenance<'a> {
    /// `send`, `poll`, `lookup`, `webhook:<event id>`, `approval`, ...
    pub source: &'a str,
    pub reason: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("payout {0} does not exist")]
    NoSuchPayout(i64),
    #[error("payout {id}: {source}")]
    Illegal { id: i64, source: IllegalTransition },
}

/// Applies `event` to payout `id`. On a move, the state, `updated_at` and a history row are
/// written; on a stay, nothing is. Returns the decision and the state before it.
pub fn apply(
    tx: &Transaction<'_>,
    id: i64,
    event: Event,
    now: &str,
    provenance: Provenance<'_>,
) -> Result<(PayoutState, Decision), ApplyError> {
    let current: Option<String> = tx
        .prepare_cached("SELECT state FROM payouts WHERE id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?;
    let current = current.ok_or(ApplyError::NoSuchPayout(id))?;
    let from: PayoutState = current.parse().map_err(|_| {
        rusqlite::Error::InvalidColumnType(0, current.clone(), rusqlite::types::Type::Text)
    })?;
    let decision = transition(from, event).map_err(|source| ApplyError::Illegal { id, source })?;
    if let Decision::Move(to) = decision {
        tx.prepare_cached("UPDATE payouts SET state = ?2, updated_at = ?3 WHERE id = ?1")?
            .execute(params![id, to.as_str(), now])?;
        tx.prepare_cached(
            "INSERT INTO payout_history (payout_id, at, old_state, new_state, source, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            id,
            now,
            from.as_str(),
            to.as_str(),
            provenance.source,
            provenance.reason
        ])?;
    }
    Ok((from, decision))
}
