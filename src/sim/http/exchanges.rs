//! Exchanges (instant account verification) and exchange partners.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::Value;
use uuid::Uuid;

use super::extract::{check, json_object, required_str};
use super::parties::party_id;
use super::respond::{ApiResult, collection, created, one};
use crate::sim::error::{ApiError, FieldError};
use crate::sim::seed;
use crate::sim::state::Shared;
use crate::sim::store::Store;
use crate::sim::validate::id_from_href;

fn exchange_request(body: &Bytes) -> Result<Option<Uuid>, ApiError> {
    let body = Value::Object(json_object(body)?);
    let mut errors = Vec::new();
    let partner_href = required_str(&body, "/_links/exchange-partner/href", &mut errors);
    check(errors)?;
    let partner = partner_href.and_then(|h| id_from_href(h, "exchange-partners"));
    let Some(partner) = partner else {
        return Err(ApiError::one(
            "Invalid",
            "Exchange partner not found.",
            "/_links/exchange-partner/href",
        ));
    };
    // Finicity sends a `finicity` object; MX (and Flinks) an exchange `token`.
    let mut errors = Vec::new();
    if partner == seed::id(seed::FINICITY_ID) {
        if !body.get("finicity").is_some_and(Value::is_object) {
            errors.push(FieldError::required("/finicity"));
        }
    } else {
        required_str(&body, "/token", &mut errors);
    }
    check(errors)?;
    Ok(Some(partner))
}

fn create_exchange(sim: &Shared, partner: Uuid, party: Option<Uuid>) -> ApiResult {
    sim.with(|st, now| {
        if st.store.exchange_partner(partner).is_none() {
            return Err(ApiError::one(
                "Invalid",
                "Exchange partner not found.",
                "/_links/exchange-partner/href",
            ));
        }
        if let Some(p) = party
            && st.store.external_party(p).is_none()
        {
            return Err(ApiError::not_found());
        }
        let id = st.store.add_exchange(partner, party, now);
        created(format!("{}/exchanges/{id}", sim.base_url))
    })
}

pub(super) async fn create_account_exchange(
    State(sim): State<Arc<Shared>>,
    body: Bytes,
) -> ApiResult {
    let partner = exchange_request(&body)?.ok_or_else(ApiError::bad_request)?;
    create_exchange(&sim, partner, None)
}

pub(super) async fn create_party_exchange(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let party = party_id(&sim, &id)?;
    let partner = exchange_request(&body)?.ok_or_else(ApiError::bad_request)?;
    create_exchange(&sim, partner, Some(party))
}

fn exchange_list(sim: &Shared, party: Option<Uuid>, self_path: &str) -> ApiResult {
    sim.with(|st, _| {
        let s = &st.store;
        let items: Vec<Value> = s
            .exchanges
            .iter()
            .rev()
            .filter(|x| x.party == party)
            .map(|x| s.exchange_json(x))
            .collect();
        collection(s.link(self_path, "exchange"), "exchanges", items)
    })
}

pub(super) async fn list_account_exchanges(State(sim): State<Arc<Shared>>) -> ApiResult {
    exchange_list(&sim, None, "/exchanges")
}

pub(super) async fn list_party_exchanges(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult {
    let party = party_id(&sim, &id)?;
    exchange_list(
        &sim,
        Some(party),
        &format!("/external-parties/{party}/exchanges"),
    )
}

pub(super) async fn get_exchange(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult {
    one(&sim, &id, Store::exchange, Store::exchange_json)
}

pub(super) async fn list_exchange_partners(State(sim): State<Arc<Shared>>) -> ApiResult {
    sim.with(|st, _| {
        let s = &st.store;
        let items: Vec<Value> = s
            .exchange_partners
            .iter()
            .map(|p| s.exchange_partner_json(p))
            .collect();
        collection(
            s.link("/exchange-partners", "exchange-partner"),
            "exchange-partners",
            items,
        )
    })
}

pub(super) async fn get_exchange_partner(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult {
    one(
        &sim,
        &id,
        Store::exchange_partner,
        Store::exchange_partner_json,
    )
}
