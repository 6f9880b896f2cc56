//! How the simulator answers: HAL+JSON bodies, `201 Created` with a `Location`, plain JSON
//! for `/_sim`, and the 404/405 fallbacks.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use uuid::Uuid;

use super::extract::parse_id;
use crate::sim::error::ApiError;
use crate::sim::state::Shared;
use crate::sim::store::{HAL, Store};

pub(super) type ApiResult = Result<Response, ApiError>;
pub(super) fn hal(status: StatusCode, body: Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(HAL));
    response
}

pub(super) fn ok(body: Value) -> ApiResult {
    Ok(hal(StatusCode::OK, body))
}

/// `200` with a whole (unpaged) collection: its self link, its items under `key`, and their
/// count, as Dwolla's HAL lists carry them.
pub(super) fn collection(self_link: Value, key: &str, items: Vec<Value>) -> ApiResult {
    let total = items.len();
    let mut embedded = serde_json::Map::new();
    embedded.insert(key.to_string(), Value::Array(items));
    ok(serde_json::json!({
        "_links": {"self": self_link},
        "_embedded": embedded,
        "total": total,
    }))
}

/// `201 Created`, `Location`, empty body: how Dwolla answers every create.
pub(super) fn created(location: String) -> ApiResult {
    let mut response = StatusCode::CREATED.into_response();
    let value = HeaderValue::from_str(&location).map_err(|_| ApiError::bad_request())?;
    response.headers_mut().insert(header::LOCATION, value);
    Ok(response)
}

pub(super) async fn not_found() -> ApiError {
    ApiError::not_found()
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

pub(super) fn plain_json(status: StatusCode, body: Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `GET /<resources>/{id}`: what `find` returns for the id, as `to_json` renders it; 404 for
/// an id that is not a UUID or names nothing.
pub(super) fn one<T>(
    sim: &Shared,
    id: &str,
    find: impl FnOnce(&Store, Uuid) -> Option<&T>,
    to_json: impl FnOnce(&Store, &T) -> Value,
) -> ApiResult {
    let id = parse_id(id)?;
    sim.with(|st, _| {
        let found = find(&st.store, id).ok_or_else(ApiError::not_found)?;
        ok(to_json(&st.store, found))
    })
}
