//! `payrun serve` against slow clients, through the real binary on 127.0.0.1: a client that
//! never finishes its headers is disconnected, one that trickles its body gets 408 and is
//! disconnected, and meanwhile `/healthz` and a real signed delivery are answered. With the
//! connection cap reached, a new client waits until a deadline frees a slot. Every wait is
//! bounded, so a server that holds connections for ever fails the test instead of hanging it.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use payrun::signature::{SIGNATURE_HEADER, sign};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::on_both_engines;
use crate::support::{Run, Workdir};

const SECRET: &str = "slow-client-secret-0123";
/// Far beyond any deadline the tests set: reaching it means the server never let go.
const BOUND: Duration = Duration::from_secs(20);

struct Serve {
    child: Child,
    addr: String,
}

impl Serve {
    fn start(work: &Workdir, limits: &[&str]) -> Serve {
        let mut child = Command::new(crate::support::payrun_bin())
            .current_dir(work.path())
            .arg("--ledger")
            .arg(work.ledger_arg())
            .args(["serve", "--listen", "127.0.0.1:0", "--store-only"])
            .args(limits)
            .env(payrun::webhooks::SECRET_ENV, SECRET)
            .env_remove("PAYRUN_CONFIG")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let started: Value = serde_json::from_str(&line).expect("serve prints one JSON line");
        let url = started["listening"].as_str().unwrap();
        Serve {
            child,
            addr: url.trim_start_matches("http://").to_string(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything the server sends until it closes the connection, or panics after [`BOUND`].
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout(BOUND, stream.read(&mut buffer)).await {
            Err(_) => panic!(
                "the server still holds the connection after {BOUND:?}; received {:?}",
                String::from_utf8_lossy(&received)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&received).into_owned(),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

async fn answered(http: &reqwest::Client, serve: &Serve, id: &str) -> (u16, u16) {
    let health = http.get(serve.url("/healthz")).send().await.unwrap();
    let body = serde_json::to_vec(&json!({"id": id, "topic": "transfer:created"})).unwrap();
    let delivery = http
        .post(serve.url("/webhooks/dwolla"))
        .header(SIGNATURE_HEADER, sign(SECRET.as_bytes(), &body))
        .body(body)
        .send()
        .await
        .unwrap();
    (health.status().as_u16(), delivery.status().as_u16())
}

on_both_engines!(async cli:
    slow_headers_and_trickled_bodies_are_cut_off_while_deliveries_are_answered,
    cut_off_while_answering
);

async fn cut_off_while_answering(work: Workdir) {
    let serve = Serve::start(&work, &["--header-timeout", "1s", "--body-timeout", "1s"]);

    let mut slow_headers = TcpStream::connect(&serve.addr).await.unwrap();
    slow_headers
        .write_all(b"POST /webhooks/dwolla HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut trickle = TcpStream::connect(&serve.addr).await.unwrap();
    trickle
        .write_all(
            b"POST /webhooks/dwolla HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{",
        )
        .await
        .unwrap();
    let (mut reader, mut writer) = trickle.into_split();
    let trickling = tokio::spawn(async move {
        // A byte every 200 ms: 80 s for the whole body, unless the server ends it.
        for _ in 0..399 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if writer.write_all(b" ").await.is_err() {
                break;
            }
        }
    });

    let http = reqwest::Client::builder().timeout(BOUND).build().unwrap();
    assert_eq!(answered(&http, &serve, "ev-during").await, (200, 200));

    let cut = read_until_closed(&mut slow_headers).await;
    assert!(
        !cut.contains(" 200 "),
        "no answer to half a request: {cut:?}"
    );
    let mut received = Vec::new();
    let timed_out = tokio::time::timeout(BOUND, reader.read_to_end(&mut received)).await;
    let received = String::from_utf8_lossy(&received);
    assert!(
        timed_out.is_ok(),
        "the trickling client was not cut off: {received:?}"
    );
    assert!(received.starts_with("HTTP/1.1 408"), "{received:?}");
    trickling.abort();

    assert_eq!(answered(&http, &serve, "ev-after").await, (200, 200));
}

on_both_engines!(async cli:
    past_the_connection_cap_a_client_waits_for_a_deadline_to_free_a_slot,
    waits_for_a_free_slot
);

async fn waits_for_a_free_slot(work: Workdir) {
    let serve = Serve::start(&work, &["--max-connections", "1", "--header-timeout", "2s"]);
    let mut holder = TcpStream::connect(&serve.addr).await.unwrap();
    holder
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    // Let the server accept the holder first (the only ordering this test needs).
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The one slot is held: the server cannot answer before the holder's header deadline.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let refused = impatient.get(serve.url("/healthz")).send().await;
    assert!(refused.is_err(), "answered past the cap: {refused:?}");

    let patient = reqwest::Client::builder().timeout(BOUND).build().unwrap();
    let health = patient.get(serve.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    read_until_closed(&mut holder).await;
}

on_both_engines!(async cli:
    the_limits_can_come_from_the_configuration_file,
    limits_from_the_file
);

async fn limits_from_the_file(work: Workdir) {
    work.file(
        "payrun.toml",
        "[webhooks]\nheader_timeout_seconds = 1\nbody_timeout_seconds = 3\nmax_connections = 1\n",
    );
    let check = Run::from(
        work.command(&["config", "check"])
            .env_remove("PAYRUN_CONFIG")
            .env("DWOLLA_API_URL", "http://127.0.0.1:9")
            .output()
            .unwrap(),
    );
    assert!(
        check.stdout.contains(
            "webhook clients      headers within 1s, body within 3s, 1 connection at once"
        ),
        "{}",
        check.stdout
    );
    let serve = Serve::start(&work, &[]);
    let mut holder = TcpStream::connect(&serve.addr).await.unwrap();
    holder
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The file's cap of one: nothing else is answered before the holder is cut off.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(impatient.get(serve.url("/healthz")).send().await.is_err());
    read_until_closed(&mut holder).await;
    let http = reqwest::Client::builder().timeout(BOUND).build().unwrap();
    assert_eq!(answered(&http, &serve, "ev-file").await, (200, 200));
}
