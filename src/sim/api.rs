//! The Connect endpoints (every path of Dwolla's Connect spec, plus `POST /client-tokens` from
//! the classic API and a few classic webhook/event reads) and the `/_sim/*` control endpoints.
//!
//! Handlers parse and validate outside the lock, then check references and mutate inside one
//! `Shared::with` call, so each request's effect is atomic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::config::Faults;
use super::error::{ApiError, FieldError, oauth_error};
use super::pipeline::pipeline;
use super::state::Shared;
use super::state::inspect;
use super::store::{
    ExternalParty, FsOwner, FundingSource, HAL, Page, PartyKind, Store, Subscription,
    TreasuryAccount, page,
};
use super::validate::{
    ExcessDecimals, account_number_ok, correlation_id_ok, email_ok, id_from_href, metadata_ok,
    parse_amount, routing_number_ok,
};
use crate::secret::Secret;

type ApiResult = Result<Response, ApiError>;
type Q = Result<Query<HashMap<String, String>>, QueryRejection>;

pub fn router(sim: Arc<Shared>) -> Router {
    Router::new()
        .route("/token", post(token))
        .route("/", get(root))
        .route("/accounts/{id}", get(get_account))
        .route(
            "/accounts/{id}/funding-sources",
            get(list_account_funding_sources),
        )
        .route("/accounts/{id}/transfers", get(list_account_transfers))
        .route("/funding-sources", post(create_account_funding_source))
        .route(
            "/funding-sources/{id}",
            get(get_funding_source).post(remove_funding_source),
        )
        .route(
            "/external-parties",
            post(create_external_party).get(list_external_parties),
        )
        .route("/external-parties/{id}", get(get_external_party))
        .route(
            "/external-parties/{id}/funding-sources",
            post(create_party_funding_source).get(list_party_funding_sources),
        )
        .route(
            "/external-parties/{id}/exchanges",
            post(create_party_exchange).get(list_party_exchanges),
        )
        .route(
            "/external-parties/{id}/transfers",
            get(list_party_transfers),
        )
        .route("/exchange-partners", get(list_exchange_partners))
        .route("/exchange-partners/{id}", get(get_exchange_partner))
        .route(
            "/exchanges",
            post(create_account_exchange).get(list_account_exchanges),
        )
        .route("/exchanges/{id}", get(get_exchange))
        .route("/transfers", post(create_transfer))
        .route("/transfers/{id}", get(get_transfer))
        .route(
            "/treasury-accounts",
            post(create_treasury_account).get(list_treasury_accounts),
        )
        .route("/treasury-accounts/{id}", get(get_treasury_account))
        .route("/treasury-partners", get(list_treasury_partners))
        .route("/treasury-partners/{id}", get(get_treasury_partner))
        .route(
            "/webhook-subscriptions",
            post(create_subscription).get(list_subscriptions),
        )
        .route(
            "/webhook-subscriptions/{id}",
            get(get_subscription)
                .post(update_subscription)
                .delete(delete_subscription),
        )
        .route(
            "/webhook-subscriptions/{id}/webhooks",
            get(list_subscription_webhooks),
        )
        .route("/webhooks/{id}", get(get_webhook))
        .route("/webhooks/{id}/retries", post(retry_webhook))
        .route("/events/{id}", get(get_event))
        .route("/client-tokens", post(create_client_token))
        .route("/_sim/stats", get(sim_stats))
        .route("/_sim/advance", post(sim_advance))
        .route("/_sim/faults", get(sim_get_faults).post(sim_set_faults))
        .route("/_sim/transfers", get(sim_list_transfers))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(sim.clone(), pipeline))
        .with_state(sim)
}

// ----- response helpers -----

fn hal(status: StatusCode, body: Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(HAL));
    response
}

fn ok(body: Value) -> ApiResult {
    Ok(hal(StatusCode::OK, body))
}

/// `201 Created`, `Location`, empty body: how Dwolla answers every create.
fn created(location: String) -> ApiResult {
    let mut response = StatusCode::CREATED.into_response();
    let value = HeaderValue::from_str(&location).map_err(|_| ApiError::bad_request())?;
    response.headers_mut().insert(header::LOCATION, value);
    Ok(response)
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

fn parse_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::not_found())
}

fn json_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::bad_request()),
    }
}

/// A required non-empty string at `pointer`; records `Required` (or `Invalid` for a non-string).
fn required_str<'a>(
    body: &'a Value,
    pointer: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match body.pointer(pointer) {
        None | Some(Value::Null) => {
            errors.push(FieldError::required(pointer));
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.push(FieldError::required(pointer));
            None
        }
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            errors.push(FieldError::new(
                "Invalid",
                format!("{} must be a string.", field_name(pointer)),
                pointer,
            ));
            None
        }
    }
}

fn optional_str<'a>(
    body: &'a Value,
    pointer: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match body.pointer(pointer) {
        None | Some(Value::Null) => None,
        Some(_) => required_str(body, pointer, errors),
    }
}

fn field_name(pointer: &str) -> String {
    let name = pointer.rsplit('/').next().unwrap_or(pointer);
    let mut out = name.to_string();
    if let Some(first) = out.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    out
}

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

fn check(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

// ----- paging -----

struct Paging {
    limit: usize,
    cursor: Option<u32>,
}

fn paging(query: &HashMap<String, String>) -> Result<Paging, ApiError> {
    let limit = match query.get("limit") {
        None => 25,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=200).contains(&n) => n,
            _ => {
                return Err(ApiError::one(
                    "Invalid",
                    "Limit must be a whole number between 1 and 200.",
                    "/limit",
                ));
            }
        },
    };
    let cursor = match query.get("cursor") {
        None => None,
        Some(text) => Some(
            decode_cursor(text)
                .ok_or_else(|| ApiError::one("Invalid", "Invalid cursor.", "/cursor"))?,
        ),
    };
    Ok(Paging { limit, cursor })
}

fn encode_cursor(seq: u32) -> String {
    URL_SAFE_NO_PAD.encode(format!("s{seq}"))
}

fn decode_cursor(text: &str) -> Option<u32> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix('s')?
        .parse()
        .ok()
}

/// Percent-encodes a query value (correlation ids are plain, but be safe).
fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `_links` of a paged list: `self`, and `next` / `prev` when they exist.
fn page_links(
    sim: &Shared,
    path: &str,
    filter: Option<(&str, &str)>,
    paging: &Paging,
    page: &Page,
    resource_type: &str,
) -> Value {
    let href = |cursor: Option<u32>| {
        let mut query = vec![format!("limit={}", paging.limit)];
        if let Some((name, value)) = filter {
            query.push(format!("{name}={}", encode_query_value(value)));
        }
        if let Some(c) = cursor {
            query.push(format!("cursor={}", encode_cursor(c)));
        }
        json!({"href": format!("{}{path}?{}", sim.base_url, query.join("&")), "type": HAL, "resource-type": resource_type})
    };
    let mut links = Map::new();
    links.insert("self".into(), href(paging.cursor));
    if let Some(next) = page.next {
        links.insert("next".into(), href(Some(next)));
    }
    if let Some(prev) = page.prev {
        links.insert("prev".into(), href(prev));
    }
    Value::Object(links)
}

fn query(q: Q) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(q)| q).map_err(|_| ApiError::bad_request())
}

// ----- POST /token -----

/// Client credentials by Basic auth, as form fields, or as JSON (all three are used by
/// Dwolla's clients, notes section 1). Errors are OAuth-style, not vnd.error.
async fn token(State(sim): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut fields: HashMap<String, String> = HashMap::new();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.contains("json") {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) {
            for (k, v) in map {
                if let Some(s) = v.as_str() {
                    fields.insert(k, s.to_string());
                }
            }
        }
    } else {
        fields = parse_form(&body);
    }
    let mut credentials = None;
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        && let Some(pair) = STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        && let Some((id, secret)) = pair.split_once(':')
    {
        credentials = Some((id.to_string(), secret.to_string()));
    }
    if credentials.is_none()
        && let (Some(id), Some(secret)) = (fields.get("client_id"), fields.get("client_secret"))
    {
        credentials = Some((id.clone(), secret.clone()));
    }
    match fields.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
    }
    let Some((id, secret)) = credentials else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    let id_ok = constant_time_eq(id.as_bytes(), sim.config.key.as_bytes());
    let secret_ok = constant_time_eq(secret.as_bytes(), sim.config.secret.expose().as_bytes());
    if !(id_ok && secret_ok) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let ttl = sim.config.token_ttl;
    let access_token = sim.with(|st, now| st.mint_token(now, ttl));
    let body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ttl.as_secs(),
    });
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_form(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ----- root, account -----

async fn root(State(sim): State<Arc<Shared>>) -> ApiResult {
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

fn account_id(sim: &Shared, id: &str) -> Result<(), ApiError> {
    let id = parse_id(id)?;
    if sim.with(|st, _| st.store.account.id) == id {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

async fn get_account(State(sim): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    account_id(&sim, &id)?;
    sim.with(|st, _| ok(st.store.account_json()))
}

fn removed_filter(q: &HashMap<String, String>) -> bool {
    q.get("removed").is_some_and(|v| v == "false")
}

async fn list_account_funding_sources(
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
        ok(json!({
            "_links": {"self": s.link(&format!("/accounts/{id}/funding-sources"), "funding-source")},
            "_embedded": {"funding-sources": items},
            "total": items.len(),
        }))
    })
}

// ----- transfers -----

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
async fn create_transfer(
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

/// An optional `correlationId`, checked as Dwolla does (1 to 255 characters).
fn correlation_id(body: &Value, errors: &mut Vec<FieldError>) -> Option<String> {
    let correlation_id = optional_str(body, "/correlationId", errors).map(str::to_owned);
    if let Some(c) = &correlation_id
        && !correlation_id_ok(c)
    {
        errors.push(FieldError::new(
            "InvalidFormat",
            "Correlation id must be at least one character and up to 255 characters when supplied.",
            "/correlationId",
        ));
    }
    correlation_id
}

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Both funding sources exist, are not removed, and one of them is the main account's.
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

async fn get_transfer(State(sim): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    sim.with(|st, _| {
        let t = st.store.transfer(id).ok_or_else(ApiError::not_found)?;
        ok(st.store.transfer_json(t))
    })
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

async fn list_account_transfers(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    account_id(&sim, &id)?;
    let q = query(q)?;
    transfer_list(&sim, &format!("/accounts/{id}/transfers"), None, q)
}

async fn list_party_transfers(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
    q: Q,
) -> ApiResult {
    let party = parse_id(&id)?;
    if sim.with(|st, _| st.store.external_party(party).is_none()) {
        return Err(ApiError::not_found());
    }
    let q = query(q)?;
    transfer_list(
        &sim,
        &format!("/external-parties/{party}/transfers"),
        Some(party),
        q,
    )
}

// ----- funding sources -----

async fn create_account_funding_source(State(sim): State<Arc<Shared>>, body: Bytes) -> ApiResult {
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

async fn get_funding_source(State(sim): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    sim.with(|st, _| {
        let fs = st
            .store
            .funding_source(id)
            .ok_or_else(ApiError::not_found)?;
        ok(st.store.funding_source_json(fs))
    })
}

/// `POST /funding-sources/{id}` with `{"removed": true}`.
async fn remove_funding_source(
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

async fn create_party_funding_source(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let party = parse_id(&id)?;
    if sim.with(|st, _| st.store.external_party(party).is_none()) {
        return Err(ApiError::not_found());
    }
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

async fn list_party_funding_sources(
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
        ok(json!({
            "_links": {"self": s.link(&format!("/external-parties/{party}/funding-sources"), "funding-source")},
            "_embedded": {"funding-sources": items},
            "total": items.len(),
        }))
    })
}

// ----- external parties -----

async fn create_external_party(State(sim): State<Arc<Shared>>, body: Bytes) -> ApiResult {
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

async fn list_external_parties(State(sim): State<Arc<Shared>>, q: Q) -> ApiResult {
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

async fn get_external_party(State(sim): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    sim.with(|st, _| {
        let p = st
            .store
            .external_party(id)
            .ok_or_else(ApiError::not_found)?;
        ok(st.store.external_party_json(p))
    })
}

// ----- exchanges -----

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
    if partner == super::seed::id(super::seed::FINICITY_ID) {
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

async fn create_account_exchange(State(sim): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let partner = exchange_request(&body)?.ok_or_else(ApiError::bad_request)?;
    create_exchange(&sim, partner, None)
}

async fn create_party_exchange(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let party = parse_id(&id)?;
    if sim.with(|st, _| st.store.external_party(party).is_none()) {
        return Err(ApiError::not_found());
    }
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
        ok(json!({
            "_links": {"self": s.link(self_path, "exchange")},
            "_embedded": {"exchanges": items},
            "total": items.len(),
        }))
    })
}

async fn list_account_exchanges(State(sim): State<Arc<Shared>>) -> ApiResult {
    exchange_list(&sim, None, "/exchanges")
}

async fn list_party_exchanges(State(sim): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let party = parse_id(&id)?;
    if sim.with(|st, _| st.store.external_party(party).is_none()) {
        return Err(ApiError::not_found());
    }
    exchange_list(
        &sim,
        Some(party),
        &format!("/external-parties/{party}/exchanges"),
    )
}

async fn get_exchange(State(sim): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    sim.with(|st, _| {
        let x = st.store.exchange(id).ok_or_else(ApiError::not_found)?;
        ok(st.store.exchange_json(x))
    })
}

async fn list_exchange_partners(State(sim): State<Arc<Shared>>) -> ApiResult {
    sim.with(|st, _| {
        let s = &st.store;
        let items: Vec<Value> = s
            .exchange_partners
            .iter()
            .map(|p| s.exchange_partner_json(p))
            .collect();
        ok(json!({
            "_links": {"self": s.link("/exchange-partners", "exchange-partner")},
            "_embedded": {"exchange-partners": items},
            "total": items.len(),
        }))
    })
}

async fn get_exchange_partner(State(sim): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    sim.with(|st, _| {
        let p = st
            .store
            .exchange_partner(id)
            .ok_or_else(ApiError::not_found)?;
        ok(st.store.exchange_partner_json(p))
    })
}

// ----- treasury -----

async fn create_treasury_account(State(sim): State<Arc<Shared>>, body: Bytes) -> ApiResult {
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

async fn list_treasury_accounts(State(sim): State<Arc<Shared>>) -> ApiResult {
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

async fn get_treasury_account(State(sim): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    sim.with(|st, _| {
        let t = st
            .store
            .treasury_account(id)
            .ok_or_else(ApiError::not_found)?;
        ok(st.store.treasury_account_json(t))
    })
}

async fn list_treasury_partners(State(sim): State<Arc<Shared>>) -> ApiResult {
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

async fn get_treasury_partner(State(sim): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    sim.with(|st, _| {
        let p = st
            .store
            .treasury_partner(id)
            .ok_or_else(ApiError::not_found)?;
        ok(st.store.treasury_partner_json(p))
    })
}

// ----- webhook subscriptions and webhooks -----

async fn create_subscription(State(sim): State<Arc<Shared>>, body: Bytes) -> ApiResult {
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

async fn list_subscriptions(State(sim): State<Arc<Shared>>) -> ApiResult {
    sim.with(|st, _| {
        let s = &st.store;
        let items: Vec<Value> = s
            .subscriptions
            .iter()
            .rev()
            .filter(|x| !x.deleted)
            .map(|x| s.subscription_json(x))
            .collect();
        ok(json!({
            "_links": {"self": s.link("/webhook-subscriptions", "webhook-subscription")},
            "_embedded": {"webhook-subscriptions": items},
            "total": items.len(),
        }))
    })
}

fn subscription_idx(sim: &Shared, id: &str) -> Result<u32, ApiError> {
    let id = parse_id(id)?;
    sim.with(|st, _| st.store.subscription_idx(id))
        .ok_or_else(ApiError::not_found)
}

async fn get_subscription(State(sim): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
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
async fn update_subscription(
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

async fn delete_subscription(State(sim): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let idx = subscription_idx(&sim, &id)?;
    sim.with(|st, _| {
        st.store.delete_subscription(idx);
        ok(st
            .store
            .subscription_json(&st.store.subscriptions[idx as usize]))
    })
}

async fn list_subscription_webhooks(
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

async fn get_webhook(State(sim): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    sim.with(|st, _| {
        let idx = st.store.webhook_idx(id).ok_or_else(ApiError::not_found)?;
        ok(st.store.webhook_json(idx))
    })
}

async fn retry_webhook(State(sim): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    sim.with(|st, now| {
        let idx = st.store.webhook_idx(id).ok_or_else(ApiError::not_found)?;
        st.store.retry_webhook(idx, now);
        let retry = st.store.new_id();
        created(format!("{}/webhooks/{id}/retries/{retry}", sim.base_url))
    })
}

async fn get_event(State(sim): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
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

// ----- POST /client-tokens (classic API) -----

/// Connect has no Customers, so the `customer` link may name an external party, under either
/// `/customers/{id}` or `/external-parties/{id}`.
async fn create_client_token(State(sim): State<Arc<Shared>>, body: Bytes) -> ApiResult {
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

// ----- /_sim control endpoints -----

fn plain_json(status: StatusCode, body: Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn sim_stats(State(sim): State<Arc<Shared>>) -> Response {
    plain_json(StatusCode::OK, json!(inspect::stats(&sim)))
}

/// `POST /_sim/advance {"ms": N}`: moves the clock forward by N milliseconds.
async fn sim_advance(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    let ms = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("ms").and_then(Value::as_u64));
    let Some(ms) = ms else {
        return plain_json(
            StatusCode::BAD_REQUEST,
            json!({"code": "BadRequest", "message": "Expected {\"ms\": <non-negative integer>}."}),
        );
    };
    inspect::advance(&sim, Duration::from_millis(ms));
    plain_json(StatusCode::OK, json!({"now": sim.clock.now().iso()}))
}

async fn sim_get_faults(State(sim): State<Arc<Shared>>) -> Response {
    plain_json(StatusCode::OK, json!(sim.with(|st, _| st.faults.clone())))
}

/// `POST /_sim/faults` with a `Faults` JSON object; fields left out mean "no such fault".
async fn sim_set_faults(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => {
            sim.with(|st, _| st.faults = faults.clone());
            plain_json(StatusCode::OK, json!(faults))
        }
        Err(err) => plain_json(
            StatusCode::BAD_REQUEST,
            json!({"code": "BadRequest", "message": err.to_string()}),
        ),
    }
}

async fn sim_list_transfers(State(sim): State<Arc<Shared>>) -> Response {
    plain_json(StatusCode::OK, json!(inspect::sim_transfers(&sim)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(12345)), Some(12345));
        assert_eq!(decode_cursor("not a cursor"), None);
        assert_eq!(decode_cursor(""), None);
    }

    #[test]
    fn forms_decode() {
        let form = parse_form(b"grant_type=client_credentials&client_id=a%2Bb&client_secret=x+y");
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["client_id"], "a+b");
        assert_eq!(form["client_secret"], "x y");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%41"), "A");
    }
}
