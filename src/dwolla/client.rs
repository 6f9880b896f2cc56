//! The HTTP side: one reqwest client, the access token, the throttle, and one typed method per
//! Dwolla call. Every request goes through [`Inner::execute`], which is the only place that
//! sends.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::config::{DwollaConfig, normalize_base_url};
use super::error::{self, DwollaError};
use super::throttle::{Permit, Throttle, ThrottleConfig, ThrottleStats};
use super::wire::*;
use crate::secret::Secret;

/// Dwolla's media type, for `Accept` on every request and `Content-Type` on JSON bodies.
pub const HAL_JSON: &str = "application/vnd.dwolla.v1.hal+json";

/// A handle on the Dwolla API. Cheap to clone: every clone shares one connection pool, one
/// access token and one [`Throttle`].
///
/// Tokens: each request takes its bearer token after the throttle lets it go; a token is
/// renewed in the background ahead of expiry (60 s before, or halfway through a shorter
/// lifetime) and stops being put on requests halfway through that lead.
///
/// Retries: the client resends a request only once, transparently, after a 401
/// `ExpiredAccessToken` or `InvalidAccessToken` that a token renewal fixes (safe for POSTs,
/// which all carry an Idempotency-Key). Every other failure is returned with a
/// [`DwollaError::disposition`] for the caller's retry policy.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    base_url: String,
    key: String,
    secret: Secret,
    throttle: Throttle,
    /// Read by every request without waiting for a fetch in progress.
    cached_token: SyncMutex<Option<CachedToken>>,
    /// Serializes token fetches.
    token_fetch: Mutex<TokenFetches>,
    /// `TokenFetches::fetches_done`, readable without the lock.
    token_fetches_done: AtomicU64,
    /// A background renewal is under way.
    renewing: AtomicBool,
    /// After a failed background renewal, not before this.
    renewal_retry_at: SyncMutex<Option<Instant>>,
}

#[derive(Default)]
struct TokenFetches {
    /// Completed token fetches, successful or not.
    fetches_done: u64,
    last_error: Option<DwollaError>,
}

struct CachedToken {
    token: AccessToken,
    /// From here on, a renewal runs in the background...
    renew_at: Instant,
    /// ...and from here on, new requests wait for it.
    use_by: Instant,
    expires_at: Instant,
}

#[derive(Clone)]
struct AccessToken {
    value: Secret,
    /// Which fetch produced it, so that a 401 invalidates only the token that got it.
    generation: u64,
}

/// A response that has been read to the end.
struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    url: Url,
}

impl Response {
    fn request_id(&self) -> Option<String> {
        header_text(&self.headers, "x-request-id")
    }

    fn json<T: DeserializeOwned>(&self) -> Result<T, DwollaError> {
        serde_json::from_slice(&self.body).map_err(|err| DwollaError::Decode {
            status: self.status.as_u16(),
            detail: format!("{err}; body: {}", error::snippet(&self.body)),
            request_id: self.request_id(),
        })
    }

    fn created(&self) -> Result<Created, DwollaError> {
        let location = header_text(&self.headers, "location")
            .and_then(|location| self.url.join(&location).ok())
            .ok_or_else(|| DwollaError::Decode {
                status: self.status.as_u16(),
                detail: "no usable Location header".to_owned(),
                request_id: self.request_id(),
            })?;
        Ok(Created {
            location: location.to_string(),
        })
    }
}

/// What to send.
struct Request {
    method: Method,
    url: Url,
    json_body: Option<Vec<u8>>,
    idempotency_key: Option<String>,
}

impl Request {
    fn get(url: Url) -> Request {
        Request {
            method: Method::GET,
            url,
            json_body: None,
            idempotency_key: None,
        }
    }

    /// A JSON POST. Every JSON POST carries an Idempotency-Key: the caller's, or a fresh random
    /// one (then a resend by the caller is a new request, but the client's own 401 retry is not).
    fn post(url: Url, body: Vec<u8>, idempotency_key: Option<&str>) -> Request {
        Request {
            method: Method::POST,
            url,
            json_body: Some(body),
            idempotency_key: Some(
                idempotency_key
                    .map(str::to_owned)
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            ),
        }
    }
}

impl Client {
    pub fn new(config: DwollaConfig) -> Result<Client, DwollaError> {
        let base_url = normalize_base_url(&config.base_url).ok_or_else(|| {
            DwollaError::InvalidConfig(format!(
                "base URL {:?} is not an http(s) URL",
                config.base_url
            ))
        })?;
        if config.rate_per_second == 0 {
            return Err(DwollaError::InvalidConfig(
                "the rate must be at least 1 request per second".to_owned(),
            ));
        }
        if config.max_in_flight == 0 {
            return Err(DwollaError::InvalidConfig(
                "at least 1 request must be allowed in flight".to_owned(),
            ));
        }
        if config.key.is_empty() || config.secret.is_empty() {
            return Err(DwollaError::InvalidConfig(
                "the API key and secret must not be empty".to_owned(),
            ));
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(HAL_JSON));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("payrun/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // Dwolla answers plain HTTP with a redirect; following it would turn a POST into a
            // GET. Redirects are reported as errors instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| DwollaError::InvalidConfig(err.to_string()))?;
        let base = Url::parse(&format!("{base_url}/")).expect("normalized URLs parse");
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                base_url,
                key: config.key,
                secret: config.secret,
                throttle: Throttle::new(ThrottleConfig::new(
                    config.rate_per_second,
                    config.max_in_flight,
                )),
                cached_token: SyncMutex::new(None),
                token_fetch: Mutex::new(TokenFetches::default()),
                token_fetches_done: AtomicU64::new(0),
                renewing: AtomicBool::new(false),
                renewal_retry_at: SyncMutex::new(None),
            }),
        })
    }

    /// The base URL without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// `{base}/funding-sources/{id}`, the form `_links.source.href` takes.
    pub fn funding_source_url(&self, id: &str) -> String {
        self.inner.url(&["funding-sources", id]).to_string()
    }

    /// `{base}/transfers/{id}`.
    pub fn transfer_url(&self, id: &str) -> String {
        self.inner.url(&["transfers", id]).to_string()
    }

    pub fn throttle_stats(&self) -> ThrottleStats {
        self.inner.throttle.stats()
    }

    /// Shares the application's rate with other workers (see [`Throttle::set_fleet_share`]).
    pub fn set_fleet_share(&self, workers: u32, factor: f64) {
        self.inner.throttle.set_fleet_share(workers, factor);
    }

    /// This client's congestion factor, for other workers of the same application.
    pub fn congestion_factor(&self) -> f64 {
        self.inner.throttle.congestion_factor()
    }

    /// Completed `POST /token` requests, successful or not: the first token and its renewals.
    pub fn token_fetches(&self) -> u64 {
        self.inner.token_fetches_done.load(Ordering::Acquire)
    }

    // --- Transfers -----------------------------------------------------------------------

    /// `POST /transfers` with exactly `body` (see [`TransferRequest::to_body_bytes`]) and the
    /// given Idempotency-Key. A replay of a key Dwolla already saw answers with the original
    /// transfer's Location.
    pub async fn create_transfer(
        &self,
        idempotency_key: &str,
        body: &[u8],
    ) -> Result<Created, DwollaError> {
        let url = self.inner.url(&["transfers"]);
        let request = Request::post(url, body.to_vec(), Some(idempotency_key));
        self.inner.execute(request).await?.created()
    }

    /// `GET /transfers/{id}`; a full transfer URL (such as [`Created::location`]) works too.
    pub async fn get_transfer(&self, url_or_id: &str) -> Result<Transfer, DwollaError> {
        self.get_resource("transfers", url_or_id).await
    }

    /// `GET /accounts/{id}/transfers`, one page.
    pub async fn list_account_transfers(
        &self,
        account_id: &str,
        query: &TransferQuery,
    ) -> Result<Page<Transfer>, DwollaError> {
        self.list_transfers(&["accounts", account_id, "transfers"], query)
            .await
    }

    /// `GET /external-parties/{id}/transfers`, one page.
    pub async fn list_external_party_transfers(
        &self,
        party_id: &str,
        query: &TransferQuery,
    ) -> Result<Page<Transfer>, DwollaError> {
        self.list_transfers(&["external-parties", party_id, "transfers"], query)
            .await
    }

    /// Pages through the account's transfers filtered by `correlationId` and returns the one
    /// whose `correlationId` is exactly `correlation_id`. Transfers without a `correlationId`
    /// never match, even if the server returned them: adopting the wrong transfer would be
    /// worse than finding none. More than one match is [`DwollaError::AmbiguousCorrelationId`].
    pub async fn find_transfer_by_correlation_id(
        &self,
        account_id: &str,
        correlation_id: &str,
    ) -> Result<Option<Transfer>, DwollaError> {
        let mut query = TransferQuery {
            correlation_id: Some(correlation_id.to_owned()),
            limit: MAX_PAGE_LIMIT,
            cursor: None,
        };
        let mut found = Vec::new();
        let mut guard = super::paging::LoopGuard::new("transfer list");
        loop {
            let page = self.list_account_transfers(account_id, &query).await?;
            found.extend(
                page.items
                    .into_iter()
                    .filter(|t| t.correlation_id.as_deref() == Some(correlation_id)),
            );
            match page.next {
                Some(next) => {
                    guard.follow(&next)?;
                    query.cursor = Some(next);
                }
                None => break,
            }
        }
        match found.len() {
            0 | 1 => Ok(found.pop()),
            count => Err(DwollaError::AmbiguousCorrelationId {
                correlation_id: correlation_id.to_owned(),
                count,
            }),
        }
    }

    /// The page after `page`, by its `_links.next`; `None` after the last page. Works for every
    /// list this client returns.
    pub async fn next_page<T: Embedded>(
        &self,
        page: &Page<T>,
    ) -> Result<Option<Page<T>>, DwollaError> {
        match &page.next {
            None => Ok(None),
            Some(next) => {
                let url = self.inner.own_url(next)?;
                self.inner.list(url, T::KEY).await.map(Some)
            }
        }
    }

    // --- Root and accounts ---------------------------------------------------------------

    /// `GET /`: links to the main account.
    pub async fn root(&self) -> Result<Root, DwollaError> {
        let url = self.inner.base.clone();
        self.inner.execute(Request::get(url)).await?.json()
    }

    pub async fn get_account(&self, url_or_id: &str) -> Result<Account, DwollaError> {
        self.get_resource("accounts", url_or_id).await
    }

    // --- Funding sources -----------------------------------------------------------------

    /// `POST /funding-sources`: a bank account of the main account.
    pub async fn create_funding_source(
        &self,
        body: &CreateAccountFundingSource,
        idempotency_key: Option<&str>,
    ) -> Result<Created, DwollaError> {
        self.create(&["funding-sources"], body, idempotency_key)
            .await
    }

    pub async fn list_account_funding_sources(
        &self,
        account_id: &str,
    ) -> Result<Page<FundingSource>, DwollaError> {
        self.list_of(&["accounts", account_id, "funding-sources"])
            .await
    }

    pub async fn get_funding_source(&self, url_or_id: &str) -> Result<FundingSource, DwollaError> {
        self.get_resource("funding-sources", url_or_id).await
    }

    /// `POST /funding-sources/{id}` with `{"removed": true}`.
    pub async fn remove_funding_source(
        &self,
        url_or_id: &str,
    ) -> Result<FundingSource, DwollaError> {
        let url = self.inner.resource_url("funding-sources", url_or_id)?;
        let body = br#"{"removed":true}"#.to_vec();
        self.inner
            .execute(Request::post(url, body, None))
            .await?
            .json()
    }

    // --- External parties ----------------------------------------------------------------

    pub async fn create_external_party(
        &self,
        body: &CreateExternalParty,
        idempotency_key: Option<&str>,
    ) -> Result<Created, DwollaError> {
        self.create(&["external-parties"], body, idempotency_key)
            .await
    }

    pub async fn list_external_parties(&self) -> Result<Page<ExternalParty>, DwollaError> {
        self.list_of(&["external-parties"]).await
    }

    pub async fn get_external_party(&self, url_or_id: &str) -> Result<ExternalParty, DwollaError> {
        self.get_resource("external-parties", url_or_id).await
    }

    pub async fn create_external_party_funding_source(
        &self,
        party_id: &str,
        body: &CreateExternalPartyFundingSource,
        idempotency_key: Option<&str>,
    ) -> Result<Created, DwollaError> {
        self.create(
            &["external-parties", party_id, "funding-sources"],
            body,
            idempotency_key,
        )
        .await
    }

    pub async fn list_external_party_funding_sources(
        &self,
        party_id: &str,
    ) -> Result<Page<FundingSource>, DwollaError> {
        self.list_of(&["external-parties", party_id, "funding-sources"])
            .await
    }

    // --- Treasury partners and accounts --------------------------------------------------

    pub async fn list_treasury_partners(&self) -> Result<Page<TreasuryPartner>, DwollaError> {
        self.list_of(&["treasury-partners"]).await
    }

    pub async fn get_treasury_partner(
        &self,
        url_or_id: &str,
    ) -> Result<TreasuryPartner, DwollaError> {
        self.get_resource("treasury-partners", url_or_id).await
    }

    pub async fn create_treasury_account(
        &self,
        body: &CreateTreasuryAccount,
        idempotency_key: Option<&str>,
    ) -> Result<Created, DwollaError> {
        self.create(&["treasury-accounts"], body, idempotency_key)
            .await
    }

    pub async fn list_treasury_accounts(&self) -> Result<Page<TreasuryAccount>, DwollaError> {
        self.list_of(&["treasury-accounts"]).await
    }

    pub async fn get_treasury_account(
        &self,
        url_or_id: &str,
    ) -> Result<TreasuryAccount, DwollaError> {
        self.get_resource("treasury-accounts", url_or_id).await
    }

    // --- Exchange partners and exchanges -------------------------------------------------

    pub async fn list_exchange_partners(&self) -> Result<Page<ExchangePartner>, DwollaError> {
        self.list_of(&["exchange-partners"]).await
    }

    pub async fn get_exchange_partner(
        &self,
        url_or_id: &str,
    ) -> Result<ExchangePartner, DwollaError> {
        self.get_resource("exchange-partners", url_or_id).await
    }

    /// `POST /exchanges`: an exchange for the main account.
    pub async fn create_exchange(
        &self,
        body: &CreateExchange,
        idempotency_key: Option<&str>,
    ) -> Result<Created, DwollaError> {
        self.create(&["exchanges"], body, idempotency_key).await
    }

    /// `POST /external-parties/{id}/exchanges`.
    pub async fn create_external_party_exchange(
        &self,
        party_id: &str,
        body: &CreateExchange,
        idempotency_key: Option<&str>,
    ) -> Result<Created, DwollaError> {
        self.create(
            &["external-parties", party_id, "exchanges"],
            body,
            idempotency_key,
        )
        .await
    }

    pub async fn list_exchanges(&self) -> Result<Page<Exchange>, DwollaError> {
        self.list_of(&["exchanges"]).await
    }

    pub async fn list_external_party_exchanges(
        &self,
        party_id: &str,
    ) -> Result<Page<Exchange>, DwollaError> {
        self.list_of(&["external-parties", party_id, "exchanges"])
            .await
    }

    pub async fn get_exchange(&self, url_or_id: &str) -> Result<Exchange, DwollaError> {
        self.get_resource("exchanges", url_or_id).await
    }

    // --- Webhook subscriptions -----------------------------------------------------------

    pub async fn create_webhook_subscription(
        &self,
        body: &CreateWebhookSubscription,
        idempotency_key: Option<&str>,
    ) -> Result<Created, DwollaError> {
        self.create(&["webhook-subscriptions"], body, idempotency_key)
            .await
    }

    pub async fn list_webhook_subscriptions(
        &self,
    ) -> Result<Page<WebhookSubscription>, DwollaError> {
        self.list_of(&["webhook-subscriptions"]).await
    }

    pub async fn get_webhook_subscription(
        &self,
        url_or_id: &str,
    ) -> Result<WebhookSubscription, DwollaError> {
        self.get_resource("webhook-subscriptions", url_or_id).await
    }

    /// `DELETE /webhook-subscriptions/{id}`; Dwolla answers with the deleted subscription.
    pub async fn delete_webhook_subscription(
        &self,
        url_or_id: &str,
    ) -> Result<WebhookSubscription, DwollaError> {
        let url = self
            .inner
            .resource_url("webhook-subscriptions", url_or_id)?;
        let request = Request {
            method: Method::DELETE,
            ..Request::get(url)
        };
        self.inner.execute(request).await?.json()
    }

    /// `POST /webhook-subscriptions/{id}` with `{"paused": ...}`; Dwolla answers with the
    /// subscription.
    pub async fn set_webhook_subscription_paused(
        &self,
        url_or_id: &str,
        paused: bool,
    ) -> Result<WebhookSubscription, DwollaError> {
        let url = self
            .inner
            .resource_url("webhook-subscriptions", url_or_id)?;
        let body = serde_json::to_vec(&serde_json::json!({ "paused": paused }))
            .expect("request bodies serialize");
        self.inner
            .execute(Request::post(url, body, None))
            .await?
            .json()
    }

    /// `POST /webhooks/{id}/retries` (no body): Dwolla sends the webhook once more.
    pub async fn retry_webhook(&self, url_or_id: &str) -> Result<Created, DwollaError> {
        let mut url = self.inner.resource_url("webhooks", url_or_id)?;
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push("retries");
        }
        self.inner
            .execute(Request::post(url, Vec::new(), None))
            .await?
            .created()
    }

    /// `GET /webhook-subscriptions/{id}/webhooks`: the webhooks sent to a subscription, with
    /// their delivery attempts.
    pub async fn list_subscription_webhooks(
        &self,
        subscription_id: &str,
    ) -> Result<Page<Webhook>, DwollaError> {
        self.list_of(&["webhook-subscriptions", subscription_id, "webhooks"])
            .await
    }

    // --- Client tokens (classic API) -----------------------------------------------------

    /// `POST /client-tokens`, for Dwolla's drop-in components.
    pub async fn create_client_token(
        &self,
        body: &CreateClientToken,
    ) -> Result<ClientToken, DwollaError> {
        let url = self.inner.url(&["client-tokens"]);
        let bytes = serde_json::to_vec(body).expect("request bodies serialize");
        let response = self.inner.execute(Request::post(url, bytes, None)).await?;
        let parsed: ClientTokenBody = response.json()?;
        Ok(ClientToken {
            token: Secret::new(parsed.token),
        })
    }

    // --- Shared shapes -------------------------------------------------------------------

    async fn get_resource<T: DeserializeOwned>(
        &self,
        collection: &str,
        url_or_id: &str,
    ) -> Result<T, DwollaError> {
        let url = self.inner.resource_url(collection, url_or_id)?;
        self.inner.execute(Request::get(url)).await?.json()
    }

    async fn list_of<T: Embedded>(&self, segments: &[&str]) -> Result<Page<T>, DwollaError> {
        self.inner.list(self.inner.url(segments), T::KEY).await
    }

    async fn create(
        &self,
        segments: &[&str],
        body: &impl serde::Serialize,
        idempotency_key: Option<&str>,
    ) -> Result<Created, DwollaError> {
        let url = self.inner.url(segments);
        let bytes = serde_json::to_vec(body).expect("request bodies serialize");
        self.inner
            .execute(Request::post(url, bytes, idempotency_key))
            .await?
            .created()
    }

    async fn list_transfers(
        &self,
        segments: &[&str],
        query: &TransferQuery,
    ) -> Result<Page<Transfer>, DwollaError> {
        let url = match query.cursor.as_deref() {
            Some(next) if next.contains("://") => self.inner.own_url(next)?,
            cursor => {
                let mut url = self.inner.url(segments);
                {
                    let mut pairs = url.query_pairs_mut();
                    if let Some(correlation_id) = &query.correlation_id {
                        pairs.append_pair("correlationId", correlation_id);
                    }
                    let limit = query.limit.clamp(1, MAX_PAGE_LIMIT);
                    pairs.append_pair("limit", &limit.to_string());
                    if let Some(cursor) = cursor {
                        pairs.append_pair("cursor", cursor);
                    }
                }
                url
            }
        };
        self.inner.list(url, Transfer::KEY).await
    }
}

/// A resource type that lists carry in `_embedded` under [`Embedded::KEY`].
pub trait Embedded: DeserializeOwned {
    const KEY: &'static str;
}

impl Embedded for Transfer {
    const KEY: &'static str = "transfers";
}
impl Embedded for FundingSource {
    const KEY: &'static str = "funding-sources";
}
impl Embedded for ExternalParty {
    const KEY: &'static str = "external-parties";
}
impl Embedded for TreasuryPartner {
    const KEY: &'static str = "treasury-partners";
}
impl Embedded for TreasuryAccount {
    const KEY: &'static str = "treasury-accounts";
}
impl Embedded for ExchangePartner {
    const KEY: &'static str = "exchange-partners";
}
impl Embedded for Exchange {
    const KEY: &'static str = "exchanges";
}
impl Embedded for WebhookSubscription {
    const KEY: &'static str = "webhook-subscriptions";
}
impl Embedded for Webhook {
    const KEY: &'static str = "webhooks";
}

impl Inner {
    /// `{base}/{segment}/{segment}...`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().expect("http URLs have paths");
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// An absolute URL from Dwolla (a Location, a `_links` href), accepted only on the
    /// configured origin and path: the access token goes nowhere else.
    fn own_url(&self, raw: &str) -> Result<Url, DwollaError> {
        let foreign = || DwollaError::ForeignUrl {
            url: raw.to_owned(),
            base_url: self.base_url.clone(),
        };
        let url = Url::parse(raw).map_err(|_| foreign())?;
        let same_origin = url.origin() == self.base.origin();
        let under_base = url.path().starts_with(self.base.path());
        if same_origin && under_base {
            Ok(url)
        } else {
            Err(foreign())
        }
    }

    /// A resource URL from either its id or its full URL.
    fn resource_url(&self, collection: &str, url_or_id: &str) -> Result<Url, DwollaError> {
        if url_or_id.contains("://") {
            self.own_url(url_or_id)
        } else {
            Ok(self.url(&[collection, url_or_id]))
        }
    }

    async fn list<T: DeserializeOwned>(
        self: &Arc<Self>,
        url: Url,
        key: &str,
    ) -> Result<Page<T>, DwollaError> {
        let response = self.execute(Request::get(url)).await?;
        let collection: HalCollection = response.json()?;
        collection
            .into_page(key)
            .map_err(|err| DwollaError::Decode {
                status: response.status.as_u16(),
                detail: format!("_embedded.{key}: {err}"),
                request_id: response.request_id(),
            })
    }

    /// Sends `request` with a bearer token taken once the throttle lets it go, so that no wait
    /// (a pause after a 429, a slow rate) can age the token on the way. On a 401 that a new
    /// token may fix, renews the token once and sends the same request (same body, same
    /// Idempotency-Key) once more; a second such 401 is returned as an unknown outcome, never
    /// as refused credentials.
    async fn execute(self: &Arc<Self>, request: Request) -> Result<Response, DwollaError> {
        let mut renewed = false;
        loop {
            let (permit, token) = self.permit_with_token().await?;
            let builder = self.builder(&request, Some(&token));
            let response = self
                .round_trip(permit, builder, request.url.clone())
                .await?;
            if response.status.is_success() {
                return Ok(response);
            }
            let err = error::from_response(
                response.status.as_u16(),
                &response.body,
                response.request_id(),
                retry_after(&response.headers),
            );
            if response.status == StatusCode::UNAUTHORIZED && err.is_token_trouble() {
                self.forget_token(token.generation);
                if !renewed {
                    tracing::info!(code = err.code(), "access token refused; renewing it once");
                    renewed = true;
                    continue;
                }
            }
            return Err(err);
        }
    }

    /// A throttle permit and a token that is still good for a while. Without a usable token
    /// this first waits for a fetch (which takes a permit of its own); when the cached token
    /// has reached its renewal time, a renewal starts in the background and the current token
    /// is used meanwhile. The token is checked again once the permit is held, since the wait
    /// for it may have aged the token past use.
    async fn permit_with_token(self: &Arc<Self>) -> Result<(Permit, AccessToken), DwollaError> {
        let mut fetched: Option<AccessToken> = None;
        loop {
            if fetched.is_none() && self.usable_token(Instant::now()).is_none() {
                fetched = Some(self.access_token().await?);
            }
            let permit = self.throttle.acquire().await;
            let now = Instant::now();
            if let Some((token, renew)) = self.usable_token(now) {
                if renew {
                    self.renew_in_background(now);
                }
                return Ok((permit, token));
            }
            // A token fetched for this very request is used even if it is short-lived.
            if let Some(token) = fetched.take()
                && self.still_valid(&token, now)
            {
                return Ok((permit, token));
            }
        }
    }

    fn builder(&self, request: &Request, token: Option<&AccessToken>) -> reqwest::RequestBuilder {
        let mut builder = self
            .http
            .request(request.method.clone(), request.url.clone());
        if let Some(token) = token {
            builder = builder.bearer_auth(token.value.expose());
        }
        if let Some(body) = &request.json_body {
            builder = builder
                .header(header::CONTENT_TYPE, HAL_JSON)
                .body(body.clone());
        }
        if let Some(key) = &request.idempotency_key {
            builder = builder.header("Idempotency-Key", key);
        }
        builder
    }

    /// One round trip under `permit`, read to the end. Tells the throttle how it was answered.
    async fn round_trip(
        &self,
        permit: Permit,
        builder: reqwest::RequestBuilder,
        url: Url,
    ) -> Result<Response, DwollaError> {
        let result = async {
            let response = builder.send().await.map_err(error::from_reqwest)?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(error::from_reqwest)?;
            Ok(Response {
                status,
                headers,
                body: body.to_vec(),
                url,
            })
        }
        .await;
        match &result {
            Ok(response) if response.status == StatusCode::TOO_MANY_REQUESTS => self
                .throttle
                .note_rate_limited(permit.started_at(), retry_after(&response.headers)),
            Ok(_) => self.throttle.note_answered(),
            Err(_) => {}
        }
        drop(permit);
        result
    }

    // --- The access token ----------------------------------------------------------------

    /// The cached token if it is good to send now, and whether it is time to renew it.
    fn usable_token(&self, now: Instant) -> Option<(AccessToken, bool)> {
        let cached = self.cached_token.lock().expect("token lock");
        let cached = cached.as_ref().filter(|cached| now < cached.use_by)?;
        Some((cached.token.clone(), now >= cached.renew_at))
    }

    fn still_valid(&self, token: &AccessToken, now: Instant) -> bool {
        let cached = self.cached_token.lock().expect("token lock");
        cached
            .as_ref()
            .is_some_and(|c| c.token.generation == token.generation && now < c.expires_at)
    }

    /// Starts one renewal at a time, and after a failed one waits a second before the next.
    fn renew_in_background(self: &Arc<Self>, now: Instant) {
        if self
            .renewal_retry_at
            .lock()
            .expect("token lock")
            .is_some_and(|at| now < at)
        {
            return;
        }
        if self.renewing.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(err) = inner.access_token().await {
                tracing::warn!(error = %err, "token renewal failed; keeping the current token");
                *inner.renewal_retry_at.lock().expect("token lock") =
                    Some(Instant::now() + Duration::from_secs(1));
            }
            inner.renewing.store(false, Ordering::Release);
        });
    }

    /// A fresh token, fetching one unless another caller just did. Callers that queue behind a
    /// fetch share its outcome, success or failure, instead of each fetching in turn.
    async fn access_token(&self) -> Result<AccessToken, DwollaError> {
        let done_before = self.token_fetches_done.load(Ordering::Acquire);
        let mut state = self.token_fetch.lock().await;
        let now = Instant::now();
        if let Some(cached) = self.cached_token.lock().expect("token lock").as_ref()
            && now < cached.renew_at
        {
            return Ok(cached.token.clone());
        }
        if state.fetches_done > done_before
            && let Some(err) = &state.last_error
        {
            // The fetch we queued behind failed; share its outcome, as it would have.
            return match self.usable_token(now) {
                Some((token, _)) => Ok(token),
                None => Err(err.clone()),
            };
        }
        let generation = state.fetches_done + 1;
        let fetched = self.fetch_token(generation).await;
        state.fetches_done = generation;
        self.token_fetches_done.store(generation, Ordering::Release);
        match fetched {
            Ok(fresh) => {
                let token = fresh.token.clone();
                *self.cached_token.lock().expect("token lock") = Some(fresh);
                *self.renewal_retry_at.lock().expect("token lock") = None;
                state.last_error = None;
                Ok(token)
            }
            Err(err) => {
                state.last_error = Some(err.clone());
                // A renewal ahead of expiry failed; the old token still works for a while.
                match self.usable_token(Instant::now()) {
                    Some((token, _)) => Ok(token),
                    None => Err(err),
                }
            }
        }
    }

    fn forget_token(&self, generation: u64) {
        let mut cached = self.cached_token.lock().expect("token lock");
        if cached
            .as_ref()
            .is_some_and(|cached| cached.token.generation == generation)
        {
            *cached = None;
        }
    }

    /// `POST /token` with HTTP Basic credentials and `grant_type=client_credentials`.
    async fn fetch_token(&self, generation: u64) -> Result<CachedToken, DwollaError> {
        let url = self.url(&["token"]);
        let builder = self
            .http
            .post(url.clone())
            .basic_auth(&self.key, Some(self.secret.expose()))
            .form(&[("grant_type", "client_credentials")]);
        let permit = self.throttle.acquire().await;
        // The token's lifetime counts from when it was asked for, not from when it arrived.
        let asked_at = permit.started_at();
        let response = self.round_trip(permit, builder, url).await?;
        let request_id = response.request_id();
        if !response.status.is_success() {
            let status = response.status.as_u16();
            let retry_after = retry_after(&response.headers);
            let err = error::from_response(status, &response.body, request_id, retry_after);
            let refused = (400..500).contains(&status) && !matches!(status, 408 | 409 | 429);
            return Err(match err {
                DwollaError::Api {
                    status,
                    code,
                    message,
                    request_id,
                    ..
                } if refused => DwollaError::Credentials {
                    status,
                    code,
                    message,
                    request_id,
                },
                DwollaError::UnexpectedStatus {
                    status,
                    body,
                    request_id,
                    ..
                } if refused => DwollaError::Credentials {
                    status,
                    code: String::new(),
                    message: body,
                    request_id,
                },
                other => other,
            });
        }
        let body: TokenBody = response.json()?;
        if !body.token_type.eq_ignore_ascii_case("bearer") {
            return Err(DwollaError::Decode {
                status: response.status.as_u16(),
                detail: format!("token_type {:?} is not bearer", body.token_type),
                request_id,
            });
        }
        let lifetime = Duration::from_secs(body.expires_in.unwrap_or(3600).max(1));
        Ok(CachedToken {
            token: AccessToken {
                value: Secret::new(body.access_token),
                generation,
            },
            renew_at: asked_at + lifetime - renewal_lead(lifetime),
            use_by: asked_at + lifetime - last_use_lead(lifetime),
            expires_at: asked_at + lifetime,
        })
    }
}

/// How long before expiry a token is renewed: 60 s, or half the lifetime of a token shorter
/// than 2 minutes, so that any lifetime leaves time to renew in the background.
fn renewal_lead(lifetime: Duration) -> Duration {
    (lifetime / 2).min(Duration::from_secs(60))
}

/// How long before expiry a token stops being put on new requests: half the renewal lead, so
/// that a request never reaches Dwolla with a token about to lapse (network delay, clock skew).
fn last_use_lead(lifetime: Duration) -> Duration {
    renewal_lead(lifetime) / 2
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    token_type: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// `Retry-After` as delta-seconds (whole or fractional) or as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = header_text(headers, "retry-after")?;
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let date =
        time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = date - time::OffsetDateTime::now_utc();
    Some(wait.try_into().unwrap_or(Duration::ZERO))
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("key", &self.inner.key)
            .field("secret", &self.inner.secret)
            .field("throttle", &self.inner.throttle)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(retry_after: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("Retry-After", HeaderValue::from_str(retry_after).unwrap());
        map
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_a_date() {
        assert_eq!(retry_after(&headers("2")), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after(&headers("0.5")),
            Some(Duration::from_millis(500))
        );
        assert_eq!(retry_after(&headers("-1")), None);
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    fn client(base_url: &str) -> Client {
        Client::new(DwollaConfig {
            base_url: base_url.to_owned(),
            key: "key".into(),
            secret: Secret::new("secret"),
            rate_per_second: 10,
            max_in_flight: 2,
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
        })
        .unwrap()
    }

    #[test]
    fn urls_are_built_under_the_base_and_foreign_ones_are_refused() {
        let client = client("http://127.0.0.1:9/prefix/");
        assert_eq!(client.base_url(), "http://127.0.0.1:9/prefix");
        assert_eq!(
            client.funding_source_url("abc"),
            "http://127.0.0.1:9/prefix/funding-sources/abc"
        );
        assert_eq!(
            client.transfer_url("a/b"),
            "http://127.0.0.1:9/prefix/transfers/a%2Fb"
        );
        let inner = &client.inner;
        assert!(
            inner
                .own_url("http://127.0.0.1:9/prefix/transfers/1")
                .is_ok()
        );
        for foreign in [
            "http://127.0.0.1:10/prefix/transfers/1",
            "https://127.0.0.1:9/prefix/transfers/1",
            "http://evil.example/prefix/transfers/1",
            "http://127.0.0.1:9/other/transfers/1",
        ] {
            assert!(
                matches!(inner.own_url(foreign), Err(DwollaError::ForeignUrl { .. })),
                "{foreign}"
            );
        }
    }

    #[test]
    fn a_client_needs_a_rate_a_slot_and_credentials() {
        let config = DwollaConfig {
            base_url: "https://api.dwolla.com".into(),
            key: "key".into(),
            secret: Secret::new("secret"),
            rate_per_second: 0,
            max_in_flight: 1,
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
        };
        assert!(matches!(
            Client::new(config.clone()),
            Err(DwollaError::InvalidConfig(_))
        ));
        let no_secret = DwollaConfig {
            rate_per_second: 1,
            secret: Secret::new(""),
            ..config
        };
        assert!(matches!(
            Client::new(no_secret),
            Err(DwollaError::InvalidConfig(_))
        ));
    }
}
