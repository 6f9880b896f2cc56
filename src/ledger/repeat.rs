//! The repeat guard's reads: which recent batches a new one may repeat, and how many of its
//! payouts (reference, amount, destination) another batch already holds. Batches are read by
//! their rowid range, so no index is needed; the earlier batch's keys go into a hash set.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use rusqlite::{Connection, params};

use super::{Ledger, Result};

/// One payout as the repeat guard compares it: a 64-bit hash of (reference, amount,
/// destination), so that a million-payout batch's set takes 16 MiB rather than the strings'
/// 150. A collision (about one in 10^7 for two million-payout batches) can only count one
/// payout too many towards holding a batch for approval, never let a repeat through.
pub(super) type PayoutKey = u64;

pub(super) fn payout_key(reference: &str, amount_cents: i64, destination: &str) -> PayoutKey {
    // SipHash with fixed keys: the same payout hashes alike in both connections.
    let mut hasher = DefaultHasher::new();
    (reference, amount_cents, destination).hash(&mut hasher);
    hasher.finish()
}

/// A recent batch that a new one might repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepeatCandidate {
    pub id: i64,
    pub file_name: String,
    pub received_at: String,
}

/// How much of a new batch repeats an earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepeatOverlap {
    pub earlier: RepeatCandidate,
    pub n_repeated: u64,
    pub n_payouts: u64,
}

impl std::fmt::Display for RepeatOverlap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of its {} payouts repeat batch {} ({}, received {}) with the same reference, amount and destination",
            self.n_repeated,
            self.n_payouts,
            self.earlier.id,
            self.earlier.file_name,
            self.earlier.received_at
        )
    }
}

/// The batches received at or after `since` for the same pay date, or where either has none
/// (a batch without a pay date is sent at once, so it may pay the same people for the same
/// period), newest first, leaving out `except` and cancelled batches. Another pay date is
/// another payroll: a salaried one repeats row for row.
pub(super) fn candidates(
    conn: &Connection,
    since: &str,
    pay_date: Option<&str>,
    except: Option<i64>,
) -> rusqlite::Result<Vec<RepeatCandidate>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, file_name, received_at FROM batches
         WHERE received_at >= ?1 AND (pay_date IS ?2 OR pay_date IS NULL OR ?2 IS NULL)
           AND id IS NOT ?3 AND status != 'cancelled'
         ORDER BY id DESC LIMIT 20",
    )?;
    let rows = stmt.query_map(params![since, pay_date, except], |row| {
        Ok(RepeatCandidate {
            id: row.get(0)?,
            file_name: row.get(1)?,
            received_at: row.get(2)?,
        })
    })?;
    rows.collect()
}

/// Payouts of `batch_id` in the order of its file.
fn for_each_key(
    conn: &Connection,
    batch_id: i64,
    mut each: impl FnMut(PayoutKey),
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT reference, amount_cents, destination FROM payouts WHERE id BETWEEN ?1 AND ?2",
    )?;
    let (first, last) = (batch_id << 32, (batch_id << 32) | 0xffff_ffff);
    let mut rows = stmt.query(params![first, last])?;
    while let Some(row) = rows.next()? {
        let reference = row.get_ref(0)?.as_str()?;
        let destination = row.get_ref(2)?.as_str()?;
        each(payout_key(reference, row.get(1)?, destination));
    }
    Ok(())
}

pub(super) fn keys_of(conn: &Connection, batch_id: i64) -> rusqlite::Result<HashSet<PayoutKey>> {
    let mut keys = HashSet::new();
    for_each_key(conn, batch_id, |key| {
        keys.insert(key);
    })?;
    Ok(keys)
}

/// How many payouts of `batch_id` (in `conn`) are in `earlier`, and how many it has.
pub(super) fn count_repeated(
    conn: &Connection,
    batch_id: i64,
    earlier: &HashSet<PayoutKey>,
) -> rusqlite::Result<(u64, u64)> {
    let (mut repeated, mut all) = (0, 0);
    for_each_key(conn, batch_id, |key| {
        all += 1;
        repeated += u64::from(earlier.contains(&key));
    })?;
    Ok((repeated, all))
}

/// The candidate whose payouts `batch_id` (in `new_conn`) repeats most, if any repeats at all.
pub(super) fn largest_overlap(
    earlier_conn: &Connection,
    new_conn: &Connection,
    batch_id: i64,
    candidates: Vec<RepeatCandidate>,
) -> rusqlite::Result<Option<RepeatOverlap>> {
    let mut best: Option<RepeatOverlap> = None;
    for earlier in candidates {
        let keys = keys_of(earlier_conn, earlier.id)?;
        let (n_repeated, n_payouts) = count_repeated(new_conn, batch_id, &keys)?;
        if n_repeated > best.as_ref().map_or(0, |b| b.n_repeated) {
            best = Some(RepeatOverlap {
                earlier,
                n_repeated,
                n_payouts,
            });
        }
    }
    Ok(best)
}

impl Ledger {
    /// For `payrun plan`: how much a batch of the scratch ledger `planned` repeats a recent
    /// batch of this (real) ledger.
    pub fn repeat_overlap_of(
        &self,
        planned: &Ledger,
        planned_batch: i64,
        since: &str,
        pay_date: Option<&str>,
    ) -> Result<Option<RepeatOverlap>> {
        let candidates =
            candidates(&self.conn, since, pay_date, None).map_err(|e| self.error(e))?;
        largest_overlap(&self.conn, &planned.conn, planned_batch, candidates)
            .map_err(|e| self.error(e))
    }
}
