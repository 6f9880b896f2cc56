//! Onboarding: the payee directory (`payees import|list`) and what the Connect-resource
//! commands (`accounts`, `treasury`, `parties`, `funding-sources`, `exchanges`, `transfers`,
//! whose arguments and printing live in `cli::connect`) share.
//!
//! Owns the checks made before anything is sent to Dwolla (routing checksum, account-number
//! format, the payee file). It calls Dwolla only through [`crate::dwolla`] and writes the
//! ledger only through [`crate::ledger`]; it imports nothing of `cli`. Full bank account
//! numbers never leave the request body (see [`bank::AccountNumber`]).
//!
//! - `payees`: `payees import` (idempotent at Dwolla and in the ledger) and `payees list`;
//! - `payee_file`: the payee CSV format, as pure functions;
//! - `bank`: routing and account numbers.

pub mod bank;
pub mod payee_file;
pub mod payees;

use crate::dwolla::DwollaError;

/// Dwolla's `_embedded.errors`, as `\n  /path: message` lines.
pub fn embedded_errors(err: &DwollaError) -> String {
    let DwollaError::Api { errors, .. } = err else {
        return String::new();
    };
    errors
        .iter()
        .map(|e| {
            format!(
                "\n  {}: {} ({})",
                e.path.as_deref().unwrap_or("-"),
                e.message,
                e.code
            )
        })
        .collect()
}
