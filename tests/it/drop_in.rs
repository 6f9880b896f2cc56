//! `POST /client-tokens` for drop-in components, served on 127.0.0.1:0 in front of the
//! simulator: both request shapes, the API key, the component table, Dwolla's refusals, an
//! unreachable Dwolla, and the standalone `payrun client-tokens serve`.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use payrun::drop_in::{ClientTokenConfig, router};
use payrun::dwolla::{Client, DwollaConfig};
use payrun::secret::Secret;
use payrun::sim::{SimConfig, SimHandle};
use serde_json::{Value, json};

use crate::on_both_engines;
use crate::support::{payrun_bin, sim_dwolla_config};

const API_KEY: &str = "operator-application-key-0001";
const PARTY: &str = "e0000000-0000-4000-8000-000000000001";

struct Endpoint {
    sim: SimHandle,
    url: String,
    http: reqwest::Client,
}

fn client_for(base_url: &str, sim: &SimHandle) -> Client {
    Client::new(DwollaConfig {
        base_url: base_url.to_string(),
        rate_per_second: 100,
        max_in_flight: 4,
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        ..sim_dwolla_config(sim)
    })
    .unwrap()
}

/// The router on its own listener, forwarding to `dwolla_url` (the simulator by default).
async fn serve(sim: SimHandle, dwolla_url: Option<&str>) -> Endpoint {
    let client = client_for(dwolla_url.unwrap_or(sim.base_url()), &sim);
    let config = ClientTokenConfig::new(Secret::new(API_KEY)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/client-tokens", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, router(config, client)).await.unwrap();
    });
    Endpoint {
        sim,
        url,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    }
}

async fn start() -> Endpoint {
    let sim = payrun::sim::spawn(SimConfig::new()).await.unwrap();
    serve(sim, None).await
}

impl Endpoint {
    async fn post(
        &self,
        key: Option<&str>,
        body: Value,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut request = self.http.post(&self.url).json(&body);
        if let Some(key) = key {
            request = request.header("X-Payrun-Api-Key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body, headers)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_request_shapes_get_a_token_from_dwolla() {
    let endpoint = start().await;
    let dwolla_web = json!({
        "action": "customer.update",
        "_links": {"customer": {"href": format!("https://api-sandbox.dwolla.com/customers/{PARTY}")}},
    });
    let (status, body, headers) = endpoint.post(Some(API_KEY), dwolla_web).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token"].as_str().unwrap().len(), 50, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-store");

    let flat = json!({"action": "customer.fundingsources.read", "customerId": PARTY,
        "component": "dwolla-balance-display"});
    let (status, second, _) = endpoint.post(Some(API_KEY), flat).await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["token"], body["token"], "tokens are single-use");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_key_is_401_and_reaches_no_one() {
    let endpoint = start().await;
    let before = endpoint.sim.stats().total_requests;
    let body = json!({"action": "customer.read", "customerId": PARTY});
    for key in [None, Some("operator-application-key-0002"), Some("")] {
        let (status, answer, _) = endpoint.post(key, body.clone()).await;
        assert_eq!(status, 401, "{key:?}: {answer}");
        assert_eq!(answer["code"], "InvalidCredentials");
    }
    assert_eq!(endpoint.sim.stats().total_requests, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_outside_the_component_table_are_400_naming_the_allowed_ones() {
    let endpoint = start().await;
    let before = endpoint.sim.stats().total_requests;

    let (status, body, _) = endpoint
        .post(
            Some(API_KEY),
            json!({"action": "transfers.send", "customerId": PARTY}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "ActionNotAllowed");
    let allowed: Vec<&str> = body["allowed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(allowed, payrun::drop_in::all_actions());
    assert!(allowed.contains(&"customer.microdeposits.verify"));
    assert!(allowed.contains(&"beneficialownership.certify"));

    let (status, body, _) = endpoint
        .post(
            Some(API_KEY),
            json!({"action": "customer.create", "customerId": PARTY, "component": "dwolla-micro-deposits-verify"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["allowed"],
        json!([
            "customer.fundingsources.read",
            "customer.microdeposits.verify"
        ])
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not allowed for dwolla-micro-deposits-verify"),
        "{body}"
    );

    let (status, body, _) = endpoint
        .post(
            Some(API_KEY),
            json!({"action": "customer.read", "customerId": PARTY, "component": "dwolla-everything"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "UnknownComponent");

    let (status, body, _) = endpoint
        .post(Some(API_KEY), json!({"action": "customer.read"}))
        .await;
    assert_eq!(status, 400, "{body}");
    let response = endpoint
        .http
        .post(&endpoint.url)
        .header("X-Payrun-Api-Key", API_KEY)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        endpoint.sim.stats().total_requests,
        before,
        "refused before Dwolla"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dwolla_refusals_keep_their_status_and_an_unreachable_dwolla_is_502() {
    let endpoint = start().await;
    let (status, body, _) = endpoint
        .post(
            Some(API_KEY),
            json!({"action": "customer.read", "customerId": "e0000000-0000-4000-8000-0000000000ff"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "DwollaRefused");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Customer not found")
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let endpoint = serve(endpoint.sim, Some(&dead)).await;
    let (status, body, _) = endpoint
        .post(
            Some(API_KEY),
            json!({"action": "customer.read", "customerId": PARTY}),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "BadGateway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_server_serves_the_same_endpoint() {
    let sim = payrun::sim::spawn(SimConfig::new()).await.unwrap();
    let mut child = std::process::Command::new(payrun_bin())
        .args(["client-tokens", "serve", "--listen", "127.0.0.1:0"])
        .env("DWOLLA_API_URL", sim.base_url())
        .env("DWOLLA_KEY", sim.key())
        .env("DWOLLA_SECRET", sim.secret())
        .env("PAYRUN_CLIENT_TOKEN_API_KEY", API_KEY)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url = line
        .trim()
        .strip_prefix("serving POST ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let http = reqwest::Client::new();
    let response = http
        .post(&url)
        .header("X-Payrun-Api-Key", API_KEY)
        .json(&json!({"action": "customer.read", "customerId": PARTY}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(status, 200, "{body}");
    assert!(body["token"].is_string());

    // Without a key configured it refuses to start: a configuration error.
    let output = std::process::Command::new(payrun_bin())
        .args(["client-tokens", "serve", "--listen", "127.0.0.1:0"])
        .env("DWOLLA_API_URL", sim.base_url())
        .env("DWOLLA_KEY", sim.key())
        .env("DWOLLA_SECRET", sim.secret())
        .env_remove("PAYRUN_CLIENT_TOKEN_API_KEY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
}

on_both_engines!(async cli:
    payrun_serve_answers_client_tokens_beside_the_webhooks,
    client_tokens_beside_the_webhooks
);

async fn client_tokens_beside_the_webhooks(work: crate::support::Workdir) {
    let sim = payrun::sim::spawn(SimConfig::new()).await.unwrap();
    let mut child = work
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .env("DWOLLA_API_URL", sim.base_url())
        .env("DWOLLA_KEY", sim.key())
        .env("DWOLLA_SECRET", sim.secret())
        .env("PAYRUN_CLIENT_TOKEN_API_KEY", API_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let started: Value =
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("a JSON line, got {line:?}"));
    let base = started["listening"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    let token = http
        .post(format!("{base}/client-tokens"))
        .header("X-Payrun-Api-Key", API_KEY)
        .json(&json!({"action": "customer.read", "customerId": PARTY}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let status = token.status();
    let body: Value = token.json().await.unwrap();
    let health = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .status();
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(status, 200, "{body}");
    assert!(body["token"].is_string());
    assert_eq!(health, 200);
}
