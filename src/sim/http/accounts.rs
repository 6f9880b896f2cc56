//! The API root, the main account, and treasury accounts and partners.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::extract::{check, json_object, parse_id, required_str};
use super::respond::{ApiResult, created, ok, one};
use crate::sim::error::{ApiError, FieldError};
use crate::sim::state::Shared;
use crate::sim::store::{Store, TreasuryAccount};
use crate::sim::validate::id_from_href;

pub(super) async fn root(State(sim): State<Arc<Shared>>) -> ApiResult {
    sim.with(|st, _| {
        let s = &st.store;
        let account = s.account.id;
        ok(json!({"_links": {
            "account": s.link(&format!("/accounts/{account}"), "account"),
            "external-parties": s.link("/external-parties", "external-party"),
            "funding-sources": s.link(&format!("/accounts/{account}/funding-sources"), "funding-source"),
            "transfers": s.link(&format!("/accounts/{account}/transfers"), "transfer"),
            "treasury-accounts": s.link("/treasury-accounts", "treasury-account"),
            "treasury-partners": s.link("/treasury-partners", "treasury-partners"),
            "exchange-partners": s.link("/exchange-partners", "exchange-partner"),
            "webhook-subscriptions": s.link("/webhook-subscriptions", "webhook-subscription"),
        }}))
    })
}

pub(super) fn account_id(sim: &Shared, id: &str) -> Result<(), ApiError> {
    let id = parse_id(id)?;
    if sim.with(|st, _| st.store.account.id) == id {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

pub(super) async fn get_account(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult {
    account_id(&sim, &id)?;
    sim.with(|st, _| ok(st.store.account_json()))
}

pub(super) async fn create_treasury_account(
    State(sim): State<Arc<Shared>>,
    body: Bytes,
) -> ApiResult {
    let body = Value::Object(json_object(&body)?);
    let mut errors = Vec::new();
    let partner_href = required_str(&body, "/_links/treasuryPartner/href", &mut errors);
    let name = required_str(&body, "/name", &mut errors).map(str::to_owned);
    if !body
        .get("treasuryPartnerContext")
        .is_some_and(Value::is_object)
    {
        errors.push(FieldError::required("/treasuryPartnerContext"));
    }
    check(errors)?;
    let (Some(partner_href), Some(name)) = (partner_href, name) else {
        return Err(ApiError::bad_request());
    };
    let partner = id_from_href(partner_href, "treasury-partners");
    sim.with(|st, now| {
        let partner = partner
            .and_then(|p| st.store.treasury_partner(p))
            .cloned()
            .ok_or_else(|| {
                ApiError::one(
                    "Invalid",
                    "Treasury partner not found.",
                    "/_links/treasuryPartner/href",
                )
            })?;
        let pointer = format!("/treasuryPartnerContext/{}", partner.context_field);
        let mut errors = Vec::new();
        let value = required_str(&body, &pointer, &mut errors).map(str::to_owned);
        check(errors)?;
        let id = st.store.new_id();
        st.store.add_treasury_account(TreasuryAccount {
            id,
            name,
            created: now,
            partner: partner.id,
            context_field: partner.context_field,
            context_value: value.unwrap_or_default(),
        });
        created(format!("{}/treasury-accounts/{id}", sim.base_url))
    })
}

pub(super) async fn list_treasury_accounts(State(sim): State<Arc<Shared>>) -> ApiResult {
    sim.with(|st, _| {
        let s = &st.store;
        let items: Vec<Value> = s
            .treasury_accounts
            .iter()
            .rev()
            .map(|t| s.treasury_account_json(t))
            .collect();
        ok(json!({
            "_links": {"self": s.link("/treasury-accounts", "treasury-account")},
            "_embedded": {"treasury-accounts": items},
        }))
    })
}

pub(super) async fn get_treasury_account(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult {
    one(
        &sim,
        &id,
        Store::treasury_account,
        Store::treasury_account_json,
    )
}

pub(super) async fn list_treasury_partners(State(sim): State<Arc<Shared>>) -> ApiResult {
    sim.with(|st, _| {
        let s = &st.store;
        let items: Vec<Value> = s
            .treasury_partners
            .iter()
            .map(|p| s.treasury_partner_json(p))
            .collect();
        ok(json!({
            "_links": {"self": s.link("/treasury-partners", "treasury-partners")},
            "_embedded": {"treasury-partners": items},
        }))
    })
}

pub(super) async fn get_treasury_partner(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult {
    one(
        &sim,
        &id,
        Store::treasury_partner,
        Store::treasury_partner_json,
    )
}
