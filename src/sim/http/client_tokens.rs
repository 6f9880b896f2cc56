//! `POST /client-tokens` (classic API), for Dwolla's drop-in components.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use serde_json::{Value, json};

use super::extract::{check, json_object, required_str};
use super::respond::{ApiResult, ok};
use crate::sim::error::ApiError;
use crate::sim::state::Shared;
use crate::sim::validate::id_from_href;

/// Connect has no Customers, so the `customer` link may name an external party, under either
/// `/customers/{id}` or `/external-parties/{id}`.
pub(super) async fn create_client_token(State(sim): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let body = Value::Object(json_object(&body)?);
    let mut errors = Vec::new();
    let action = required_str(&body, "/action", &mut errors);
    let customer = required_str(&body, "/_links/customer/href", &mut errors);
    check(errors)?;
    let (Some(_), Some(customer)) = (action, customer) else {
        return Err(ApiError::bad_request());
    };
    let party =
        id_from_href(customer, "customers").or_else(|| id_from_href(customer, "external-parties"));
    sim.with(|st, _| {
        if party.is_none_or(|p| st.store.external_party(p).is_none()) {
            return Err(ApiError::one(
                "Invalid",
                "Customer not found.",
                "/_links/customer/href",
            ));
        }
        let token = st.store.mint_client_token();
        ok(json!({ "token": token }))
    })
}
