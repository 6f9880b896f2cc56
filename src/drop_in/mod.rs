//! Client tokens for Dwolla's drop-in components: `POST /client-tokens`, the server-side
//! endpoint that dwolla-web's `tokenUrl` calls.
//!
//! Owns the request shapes it accepts, the operator API key check, and the component -> actions
//! table of Dwolla's client-token document ([`COMPONENTS`]). It forwards to Dwolla's
//! `POST /client-tokens` through [`crate::dwolla::Client`] (the application token) and returns
//! `{"token": ...}`. It keeps no state and never touches the ledger; the token is never logged.
//!
//! Request body (JSON), either dwolla-web's own shape or a flat one:
//! - `{"action": "customer.update", "_links": {"customer": {"href": ".../customers/<id>"}}}`
//! - `{"action": "customer.update", "customerId": "<id>"}`
//!
//! plus, optionally, `"component": "dwolla-customer-update"`, which holds the request to that
//! component's actions. The customer id must be a UUID; the URL sent to Dwolla is built on the
//! configured API, whatever host the request named.
//!
//! Answers: 200 `{"token"}`; 401 without the right `X-Payrun-Api-Key`; 400 for a bad body or an
//! action not allowed (the body lists the allowed ones in `allowed`); Dwolla's own refusals
//! keep their 4xx status; 502 when Dwolla cannot be reached or refuses payrun's credentials.
//! Errors are `{"code", "message"}` like Dwolla's.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::dwolla::wire::CreateClientToken;
use crate::dwolla::{Client, Disposition, DwollaError};
use crate::secret::Secret;

/// The header that carries the operator application's API key.
pub const API_KEY_HEADER: &str = "x-payrun-api-key";
/// The environment variable [`ClientTokenConfig::from_env`] reads the API key from.
pub const API_KEY_ENV: &str = "PAYRUN_CLIENT_TOKEN_API_KEY";
/// Keys shorter than this are refused: the endpoint hands out tokens that act on customers.
pub const MIN_API_KEY_LEN: usize = 16;

/// Each drop-in component and the actions its client tokens may carry, from Dwolla's
/// client-token document.
pub const COMPONENTS: &[(&str, &[&str])] = &[
    ("dwolla-customer-create", &["customer.create"]),
    (
        "dwolla-customer-update",
        &["customer.read", "customer.update"],
    ),
    (
        "dwolla-personal-vcr",
        &[
            "customer.create",
            "customer.read",
            "customer.update",
            "customer.documents.create",
        ],
    ),
    (
        "dwolla-business-vcr",
        &[
            "customer.create",
            "customer.read",
            "customer.update",
            "customer.documents.create",
            "businessclassifications.read",
        ],
    ),
    (
        "dwolla-beneficial-owners",
        &[
            "beneficialowners.create",
            "beneficialowners.read",
            "beneficialowners.update",
            "beneficialowners.delete",
            "beneficialownership.read",
            "beneficialownership.certify",
            "beneficialowner.documents.create",
            "customer.read",
            "customer.update",
        ],
    ),
    (
        "dwolla-document-upload",
        &[
            "customer.read",
            "customer.documents.create",
            "customer.documents.read",
            "beneficialowners.read",
            "beneficialowner.documents.create",
        ],
    ),
    (
        "dwolla-funding-source-create",
        &[
            "customer.fundingsources.create",
            "customer.microdeposits.create",
        ],
    ),
    (
        "dwolla-micro-deposits-verify",
        &[
            "customer.fundingsources.read",
            "customer.microdeposits.verify",
        ],
    ),
    ("dwolla-balance-display", &["customer.fundingsources.read"]),
    (
        "dwolla-payin",
        &["customer.fundingsources.read", "customer.transfers.send"],
    ),
];

/// Every action some component allows, sorted and without repeats.
pub fn all_actions() -> Vec<&'static str> {
    let mut actions: Vec<&'static str> = COMPONENTS
        .iter()
        .flat_map(|(_, actions)| actions.iter().copied())
        .collect();
    actions.sort_unstable();
    actions.dedup();
    actions
}

/// The endpoint's settings. Build with [`ClientTokenConfig::new`] or
/// [`ClientTokenConfig::from_env`].
#[derive(Clone, Debug)]
pub struct ClientTokenConfig {
    api_key: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientTokenConfigError {
    #[error("{API_KEY_ENV} is not set; the client-token endpoint needs an API key")]
    Missing,
    #[error("the client-token API key must be at least {MIN_API_KEY_LEN} characters")]
    TooShort,
}

impl ClientTokenConfig {
    pub fn new(api_key: Secret) -> Result<ClientTokenConfig, ClientTokenConfigError> {
        let trimmed = api_key.expose().trim();
        if trimmed.chars().count() < MIN_API_KEY_LEN {
            return Err(ClientTokenConfigError::TooShort);
        }
        Ok(ClientTokenConfig {
            api_key: Secret::new(trimmed),
        })
    }

    /// The API key from `PAYRUN_CLIENT_TOKEN_API_KEY`.
    pub fn from_env() -> Result<ClientTokenConfig, ClientTokenConfigError> {
        match std::env::var(API_KEY_ENV) {
            Ok(value) if !value.trim().is_empty() => ClientTokenConfig::new(Secret::new(value)),
            _ => Err(ClientTokenConfigError::Missing),
        }
    }
}

/// `POST /client-tokens`, ready to merge into another router or to serve alone.
pub fn router(config: ClientTokenConfig, client: Client) -> Router {
    let state = Arc::new(Endpoint { config, client });
    Router::new()
        .route("/client-tokens", post(create_client_token))
        .layer(DefaultBodyLimit::max(16 * 1024))
        .with_state(state)
}

struct Endpoint {
    config: ClientTokenConfig,
    client: Client,
}

/// Both accepted request shapes; unknown fields are ignored.
#[derive(Deserialize)]
struct TokenRequest {
    action: Option<String>,
    component: Option<String>,
    #[serde(rename = "customerId")]
    customer_id: Option<String>,
    #[serde(rename = "_links")]
    links: Option<RequestLinks>,
}

#[derive(Deserialize)]
struct RequestLinks {
    customer: Option<RequestHref>,
}

#[derive(Deserialize)]
struct RequestHref {
    href: String,
}

/// A checked request: the action, and the customer's id (a UUID, lower case).
#[derive(Debug, PartialEq, Eq)]
struct Checked {
    action: String,
    customer_id: String,
}

#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    allowed: Option<Vec<&'static str>>,
}

impl Refusal {
    fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            code: "BadRequest",
            message: message.into(),
            allowed: None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut body = json!({"code": self.code, "message": self.message});
        if let Some(allowed) = self.allowed {
            body["allowed"] = json!(allowed);
        }
        json_response(self.status, &body)
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // A token is a credential: no cache may keep it.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn create_client_token(
    State(endpoint): State<Arc<Endpoint>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let given = headers
        .get(API_KEY_HEADER)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if !same_key(given, endpoint.config.api_key.expose().as_bytes()) {
        tracing::warn!("client token refused: missing or wrong API key");
        return Refusal {
            status: StatusCode::UNAUTHORIZED,
            code: "InvalidCredentials",
            message: "missing or wrong X-Payrun-Api-Key header".to_string(),
            allowed: None,
        }
        .into_response();
    }
    let checked = match check_request(&body) {
        Ok(checked) => checked,
        Err(refusal) => {
            tracing::info!(reason = %refusal.message, "client token request refused");
            return refusal.into_response();
        }
    };
    let request = CreateClientToken {
        action: checked.action.clone(),
        customer_url: format!(
            "{}/customers/{}",
            endpoint.client.base_url(),
            checked.customer_id
        ),
    };
    match endpoint.client.create_client_token(&request).await {
        Ok(token) => {
            tracing::info!(action = %checked.action, customer = %checked.customer_id, "client token issued");
            json_response(StatusCode::OK, &json!({"token": token.token.expose()}))
        }
        Err(err) => {
            tracing::warn!(action = %checked.action, customer = %checked.customer_id, error = %err, "Dwolla did not issue a client token");
            dwolla_refusal(&err).into_response()
        }
    }
}

/// Dwolla's refusals keep their 4xx status and message; everything else is a 502.
fn dwolla_refusal(err: &DwollaError) -> Refusal {
    match (err.disposition(), err) {
        (
            Disposition::Final,
            DwollaError::Api {
                status,
                message,
                errors,
                ..
            },
        ) => {
            let detail: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
            Refusal {
                status: StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST),
                code: "DwollaRefused",
                message: if detail.is_empty() {
                    message.clone()
                } else {
                    format!("{message} {}", detail.join(" "))
                },
                allowed: None,
            }
        }
        (Disposition::Unauthorized, _) => Refusal {
            status: StatusCode::BAD_GATEWAY,
            code: "BadGateway",
            message: "Dwolla refused payrun's application credentials".to_string(),
            allowed: None,
        },
        _ => Refusal {
            status: StatusCode::BAD_GATEWAY,
            code: "BadGateway",
            message: "Dwolla could not be reached; try again".to_string(),
            allowed: None,
        },
    }
}

fn check_request(body: &[u8]) -> Result<Checked, Refusal> {
    let request: TokenRequest = serde_json::from_slice(body).map_err(|err| {
        Refusal::bad_request(format!(
            "the body is not the JSON this endpoint takes: {err}"
        ))
    })?;
    let action = request
        .action
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Refusal::bad_request("action is required"))?;
    check_action(request.component.as_deref().map(str::trim), action)?;
    let customer_id = customer_id(
        request.links.and_then(|links| links.customer),
        request.customer_id.as_deref(),
    )?;
    Ok(Checked {
        action: action.to_string(),
        customer_id,
    })
}

/// The action is one of the component's (or of any component's when none is named).
fn check_action(component: Option<&str>, action: &str) -> Result<(), Refusal> {
    match component {
        Some(component) => {
            let Some((_, actions)) = COMPONENTS.iter().find(|(name, _)| *name == component) else {
                return Err(Refusal {
                    status: StatusCode::BAD_REQUEST,
                    code: "UnknownComponent",
                    message: format!("component {component:?} is not a Dwolla drop-in component"),
                    allowed: Some(COMPONENTS.iter().map(|(name, _)| *name).collect()),
                });
            };
            if !actions.contains(&action) {
                return Err(Refusal {
                    status: StatusCode::BAD_REQUEST,
                    code: "ActionNotAllowed",
                    message: format!(
                        "action {action:?} is not allowed for {component}; allowed: {}",
                        actions.join(", ")
                    ),
                    allowed: Some(actions.to_vec()),
                });
            }
        }
        None => {
            let allowed = all_actions();
            if !allowed.contains(&action) {
                return Err(Refusal {
                    status: StatusCode::BAD_REQUEST,
                    code: "ActionNotAllowed",
                    message: format!(
                        "action {action:?} is not allowed; allowed: {}",
                        allowed.join(", ")
                    ),
                    allowed: Some(allowed),
                });
            }
        }
    }
    Ok(())
}

/// The customer, named by `_links.customer.href`, by `customerId`, or by both alike.
fn customer_id(link: Option<RequestHref>, customer_id: Option<&str>) -> Result<String, Refusal> {
    let from_link = match link {
        Some(link) => Some(customer_id_from_href(&link.href).ok_or_else(|| {
            Refusal::bad_request(format!(
                "_links.customer.href {:?} is not a .../customers/<id> URL",
                link.href
            ))
        })?),
        None => None,
    };
    let from_field = match customer_id.map(str::trim) {
        Some(id) => Some(
            uuid::Uuid::parse_str(id)
                .map(|id| id.to_string())
                .map_err(|_| Refusal::bad_request(format!("customerId {id:?} is not an id")))?,
        ),
        None => None,
    };
    match (from_link, from_field) {
        (Some(a), Some(b)) if a != b => Err(Refusal::bad_request(
            "customerId and _links.customer.href name different customers",
        )),
        (Some(id), _) | (None, Some(id)) => Ok(id),
        (None, None) => Err(Refusal::bad_request(
            "a customer is required: _links.customer.href or customerId",
        )),
    }
}

/// The id of `https://host/customers/<uuid>` (or a path of that form).
fn customer_id_from_href(href: &str) -> Option<String> {
    let path = href.split(['?', '#']).next()?.trim_end_matches('/');
    let (before, id) = path.rsplit_once('/')?;
    if !before.ends_with("/customers") && before != "customers" {
        return None;
    }
    uuid::Uuid::parse_str(id).ok().map(|id| id.to_string())
}

/// Compares two keys in time that does not depend on where they differ (or on their lengths:
/// the digests are compared, not the keys).
fn same_key(given: &[u8], expected: &[u8]) -> bool {
    let given = Sha256::digest(given);
    let expected = Sha256::digest(expected);
    given
        .iter()
        .zip(expected.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "e0000000-0000-4000-8000-000000000001";

    fn check(body: Value) -> Result<Checked, (u16, String)> {
        check_request(body.to_string().as_bytes()).map_err(|r| (r.status.as_u16(), r.message))
    }

    #[test]
    fn both_request_shapes_name_the_customer() {
        let expected = Checked {
            action: "customer.update".into(),
            customer_id: ID.into(),
        };
        let dwolla_web = json!({"action": "customer.update",
            "_links": {"customer": {"href": format!("https://api-sandbox.dwolla.com/customers/{ID}")}}});
        assert_eq!(check(dwolla_web).unwrap(), expected);
        let flat = json!({"action": "customer.update", "customerId": ID.to_uppercase()});
        assert_eq!(check(flat).unwrap(), expected);
    }

    #[test]
    fn actions_outside_the_table_or_the_component_are_refused_with_the_allowed_ones() {
        let (status, message) =
            check(json!({"action": "transfers.send", "customerId": ID})).unwrap_err();
        assert_eq!(status, 400);
        assert!(message.contains("customer.update"), "{message}");
        let (_, message) = check(
            json!({"action": "customer.create", "component": "dwolla-payin", "customerId": ID}),
        )
        .unwrap_err();
        assert_eq!(
            message,
            "action \"customer.create\" is not allowed for dwolla-payin; allowed: customer.fundingsources.read, customer.transfers.send"
        );
        assert!(
            check(json!({"action": "customer.transfers.send", "component": "dwolla-payin", "customerId": ID}))
                .is_ok()
        );
    }

    #[test]
    fn customers_must_be_ids_and_agree() {
        assert!(check(json!({"action": "customer.read"})).is_err());
        assert!(check(json!({"action": "customer.read", "customerId": "../x"})).is_err());
        let other = json!({"action": "customer.read", "customerId": ID,
            "_links": {"customer": {"href": "https://x/customers/e0000000-0000-4000-8000-000000000002"}}});
        assert!(check(other).is_err());
        let not_customer = json!({"action": "customer.read",
            "_links": {"customer": {"href": format!("https://x/transfers/{ID}")}}});
        assert!(check(not_customer).is_err());
    }

    #[test]
    fn keys_compare_whole_and_short_keys_are_refused() {
        assert!(same_key(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_key(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!same_key(b"", b"0123456789abcdef"));
        assert_eq!(
            ClientTokenConfig::new(Secret::new("short")).unwrap_err(),
            ClientTokenConfigError::TooShort
        );
        let config = ClientTokenConfig::new(Secret::new("a-long-enough-operator-key")).unwrap();
        assert!(!format!("{config:?}").contains("operator"));
    }
}
