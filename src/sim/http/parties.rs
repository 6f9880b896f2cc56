//! External parties: create (person or business), list and read.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use uuid::Uuid;

use super::extract::{
    Q, check, correlation_id, json_object, optional_str, parse_id, query, required_str,
};
use super::paging::{page_links, paging};
use super::respond::{ApiResult, created, ok, one};
use crate::sim::error::{ApiError, FieldError};
use crate::sim::state::Shared;
use crate::sim::store::{ExternalParty, PartyKind, Store, page};
use crate::sim::validate::email_ok;

pub(super) async fn create_external_party(
    State(sim): State<Arc<Shared>>,
    body: Bytes,
) -> ApiResult {
    let body = Value::Object(json_object(&body)?);
    let mut errors = Vec::new();
    let email = required_str(&body, "/email", &mut errors).map(str::to_owned);
    if let Some(e) = &email
        && !email_ok(e)
    {
        errors.push(FieldError::new(
            "InvalidFormat",
            "Email is invalid.",
            "/email",
        ));
    }
    let business = optional_str(&body, "/businessName", &mut errors).map(str::to_owned);
    let has_person = body.get("firstName").is_some() || body.get("lastName").is_some();
    let kind = match business {
        Some(business_name) if !has_person => Some(PartyKind::Business { business_name }),
        Some(_) => {
            errors.push(FieldError::new(
                "Invalid",
                "Supply either businessName, or firstName and lastName, not both.",
                "/businessName",
            ));
            None
        }
        None => {
            let first = required_str(&body, "/firstName", &mut errors);
            let last = required_str(&body, "/lastName", &mut errors);
            match (first, last) {
                (Some(f), Some(l)) => Some(PartyKind::Personal {
                    first_name: f.to_string(),
                    last_name: l.to_string(),
                }),
                _ => None,
            }
        }
    };
    let correlation_id = correlation_id(&body, &mut errors);
    check(errors)?;
    let (Some(email), Some(kind)) = (email, kind) else {
        return Err(ApiError::bad_request());
    };
    sim.with(|st, now| {
        if st.store.email_taken(&email) {
            return Err(ApiError::one(
                "Duplicate",
                "An external party with the specified email has already been registered.",
                "/email",
            ));
        }
        let id = st.store.new_id();
        st.store.add_external_party(
            ExternalParty {
                id,
                kind,
                email,
                correlation_id,
                created: now,
            },
            now,
            true,
        );
        created(format!("{}/external-parties/{id}", sim.base_url))
    })
}

pub(super) async fn list_external_parties(State(sim): State<Arc<Shared>>, q: Q) -> ApiResult {
    let q = query(q)?;
    let paging = paging(&q)?;
    sim.with(|st, _| {
        let s = &st.store;
        let page = page(
            |i| i as u32,
            s.external_parties.len(),
            paging.limit,
            paging.cursor,
        );
        let items: Vec<Value> = page
            .items
            .iter()
            .map(|&i| s.external_party_json(&s.external_parties[i as usize]))
            .collect();
        let links = page_links(
            &sim,
            "/external-parties",
            None,
            &paging,
            &page,
            "external-party",
        );
        ok(json!({"_links": links, "_embedded": {"external-parties": items}, "total": s.external_parties.len()}))
    })
}

pub(super) async fn get_external_party(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult {
    one(&sim, &id, Store::external_party, Store::external_party_json)
}

/// The id of an external party that exists; 404 otherwise.
pub(super) fn party_id(sim: &Shared, id: &str) -> Result<Uuid, ApiError> {
    let party = parse_id(id)?;
    if sim.with(|st, _| st.store.external_party(party).is_none()) {
        return Err(ApiError::not_found());
    }
    Ok(party)
}
