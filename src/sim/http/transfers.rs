//! Transfers: create (validated, checked against the funding sources), read, and the
//! account's and a party's transfer lists.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use uuid::Uuid;

use super::accounts::account_id;
use super::extract::{Q, check, correlation_id, idempotency_key, json_object, query, required_str};
use super::paging::{page_links, paging};
use super::parties::party_id;
use super::respond::{ApiResult, created, ok, one};
use crate::sim::error::{ApiError, FieldError};
use crate::sim::state::Shared;
use crate::sim::store::{FsOwner, Store, page};
use crate::sim::validate::{ExcessDecimals, id_from_href, metadata_ok, parse_amount};

/// A `POST /transfers` body that passed the shape checks; references are checked under the lock.
struct TransferRequest {
    cents: i64,
    source_id: Option<Uuid>,
    dest_id: Option<Uuid>,
    correlation_id: Option<String>,
    metadata: Option<Value>,
}

/// `POST /transfers`: validate the body, check the funding sources, create the transfer (the
/// store schedules its lifecycle) and answer `201` with its `Location`. The Idempotency-Key
/// itself was claimed by the pipeline; the transfer only records it.
pub(super) async fn create_transfer(
    State(sim): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let request = transfer_request(&sim, &body)?;
    let key = idempotency_key(&headers);
    sim.with(|st, now| {
        let (source_id, dest_id) =
            transfer_funding_sources(&st.store, request.source_id, request.dest_id)?;
        let id = st.store.add_transfer(
            source_id,
            dest_id,
            request.cents,
            request.correlation_id,
            request.metadata,
            key,
            now,
        );
        st.stats.transfers_created += 1;
        created(format!("{}/transfers/{id}", sim.base_url))
    })
}

/// The shape checks of a transfer body, every failing field reported at once.
fn transfer_request(sim: &Shared, body: &Bytes) -> Result<TransferRequest, ApiError> {
    let body = Value::Object(json_object(body)?);
    let mut errors = Vec::new();
    let source_href = required_str(&body, "/_links/source/href", &mut errors);
    let dest_href = required_str(&body, "/_links/destination/href", &mut errors);
    let cents = transfer_cents(sim, &body, &mut errors);
    if let Some(currency) = required_str(&body, "/amount/currency", &mut errors)
        && currency != "USD"
    {
        errors.push(FieldError::new(
            "Invalid",
            "Invalid currency. Only USD is supported.",
            "/amount/currency",
        ));
    }
    let correlation_id = correlation_id(&body, &mut errors);
    let metadata = match body.get("metadata") {
        None | Some(Value::Null) => None,
        Some(m) if metadata_ok(m) => Some(m.clone()),
        Some(_) => {
            errors.push(FieldError::new("Invalid", "Invalid metadata.", "/metadata"));
            None
        }
    };
    let source_id = source_href.map(|h| id_from_href(h, "funding-sources"));
    let dest_id = dest_href.map(|h| id_from_href(h, "funding-sources"));
    check(errors)?;
    let (Some(cents), Some(source_id), Some(dest_id)) = (cents, source_id, dest_id) else {
        return Err(ApiError::bad_request());
    };
    Ok(TransferRequest {
        cents,
        source_id,
        dest_id,
        correlation_id,
        metadata,
    })
}

fn transfer_cents(sim: &Shared, body: &Value, errors: &mut Vec<FieldError>) -> Option<i64> {
    let excess = if sim.config.bankers_rounding {
        ExcessDecimals::BankersRound
    } else {
        ExcessDecimals::Reject
    };
    match body.pointer("/amount/value") {
        None | Some(Value::Null) => {
            errors.push(FieldError::required("/amount/value"));
            None
        }
        Some(value) => match parse_amount(value, sim.config.max_amount_cents, excess) {
            Ok(c) => Some(c),
            Err(e) => {
                errors.push(e);
                None
            }
        },
    }
}

fn transfer_funding_sources(
    s: &Store,
    source_id: Option<Uuid>,
    dest_id: Option<Uuid>,
) -> Result<(Uuid, Uuid), ApiError> {
    let source_path = "/_links/source/href";
    let dest_path = "/_links/destination/href";
    let source = source_id.and_then(|id| s.funding_source(id));
    let dest = dest_id.and_then(|id| s.funding_source(id));
    let mut errors = Vec::new();
    match source {
        None => errors.push(FieldError::new(
            "Invalid",
            "Funding source not found.",
            source_path,
        )),
        Some(f) if f.removed => errors.push(FieldError::new(
            "Invalid",
            "Invalid funding source.",
            source_path,
        )),
        Some(_) => {}
    }
    match dest {
        None => errors.push(FieldError::new("Invalid", "Receiver not found.", dest_path)),
        Some(f) if f.removed => errors.push(FieldError::new(
            "Invalid",
            "Invalid destination funding source.",
            dest_path,
        )),
        Some(_) => {}
    }
    check(errors)?;
    let (source, dest) = (source.expect("checked"), dest.expect("checked"));
    match (&source.owner, &dest.owner) {
        (FsOwner::Account { .. }, FsOwner::ExternalParty(_))
        | (FsOwner::ExternalParty(_), FsOwner::Account { .. }) => Ok((source.id, dest.id)),
        (FsOwner::Account { .. }, FsOwner::Account { .. }) => Err(ApiError::one(
            "Invalid",
            "Receiver cannot be the owner of the source funding source.",
            dest_path,
        )),
        (FsOwner::ExternalParty(_), FsOwner::ExternalParty(_)) => Err(ApiError::one(
            "NotAllowed",
            "Receiver cannot receive from sender.",
            dest_path,
        )),
    }
}

pub(super) async fn get_transfer(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult {
    one(&sim, &id, Store::transfer, Store::transfer_json)
}

fn transfer_list(
    sim: &Shared,
    path: &str,
    party: Option<Uuid>,
    q: HashMap<String, String>,
) -> ApiResult {
    let paging = paging(&q)?;
    let correlation_id = q.get("correlationId").filter(|c| !c.is_empty());
    sim.with(|st, _| {
        let s = &st.store;
        let page = match (correlation_id, party) {
            (Some(c), None) => {
                let seqs = s.transfers_for_correlation(c);
                page(|i| seqs[i], seqs.len(), paging.limit, paging.cursor)
            }
            (Some(c), Some(p)) => {
                // Usually a handful of transfers share a correlationId: filter that index.
                let seqs: Vec<u32> = s
                    .transfers_for_correlation(c)
                    .iter()
                    .copied()
                    .filter(|&i| s.transfers[i as usize].party == p)
                    .collect();
                page(|i| seqs[i], seqs.len(), paging.limit, paging.cursor)
            }
            (None, Some(p)) => {
                let seqs = s.transfers_for_party(p);
                page(|i| seqs[i], seqs.len(), paging.limit, paging.cursor)
            }
            (None, None) => page(|i| i as u32, s.transfers.len(), paging.limit, paging.cursor),
        };
        let items: Vec<Value> = page
            .items
            .iter()
            .map(|&i| s.transfer_json(&s.transfers[i as usize]))
            .collect();
        let filter = correlation_id.map(|c| ("correlationId", c.as_str()));
        let links = page_links(sim, path, filter, &paging, &page, "transfer");
        ok(json!({"_links": links, "_embedded": {"transfers": items}}))
    })
}

pub(super) async fn list_account_transfers(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    account_id(&sim, &id)?;
    let q = query(q)?;
    transfer_list(&sim, &format!("/accounts/{id}/transfers"), None, q)
}

pub(super) async fn list_party_transfers(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    let party = party_id(&sim, &id)?;
    let q = query(q)?;
    transfer_list(
        &sim,
        &format!("/external-parties/{party}/transfers"),
        Some(party),
        q,
    )
}
