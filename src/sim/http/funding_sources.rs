//! Funding sources: the account's and external parties' bank accounts (numbers checked and
//! fingerprinted, never kept), reads, removal and lists.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::accounts::account_id;
use super::extract::{Q, check, json_object, parse_id, query, required_str};
use super::parties::party_id;
use super::respond::{ApiResult, collection, created, ok, one};
use crate::sim::error::{ApiError, FieldError};
use crate::sim::state::Shared;
use crate::sim::store::{FsOwner, FundingSource, Store};
use crate::sim::validate::{account_number_ok, id_from_href, routing_number_ok};

fn bank_account_type(body: &Value, pointer: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let value = required_str(body, pointer, errors)?;
    if value == "checking" || value == "savings" {
        Some(value.to_string())
    } else {
        errors.push(FieldError::new(
            "Invalid",
            "Invalid bank account type. Allowed values are checking and savings.",
            pointer,
        ));
        None
    }
}

fn fs_name(body: &Value, errors: &mut Vec<FieldError>) -> Option<String> {
    let name = required_str(body, "/name", errors)?;
    if name.chars().count() > 50 {
        errors.push(FieldError::new(
            "InvalidFormat",
            "Name must be 50 characters or fewer.",
            "/name",
        ));
        return None;
    }
    Some(name.to_string())
}

/// Routing and account number checks shared by both bank funding-source creates; returns the
/// fingerprint used to refuse duplicates (the numbers themselves are not kept).
fn bank_numbers(body: &Value, errors: &mut Vec<FieldError>) -> Option<[u8; 32]> {
    let routing = required_str(body, "/routingNumber", errors);
    let account = required_str(body, "/accountNumber", errors);
    let mut valid = true;
    if let Some(r) = routing
        && !routing_number_ok(r)
    {
        errors.push(FieldError::new(
            "InvalidFormat",
            "Invalid routing number.",
            "/routingNumber",
        ));
        valid = false;
    }
    if let Some(a) = account
        && !account_number_ok(a)
    {
        errors.push(FieldError::new(
            "InvalidFormat",
            "Account number must be 4 to 17 digits.",
            "/accountNumber",
        ));
        valid = false;
    }
    let (Some(r), Some(a)) = (routing, account) else {
        return None;
    };
    if !valid {
        return None;
    }
    let mut hasher = Sha256::new();
    hasher.update(r.as_bytes());
    hasher.update(b":");
    hasher.update(a.as_bytes());
    Some(hasher.finalize().into())
}

fn removed_filter(q: &HashMap<String, String>) -> bool {
    q.get("removed").is_some_and(|v| v == "false")
}

pub(super) async fn list_account_funding_sources(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    account_id(&sim, &id)?;
    let q = query(q)?;
    let hide_removed = removed_filter(&q);
    sim.with(|st, _| {
        let s = &st.store;
        let items: Vec<Value> = s
            .funding_sources
            .iter()
            .rev()
            .filter(|f| matches!(f.owner, FsOwner::Account { .. }))
            .filter(|f| !(hide_removed && f.removed))
            .map(|f| s.funding_source_json(f))
            .collect();
        collection(
            s.link(&format!("/accounts/{id}/funding-sources"), "funding-source"),
            "funding-sources",
            items,
        )
    })
}

pub(super) async fn create_account_funding_source(
    State(sim): State<Arc<Shared>>,
    body: Bytes,
) -> ApiResult {
    let body = Value::Object(json_object(&body)?);
    let mut errors = Vec::new();
    let treasury_href = required_str(&body, "/_links/treasury-account/href", &mut errors);
    let name = fs_name(&body, &mut errors);
    let account_type = bank_account_type(&body, "/bankAccountType", &mut errors);
    let fingerprint = bank_numbers(&body, &mut errors);
    check(errors)?;
    let (Some(treasury_href), Some(name), Some(account_type), Some(fingerprint)) =
        (treasury_href, name, account_type, fingerprint)
    else {
        return Err(ApiError::bad_request());
    };
    let treasury = id_from_href(treasury_href, "treasury-accounts");
    sim.with(|st, now| {
        let treasury = treasury
            .filter(|t| st.store.treasury_account(*t).is_some())
            .ok_or_else(|| {
                ApiError::one(
                    "Invalid",
                    "Treasury account not found.",
                    "/_links/treasury-account/href",
                )
            })?;
        if let Some(existing) = st.store.fingerprint_taken(None, &fingerprint) {
            return Err(ApiError::one(
                "Duplicate",
                format!("Bank already exists: id={existing}"),
                "/accountNumber",
            ));
        }
        let id = st.store.new_id();
        // A bank account named "GCA-051" is registered under another ACH company id, so its
        // transfers fail like the seeded "Unlinked account" (the return-code-name idea,
        // applied to the one Connect-specific failure).
        let ach_mismatch = name.trim().eq_ignore_ascii_case("GCA-051");
        st.store.add_funding_source(
            FundingSource {
                id,
                owner: FsOwner::Account {
                    treasury_account: treasury,
                    ach_mismatch,
                },
                name,
                bank_account_type: account_type,
                created: now,
                removed: false,
                fingerprint: Some(fingerprint),
                exchange: None,
            },
            now,
            true,
        );
        created(format!("{}/funding-sources/{id}", sim.base_url))
    })
}

pub(super) async fn get_funding_source(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult {
    one(&sim, &id, Store::funding_source, Store::funding_source_json)
}

/// `POST /funding-sources/{id}` with `{"removed": true}`.
pub(super) async fn remove_funding_source(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let id = parse_id(&id)?;
    let body = json_object(&body)?;
    match body.get("removed") {
        Some(Value::Bool(true)) => {}
        None => return Err(ApiError::validation(vec![FieldError::required("/removed")])),
        Some(_) => {
            return Err(ApiError::one(
                "Invalid",
                "Removed must be true.",
                "/removed",
            ));
        }
    }
    sim.with(|st, now| {
        if !st.store.remove_funding_source(id, now) {
            return Err(ApiError::not_found());
        }
        let fs = st.store.funding_source(id).expect("just removed");
        ok(st.store.funding_source_json(fs))
    })
}

pub(super) async fn create_party_funding_source(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let party = party_id(&sim, &id)?;
    let body = Value::Object(json_object(&body)?);
    let mut errors = Vec::new();
    let name = fs_name(&body, &mut errors);
    let account_type = bank_account_type(&body, "/bankAccountType", &mut errors);
    let exchange_href = body
        .pointer("/_links/exchange")
        .is_some()
        .then(|| required_str(&body, "/_links/exchange/href", &mut errors))
        .flatten();
    let is_exchange = body.pointer("/_links/exchange").is_some();
    let fingerprint = if is_exchange {
        None
    } else {
        bank_numbers(&body, &mut errors)
    };
    check(errors)?;
    let (Some(name), Some(account_type)) = (name, account_type) else {
        return Err(ApiError::bad_request());
    };
    let exchange = exchange_href.map(|h| id_from_href(h, "exchanges"));
    sim.with(|st, now| {
        let exchange = match exchange {
            None => None,
            Some(x) => Some(
                x.filter(|x| {
                    st.store
                        .exchange(*x)
                        .is_some_and(|e| e.party == Some(party))
                })
                .ok_or_else(|| {
                    ApiError::one("Invalid", "Exchange not found.", "/_links/exchange/href")
                })?,
            ),
        };
        if let Some(fp) = &fingerprint
            && let Some(existing) = st.store.fingerprint_taken(Some(party), fp)
        {
            let mut err = ApiError::new(
                StatusCode::BAD_REQUEST,
                "DuplicateResource",
                format!("Bank already exists: id={existing}"),
            );
            err.body["_links"] = json!({"about": st.store.link(&format!("/funding-sources/{existing}"), "funding-source")});
            return Err(err);
        }
        let id = st.store.new_id();
        st.store.add_funding_source(
            FundingSource {
                id,
                owner: FsOwner::ExternalParty(party),
                name,
                bank_account_type: account_type,
                created: now,
                removed: false,
                fingerprint,
                exchange,
            },
            now,
            true,
        );
        created(format!("{}/funding-sources/{id}", sim.base_url))
    })
}

pub(super) async fn list_party_funding_sources(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    let party = parse_id(&id)?;
    let q = query(q)?;
    let hide_removed = removed_filter(&q);
    sim.with(|st, _| {
        let s = &st.store;
        if s.external_party(party).is_none() {
            return Err(ApiError::not_found());
        }
        let items: Vec<Value> = s
            .party_funding_sources(party)
            .iter()
            .rev()
            .map(|&i| &s.funding_sources[i as usize])
            .filter(|f| !(hide_removed && f.removed))
            .map(|f| s.funding_source_json(f))
            .collect();
        collection(
            s.link(
                &format!("/external-parties/{party}/funding-sources"),
                "funding-source",
            ),
            "funding-sources",
            items,
        )
    })
}
