//! What can go wrong talking to Dwolla, and what each failure means for a request that may have
//! created something ([`Disposition`]). The client reports; the caller decides policy.

use std::time::Duration;

use serde::Deserialize;

/// One entry of a `ValidationError`'s `_embedded.errors`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct EmbeddedError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    /// A JSON pointer into the request body, such as `/amount/value`.
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DwollaError {
    /// Dwolla answered with an error body (`{"code","message"}`, vnd.error, or the token
    /// endpoint's OAuth `{"error","error_description"}`).
    #[error("Dwolla answered {status} {code}: {message}{}", request_id_suffix(.request_id))]
    Api {
        status: u16,
        code: String,
        message: String,
        errors: Vec<EmbeddedError>,
        request_id: Option<String>,
        retry_after: Option<Duration>,
    },
    /// A non-success status whose body is not a Dwolla error, so who answered (Dwolla, a proxy, a
    /// load balancer) is unknown. `body` is the start of the body, for the log.
    #[error("unexpected HTTP {status} without a Dwolla error body{}: {body}", request_id_suffix(.request_id))]
    UnexpectedStatus {
        status: u16,
        body: String,
        request_id: Option<String>,
        retry_after: Option<Duration>,
    },
    /// `POST /token` refused the credentials (4xx other than 408/429): the key or secret is
    /// wrong, revoked or lacks a scope.
    #[error("Dwolla refused the API credentials: {status} {code}: {message}{}", request_id_suffix(.request_id))]
    Credentials {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// No complete response within the request timeout (or the connect timeout).
    #[error("timed out waiting for Dwolla")]
    Timeout,
    /// The connection could not be made, so the request was not sent.
    #[error("could not connect to Dwolla: {0}")]
    Connect(String),
    /// The connection failed after the request may have been sent, e.g. it was closed before
    /// the response was complete.
    #[error("connection to Dwolla failed: {0}")]
    Transport(String),
    /// A success status with a body (or headers) that is not what the API documents.
    #[error("could not understand Dwolla's {status} response{}: {detail}", request_id_suffix(.request_id))]
    Decode {
        status: u16,
        detail: String,
        request_id: Option<String>,
    },
    /// The lookup by correlationId found more than one transfer; a person should look.
    #[error("{count} transfers carry correlationId {correlation_id}")]
    AmbiguousCorrelationId {
        correlation_id: String,
        count: usize,
    },
    /// The caller passed a URL that is not on the configured API host; the client will not send
    /// its access token elsewhere.
    #[error("{url} is not a URL of {base_url}")]
    ForeignUrl { url: String, base_url: String },
    /// The client could not be built from its configuration.
    #[error("invalid Dwolla client configuration: {0}")]
    InvalidConfig(String),
}

/// What a failed call means for the request it carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Dwolla refused the request (400/403/404 and other 4xx with a Dwolla error body): nothing
    /// was created, and sending the same request again will be refused again.
    Final,
    /// The outcome is unknown or the refusal is temporary (409, 429, 5xx, timeouts, connection
    /// errors, an unreadable success): resend the same bytes with the same Idempotency-Key,
    /// not before `after` when it is given.
    Retry { after: Option<Duration> },
    /// `POST /token` refused the key and secret (or a 401 that names no token problem). No
    /// retry will help until a person fixes the configuration. An expired or invalid access
    /// token is never this: it is a [`Disposition::Retry`], since the next attempt takes a
    /// new token.
    Unauthorized,
}

impl DwollaError {
    pub fn disposition(&self) -> Disposition {
        match self {
            DwollaError::Api {
                status,
                retry_after,
                ..
            } => match *status {
                401 if self.is_token_trouble() => Disposition::Retry { after: None },
                401 => Disposition::Unauthorized,
                408 | 409 | 425 | 429 => Disposition::Retry {
                    after: *retry_after,
                },
                400..=499 => Disposition::Final,
                _ => Disposition::Retry {
                    after: *retry_after,
                },
            },
            DwollaError::UnexpectedStatus {
                status,
                retry_after,
                ..
            } => match *status {
                401 => Disposition::Unauthorized,
                _ => Disposition::Retry {
                    after: *retry_after,
                },
            },
            DwollaError::Credentials { .. } => Disposition::Unauthorized,
            DwollaError::Timeout
            | DwollaError::Connect(_)
            | DwollaError::Transport(_)
            | DwollaError::Decode { .. } => Disposition::Retry { after: None },
            DwollaError::AmbiguousCorrelationId { .. }
            | DwollaError::ForeignUrl { .. }
            | DwollaError::InvalidConfig(_) => Disposition::Final,
        }
    }

    /// Dwolla refused the access token, not the credentials: a new token fixes it.
    pub fn is_token_trouble(&self) -> bool {
        matches!(
            self,
            DwollaError::Api { code, .. } if code == "ExpiredAccessToken" || code == "InvalidAccessToken"
        )
    }

    /// The HTTP status, when there was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            DwollaError::Api { status, .. }
            | DwollaError::Credentials { status, .. }
            | DwollaError::UnexpectedStatus { status, .. }
            | DwollaError::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Dwolla's error `code` (`ValidationError`, `NotFound`, ...), when there was one.
    pub fn code(&self) -> Option<&str> {
        match self {
            DwollaError::Api { code, .. } | DwollaError::Credentials { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Dwolla's `X-Request-ID`, for support tickets and logs.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            DwollaError::Api { request_id, .. }
            | DwollaError::Credentials { request_id, .. }
            | DwollaError::UnexpectedStatus { request_id, .. }
            | DwollaError::Decode { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }
}

fn request_id_suffix(request_id: &Option<String>) -> String {
    match request_id {
        Some(id) => format!(" (X-Request-ID {id})"),
        None => String::new(),
    }
}

/// The body shapes an error response may have. Unknown fields are ignored.
#[derive(Deserialize)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
    #[serde(rename = "_embedded")]
    embedded: Option<EmbeddedErrors>,
    /// OAuth style, from `POST /token`.
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct EmbeddedErrors {
    #[serde(default)]
    errors: Vec<EmbeddedError>,
}

/// Turns a non-success response into an error. Shared by every call.
pub(crate) fn from_response(
    status: u16,
    body: &[u8],
    request_id: Option<String>,
    retry_after: Option<Duration>,
) -> DwollaError {
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
        let code = parsed.code.or(parsed.error);
        if let Some(code) = code.filter(|c| !c.is_empty()) {
            return DwollaError::Api {
                status,
                message: parsed
                    .message
                    .or(parsed.error_description)
                    .unwrap_or_default(),
                code,
                errors: parsed.embedded.map(|e| e.errors).unwrap_or_default(),
                request_id,
                retry_after,
            };
        }
    }
    DwollaError::UnexpectedStatus {
        status,
        body: snippet(body),
        request_id,
        retry_after,
    }
}

/// The first 200 characters of a body, for messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// A reqwest failure as a [`DwollaError`]. The message keeps the cause chain, which names the
/// URL but never a header, so no credential can appear in it.
pub(crate) fn from_reqwest(err: reqwest::Error) -> DwollaError {
    if err.is_timeout() {
        return DwollaError::Timeout;
    }
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if err.is_connect() {
        DwollaError::Connect(message)
    } else {
        DwollaError::Transport(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> DwollaError {
        from_response(
            status,
            br#"{"code":"Whatever","message":"m"}"#,
            None,
            Some(Duration::from_secs(3)),
        )
    }

    #[test]
    fn refusals_with_a_dwolla_body_are_final_and_unknown_outcomes_are_retried() {
        for status in [400, 403, 404, 405, 406, 422] {
            assert_eq!(api(status).disposition(), Disposition::Final, "{status}");
        }
        for status in [408, 409, 429, 500, 502, 503] {
            assert_eq!(
                api(status).disposition(),
                Disposition::Retry {
                    after: Some(Duration::from_secs(3))
                },
                "{status}"
            );
        }
        assert_eq!(api(401).disposition(), Disposition::Unauthorized);
    }

    #[test]
    fn an_expired_or_invalid_token_is_an_unknown_outcome_not_refused_credentials() {
        for code in ["ExpiredAccessToken", "InvalidAccessToken"] {
            let body = format!(r#"{{"code":"{code}","message":"m"}}"#);
            let err = from_response(401, body.as_bytes(), None, None);
            assert!(err.is_token_trouble());
            assert_eq!(
                err.disposition(),
                Disposition::Retry { after: None },
                "{code}"
            );
        }
    }

    #[test]
    fn a_refusal_without_a_dwolla_body_is_an_unknown_outcome() {
        let err = from_response(404, b"<html>nginx</html>", None, None);
        assert!(matches!(err, DwollaError::UnexpectedStatus { .. }));
        assert_eq!(err.disposition(), Disposition::Retry { after: None });
        let err = from_response(401, b"", None, None);
        assert_eq!(err.disposition(), Disposition::Unauthorized);
    }

    #[test]
    fn an_oauth_error_from_the_token_endpoint_is_read() {
        let err = from_response(
            401,
            br#"{"error":"invalid_client","error_description":"bad"}"#,
            Some("r1".into()),
            None,
        );
        assert_eq!(err.code(), Some("invalid_client"));
        assert_eq!(err.request_id(), Some("r1"));
        assert!(err.to_string().contains("X-Request-ID r1"));
        assert_eq!(err.disposition(), Disposition::Unauthorized);
    }

    #[test]
    fn a_long_body_is_cut_in_messages() {
        let body = "x".repeat(500);
        assert_eq!(snippet(body.as_bytes()).chars().count(), 201);
    }
}
