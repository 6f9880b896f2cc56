//! The Dwolla client against small Dwolla stand-ins on 127.0.0.1: real HTTP round trips, each
//! server built for the one behaviour a test needs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use payrun::dwolla::wire::{Amount, CreateClientToken, TransferQuery, TransferRequest};
use payrun::dwolla::{Client, Disposition, DwollaConfig, DwollaError, TransferStatus};
use payrun::secret::Secret;

const KEY: &str = "app-key";
const SECRET: &str = "sekrit-client-secret";
const HAL: &str = "application/vnd.dwolla.v1.hal+json";

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

fn config(base_url: &str, rate_per_second: u32, max_in_flight: usize) -> DwollaConfig {
    DwollaConfig {
        base_url: base_url.to_owned(),
        key: KEY.to_owned(),
        secret: Secret::new(SECRET),
        rate_per_second,
        max_in_flight,
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
    }
}

fn client(base_url: &str) -> Client {
    Client::new(config(base_url, 1000, 16)).unwrap()
}

/// `POST /token`: checks the credentials, then hands out `tok-1`, `tok-2`, ... lasting
/// `expires_in` seconds, with `token_type` in a case Dwolla sometimes uses.
#[derive(Default)]
struct Tokens {
    issued: AtomicUsize,
    expires_in: AtomicUsize,
}

impl Tokens {
    fn lasting(seconds: usize) -> Arc<Tokens> {
        let tokens = Tokens::default();
        tokens.expires_in.store(seconds, Ordering::SeqCst);
        Arc::new(tokens)
    }

    fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }
}

async fn token(State(tokens): State<Arc<Tokens>>, headers: HeaderMap, body: Bytes) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:{SECRET}"))
    );
    let form_ok = body.as_ref() == b"grant_type=client_credentials"
        && header(&headers, "content-type") == "application/x-www-form-urlencoded";
    if header(&headers, "authorization") != expected || !form_ok {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid_client"}"#.to_owned(),
        )
            .into_response();
    }
    let n = tokens.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let body = serde_json::json!({
        "access_token": format!("tok-{n}"),
        "token_type": "Bearer",
        "expires_in": tokens.expires_in.load(Ordering::SeqCst),
    });
    axum::Json(body).into_response()
}

fn token_route(tokens: Arc<Tokens>) -> Router {
    Router::new()
        .route("/token", post(token))
        .with_state(tokens)
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn transfer_json(base: &str, id: &str, correlation_id: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "_links": {
            "self": {"href": format!("{base}/transfers/{id}"), "type": HAL, "resource-type": "transfer"},
            "source-funding-source": {"href": format!("{base}/funding-sources/src")},
            "destination-funding-source": {"href": format!("{base}/funding-sources/dst")},
        },
        "id": id,
        "created": "2026-11-20T10:00:00.000Z",
        "amount": {"value": "12.34", "currency": "USD"},
        "status": "pending",
        "correlationId": correlation_id,
    })
}

fn hal(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [("Content-Type", HAL), ("X-Request-Id", "req-42")],
        body.to_string(),
    )
        .into_response()
}

/// What a stand-in saw of each request.
#[derive(Clone, Debug)]
struct Seen {
    authorization: String,
    accept: String,
    content_type: String,
    idempotency_key: String,
    body: Vec<u8>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn record(log: &Log, headers: &HeaderMap, body: &[u8]) {
    log.lock().unwrap().push(Seen {
        authorization: header(headers, "authorization"),
        accept: header(headers, "accept"),
        content_type: header(headers, "content-type"),
        idempotency_key: header(headers, "idempotency-key"),
        body: body.to_vec(),
    });
}

fn transfer_request() -> TransferRequest {
    TransferRequest {
        source_url: "http://x/funding-sources/src".into(),
        destination_url: "http://x/funding-sources/dst".into(),
        amount: Amount::usd_cents(1234),
        correlation_id: "b1.r1".into(),
        metadata: Default::default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[tokio::test]
async fn one_token_serves_many_calls_and_every_request_carries_dwollas_headers() {
    let tokens = Tokens::lasting(3600);
    let log: Log = Default::default();
    let router = token_route(tokens.clone()).merge(
        Router::new()
            .route(
                "/transfers/{id}",
                get(
                    |State(log): State<Log>, Path(id): Path<String>, headers: HeaderMap| async move {
                        record(&log, &headers, b"");
                        hal(StatusCode::OK, transfer_json("http://x", &id, None))
                    },
                ),
            )
            .with_state(log.clone()),
    );
    let client = client(&serve(router).await);

    let calls = (0..20).map(|i| {
        let client = client.clone();
        tokio::spawn(async move { client.get_transfer(&format!("t{i}")).await })
    });
    for call in calls {
        let transfer = call.await.unwrap().unwrap();
        assert_eq!(transfer.status, TransferStatus::Pending);
    }

    assert_eq!(tokens.issued(), 1, "one token request for twenty calls");
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 20);
    for request in seen {
        assert_eq!(request.authorization, "Bearer tok-1");
        assert_eq!(request.accept, HAL);
    }
    assert_eq!(client.throttle_stats().requests_started, 21);
}

#[tokio::test]
async fn the_token_is_renewed_before_it_expires() {
    // A 2 s token is renewed after 1 s (half its life, since it is shorter than 2 minutes).
    let tokens = Tokens::lasting(2);
    let router = token_route(tokens.clone()).route(
        "/",
        get(|| async { hal(StatusCode::OK, serde_json::json!({"_links": {}})) }),
    );
    let client = client(&serve(router).await);

    client.root().await.unwrap();
    client.root().await.unwrap();
    assert_eq!(tokens.issued(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.root().await.unwrap();
    assert_eq!(tokens.issued(), 2);
}

/// `POST /transfers`: 401 `ExpiredAccessToken` for `tok-1`, 201 with an empty body otherwise.
async fn expiring_transfers(State(log): State<Log>, headers: HeaderMap, body: Bytes) -> Response {
    record(&log, &headers, &body);
    if header(&headers, "authorization") == "Bearer tok-1" {
        return hal(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"code": "ExpiredAccessToken", "message": "Generate a new access token using your client credentials."}),
        );
    }
    (
        StatusCode::CREATED,
        [("location", "http://ignored.example/transfers/abc-123")],
    )
        .into_response()
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_and_the_post_is_resent_with_the_same_key_and_bytes() {
    let tokens = Tokens::lasting(3600);
    let log: Log = Default::default();
    let router = token_route(tokens.clone()).merge(
        Router::new()
            .route("/transfers", post(expiring_transfers))
            .with_state(log.clone()),
    );
    let client = client(&serve(router).await);
    let body = transfer_request().to_body_bytes();

    let created = client.create_transfer("key-1", &body).await.unwrap();

    assert_eq!(created.location, "http://ignored.example/transfers/abc-123");
    assert_eq!(created.id(), "abc-123");
    assert_eq!(tokens.issued(), 2);
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for request in &seen {
        assert_eq!(request.idempotency_key, "key-1");
        assert_eq!(request.body, body, "byte-identical on the resend");
        assert_eq!(request.content_type, HAL);
    }
    assert_eq!(seen[1].authorization, "Bearer tok-2");
}

#[tokio::test]
async fn a_401_that_a_new_token_does_not_fix_is_an_unknown_outcome_not_refused_credentials() {
    let tokens = Tokens::lasting(3600);
    let log: Log = Default::default();
    let router = token_route(tokens.clone()).merge(
        Router::new()
            .route(
                "/transfers",
                post(|State(log): State<Log>, headers: HeaderMap, body: Bytes| async move {
                    record(&log, &headers, &body);
                    hal(
                        StatusCode::UNAUTHORIZED,
                        serde_json::json!({"code": "ExpiredAccessToken", "message": "Expired."}),
                    )
                }),
            )
            .with_state(log.clone()),
    );
    let client = client(&serve(router).await);

    let err = client.create_transfer("key-1", b"{}").await.unwrap_err();

    // Only POST /token refusing the key and secret is refused credentials; the sender retries
    // this later with the same key, under its attempt budget.
    assert_eq!(err.disposition(), Disposition::Retry { after: None });
    assert_eq!(err.code(), Some("ExpiredAccessToken"));
    assert_eq!(log.lock().unwrap().len(), 2, "one resend, not a loop");
    assert_eq!(tokens.issued(), 2);
}

#[tokio::test]
async fn refused_credentials_are_unauthorized_and_concurrent_callers_share_one_attempt() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let router = Router::new()
        .route(
            "/token",
            post(|State(attempts): State<Arc<AtomicUsize>>| async move {
                attempts.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                (
                    StatusCode::UNAUTHORIZED,
                    [("X-Request-ID", "req-token")],
                    r#"{"error":"invalid_client"}"#,
                )
            }),
        )
        .with_state(attempts.clone());
    let client = client(&serve(router).await);

    let calls: Vec<_> = (0..5)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.root().await })
        })
        .collect();
    for call in calls {
        let err = call.await.unwrap().unwrap_err();
        assert!(matches!(err, DwollaError::Credentials { .. }), "{err:?}");
        assert_eq!(err.disposition(), Disposition::Unauthorized);
        assert_eq!(err.code(), Some("invalid_client"));
        assert_eq!(err.request_id(), Some("req-token"));
    }
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------------
// Errors and dispositions

#[tokio::test]
async fn a_validation_error_is_read_with_its_embedded_errors_and_request_id() {
    let router = token_route(Tokens::lasting(3600)).route(
        "/transfers",
        post(|| async {
            (
                StatusCode::BAD_REQUEST,
                [
                    ("content-type", "application/vnd.dwolla.v1.hal+json; profile=\"http://nocarrier.co.uk/profiles/vnd.error/\"; charset=UTF-8"),
                    ("X-REQUEST-ID", "7c2b1e6a"),
                ],
                r#"{"code":"ValidationError","message":"Validation error(s) present. See embedded errors list for more details.",
                   "_embedded":{"errors":[{"code":"Invalid","message":"Receiver not found.","path":"/_links/destination/href","_links":{}},
                                          {"code":"InsufficientFunds","message":"Insufficient funds.","path":"/_links/source/href","_links":{}}]}}"#,
            )
        }),
    );
    let client = client(&serve(router).await);

    let err = client.create_transfer("key-1", b"{}").await.unwrap_err();

    let DwollaError::Api {
        status,
        code,
        errors,
        request_id,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 400);
    assert_eq!(code, "ValidationError");
    assert_eq!(request_id.as_deref(), Some("7c2b1e6a"));
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].code, "Invalid");
    assert_eq!(errors[0].message, "Receiver not found.");
    assert_eq!(errors[0].path.as_deref(), Some("/_links/destination/href"));
    assert_eq!(err.disposition(), Disposition::Final);
    assert!(err.to_string().contains("7c2b1e6a"));
}

#[tokio::test]
async fn each_status_maps_to_its_disposition() {
    // `GET /transfers/{status}` answers with that status and a Dwolla error body.
    let router = token_route(Tokens::lasting(3600)).route(
        "/transfers/{status}",
        get(|Path(status): Path<u16>| async move {
            let code = match status {
                401 => "InvalidCredentials",
                409 => "Conflict",
                429 => "TooManyRequests",
                _ => "Whatever",
            };
            let mut response = hal(
                StatusCode::from_u16(status).unwrap(),
                serde_json::json!({"code": code, "message": "m"}),
            );
            if status == 429 {
                response
                    .headers_mut()
                    .insert("retry-after", "3".parse().unwrap());
            }
            response
        }),
    );
    let client = client(&serve(router).await);

    let cases = [
        (400, Disposition::Final),
        (403, Disposition::Final),
        (404, Disposition::Final),
        (401, Disposition::Unauthorized),
        (409, Disposition::Retry { after: None }),
        (500, Disposition::Retry { after: None }),
        (503, Disposition::Retry { after: None }),
        // Last, because it starts a cool-down.
        (
            429,
            Disposition::Retry {
                after: Some(Duration::from_secs(3)),
            },
        ),
    ];
    for (status, expected) in cases {
        let err = client.get_transfer(&status.to_string()).await.unwrap_err();
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.disposition(), expected, "{status}");
    }
    let stats = client.throttle_stats();
    assert_eq!((stats.rate_limited, stats.cool_downs), (1, 1));
    assert_eq!(stats.effective_rate, 0.0, "paused after the 429");
}

#[tokio::test]
async fn a_timeout_is_an_unknown_outcome() {
    let router = token_route(Tokens::lasting(3600)).route(
        "/transfers",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::CREATED
        }),
    );
    let base = serve(router).await;
    let client = Client::new(DwollaConfig {
        request_timeout: Duration::from_millis(300),
        ..config(&base, 100, 4)
    })
    .unwrap();

    let started = Instant::now();
    let err = client.create_transfer("key-1", b"{}").await.unwrap_err();

    assert_eq!(err, DwollaError::Timeout);
    assert_eq!(err.disposition(), Disposition::Retry { after: None });
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A server that answers `POST /token` and drops every other request unanswered.
async fn hang_up_server() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if head.starts_with(b"POST /token ") {
                    let body = r#"{"access_token":"tok","token_type":"bearer","expires_in":3600}"#;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                }
                // Anything else: close without a response.
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_connection_closed_without_a_response_is_an_unknown_outcome() {
    let client = client(&hang_up_server().await);

    let err = client.create_transfer("key-1", b"{}").await.unwrap_err();

    assert!(matches!(err, DwollaError::Transport(_)), "{err:?}");
    assert_eq!(err.disposition(), Disposition::Retry { after: None });
}

#[tokio::test]
async fn a_refused_connection_is_an_unknown_outcome() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = client(&base);

    let err = client.create_transfer("key-1", b"{}").await.unwrap_err();

    assert!(matches!(err, DwollaError::Connect(_)), "{err:?}");
    assert_eq!(err.disposition(), Disposition::Retry { after: None });
}

#[tokio::test]
async fn a_201_without_a_location_is_an_unknown_outcome() {
    let router = token_route(Tokens::lasting(3600))
        .route("/transfers", post(|| async { StatusCode::CREATED }))
        .route(
            "/external-parties",
            post(|| async {
                (
                    StatusCode::CREATED,
                    [("Location", "/external-parties/ep-1")],
                )
            }),
        );
    let base = serve(router).await;
    let client = client(&base);

    let err = client.create_transfer("key-1", b"{}").await.unwrap_err();
    assert!(
        matches!(err, DwollaError::Decode { status: 201, .. }),
        "{err:?}"
    );
    assert_eq!(err.disposition(), Disposition::Retry { after: None });

    // A relative Location is resolved against the request URL.
    let party = payrun::dwolla::wire::CreateExternalParty::Business {
        business_name: "Acme".into(),
        email: "ops@acme.example".into(),
        correlation_id: None,
    };
    let created = client.create_external_party(&party, None).await.unwrap();
    assert_eq!(created.location, format!("{base}/external-parties/ep-1"));
}

// ---------------------------------------------------------------------------------------------
// Paging

/// `GET /accounts/{id}/transfers`: five transfers, `limit` per page, the cursor an offset, each
/// `_links.next` an absolute URL that carries only the cursor (as Dwolla's does).
async fn paged_transfers(
    Path(_account): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let base = format!("http://{}", header(&headers, "host"));
    let limit: usize = query.get("limit").map_or(25, |l| l.parse().unwrap());
    let (offset, limit) = match query.get("cursor") {
        Some(cursor) => {
            let (offset, limit) = cursor.split_once('-').unwrap();
            (offset.parse().unwrap(), limit.parse().unwrap())
        }
        None => (0usize, limit),
    };
    let all: Vec<_> = (0..5)
        .map(|i| transfer_json(&base, &format!("t{i}"), Some(&format!("c{i}"))))
        .filter(|t| {
            query
                .get("correlationId")
                .is_none_or(|c| t["correlationId"] == c.as_str() || c == "c4")
        })
        .collect();
    let items: Vec<_> = all.iter().skip(offset).take(limit).cloned().collect();
    let mut links = serde_json::json!({"self": {"href": format!("{base}/accounts/a/transfers")}});
    if offset + limit < all.len() {
        links["next"] = serde_json::json!({
            "href": format!("{base}/transfers?cursor={}-{limit}", offset + limit)
        });
    }
    hal(
        StatusCode::OK,
        serde_json::json!({"_links": links, "_embedded": {"transfers": items}}),
    )
}

#[tokio::test]
async fn paging_follows_next_links_to_the_end() {
    let router = token_route(Tokens::lasting(3600))
        .route("/accounts/{id}/transfers", get(paged_transfers))
        .route(
            "/transfers",
            get(
                |query: Query<HashMap<String, String>>, headers: HeaderMap| async move {
                    paged_transfers(Path("a".into()), query, headers).await
                },
            ),
        );
    let client = client(&serve(router).await);

    let mut query = TransferQuery {
        limit: 2,
        ..TransferQuery::default()
    };
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let page = client.list_account_transfers("a", &query).await.unwrap();
        pages += 1;
        ids.extend(page.items.iter().map(|t| t.id.clone()));
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(ids, ["t0", "t1", "t2", "t3", "t4"]);
    assert_eq!(pages, 3);

    // The same walk through next_page.
    let mut page = client
        .list_account_transfers(
            "a",
            &TransferQuery {
                limit: 4,
                ..TransferQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 4);
    page = client.next_page(&page).await.unwrap().unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(client.next_page(&page).await.unwrap().is_none());
}

#[tokio::test]
async fn a_transfer_is_found_by_its_correlation_id_and_only_by_an_exact_match() {
    let router = token_route(Tokens::lasting(3600))
        .route("/accounts/{id}/transfers", get(paged_transfers))
        .route(
            "/transfers",
            get(
                |query: Query<HashMap<String, String>>, headers: HeaderMap| async move {
                    paged_transfers(Path("a".into()), query, headers).await
                },
            ),
        );
    let client = client(&serve(router).await);

    // This server ignores a filter of c4 and returns all five, over three pages: only the
    // exact match counts.
    let found = client
        .find_transfer_by_correlation_id("a", "c4")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, "t4");
    assert_eq!(
        client
            .find_transfer_by_correlation_id("a", "c9")
            .await
            .unwrap(),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// The throttle on the wire

/// `GET /transfers/{id}` that records arrival times (and answers 429 to the request numbered
/// `fail_at`, if any); `POST /token` too counts as an arrival.
#[derive(Default)]
struct Arrivals {
    at: Mutex<Vec<Instant>>,
    fail_at: Option<usize>,
    rate_limited_at: Mutex<Option<Instant>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    hold: Duration,
}

async fn arrive(State(arrivals): State<Arc<Arrivals>>) -> Response {
    let n = {
        let mut at = arrivals.at.lock().unwrap();
        at.push(Instant::now());
        at.len()
    };
    let now_in_flight = arrivals.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    arrivals
        .most_in_flight
        .fetch_max(now_in_flight, Ordering::SeqCst);
    tokio::time::sleep(arrivals.hold).await;
    arrivals.in_flight.fetch_sub(1, Ordering::SeqCst);
    if Some(n) == arrivals.fail_at {
        *arrivals.rate_limited_at.lock().unwrap() = Some(Instant::now());
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("Retry-After", "1")],
            r#"{"code":"TooManyRequests","message":"Slow down."}"#,
        )
            .into_response();
    }
    hal(StatusCode::OK, transfer_json("http://x", "t", None))
}

async fn arrivals_server(arrivals: Arc<Arrivals>) -> String {
    let token_arrivals = arrivals.clone();
    let router = Router::new()
        .route("/transfers/{id}", get(arrive))
        .with_state(arrivals)
        .merge(
            token_route(Tokens::lasting(3600)).layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    token_arrivals.at.lock().unwrap().push(Instant::now());
                    next.run(request)
                },
            )),
        );
    serve(router).await
}

fn most_in_any_second(arrivals: &[Instant]) -> usize {
    let mut sorted = arrivals.to_vec();
    sorted.sort();
    let mut first = 0;
    let mut most = 0;
    for last in 0..sorted.len() {
        while sorted[last] - sorted[first] >= Duration::from_secs(1) {
            first += 1;
        }
        most = most.max(last - first + 1);
    }
    most
}

async fn get_many(client: &Client, n_calls: usize) -> Vec<Result<(), DwollaError>> {
    let calls: Vec<_> = (0..n_calls)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.get_transfer(&format!("t{i}")).await.map(|_| ()) })
        })
        .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }
    results
}

// Two workers, so that a busy client task does not also delay the server's clock readings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_fifty_per_second_no_sliding_second_sees_more_than_fifty_and_throughput_stays_near_fifty()
 {
    let arrivals = Arc::new(Arrivals {
        hold: Duration::from_millis(20),
        ..Arrivals::default()
    });
    let client = Client::new(config(&arrivals_server(arrivals.clone()).await, 50, 10)).unwrap();

    let results = get_many(&client, 150).await;

    assert!(results.iter().all(Result::is_ok));
    let at = arrivals.at.lock().unwrap().clone();
    assert_eq!(at.len(), 151, "150 calls and one token request");
    assert!(most_in_any_second(&at) <= 50, "{}", most_in_any_second(&at));
    let span = (*at.iter().max().unwrap() - *at.iter().min().unwrap()).as_secs_f64();
    let achieved = (at.len() - 1) as f64 / span;
    assert!(achieved >= 0.95 * 50.0, "only {achieved:.1} per second");
}

#[tokio::test]
async fn a_429_with_retry_after_pauses_every_caller_about_that_long() {
    let arrivals = Arc::new(Arrivals {
        fail_at: Some(5),
        ..Arrivals::default()
    });
    let client = Client::new(config(&arrivals_server(arrivals.clone()).await, 50, 4)).unwrap();

    let results = get_many(&client, 30).await;

    let rate_limited: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(rate_limited.len(), 1);
    assert_eq!(
        rate_limited[0].disposition(),
        Disposition::Retry {
            after: Some(Duration::from_secs(1))
        }
    );
    let answered_at = arrivals.rate_limited_at.lock().unwrap().unwrap();
    let at = arrivals.at.lock().unwrap().clone();
    // Requests already on their way may still arrive just after the 429; then nothing until
    // Retry-After has passed, then sending resumes.
    let during_pause = at
        .iter()
        .filter(|&&t| t > answered_at + Duration::from_millis(50))
        .filter(|&&t| t < answered_at + Duration::from_millis(950))
        .count();
    assert_eq!(during_pause, 0);
    let resumed = at
        .iter()
        .filter(|&&t| t >= answered_at + Duration::from_millis(950))
        .min()
        .expect("sending resumed");
    assert!(*resumed - answered_at < Duration::from_millis(1500));
    let stats = client.throttle_stats();
    assert_eq!((stats.rate_limited, stats.cool_downs), (1, 1));
}

#[tokio::test]
async fn requests_in_flight_never_exceed_the_limit() {
    let arrivals = Arc::new(Arrivals {
        hold: Duration::from_millis(100),
        ..Arrivals::default()
    });
    let client = Client::new(config(&arrivals_server(arrivals.clone()).await, 1000, 3)).unwrap();

    let results = get_many(&client, 12).await;

    assert!(results.iter().all(Result::is_ok));
    assert_eq!(arrivals.most_in_flight.load(Ordering::SeqCst), 3);
}

// ---------------------------------------------------------------------------------------------
// Secrets

#[tokio::test]
async fn no_secret_or_token_appears_in_debug_or_error_output() {
    let router = token_route(Tokens::lasting(3600))
        .route(
            "/transfers",
            post(|| async {
                hal(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"code": "BadRequest", "message": "The request body contains bad syntax or is incomplete."}),
                )
            }),
        )
        .route(
            "/client-tokens",
            post(|| async { hal(StatusCode::OK, serde_json::json!({"token": "tok-client-drop-in"})) }),
        );
    let base = serve(router).await;
    let config = config(&base, 100, 4);
    let client = Client::new(config.clone()).unwrap();
    let err = client.create_transfer("key-1", b"{}").await.unwrap_err();
    let client_token = client
        .create_client_token(&CreateClientToken {
            action: "customer.update".into(),
            customer_url: format!("{base}/customers/c1"),
        })
        .await
        .unwrap();
    let bad_credentials = Client::new(DwollaConfig {
        secret: Secret::new("sekrit-but-wrong"),
        ..config.clone()
    })
    .unwrap();
    let credentials_err = bad_credentials.root().await.unwrap_err();
    assert_eq!(client_token.token.expose(), "tok-client-drop-in");

    let printed = [
        format!("{client:?}"),
        format!("{config:?}"),
        format!("{err:?} {err}"),
        format!("{credentials_err:?} {credentials_err}"),
        format!("{client_token:?}"),
        format!("{bad_credentials:?}"),
    ];
    for text in printed {
        assert!(!text.contains("sekrit"), "{text}");
        assert!(!text.contains("tok-"), "{text}");
    }
}
