//! Webhook subscriptions, their webhooks (deliveries) and retries, and events.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::extract::{Q, check, json_object, parse_id, query, required_str};
use super::paging::{page_links, paging};
use super::respond::{ApiResult, collection, created, ok};
use crate::secret::Secret;
use crate::sim::error::{ApiError, FieldError};
use crate::sim::state::Shared;
use crate::sim::store::{HAL, Subscription, page};

pub(super) async fn create_subscription(State(sim): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let body = Value::Object(json_object(&body)?);
    let mut errors = Vec::new();
    let url = required_str(&body, "/url", &mut errors).map(str::to_owned);
    let secret = required_str(&body, "/secret", &mut errors).map(str::to_owned);
    if let Some(u) = &url
        && !reqwest::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
    {
        errors.push(FieldError::new("Invalid", "Invalid URL.", "/url"));
    }
    if let Some(s) = &secret
        && s.chars().count() > 128
    {
        errors.push(FieldError::new(
            "Invalid",
            "Secret must be 128 or fewer characters.",
            "/secret",
        ));
    }
    check(errors)?;
    let (Some(url), Some(secret)) = (url, secret) else {
        return Err(ApiError::bad_request());
    };
    let max = sim.config.max_webhook_subscriptions;
    sim.with(|st, now| {
        if st.store.active_subscription_count() >= max {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "MaxNumberOfResources",
                "The maximum number of subscriptions has been reached.",
            ));
        }
        let id = st.store.new_id();
        st.store.add_subscription(Subscription {
            id,
            url,
            secret: Secret::new(secret),
            paused: false,
            created: now,
            deleted: false,
            consecutive_failures: 0,
            last_success: None,
        });
        created(format!("{}/webhook-subscriptions/{id}", sim.base_url))
    })
}

pub(super) async fn list_subscriptions(State(sim): State<Arc<Shared>>) -> ApiResult {
    sim.with(|st, _| {
        let s = &st.store;
        let items: Vec<Value> = s
            .subscriptions
            .iter()
            .rev()
            .filter(|x| !x.deleted)
            .map(|x| s.subscription_json(x))
            .collect();
        collection(
            s.link("/webhook-subscriptions", "webhook-subscription"),
            "webhook-subscriptions",
            items,
        )
    })
}

fn subscription_idx(sim: &Shared, id: &str) -> Result<u32, ApiError> {
    let id = parse_id(id)?;
    sim.with(|st, _| st.store.subscription_idx(id))
        .ok_or_else(ApiError::not_found)
}

pub(super) async fn get_subscription(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult {
    let idx = subscription_idx(&sim, &id)?;
    sim.with(|st, _| {
        ok(st
            .store
            .subscription_json(&st.store.subscriptions[idx as usize]))
    })
}

/// `POST /webhook-subscriptions/{id}` with `{"paused": bool}` (classic; Connect calls unpause
/// "coming soon"). Webhooks created while paused are recorded, not sent, and not re-sent on
/// unpause, as Dwolla documents.
pub(super) async fn update_subscription(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let idx = subscription_idx(&sim, &id)?;
    let body = json_object(&body)?;
    let Some(paused) = body.get("paused").and_then(Value::as_bool) else {
        return Err(ApiError::validation(vec![FieldError::required("/paused")]));
    };
    sim.with(|st, _| {
        st.store.set_subscription_paused(idx, paused);
        ok(st
            .store
            .subscription_json(&st.store.subscriptions[idx as usize]))
    })
}

pub(super) async fn delete_subscription(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult {
    let idx = subscription_idx(&sim, &id)?;
    sim.with(|st, _| {
        st.store.delete_subscription(idx);
        ok(st
            .store
            .subscription_json(&st.store.subscriptions[idx as usize]))
    })
}

pub(super) async fn list_subscription_webhooks(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    let idx = subscription_idx(&sim, &id)?;
    let q = query(q)?;
    let paging = paging(&q)?;
    sim.with(|st, _| {
        let s = &st.store;
        let seqs = s.webhooks_for_subscription(idx);
        let page = page(|i| seqs[i], seqs.len(), paging.limit, paging.cursor);
        let items: Vec<Value> = page.items.iter().map(|&i| s.webhook_json(i)).collect();
        let sub_id = s.subscriptions[idx as usize].id;
        let links = page_links(
            &sim,
            &format!("/webhook-subscriptions/{sub_id}/webhooks"),
            None,
            &paging,
            &page,
            "webhook",
        );
        ok(json!({"_links": links, "_embedded": {"webhooks": items}, "total": seqs.len()}))
    })
}

pub(super) async fn get_webhook(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id)?;
    sim.with(|st, _| {
        let idx = st.store.webhook_idx(id).ok_or_else(ApiError::not_found)?;
        ok(st.store.webhook_json(idx))
    })
}

pub(super) async fn retry_webhook(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult {
    let id = parse_id(&id)?;
    sim.with(|st, now| {
        let idx = st.store.webhook_idx(id).ok_or_else(ApiError::not_found)?;
        st.store.retry_webhook(idx, now);
        let retry = st.store.new_id();
        created(format!("{}/webhooks/{id}/retries/{retry}", sim.base_url))
    })
}

pub(super) async fn get_event(State(sim): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    sim.with(|st, _| {
        let event = st.store.event(id).ok_or_else(ApiError::not_found)?;
        let body = st.store.event_body(event);
        let mut response = (StatusCode::OK, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(HAL));
        Ok(response)
    })
}
