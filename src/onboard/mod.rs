//! Onboarding and look-ups from the command line: the Connect API resources (`accounts`,
//! `treasury`, `parties`, `funding-sources`, `exchanges`, `transfers`) and the payee directory
//! (`payees import|list`).
//!
//! Owns the commands' arguments, the checks made before anything is sent to Dwolla (routing
//! checksum, account-number format, the payee file), and how results print: a table by
//! default, one JSON document with `--json`. It calls Dwolla only through [`crate::dwolla`]
//! and writes the ledger only through [`crate::ledger`]; full bank account numbers never
//! leave the request body (see [`bank::AccountNumber`]).
//!
//! - `commands`: one subcommand per Connect resource;
//! - `payees`: `payees import` (idempotent at Dwolla and in the ledger) and `payees list`;
//! - `payee_file`: the payee CSV format, as pure functions;
//! - `bank`: routing and account numbers;
//! - `table`: the plain-text tables.

pub mod bank;
pub mod commands;
pub mod payee_file;
pub mod payees;
mod table;

use clap::Args;
use serde_json::Value;

use crate::cli::{DwollaArgs, Failure};
use crate::dwolla::{Client, Disposition, DwollaError, Embedded, Page};
use crate::exit;

/// Flags every Dwolla-facing command of this module takes.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub dwolla: DwollaArgs,
}

/// The exit status and message for a failed Dwolla call: a refusal (the request was wrong,
/// or the resource does not exist) is invalid input, 65; anything else (unreachable, 5xx,
/// refused credentials) is 69. Dwolla's per-field errors follow the message, one per line.
pub(crate) fn dwolla_failure(context: &str, err: &DwollaError) -> Failure {
    let status = match err.disposition() {
        Disposition::Final => exit::INVALID_INPUT,
        Disposition::Retry { .. } | Disposition::Unauthorized => exit::UNAVAILABLE,
    };
    Failure {
        status,
        message: format!("{context}: {err}{}", embedded_errors(err)),
    }
}

/// Dwolla's `_embedded.errors`, as `\n  /path: message` lines.
pub(crate) fn embedded_errors(err: &DwollaError) -> String {
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
pub(crate) async fn all_pages<T: Embedded>(
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

/// The id in `text`, which may be a bare id or a Dwolla URL (the last path segment).
pub(crate) fn id_of(text: &str) -> &str {
    crate::dwolla::wire::last_segment(text.trim())
}

/// Prints `value` as one compact line.
pub(crate) fn print_json(value: &Value) {
    println!("{value}");
}
