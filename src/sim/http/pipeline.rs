//! What every API request passes through, in order:
//! 1. `X-Request-ID` (on every response) and statistics on arrival;
//! 2. the sliding-window rate limit and the throttle fault (429, no effect);
//! 3. the error fault (500 `ServerError`, no effect);
//! 4. `Accept` (406 `InvalidVersion`) and the bearer token (401), except for `POST /token`;
//! 5. for POSTs, the Idempotency-Key: replay, 409 while in flight, or refusal on reuse;
//! 6. latency (+ jitter), then the handler;
//! 7. the drop fault (close the connection, no response) or the timeout fault (hold it).
//!
//! `/_sim/*` control requests skip all of it and are not counted.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

use crate::sim::error::ApiError;
use crate::sim::state::{
    Admission, Claim, Draw, Shared, State as SimState, StoredResponse, TokenCheck,
};
use crate::sim::store::HAL;

/// Closes the connection a request arrived on, without a response. The accept loop
/// (`server`) puts one into every request's extensions; it lives here so that the pipeline
/// does not import the server that runs it.
#[derive(Clone)]
pub struct ConnKill(pub Arc<Notify>);

/// Larger request bodies are refused; Dwolla's are a few hundred bytes.
const MAX_BODY: usize = 1 << 20;

pub async fn pipeline(State(sim): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    if req.uri().path().starts_with("/_sim/") {
        let mut response = next.run(req).await;
        set_request_id(&mut response, &request_id);
        return response;
    }
    let conn_kill = req.extensions().get::<ConnKill>().cloned();
    let admission = sim.with(|st, _| st.arrive(Instant::now()));
    let (mut response, draw) = match admission {
        Admission::Limited { retry_after } => {
            let mut response = ApiError::too_many_requests().into_response();
            if let Some(wait) = retry_after {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            sim.with(|st, _| st.stats.rate_limited += 1);
            (response, None)
        }
        Admission::Admitted(draw) if draw.error => {
            sim.with(|st, _| st.stats.server_errors += 1);
            (ApiError::server_error(&request_id).into_response(), None)
        }
        Admission::Admitted(draw) => (admitted(&sim, req, next, draw).await, Some(draw)),
    };
    set_request_id(&mut response, &request_id);
    let status = response.status().as_u16();
    if let Some(draw) = draw {
        if draw.drop
            && let Some(kill) = conn_kill
        {
            sim.with(|st, _| st.stats.dropped_responses += 1);
            kill.0.notify_one();
            // The connection task drops this future together with the connection.
            return std::future::pending::<Response>().await;
        }
        if draw.timeout {
            sim.with(|st, _| {
                st.stats.held_responses += 1;
                st.record_status(status);
            });
            tokio::time::sleep(draw.timeout_hold).await;
            return response;
        }
    }
    sim.with(|st, _| st.record_status(status));
    response
}

fn set_request_id(response: &mut Response, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
}

/// Steps 4 to 6 for a request that passed the rate limit and the error fault.
async fn admitted(sim: &Arc<Shared>, req: Request, next: Next, draw: Draw) -> Response {
    let is_token = req.uri().path() == "/token";
    if !is_token {
        if !accepts_hal(req.headers()) {
            return ApiError::invalid_version().into_response();
        }
        if let Err(err) = authorize(sim, req.headers()) {
            return err.into_response();
        }
    }
    if req.method() != Method::POST || is_token {
        tokio::time::sleep(draw.latency).await;
        return next.run(req).await;
    }

    let (parts, body) = req.into_parts();
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE)
        && !is_json_media_type(ct)
    {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Content-Type must be application/json or application/vnd.dwolla.v1.hal+json.",
        )
        .into_response();
    }
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return ApiError::bad_request().into_response();
    };
    let key = parts
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .filter(|k| !k.is_empty());
    let mut guard = None;
    if let Some(key) = &key {
        let fingerprint = SimState::fingerprint("POST", parts.uri.path(), &bytes);
        let ttl = sim.config.idempotency_ttl;
        let claim = sim.with(|st, now| st.claim(key, fingerprint, now, ttl));
        match claim {
            Claim::Fresh => guard = Some(ClaimGuard::new(sim.clone(), key.clone())),
            Claim::Replay(stored) => return replay(stored),
            Claim::InFlight => {
                sim.with(|st, _| st.stats.conflicts += 1);
                return ApiError::conflict().into_response();
            }
            Claim::Mismatch => return key_reused(key).into_response(),
        }
    }
    tokio::time::sleep(draw.latency).await;
    let req = Request::from_parts(parts, Body::from(bytes));
    let response = next.run(req).await;
    let Some(mut guard) = guard else {
        return response;
    };
    if !response.status().is_success() {
        guard.finish(None);
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let header_str = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    guard.finish(Some(StoredResponse {
        status: parts.status.as_u16(),
        location: header_str(header::LOCATION),
        content_type: header_str(header::CONTENT_TYPE),
        body: body.clone(),
    }));
    Response::from_parts(parts, Body::from(body))
}

/// The refusal of an Idempotency-Key reused for a different request. Dwolla does not document
/// this case; see the module docs of `sim` for why it is a 400 rather than a second resource.
fn key_reused(key: &str) -> ApiError {
    ApiError::one(
        "Invalid",
        format!(
            "Idempotency-Key {key:?} was already used with a different request; a key may only be reused with the exact same request body."
        ),
        "",
    )
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::CREATED);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    if let Some(ct) = stored
        .content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    if let Some(loc) = stored.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, loc);
    }
    response
}

/// Releases an in-flight Idempotency-Key if the request is abandoned (its connection closed
/// while it waited), so that the key does not answer 409 for a day.
struct ClaimGuard {
    sim: Arc<Shared>,
    key: String,
    done: bool,
}

impl ClaimGuard {
    fn new(sim: Arc<Shared>, key: String) -> ClaimGuard {
        ClaimGuard {
            sim,
            key,
            done: false,
        }
    }

    fn finish(&mut self, response: Option<StoredResponse>) {
        self.done = true;
        let key = self.key.clone();
        self.sim.with(|st, _| st.finish_claim(&key, response));
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if !self.done {
            let key = std::mem::take(&mut self.key);
            self.sim.with(|st, _| st.finish_claim(&key, None));
        }
    }
}

/// `Accept` must name Dwolla's versioned media type (parameters and lists allowed).
fn accepts_hal(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',').any(|item| {
                item.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case(HAL))
            })
        })
    })
}

fn is_json_media_type(value: &HeaderValue) -> bool {
    value.to_str().is_ok_and(|v| {
        let essence = v.split(';').next().unwrap_or("").trim();
        essence.eq_ignore_ascii_case("application/json") || essence.eq_ignore_ascii_case(HAL)
    })
}

fn authorize(sim: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(ApiError::invalid_credentials());
    };
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return Err(ApiError::invalid_credentials());
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::invalid_credentials());
    }
    let token = token.trim();
    match sim.with(|st, now| st.check_token(token, now)) {
        TokenCheck::Valid => Ok(()),
        TokenCheck::Expired => Err(ApiError::expired_token()),
        TokenCheck::Unknown => Err(ApiError::invalid_token()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_must_name_the_versioned_media_type() {
        let mut h = HeaderMap::new();
        assert!(!accepts_hal(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!accepts_hal(&h));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, application/vnd.dwolla.v1.hal+json; q=0.9"),
        );
        assert!(accepts_hal(&h));
    }
}
