//! The background engine: keeps the transfer lifecycle moving when no request arrives, and
//! delivers webhooks as Dwolla does (signed POSTs, 10 s timeout, no redirects, at most 10 at
//! once, retries on Dwolla's schedule divided by the time scale).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::state::Shared;
use super::store::{Attempt, Delivery};
use crate::signature::{SIGNATURE_HEADER, sign};

use super::store::USER_AGENT;

/// Dwolla sends "bursts of up to 10 concurrent" webhooks (notes section 7).
const MAX_CONCURRENT_DELIVERIES: usize = 10;

/// The longest the engine sleeps without looking again (the clock may have been advanced).
const MAX_IDLE: Duration = Duration::from_millis(250);

/// Stored per attempt: enough of the receiver's answer to debug with, bounded in size.
const MAX_RESPONSE_BODY: usize = 1024;

pub async fn run(shared: Arc<Shared>) {
    let client = match reqwest::Client::builder()
        .timeout(shared.config.webhook_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(%err, "cannot build the webhook HTTP client; webhooks are disabled");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_DELIVERIES));
    let mut deliveries = JoinSet::new();
    loop {
        let (due, next) = shared.with(|st, now| {
            let due = st.store.due_deliveries(now);
            let next = [st.store.next_webhook_due(), st.store.next_lifecycle_due()]
                .into_iter()
                .flatten()
                .min();
            (due, next)
        });
        for delivery in due {
            let shared = shared.clone();
            let client = client.clone();
            let permits = permits.clone();
            deliveries.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                deliver(&shared, &client, delivery).await;
            });
        }
        let wait = next
            .map_or(MAX_IDLE, |at| shared.clock.real_wait_until(at))
            .min(MAX_IDLE);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.wake.notified() => {}
            Some(_) = deliveries.join_next(), if !deliveries.is_empty() => {}
        }
    }
}

async fn deliver(shared: &Shared, client: &reqwest::Client, delivery: Delivery) {
    let requested = shared.clock.now();
    let signature = sign(delivery.secret.expose().as_bytes(), &delivery.body);
    let result = client
        .post(&delivery.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::USER_AGENT, USER_AGENT)
        .header("X-Dwolla-Topic", delivery.topic)
        .header(SIGNATURE_HEADER, signature)
        .body(delivery.body)
        .send()
        .await;
    let (status, response_body) = match result {
        Ok(response) => {
            let status = response.status().as_u16();
            let mut body = response.text().await.unwrap_or_default();
            if body.len() > MAX_RESPONSE_BODY {
                let mut cut = MAX_RESPONSE_BODY;
                while !body.is_char_boundary(cut) {
                    cut -= 1;
                }
                body.truncate(cut);
            }
            (Some(status), body)
        }
        Err(err) => {
            let what = if err.is_timeout() {
                "timed out"
            } else if err.is_connect() {
                "connection failed"
            } else {
                "request failed"
            };
            (None, format!("delivery {what}"))
        }
    };
    shared.with(|st, now| {
        let id = st.store.new_id();
        let ok = st.store.record_attempt(
            delivery.webhook,
            Attempt {
                id,
                requested,
                responded: now,
                status,
                response_body,
            },
            now,
        );
        st.stats.webhook_attempts += 1;
        if ok {
            st.stats.webhook_deliveries += 1;
        } else {
            st.stats.webhook_failures += 1;
        }
    });
}
