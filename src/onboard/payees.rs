//! `payrun payees import FILE.csv` and `payrun payees list`: the payee directory.
//!
//! An import checks the whole file first (nothing is created if any line is wrong), compares
//! it with the ledger (an imported payee is never silently changed), records each new payee,
//! then creates its external party and bank funding source at Dwolla and records their ids.
//!
//! Exactly once, through three layers:
//! - the ledger: a payee whose funding source is recorded is skipped, so importing the same
//!   file again sends nothing;
//! - deterministic Idempotency-Keys (a hash of the reference and the request, see
//!   [`idempotency_key`]): a crash between Dwolla's 201 and the ledger write is replayed by
//!   Dwolla on the next run within 24 hours, and returns the same resource;
//! - after 24 hours, Dwolla's own duplicate checks: a refused duplicate email is resolved by
//!   finding the party with that email, a refused duplicate bank by the funding source it names.
//!
//! The full account number is only ever in the request body; the ledger, the output and the
//! logs get its last four digits.

use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use super::bank::account_type_str;
use super::embedded_errors;
use super::payee_file::{PayeeRow, Who};
use crate::dwolla::all_pages;
use crate::dwolla::wire::{CreateExternalParty, CreateExternalPartyFundingSource};
use crate::dwolla::{Client, Disposition, DwollaError};
use crate::ingest::FileError;
use crate::ingest::row::FieldError;
use crate::ledger::{self, NewPayee, Payee, PayeeLedger};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportStatus {
    /// Already complete in the ledger; nothing was sent.
    Unchanged,
    /// Party and funding source created (or replayed) now.
    Created,
    /// Dwolla already had a party with this email; payrun adopted it.
    AdoptedParty,
    /// Dwolla refused, or could not be reached; see the message.
    Failed,
}

impl ImportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportStatus::Unchanged => "unchanged",
            ImportStatus::Created => "created",
            ImportStatus::AdoptedParty => "created (existing party)",
            ImportStatus::Failed => "failed",
        }
    }
}

/// The Idempotency-Key for one create of one payee: a UUID (version 8, RFC 9562) of SHA-256
/// over the purpose and the parts, so the same request always carries the same key. The parts
/// never include the full account number, so a key may be logged.
pub fn idempotency_key(purpose: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"payrun payee v1\0");
    hasher.update(purpose.as_bytes());
    for part in parts {
        hasher.update(b"\0");
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// What an import will do once the file is compared with the directory: the payees already
/// complete, and the ones to onboard (with the party id a previous run recorded, if any).
#[derive(Debug, Default)]
pub struct ImportPlan {
    pub unchanged: Vec<ImportResult>,
    pub work: Vec<(PayeeRow, Option<String>)>,
}

/// Compares the file with the directory before anything is sent: a changed payee, or an email
/// another payee already has, is refused whole (the errors name file, line and field).
pub fn plan_import(
    directory: &[Payee],
    rows: &[PayeeRow],
    display_name: &str,
) -> Result<ImportPlan, Vec<FileError>> {
    let mut conflicts = Vec::new();
    let mut plan = ImportPlan::default();
    for row in rows {
        let existing = directory.iter().find(|p| p.reference == row.reference);
        if let Some(other) = directory
            .iter()
            .find(|p| p.reference != row.reference && p.email.eq_ignore_ascii_case(&row.email))
        {
            conflicts.push(file_error(
                display_name,
                row.line,
                Some("email"),
                format!(
                    "{:?} is already the email of payee {:?}; Dwolla allows one external party per email",
                    row.email, other.reference
                ),
            ));
        }
        match existing {
            Some(existing) => {
                let differences = differences(existing, row);
                if !differences.is_empty() {
                    conflicts.push(file_error(
                        display_name,
                        row.line,
                        None,
                        format!(
                            "payee {:?} is already imported with a different {}; payrun does not change an imported payee (use a new reference)",
                            row.reference,
                            differences.join(", ")
                        ),
                    ));
                } else if existing.funding_source_id.is_some() {
                    plan.unchanged
                        .push(ImportResult::from_ledger(row, existing));
                } else {
                    plan.work
                        .push((row.clone(), existing.external_party_id.clone()));
                }
            }
            None => plan.work.push((row.clone(), None)),
        }
    }
    if conflicts.is_empty() {
        Ok(plan)
    } else {
        Err(conflicts)
    }
}

/// Records every new payee before the first request, so a crash leaves a trace.
pub fn record_new_payees(
    ledger: &mut impl PayeeLedger,
    work: &[(PayeeRow, Option<String>)],
    now: &str,
) -> ledger::Result<()> {
    for (row, _) in work {
        let (business_name, first_name, last_name) = match &row.who {
            Who::Business(name) => (Some(name.as_str()), None, None),
            Who::Person {
                first_name,
                last_name,
            } => (None, Some(first_name.as_str()), Some(last_name.as_str())),
        };
        ledger.insert_payee(
            &NewPayee {
                reference: &row.reference,
                business_name,
                first_name,
                last_name,
                email: &row.email,
                routing_number: row.routing_number.as_str(),
                account_last4: row.account_number.last4(),
                account_type: account_type_str(row.account_type),
            },
            now,
        )?;
    }
    Ok(())
}

fn file_error(file: &str, line: u64, column: Option<&str>, message: String) -> FileError {
    FileError {
        file: file.to_string(),
        line,
        problem: FieldError {
            column: column.map(str::to_string),
            message,
        },
    }
}

/// The fields in which a file row differs from the imported payee (no account digits beyond
/// the last four are compared, because no more are kept).
fn differences(existing: &Payee, row: &PayeeRow) -> Vec<String> {
    let mut out = Vec::new();
    let (business, first, last) = match &row.who {
        Who::Business(name) => (Some(name.as_str()), None, None),
        Who::Person {
            first_name,
            last_name,
        } => (None, Some(first_name.as_str()), Some(last_name.as_str())),
    };
    if existing.business_name.as_deref() != business
        || existing.first_name.as_deref() != first
        || existing.last_name.as_deref() != last
    {
        out.push("name".to_string());
    }
    if !existing.email.eq_ignore_ascii_case(&row.email) {
        out.push("email".to_string());
    }
    if existing.routing_number != row.routing_number.as_str() {
        out.push("routing number".to_string());
    }
    if existing.account_last4 != row.account_number.last4() {
        out.push(format!(
            "account number (…{} in the ledger)",
            existing.account_last4
        ));
    }
    if existing.account_type != account_type_str(row.account_type) {
        out.push("account type".to_string());
    }
    out
}

#[derive(Debug, Clone)]
pub struct ImportResult {
    pub line: u64,
    pub reference: String,
    pub name: String,
    /// "checking …6789".
    pub account: String,
    pub status: ImportStatus,
    pub external_party_id: Option<String>,
    pub funding_source_id: Option<String>,
    pub error: Option<String>,
}

impl ImportResult {
    fn from_ledger(row: &PayeeRow, payee: &Payee) -> ImportResult {
        ImportResult {
            line: row.line,
            reference: row.reference.clone(),
            name: row.who.display_name(),
            account: account_text(&payee.account_type, &payee.account_last4),
            status: ImportStatus::Unchanged,
            external_party_id: payee.external_party_id.clone(),
            funding_source_id: payee.funding_source_id.clone(),
            error: None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "line": self.line,
            "reference": self.reference,
            "name": self.name,
            "account": self.account,
            "status": self.status.as_str(),
            "externalPartyId": self.external_party_id,
            "fundingSourceId": self.funding_source_id,
            "error": self.error,
        })
    }
}

pub fn account_text(account_type: &str, last4: &str) -> String {
    format!("{account_type} …{last4}")
}

/// What the onboarding of a plan's work came to.
pub struct ImportOutcome {
    pub results: Vec<ImportResult>,
    /// Set when Dwolla could not be reached or refused the credentials: the rest was not sent.
    pub stopped_by: Option<String>,
}

/// What one payee's task reports back; the ledger is written by the caller.
struct Onboarded {
    row: PayeeRow,
    party: Option<(String, bool)>,
    funding_source_id: Option<String>,
    error: Option<(DwollaError, &'static str)>,
}

/// Onboards the payees `concurrency` at a time; records each id in the ledger (either engine)
/// as soon as it is known.
pub async fn onboard_all(
    client: &Client,
    ledger: &mut impl PayeeLedger,
    work: Vec<(PayeeRow, Option<String>)>,
    concurrency: usize,
) -> anyhow::Result<ImportOutcome> {
    let mut pending = work.into_iter();
    let mut tasks: JoinSet<Onboarded> = JoinSet::new();
    let mut results = Vec::new();
    let mut stopped_by: Option<String> = None;
    loop {
        while stopped_by.is_none() && tasks.len() < concurrency {
            let Some((row, party_id)) = pending.next() else {
                break;
            };
            let client = client.clone();
            tasks.spawn(async move { onboard_one(&client, row, party_id).await });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let done = joined.map_err(|err| anyhow::anyhow!("a payee task failed: {err}"))?;
        let now = ledger::timestamp(time::OffsetDateTime::now_utc());
        let record =
            |result: crate::ledger::Result<()>| result.map_err(|err| anyhow::anyhow!("{err}"));
        if let Some((party_id, _)) = &done.party {
            record(ledger.set_payee_external_party(&done.row.reference, party_id, &now))?;
        }
        if let Some(funding_source_id) = &done.funding_source_id {
            record(ledger.set_payee_funding_source(&done.row.reference, funding_source_id, &now))?;
        }
        let row = &done.row;
        let mut result = ImportResult {
            line: row.line,
            reference: row.reference.clone(),
            name: row.who.display_name(),
            account: account_text(
                account_type_str(row.account_type),
                row.account_number.last4(),
            ),
            status: match &done.party {
                Some((_, true)) => ImportStatus::AdoptedParty,
                _ => ImportStatus::Created,
            },
            external_party_id: done.party.as_ref().map(|(id, _)| id.clone()),
            funding_source_id: done.funding_source_id.clone(),
            error: None,
        };
        match &done.error {
            None => tracing::info!(
                reference = %row.reference,
                external_party = result.external_party_id.as_deref().unwrap_or_default(),
                funding_source = result.funding_source_id.as_deref().unwrap_or_default(),
                account = %row.account_number,
                "payee onboarded"
            ),
            Some((err, what)) => {
                result.status = ImportStatus::Failed;
                result.error = Some(format!("{what}: {err}{}", embedded_errors(err)));
                tracing::warn!(reference = %row.reference, error = %err, "{what}");
                if err.disposition() != Disposition::Final && stopped_by.is_none() {
                    stopped_by = Some(format!("{what}: {err}"));
                }
            }
        }
        results.push(result);
    }
    Ok(ImportOutcome {
        results,
        stopped_by,
    })
}

/// The party (created, replayed or found by email) and then its bank funding source.
async fn onboard_one(client: &Client, row: PayeeRow, party_id: Option<String>) -> Onboarded {
    let mut done = Onboarded {
        row,
        party: None,
        funding_source_id: None,
        error: None,
    };
    let row = &done.row;
    let party = match party_id {
        Some(id) => Ok((id, false)),
        None => ensure_party(client, row).await,
    };
    let party_id = match party {
        Ok(party) => {
            let id = party.0.clone();
            done.party = Some(party);
            id
        }
        Err(err) => {
            done.error = Some((err, "cannot create the external party"));
            return done;
        }
    };
    match ensure_funding_source(client, &done.row, &party_id).await {
        Ok(id) => done.funding_source_id = Some(id),
        Err(err) => done.error = Some((err, "cannot create the bank funding source")),
    }
    done
}

async fn ensure_party(client: &Client, row: &PayeeRow) -> Result<(String, bool), DwollaError> {
    let body = match &row.who {
        Who::Business(name) => CreateExternalParty::Business {
            business_name: name.clone(),
            email: row.email.clone(),
            correlation_id: None,
        },
        Who::Person {
            first_name,
            last_name,
        } => CreateExternalParty::Personal {
            first_name: first_name.clone(),
            last_name: last_name.clone(),
            email: row.email.clone(),
            correlation_id: None,
        },
    };
    let body_json = serde_json::to_string(&body).expect("request bodies serialize");
    let key = idempotency_key("external-party", &[&row.reference, &body_json]);
    match with_retries(|| client.create_external_party(&body, Some(&key))).await {
        Ok(created) => Ok((created.id().to_string(), false)),
        Err(err) if is_duplicate_email(&err) => {
            let first = client.list_external_parties().await?;
            let parties = all_pages(client, first, None).await?;
            match parties
                .iter()
                .find(|p| p.email.eq_ignore_ascii_case(&row.email))
            {
                Some(party) => Ok((party.id.clone(), true)),
                None => Err(err),
            }
        }
        Err(err) => Err(err),
    }
}

async fn ensure_funding_source(
    client: &Client,
    row: &PayeeRow,
    party_id: &str,
) -> Result<String, DwollaError> {
    let body = CreateExternalPartyFundingSource::Bank {
        name: row.account_name.clone(),
        bank_account_type: row.account_type,
        account_number: row.account_number.expose().to_string(),
        routing_number: row.routing_number.as_str().to_string(),
    };
    let key = idempotency_key(
        "funding-source",
        &[
            &row.reference,
            party_id,
            &row.account_name,
            account_type_str(row.account_type),
            row.routing_number.as_str(),
            row.account_number.last4(),
        ],
    );
    match with_retries(|| client.create_external_party_funding_source(party_id, &body, Some(&key)))
        .await
    {
        Ok(created) => Ok(created.id().to_string()),
        Err(err) if err.code() == Some("DuplicateResource") => {
            // "Bank already exists: id=<uuid>": the same bank account is already this party's.
            let named = match &err {
                DwollaError::Api { message, .. } => message
                    .split("id=")
                    .nth(1)
                    .map(|rest| rest.trim().trim_end_matches('.').to_string()),
                _ => None,
            };
            let sources = all_pages(
                client,
                client.list_external_party_funding_sources(party_id).await?,
                None,
            )
            .await?;
            let live: Vec<_> = sources.iter().filter(|s| !s.removed).collect();
            let found = match named {
                Some(id) => live.iter().find(|s| s.id == id).map(|s| s.id.clone()),
                None if live.len() == 1 => Some(live[0].id.clone()),
                None => None,
            };
            found.ok_or(err)
        }
        Err(err) => Err(err),
    }
}

fn is_duplicate_email(err: &DwollaError) -> bool {
    match err {
        DwollaError::Api {
            status: 400,
            errors,
            message,
            ..
        } => {
            errors.iter().any(|e| {
                e.path.as_deref() == Some("/email")
                    && (e.code == "Duplicate" || e.message.contains("already"))
            }) || message.contains("email has already been registered")
        }
        _ => false,
    }
}

/// Up to three tries for failures whose outcome is unknown or temporary; the same key makes a
/// resend safe.
async fn with_retries<T, F, Fut>(mut call: F) -> Result<T, DwollaError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DwollaError>>,
{
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match call().await {
            Err(err) if attempt < 3 => match err.disposition() {
                Disposition::Retry { after } => {
                    let wait = after
                        .unwrap_or(Duration::from_millis(250) * attempt)
                        .min(Duration::from_secs(5));
                    tracing::debug!(error = %err, attempt, "retrying with the same Idempotency-Key");
                    tokio::time::sleep(wait).await;
                }
                _ => return Err(err),
            },
            other => return other,
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_uuids_that_differ_by_purpose_and_part() {
        let a = idempotency_key("external-party", &["V-1", "{}"]);
        assert_eq!(a, idempotency_key("external-party", &["V-1", "{}"]));
        assert_ne!(a, idempotency_key("funding-source", &["V-1", "{}"]));
        assert_ne!(a, idempotency_key("external-party", &["V-1{}"]));
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 8);
    }
}
