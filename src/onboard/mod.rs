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

use crate::dwolla::{Client, DwollaError, Embedded, Page};

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

/// Every item of a list, following `_links.next`; stops after `max` items when given. A list
/// that links back to a page already read is an error rather than an endless loop.
pub async fn all_pages<T: Embedded>(
    client: &Client,
    first: Page<T>,
    max: Option<usize>,
) -> Result<Vec<T>, DwollaError> {
    let mut seen = std::collections::HashSet::new();
    let mut items = Vec::new();
    let mut page = first;
    loop {
        items.append(&mut page.items);
        if let Some(max) = max
            && items.len() >= max
        {
            items.truncate(max);
            return Ok(items);
        }
        match client.next_page(&page).await? {
            None => return Ok(items),
            Some(following) => {
                if let Some(url) = &page.next
                    && !seen.insert(url.clone())
                {
                    return Err(DwollaError::Decode {
                        status: 200,
                        detail: format!("the list links back to {url}"),
                        request_id: None,
                    });
                }
                page = following;
            }
        }
    }
}
