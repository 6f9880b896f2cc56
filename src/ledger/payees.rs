//! The payee directory: reference -> external party and bank funding source at Dwolla, for
//! `payrun payees import` and for payout files that name a `payee` instead of a funding source.
//! Only the last four digits of an account number ever reach this table.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use super::{Ledger, Result};

/// A payee as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payee {
    pub reference: String,
    pub business_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: String,
    pub routing_number: String,
    pub account_last4: String,
    /// `checking` or `savings`.
    pub account_type: String,
    pub external_party_id: Option<String>,
    pub funding_source_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Payee {
    /// The business name, or the first and last name.
    pub fn display_name(&self) -> String {
        match &self.business_name {
            Some(name) => name.clone(),
            None => format!(
                "{} {}",
                self.first_name.as_deref().unwrap_or_default(),
                self.last_name.as_deref().unwrap_or_default()
            ),
        }
    }
}

/// A payee about to be recorded, before anything exists at Dwolla.
#[derive(Debug, Clone, Copy)]
pub struct NewPayee<'a> {
    pub reference: &'a str,
    pub business_name: Option<&'a str>,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub email: &'a str,
    pub routing_number: &'a str,
    /// Exactly four digits; the caller never has a reason to pass more.
    pub account_last4: &'a str,
    pub account_type: &'a str,
}

/// Also PostgreSQL's columns, in the same order.
pub(super) const COLUMNS: &str = "reference, business_name, first_name, last_name, email, routing_number, \
     account_last4, account_type, external_party_id, funding_source_id, created_at, updated_at";

fn payee_from_row(row: &Row<'_>) -> rusqlite::Result<Payee> {
    Ok(Payee {
        reference: row.get(0)?,
        business_name: row.get(1)?,
        first_name: row.get(2)?,
        last_name: row.get(3)?,
        email: row.get(4)?,
        routing_number: row.get(5)?,
        account_last4: row.get(6)?,
        account_type: row.get(7)?,
        external_party_id: row.get(8)?,
        funding_source_id: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
    })
}

impl Ledger {
    pub fn payee(&self, reference: &str) -> Result<Option<Payee>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM payees WHERE reference = ?1"),
                [reference],
                payee_from_row,
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Every payee, by reference.
    pub fn payees(&self) -> Result<Vec<Payee>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM payees ORDER BY reference"))
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map([], payee_from_row)
            .map_err(|e| self.error(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.error(e))
    }

    /// Reference -> funding source id of every payee that can be paid, in one query, for an
    /// ingest whose file names payees.
    pub fn payee_funding_sources(&self) -> Result<HashMap<String, String>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT reference, funding_source_id FROM payees WHERE funding_source_id IS NOT NULL",
            )
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|e| self.error(e))?;
        rows.collect::<rusqlite::Result<HashMap<_, _>>>()
            .map_err(|e| self.error(e))
    }

    /// Records a payee before anything is created at Dwolla. A payee already recorded under
    /// this reference is left as it is (the caller compared them first).
    pub fn insert_payee(&mut self, payee: &NewPayee<'_>, now: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO payees (reference, business_name, first_name, last_name, email,
                     routing_number, account_last4, account_type, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
                 ON CONFLICT (reference) DO NOTHING",
                params![
                    payee.reference,
                    payee.business_name,
                    payee.first_name,
                    payee.last_name,
                    payee.email,
                    payee.routing_number,
                    payee.account_last4,
                    payee.account_type,
                    now,
                ],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// The payee's external party at Dwolla (created, or found by its email).
    pub fn set_payee_external_party(
        &mut self,
        reference: &str,
        external_party_id: &str,
        now: &str,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE payees SET external_party_id = ?2, updated_at = ?3 WHERE reference = ?1",
                params![reference, external_party_id, now],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Takes a funding source that was removed at Dwolla out of the directory, and returns
    /// the references of the payees that had it: they cannot be paid until imported again.
    pub fn forget_payee_funding_source(
        &mut self,
        funding_source_id: &str,
        now: &str,
    ) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare(
                "UPDATE payees SET funding_source_id = NULL, updated_at = ?2
                 WHERE lower(funding_source_id) = lower(?1)
                 RETURNING reference",
            )
            .map_err(|e| self.error(e))?;
        let references = stmt
            .query_map(params![funding_source_id, now], |row| row.get(0))
            .map_err(|e| self.error(e))?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(|e| self.error(e))?;
        Ok(references)
    }

    /// The payee's bank funding source at Dwolla; from now on payout files may name it.
    pub fn set_payee_funding_source(
        &mut self,
        reference: &str,
        funding_source_id: &str,
        now: &str,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE payees SET funding_source_id = ?2, updated_at = ?3
                 WHERE reference = ?1 AND external_party_id IS NOT NULL",
                params![reference, funding_source_id, now],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }
}
