//! The payee directory on PostgreSQL: the same table and statements as SQLite's
//! (`ledger::payees`), for `payrun payees` and for payout files that name payees. Only the last
//! four digits of an account number ever reach this table.

use std::collections::HashMap;

use super::PgLedger;
use crate::ledger::payees::COLUMNS;
use crate::ledger::{NewPayee, Payee, Result};

/// The advisory lock a `payees import` holds for its whole run, where SQLite has its writer
/// lock.
const IMPORT_LOCK: i64 = 0x7061_7972_756e_0002;

fn payee_from_row(row: &tokio_postgres::Row) -> Payee {
    Payee {
        reference: row.get(0),
        business_name: row.get(1),
        first_name: row.get(2),
        last_name: row.get(3),
        email: row.get(4),
        routing_number: row.get(5),
        account_last4: row.get(6),
        account_type: row.get(7),
        external_party_id: row.get(8),
        funding_source_id: row.get(9),
        created_at: row.get(10),
        updated_at: row.get(11),
    }
}

impl PgLedger {
    /// Waits for any other import on this ledger to end, then holds the directory until this
    /// ledger goes (its connection then closes instead of going back to the pool) or the
    /// process dies: a second import of the same file then finds every payee complete and
    /// sends nothing, and two files cannot both claim one email unseen.
    pub fn lock_payee_directory(&self) -> Result<()> {
        self.holds_session_lock
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.block(
            self.client
                .execute("SELECT pg_advisory_lock($1)", &[&IMPORT_LOCK]),
        )?;
        Ok(())
    }

    pub fn payee(&self, reference: &str) -> Result<Option<Payee>> {
        let sql = format!("SELECT {COLUMNS} FROM payees WHERE reference = $1");
        let row = self.block(self.client.query_opt(&sql, &[&reference]))?;
        Ok(row.as_ref().map(payee_from_row))
    }

    /// Every payee, by reference.
    pub fn payees(&self) -> Result<Vec<Payee>> {
        let sql = format!("SELECT {COLUMNS} FROM payees ORDER BY reference");
        let rows = self.block(self.client.query(&sql, &[]))?;
        Ok(rows.iter().map(payee_from_row).collect())
    }

    /// Reference -> funding source id of every payee that can be paid, in one query, for an
    /// ingest whose file names payees.
    pub fn payee_funding_sources(&self) -> Result<HashMap<String, String>> {
        let rows = self.block(self.client.query(
            "SELECT reference, funding_source_id FROM payees WHERE funding_source_id IS NOT NULL",
            &[],
        ))?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// Records a payee before anything is created at Dwolla. A payee already recorded under
    /// this reference is left as it is (the caller compared them first).
    pub fn insert_payee(&mut self, payee: &NewPayee<'_>, now: &str) -> Result<()> {
        self.block(self.client.execute(
            "INSERT INTO payees (reference, business_name, first_name, last_name, email,
                 routing_number, account_last4, account_type, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
             ON CONFLICT (reference) DO NOTHING",
            &[
                &payee.reference,
                &payee.business_name,
                &payee.first_name,
                &payee.last_name,
                &payee.email,
                &payee.routing_number,
                &payee.account_last4,
                &payee.account_type,
                &now,
            ],
        ))?;
        Ok(())
    }

    /// The payee's external party at Dwolla (created, or found by its email).
    pub fn set_payee_external_party(
        &mut self,
        reference: &str,
        external_party_id: &str,
        now: &str,
    ) -> Result<()> {
        self.block(self.client.execute(
            "UPDATE payees SET external_party_id = $2, updated_at = $3 WHERE reference = $1",
            &[&reference, &external_party_id, &now],
        ))?;
        Ok(())
    }

    /// Takes a funding source that was removed at Dwolla out of the directory, and returns
    /// the references of the payees that had it: they cannot be paid until imported again.
    pub fn forget_payee_funding_source(
        &mut self,
        funding_source_id: &str,
        now: &str,
    ) -> Result<Vec<String>> {
        let rows = self.block(self.client.query(
            "UPDATE payees SET funding_source_id = NULL, updated_at = $2
             WHERE lower(funding_source_id) = lower($1)
             RETURNING reference",
            &[&funding_source_id, &now],
        ))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// The payee's bank funding source at Dwolla; from now on payout files may name it.
    pub fn set_payee_funding_source(
        &mut self,
        reference: &str,
        funding_source_id: &str,
        now: &str,
    ) -> Result<()> {
        self.block(self.client.execute(
            "UPDATE payees SET funding_source_id = $2, updated_at = $3
             WHERE reference = $1 AND external_party_id IS NOT NULL",
            &[&reference, &funding_source_id, &now],
        ))?;
        Ok(())
    }
}
