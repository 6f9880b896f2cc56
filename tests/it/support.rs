//! Shared test fixtures: a scratch directory per test with its own ledger, and the built binary.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use payrun::dwolla::{Client, DwollaConfig};
use payrun::ledger::Ledger;
use payrun::ledger::postgres::{Leases, PgLedger};
use payrun::money::Cents;
use payrun::secret::Secret;
use payrun::sender::fleet::Fleet;
use payrun::sender::{SendConfig, SendReport, progress::Display};
use payrun::sim::{SimConfig, SimHandle};
use serde_json::Value;

pub mod postgres;

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
    /// A PostgreSQL ledger's URL, given as `--ledger` instead of the file.
    ledger_url: Option<String>,
    /// The database behind `ledger_url` when this directory owns it (dropped with it).
    pg: Option<postgres::PgDatabase>,
}

impl Workdir {
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::tempdir().expect("create a scratch directory"),
            ledger_url: None,
            pg: None,
        }
    }

    /// A scratch directory whose commands use the PostgreSQL ledger at `url`.
    pub fn on_postgres(url: &str) -> Workdir {
        Workdir {
            ledger_url: Some(url.to_string()),
            ..Workdir::new()
        }
    }

    /// A scratch directory on a fresh PostgreSQL database of its own, or `None` (saying why)
    /// where no server can be had outside CI.
    pub fn on_fresh_postgres(test: &str) -> Option<Workdir> {
        let pg = postgres::database(test)?;
        Some(Workdir {
            ledger_url: Some(pg.url.clone()),
            pg: Some(pg),
            ..Workdir::new()
        })
    }

    /// Where the ledger is, for the library's calls that open its spool.
    pub fn place(&self) -> payrun::ledger::LedgerPlace {
        match &self.ledger_url {
            Some(url) => payrun::ledger::LedgerPlace::Postgres(url.clone()),
            None => payrun::ledger::LedgerPlace::File(self.ledger()),
        }
    }

    /// Whether the ledger is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        self.ledger_url.is_some()
    }

    /// What `--ledger` gets: the scratch file, or the PostgreSQL URL.
    pub fn ledger_arg(&self) -> std::ffi::OsString {
        match &self.ledger_url {
            Some(url) => url.into(),
            None => self.ledger().into_os_string(),
        }
    }

    /// Rows of `sql` on the ledger, whichever engine keeps it, each column as text (`NULL`
    /// as an empty string). Keep `sql` to what both engines read alike: no booleans (write
    /// `CASE WHEN ... THEN 1 ELSE 0 END`), integers and texts only.
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        if let Some(url) = &self.ledger_url {
            return postgres::query(url, sql);
        }
        let conn = rusqlite::Connection::open(self.ledger()).expect("open the ledger file");
        let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let width = stmt.column_count();
        stmt.query_map([], |row| {
            (0..width)
                .map(|i| {
                    Ok(match row.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => String::new(),
                        rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                        rusqlite::types::ValueRef::Real(x) => x.to_string(),
                        rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                        rusqlite::types::ValueRef::Blob(b) => format!("{b:?}"),
                    })
                })
                .collect()
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
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
            .arg(self.ledger_arg())
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

/// Points `command` at `sim`: its URL and credentials, and no `DWOLLA_ENV` from outside.
pub fn point_at<'c>(command: &'c mut Command, sim: &SimHandle) -> &'c mut Command {
    command
        .env("DWOLLA_API_URL", sim.base_url())
        .env("DWOLLA_KEY", sim.key())
        .env("DWOLLA_SECRET", sim.secret())
        .env_remove("DWOLLA_ENV")
}

/// Leases short enough that a test sees a dead worker's payouts taken over within seconds.
pub const TEST_LEASES: Leases = Leases {
    lease: Duration::from_secs(3),
    heartbeat: Duration::from_millis(500),
};

/// [`TEST_LEASES`] for a `payrun` child process (ignored on a SQLite ledger).
pub fn with_test_leases(command: &mut Command) -> &mut Command {
    command
        .env(
            "PAYRUN_LEASE_SECONDS",
            TEST_LEASES.lease.as_secs_f64().to_string(),
        )
        .env(
            "PAYRUN_HEARTBEAT_SECONDS",
            TEST_LEASES.heartbeat.as_secs_f64().to_string(),
        )
}

/// Defines a test module `$name` running `$test(env)` twice: `$name::sqlite` on a ledger file
/// and `$name::postgres` on a fresh PostgreSQL database (which skips, saying why, where no
/// server can be had outside CI). `$config` is the simulator's configuration.
#[macro_export]
macro_rules! on_both_engines {
    // `cli: name, test`: `test(work)` with a scratch `Workdir` on each engine, for tests that
    // run the binary (through `work.command`/`work.run`) and read the ledger with `work.query`.
    (cli: $(#[$meta:meta])* $name:ident, $test:ident) => {
        $(#[$meta])*
        mod $name {
            use super::*;

            #[test]
            fn sqlite() {
                $test($crate::support::Workdir::new())
            }

            #[test]
            fn postgres() {
                let test = concat!(module_path!(), "::", stringify!($name));
                if let Some(work) = $crate::support::Workdir::on_fresh_postgres(test) {
                    $test(work)
                }
            }
        }
    };
    // `async cli: name, test`: the same for an async `test(work)`, which starts what else it
    // needs (a server of its own, a simulator with particular settings).
    (async cli: $(#[$meta:meta])* $name:ident, $test:ident) => {
        $(#[$meta])*
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $test($crate::support::Workdir::new()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let test = concat!(module_path!(), "::", stringify!($name));
                if let Some(work) = $crate::support::Workdir::on_fresh_postgres(test) {
                    $test(work).await
                }
            }
        }
    };
    ($(#[$meta:meta])* $name:ident, $config:expr, $test:ident) => {
        $(#[$meta])*
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $test($crate::support::SendEnv::start($config).await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let test = concat!(module_path!(), "::", stringify!($name));
                if let Some(env) = $crate::support::SendEnv::start_on_postgres($config, test).await {
                    $test(env).await
                }
            }
        }
    };
}

/// The payouts of a PostgreSQL ledger (none before its schema exists).
fn pg_payouts(pg: &postgres::PgDatabase) -> Vec<LedgerPayout> {
    let exists = pg.query("SELECT to_regclass('payouts') IS NOT NULL");
    if exists != [vec!["t".to_string()]] {
        return Vec::new();
    }
    pg.query(
        "SELECT correlation_id, amount_cents, destination, state, coalesce(transfer_url, ''), attempts
         FROM payouts ORDER BY id",
    )
    .into_iter()
    .map(|row| LedgerPayout {
        correlation_id: row[0].clone(),
        amount_cents: row[1].parse().unwrap(),
        destination: row[2].clone(),
        state: row[3].clone(),
        transfer_url: Some(row[4].clone()).filter(|url| !url.is_empty()),
        attempts: row[5].parse().unwrap(),
    })
    .collect()
}

/// A repeatable sequence of delays of `min_ms` plus up to `spread_ms` (xorshift from `seed`),
/// for killing a process at random but reproducible moments.
pub fn random_delays(seed: u64, min_ms: u64, spread_ms: u64) -> impl FnMut() -> Duration {
    let mut state = seed.max(1);
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        Duration::from_millis(min_ms + state % spread_ms)
    }
}

/// Runs the binary off the async threads, so that an in-process simulator keeps answering.
pub async fn run_blocking(mut command: Command) -> Run {
    tokio::task::spawn_blocking(move || Run::from(command.output().expect("run payrun")))
        .await
        .expect("the blocking task finishes")
}

/// A client configuration for `sim`, generous enough for any test; callers change what they
/// measure with `..sim_dwolla_config(&sim)`.
pub fn sim_dwolla_config(sim: &SimHandle) -> DwollaConfig {
    DwollaConfig {
        base_url: sim.base_url().to_string(),
        key: sim.key().to_string(),
        secret: Secret::new(sim.secret()),
        rate_per_second: 1000,
        max_in_flight: 8,
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
    }
}

/// A scratch ledger and a simulator.
pub struct SendEnv {
    pub work: Workdir,
    pub sim: SimHandle,
    /// The ledger's database when the test runs on PostgreSQL; else the ledger is a file.
    pub pg: Option<postgres::PgDatabase>,
}

/// One payout as the ledger holds it.
#[derive(Debug)]
pub struct LedgerPayout {
    pub correlation_id: String,
    pub amount_cents: i64,
    pub destination: String,
    pub state: String,
    pub transfer_url: Option<String>,
    pub attempts: i64,
}

impl SendEnv {
    pub async fn start(config: SimConfig) -> SendEnv {
        let sim = payrun::sim::spawn(config).await.expect("simulator starts");
        SendEnv {
            work: Workdir::new(),
            sim,
            pg: None,
        }
    }

    /// The same on a fresh PostgreSQL database, or `None` where no server can be had.
    pub async fn start_on_postgres(config: SimConfig, test: &str) -> Option<SendEnv> {
        let pg = postgres::database(test)?;
        let sim = payrun::sim::spawn(config).await.expect("simulator starts");
        Some(SendEnv {
            work: Workdir::on_postgres(&pg.url),
            sim,
            pg: Some(pg),
        })
    }

    /// Ingests a generated file of `n_rows` payouts to the seeded payees; returns the batch.
    pub fn ingest_rows(&self, name: &str, n_rows: u64) -> i64 {
        let path = self.work.path().join(name);
        if let Some(pg) = &self.pg {
            let mut ledger = payrun::ledger::postgres::PgLedger::open(&pg.url).unwrap();
            return payrun::fixtures::ingest_generated(&mut ledger, &path, n_rows).unwrap();
        }
        let mut ledger = Ledger::open_writer(&self.work.ledger()).unwrap();
        payrun::fixtures::ingest_generated(&mut ledger, &self.work.path().join(name), n_rows)
            .unwrap()
    }

    pub fn ingest_file(&self, path: &std::path::Path) -> i64 {
        if let Some(pg) = &self.pg {
            let mut ledger = PgLedger::open(&pg.url).unwrap();
            return payrun::fixtures::ingest(&mut ledger, path).unwrap();
        }
        let mut ledger = Ledger::open_writer(&self.work.ledger()).unwrap();
        payrun::fixtures::ingest(&mut ledger, path).unwrap()
    }

    /// Rows of `sql` on the ledger, whichever engine keeps it (see [`Workdir::query`]).
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        self.work.query(sql)
    }

    pub fn client(&self, rate: u32, concurrency: usize, request_timeout: Duration) -> Client {
        Client::new(DwollaConfig {
            rate_per_second: rate,
            max_in_flight: concurrency,
            connect_timeout: Duration::from_secs(2),
            request_timeout,
            ..sim_dwolla_config(&self.sim)
        })
        .unwrap()
    }

    /// `payrun ARGS` in the scratch directory, pointed at the simulator, with no outside
    /// Dwolla environment or configuration file.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = self.work.command(args);
        point_at(&mut command, &self.sim)
            .env(
                "PAYRUN_SOURCE_FUNDING_SOURCE",
                self.sim.source_funding_source(),
            )
            .env_remove("PAYRUN_CONFIG");
        with_test_leases(&mut command);
        command
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        run_blocking(self.command(args)).await
    }

    /// Test-sized defaults: quick backoff, no progress output.
    pub fn send_config(&self, concurrency: usize) -> SendConfig {
        let mut config = SendConfig::new(self.sim.source_funding_source(), concurrency);
        config.backoff_min = Duration::from_millis(20);
        config.backoff_max = Duration::from_millis(200);
        config.attempts_per_run = 30;
        config.max_attempts = 60;
        config.progress = Display::Off;
        config
    }

    pub async fn send(&self, client: Client, config: SendConfig) -> SendReport {
        let (_stop, stopping) = tokio::sync::watch::channel(false);
        self.send_until_stopped(client, config, stopping).await
    }

    /// The ledger's payouts; none when a run was killed before it made the ledger.
    pub fn payouts(&self) -> Vec<LedgerPayout> {
        if let Some(pg) = &self.pg {
            return pg_payouts(pg);
        }
        // Read-write without create: a killed run may leave a WAL that only a writable
        // connection can recover, and a missing ledger must not be created here.
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE;
        let Ok(conn) = rusqlite::Connection::open_with_flags(self.work.ledger(), flags) else {
            return Vec::new();
        };
        let has_table: bool = conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = 'payouts'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        if !has_table {
            return Vec::new();
        }
        let mut stmt = conn
            .prepare(
                "SELECT correlation_id, amount_cents, destination, state, transfer_url, attempts FROM payouts ORDER BY id",
            )
            .unwrap();
        stmt.query_map([], |row| {
            Ok(LedgerPayout {
                correlation_id: row.get(0)?,
                amount_cents: row.get(1)?,
                destination: row.get(2)?,
                state: row.get(3)?,
                transfer_url: row.get(4)?,
                attempts: row.get(5)?,
            })
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    }

    /// Every payout the ledger calls sent has exactly one transfer at the simulator with its
    /// amount and destination; every transfer at the simulator belongs to a payout; the
    /// ledger's transfer URL is that transfer. Returns how many payouts were sent.
    pub fn assert_exactly_once(&self) -> usize {
        // The ledger first: with other workers still sending, a payout read as submitted had
        // its transfer created before this read, so the simulator's list below holds it.
        let payouts = self.payouts();
        let transfers = self.sim.transfers();
        let mut by_correlation: HashMap<String, Vec<&payrun::sim::SimTransfer>> = HashMap::new();
        for transfer in &transfers {
            let correlation_id = transfer
                .correlation_id
                .clone()
                .expect("payrun sets a correlation id on every transfer");
            by_correlation
                .entry(correlation_id)
                .or_default()
                .push(transfer);
        }
        let mut n_sent = 0;
        for payout in &payouts {
            let found = by_correlation
                .remove(&payout.correlation_id)
                .unwrap_or_default();
            assert!(
                found.len() <= 1,
                "payout {} was paid {} times",
                payout.correlation_id,
                found.len()
            );
            match (payout.state.as_str(), found.first()) {
                ("submitted" | "processed" | "failed" | "returned", Some(transfer)) => {
                    n_sent += 1;
                    let cents = Cents::new(payout.amount_cents).unwrap().to_string();
                    assert_eq!(
                        transfer.amount, cents,
                        "amount of {}",
                        payout.correlation_id
                    );
                    assert_eq!(transfer.destination_funding_source, payout.destination);
                    let url = payout
                        .transfer_url
                        .as_deref()
                        .expect("a sent payout has its transfer URL");
                    assert!(
                        url.ends_with(&transfer.id),
                        "{url} is not transfer {}",
                        transfer.id
                    );
                }
                ("submitted" | "processed" | "failed" | "returned", None) => {
                    panic!(
                        "payout {} is {} but Dwolla has no transfer",
                        payout.correlation_id, payout.state
                    )
                }
                // Unknown outcome: a transfer may or may not exist; the next run settles it.
                ("submitting" | "needs_review", _) => {}
                (state, Some(_)) => panic!(
                    "payout {} is {state} but has a transfer",
                    payout.correlation_id
                ),
                (_, None) => {}
            }
        }
        assert!(
            by_correlation.is_empty(),
            "transfers no payout accounts for: {:?}",
            by_correlation.keys()
        );
        n_sent
    }
}

impl SendEnv {
    /// Another scratch ledger and simulator on the same engine as this one (a fresh database
    /// on the same server), for a test that compares runs on fresh ledgers.
    pub async fn another(&self, config: SimConfig) -> SendEnv {
        match &self.pg {
            Some(_) => SendEnv::start_on_postgres(config, "another ledger")
                .await
                .expect("the server this test already uses"),
            None => SendEnv::start(config).await,
        }
    }

    /// Like [`SendEnv::send`], but the run stops when `stopping` turns true, as on SIGTERM;
    /// on PostgreSQL the worker leaves the fleet afterwards all the same.
    pub async fn send_until_stopped(
        &self,
        client: Client,
        config: SendConfig,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> SendReport {
        if let Some(pg) = &self.pg {
            let mut ledger = PgLedger::open(&pg.url).unwrap();
            ledger.set_leases(TEST_LEASES);
            let fleet = Fleet::join(&mut ledger, &client).await.unwrap();
            let report = payrun::sender::send(ledger, client, config, stopping).await;
            let now = payrun::ledger::timestamp(time::OffsetDateTime::now_utc());
            fleet.leave(now).await.expect("the worker leaves");
            return report.expect("send runs");
        }
        let ledger = Ledger::open_writer(&self.work.ledger()).unwrap();
        payrun::sender::send(ledger, client, config, stopping)
            .await
            .expect("send runs")
    }
}

impl Workdir {
    /// Whether payrun has made its ledger here: the ledger file, or on PostgreSQL its schema
    /// in the database (which exists before payrun).
    pub fn ledger_exists(&self) -> bool {
        let Some(url) = &self.ledger_url else {
            return self.ledger().exists();
        };
        let schema = "SELECT COUNT(*) FROM information_schema.tables
                      WHERE table_schema = current_schema() AND table_name = 'payrun_schema'";
        postgres::query(url, schema) != [["0"]]
    }
}
