//! Dwolla's error bodies (vnd.error): `{"code", "message"}` plus, for validation errors,
//! `_embedded.errors[{code, message, path, _links}]` with `path` a JSON pointer into the request.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The media type Dwolla sends with error bodies (PY README example headers, notes section 2).
pub const ERROR_CONTENT_TYPE: &str = "application/vnd.dwolla.v1.hal+json; profile=\"http://nocarrier.co.uk/profiles/vnd.error/\"; charset=UTF-8";

/// One entry of `_embedded.errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub code: &'static str,
    pub message: String,
    pub path: String,
}

impl FieldError {
    pub fn new(code: &'static str, message: impl Into<String>, path: impl Into<String>) -> Self {
        FieldError {
            code,
            message: message.into(),
            path: path.into(),
        }
    }

    pub fn required(path: &str) -> Self {
        let field = path.rsplit('/').next().unwrap_or(path);
        let mut name = field.to_string();
        if let Some(first) = name.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        FieldError::new("Required", format!("{name} required."), path)
    }
}

/// An error response of the simulated API.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: json!({"code": code, "message": message.into()}),
        }
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let errors: Vec<Value> = errors
            .into_iter()
            .map(|e| json!({"code": e.code, "message": e.message, "path": e.path, "_links": {}}))
            .collect();
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({
                "code": "ValidationError",
                "message": "Validation error(s) present. See embedded errors list for more details.",
                "_embedded": {"errors": errors},
            }),
        }
    }

    pub fn one(code: &'static str, message: impl Into<String>, path: impl Into<String>) -> Self {
        ApiError::validation(vec![FieldError::new(code, message, path)])
    }

    pub fn bad_request() -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The request body contains bad syntax or is incomplete.",
        )
    }

    pub fn not_found() -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The requested resource was not found.",
        )
    }

    pub fn method_not_allowed() -> Self {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The requested method is not allowed for this resource.",
        )
    }

    pub fn invalid_version() -> Self {
        ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "InvalidVersion",
            "Missing or invalid API version.",
        )
    }

    pub fn invalid_credentials() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidCredentials",
            "Missing or invalid Authorization header.",
        )
    }

    pub fn invalid_token() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAccessToken",
            "Invalid access token.",
        )
    }

    pub fn expired_token() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "ExpiredAccessToken",
            "Generate a new access token using your client credentials.",
        )
    }

    pub fn conflict() -> Self {
        ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            "A request with this Idempotency-Key is still being processed. Retry later.",
        )
    }

    pub fn too_many_requests() -> Self {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests. Please wait a short period of time before re-attempting the request.",
        )
    }

    pub fn server_error(error_id: &str) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServerError",
            format!("A server error occurred. Error ID: {error_id}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(ERROR_CONTENT_TYPE),
        );
        response
    }
}

/// An OAuth-style error from `POST /token` (`{"error": "invalid_client"}`), as the notes
/// describe for the token endpoint, which does not use vnd.error.
pub fn oauth_error(status: StatusCode, error: &str) -> Response {
    let mut response = (status, json!({ "error": error }).to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_names_the_field_like_dwolla() {
        let e = FieldError::required("/firstName");
        assert_eq!(e.message, "FirstName required.");
        assert_eq!(e.path, "/firstName");
    }
}
