//! Reading a request: ids from the path, JSON objects, required and optional strings (every
//! failing field collected into one `ValidationError`), query strings.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::HeaderMap;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::sim::error::{ApiError, FieldError};
use crate::sim::validate::correlation_id_ok;

pub(super) type Q = Result<Query<HashMap<String, String>>, QueryRejection>;
pub(super) fn parse_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::not_found())
}

pub(super) fn json_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::bad_request()),
    }
}

/// A required non-empty string at `pointer`; records `Required` (or `Invalid` for a non-string).
pub(super) fn required_str<'a>(
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

pub(super) fn optional_str<'a>(
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

pub(super) fn check(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

pub(super) fn query(q: Q) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(q)| q).map_err(|_| ApiError::bad_request())
}

/// An optional `correlationId`, checked as Dwolla does (1 to 255 characters).
pub(super) fn correlation_id(body: &Value, errors: &mut Vec<FieldError>) -> Option<String> {
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

pub(super) fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
