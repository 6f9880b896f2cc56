//! Shared test fixtures: a scratch directory per test with its own ledger, and the built binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use payrun::sim::{SimConfig, SimHandle};
use serde_json::Value;

/// The `payrun` binary cargo built for this test run.
pub fn payrun_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_payrun"))
}

/// The repository root, for `samples/`.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn sample(name: &str) -> PathBuf {
    repo_root().join("samples").join(name)
}

/// A scratch directory that holds one test's ledger and files, removed at the end.
pub struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::tempdir().expect("create a scratch directory"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn ledger(&self) -> PathBuf {
        self.path().join("payrun.db")
    }

    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, contents).expect("write a test file");
        path
    }

    /// `payrun --ledger <scratch ledger> ARGS...`, run in the scratch directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(payrun_bin());
        command
            .current_dir(self.path())
            .arg("--ledger")
            .arg(self.ledger())
            .args(args);
        command.env_remove("RUST_LOG").env_remove("PAYRUN_LEDGER");
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run payrun"))
    }

    /// `payrun status --json`, parsed.
    pub fn status_json(&self) -> serde_json::Value {
        let run = self.run(&["status", "--json"]);
        assert_eq!(run.code, 0, "status failed: {}", run.stderr);
        serde_json::from_str(&run.stdout).expect("status --json prints JSON")
    }
}

/// What a finished `payrun` printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

// ----- Simulator helpers -----

/// Dwolla's versioned media type, required in `Accept` on every API request.
pub const HAL: &str = "application/vnd.dwolla.v1.hal+json";

/// A running simulator plus an HTTP client holding a fresh access token.
pub struct SimClient {
    pub sim: SimHandle,
    pub http: reqwest::Client,
    pub token: String,
}

impl SimClient {
    pub async fn start(config: SimConfig) -> SimClient {
        let sim = payrun::sim::spawn(config).await.expect("simulator starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        let token = sim_token(&http, sim.base_url(), sim.key(), sim.secret()).await;
        SimClient { sim, http, token }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.sim.base_url())
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .header("Accept", HAL)
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET reaches the simulator")
    }

    /// GET, expecting 200, returning the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        let status = response.status();
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub fn post_request(
        &self,
        path: &str,
        body: &Value,
        key: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(self.url(path))
            .header("Accept", HAL)
            .header("Content-Type", HAL)
            .bearer_auth(&self.token)
            .body(serde_json::to_vec(body).expect("serializable"));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request
    }

    pub async fn post(&self, path: &str, body: &Value, key: Option<&str>) -> reqwest::Response {
        self.post_request(path, body, key)
            .send()
            .await
            .expect("POST reaches the simulator")
    }

    /// POST, expecting `201` with a `Location`; returns the Location.
    pub async fn create(&self, path: &str, body: &Value) -> String {
        let response = self
            .post(path, body, Some(&uuid::Uuid::new_v4().to_string()))
            .await;
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().expect("ASCII Location").to_string());
        let text = response.text().await.expect("body");
        assert_eq!(status, 201, "POST {path}: {text}");
        assert!(text.is_empty(), "201 bodies are empty, got {text}");
        location.expect("201 has a Location")
    }

    /// A transfer body from the seeded source to `destination` (a funding-source URL).
    pub fn transfer_body(&self, destination: &str, amount: &str) -> Value {
        serde_json::json!({
            "_links": {
                "source": {"href": self.sim.source_funding_source()},
                "destination": {"href": destination},
            },
            "amount": {"currency": "USD", "value": amount},
        })
    }
}

/// `POST /token` with Basic auth; returns the access token.
pub async fn sim_token(http: &reqwest::Client, base_url: &str, key: &str, secret: &str) -> String {
    let response = http
        .post(format!("{base_url}/token"))
        .basic_auth(key, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request reaches the simulator");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("token JSON");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}
