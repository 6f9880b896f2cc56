//! Events, webhook subscriptions and deliveries: every event emitted by the other families,
//! one webhook record per active subscription, the delivery queue (reorder, retries on
//! Dwolla's schedule, duplicates, auto-pause), event bodies and the HAL renderings of
//! subscriptions and webhooks with their attempts.
//!
//! Must not touch: HTTP sending (the engine does it) or the rules of the resources whose
//! events it records.

use std::cmp::Reverse;

use rand::Rng;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::tables::{Attempt, Delivery, Event, ResourceRef, Store, Subscription, WebhookRec};
use crate::sim::clock::{SimTime, duration_ms};

/// The `User-Agent` of webhook requests, as Dwolla sends it.
pub const USER_AGENT: &str = "dwolla-webhooks/1.1";

/// Dwolla's webhook retry schedule, delay after the previous attempt (notes section 7):
/// 15 min, 45 min, 2 h, 3 h, 6 h, 12 h, 24 h, 24 h, i.e. 8 retries over 72 hours.
pub const RETRY_DELAYS_MIN: [u64; 8] = [15, 45, 120, 180, 360, 720, 1440, 1440];

impl Store {
    pub fn event(&self, id: Uuid) -> Option<&Event> {
        self.event_index.get(&id).map(|&i| &self.events[i as usize])
    }

    pub fn subscription_idx(&self, id: Uuid) -> Option<u32> {
        self.subscriptions
            .iter()
            .position(|s| s.id == id && !s.deleted)
            .map(|i| i as u32)
    }

    pub fn webhook_idx(&self, id: Uuid) -> Option<u32> {
        self.webhook_index.get(&id).copied()
    }

    pub fn webhooks_for_subscription(&self, sub: u32) -> &[u32] {
        self.webhooks_by_subscription
            .get(&sub)
            .map_or(&[], Vec::as_slice)
    }

    pub fn add_subscription(&mut self, sub: Subscription) {
        self.subscriptions.push(sub);
    }

    pub fn active_subscription_count(&self) -> usize {
        self.subscriptions.iter().filter(|s| !s.deleted).count()
    }

    pub(super) fn emit(&mut self, topic: &'static str, resource: ResourceRef, at: SimTime) {
        let id = self.new_id();
        let event_idx = self.events.len() as u32;
        self.event_index.insert(id, event_idx);
        self.events.push(Event {
            id,
            topic,
            resource,
            created: at,
        });
        for sub_idx in 0..self.subscriptions.len() {
            if self.subscriptions[sub_idx].deleted {
                continue;
            }
            let webhook_id = self.new_id();
            let webhook_idx = self.webhooks.len() as u32;
            self.webhook_index.insert(webhook_id, webhook_idx);
            self.webhooks.push(WebhookRec {
                id: webhook_id,
                event: event_idx,
                subscription: sub_idx as u32,
                attempts: Vec::new(),
                retries: 0,
                delivered: false,
                duplicated: false,
            });
            self.webhooks_by_subscription
                .entry(sub_idx as u32)
                .or_default()
                .push(webhook_idx);
            // Paused subscriptions still record webhooks but do not send them (Dwolla's rule).
            if self.subscriptions[sub_idx].paused {
                continue;
            }
            // Out-of-order delivery: the first attempt of a chosen webhook is held back by a
            // random share of the reorder delay, so later events can overtake it.
            let mut due = at.0;
            let reorder = self.config.webhook_reorder_rate;
            let max_delay = duration_ms(self.config.webhook_reorder_delay);
            if reorder > 0.0 && max_delay > 0 && self.rng.random_bool(reorder.min(1.0)) {
                due += self.rng.random_range(1..=max_delay);
            }
            self.queue_webhook(due, webhook_idx);
        }
    }

    fn queue_webhook(&mut self, due: i64, webhook: u32) {
        self.queue_seq += 1;
        self.webhook_queue
            .push(Reverse((due, self.queue_seq, webhook)));
    }

    /// When the next queued webhook falls due, if any.
    pub fn next_webhook_due(&self) -> Option<SimTime> {
        self.webhook_queue
            .peek()
            .map(|Reverse((due, _, _))| SimTime(*due))
    }

    /// Takes the webhooks due by `now` whose subscription is still active and not paused.
    pub fn due_deliveries(&mut self, now: SimTime) -> Vec<Delivery> {
        let mut out = Vec::new();
        while let Some(&Reverse((due, _, webhook))) = self.webhook_queue.peek() {
            if due > now.0 {
                break;
            }
            self.webhook_queue.pop();
            let rec = &self.webhooks[webhook as usize];
            let sub = &self.subscriptions[rec.subscription as usize];
            if sub.deleted || sub.paused {
                continue;
            }
            let event = &self.events[rec.event as usize];
            out.push(Delivery {
                webhook,
                url: sub.url.clone(),
                secret: sub.secret.clone(),
                topic: event.topic,
                body: self.event_body(event),
            });
        }
        out
    }

    /// Records one delivery attempt and schedules the retry (on Dwolla's schedule divided by
    /// the time scale) or the optional duplicate. Returns whether it succeeded.
    pub fn record_attempt(&mut self, webhook: u32, attempt: Attempt, now: SimTime) -> bool {
        let ok = attempt.status.is_some_and(|s| (200..300).contains(&s));
        let dup_rate = self.config.webhook_duplicate_rate;
        let duplicate = ok && dup_rate > 0.0 && self.rng.random_bool(dup_rate.min(1.0));
        let scale = self.config.webhook_time_scale.max(1e-9);
        let rec = &mut self.webhooks[webhook as usize];
        rec.attempts.push(attempt);
        let mut requeue = None;
        if ok {
            rec.delivered = true;
            if duplicate && !rec.duplicated {
                rec.duplicated = true;
                requeue = Some(now.0);
            }
        } else if rec.retries < RETRY_DELAYS_MIN.len() && !rec.delivered {
            let delay_ms = (RETRY_DELAYS_MIN[rec.retries] as f64 * 60_000.0 / scale) as i64;
            rec.retries += 1;
            requeue = Some(now.0 + delay_ms.max(1));
        }
        if let Some(due) = requeue {
            self.queue_webhook(due, webhook);
        }
        let subscription = self.webhooks[webhook as usize].subscription as usize;
        let day_ms = (24.0 * 3_600_000.0 / scale) as i64;
        let threshold = self.config.webhook_auto_pause_failures;
        let sub = &mut self.subscriptions[subscription];
        if ok {
            sub.consecutive_failures = 0;
            sub.last_success = Some(now);
        } else {
            sub.consecutive_failures += 1;
            let since = sub.last_success.unwrap_or(sub.created);
            // Dwolla: 400 consecutive failures and 24 hours since the last success. What was
            // queued stays queued and is dropped when due, as for a paused subscription.
            if sub.consecutive_failures >= threshold && now.0 - since.0 >= day_ms {
                sub.paused = true;
            }
        }
        ok
    }

    /// `POST /webhooks/{id}/retries`: queue one more attempt now.
    pub fn retry_webhook(&mut self, webhook: u32, now: SimTime) {
        self.queue_webhook(now.0, webhook);
    }

    pub fn event_body(&self, event: &Event) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            id: String,
            #[serde(rename = "resourceId")]
            resource_id: String,
            topic: &'a str,
            timestamp: String,
            #[serde(rename = "_links")]
            links: Value,
            created: String,
            #[serde(rename = "correlationId", skip_serializing_if = "Option::is_none")]
            correlation_id: Option<&'a str>,
        }
        let base = &self.base_url;
        let (resource_id, resource_href, party, correlation_id) = match &event.resource {
            ResourceRef::Transfer(seq) => {
                let t = &self.transfers[*seq as usize];
                (
                    t.id,
                    format!("{base}/transfers/{}", t.id),
                    None,
                    t.correlation_id.as_deref(),
                )
            }
            ResourceRef::ExternalParty(id) => {
                (*id, format!("{base}/external-parties/{id}"), None, None)
            }
            ResourceRef::FundingSource { id, party } => {
                (*id, format!("{base}/funding-sources/{id}"), *party, None)
            }
        };
        let mut links = json!({
            "self": {"href": format!("{base}/events/{}", event.id)},
            "account": {"href": format!("{base}/accounts/{}", self.account.id)},
            "resource": {"href": resource_href},
        });
        if let Some(p) = party {
            links["external-party"] = json!({"href": format!("{base}/external-parties/{p}")});
        }
        let at = event.created.iso();
        let body = Body {
            id: event.id.to_string(),
            resource_id: resource_id.to_string(),
            topic: event.topic,
            timestamp: at.clone(),
            links,
            created: at,
            correlation_id,
        };
        serde_json::to_vec(&body).expect("event bodies serialize")
    }

    pub fn subscription_json(&self, s: &Subscription) -> Value {
        json!({
            "_links": {
                "self": self.link(&format!("/webhook-subscriptions/{}", s.id), "webhook-subscription"),
                "webhooks": self.link(&format!("/webhook-subscriptions/{}/webhooks", s.id), "webhook"),
            },
            "id": s.id,
            "url": s.url,
            "paused": s.paused,
            "created": s.created.iso(),
        })
    }

    /// A webhook with its attempts. Request headers and body are rebuilt from the event (the
    /// rendering is deterministic), so 100,000s of attempts do not each keep a body copy.
    pub fn webhook_json(&self, idx: u32) -> Value {
        let rec = &self.webhooks[idx as usize];
        let sub = &self.subscriptions[rec.subscription as usize];
        let event = &self.events[rec.event as usize];
        let body = self.event_body(event);
        let signature = crate::signature::sign(sub.secret.expose().as_bytes(), &body);
        let body = String::from_utf8(body).expect("event bodies are UTF-8");
        let attempts: Vec<Value> = rec
            .attempts
            .iter()
            .map(|a| {
                let mut response = json!({
                    "timestamp": a.responded.iso(),
                    "headers": [],
                    "body": a.response_body,
                });
                if let Some(status) = a.status {
                    response["statusCode"] = json!(status);
                }
                json!({
                    "id": a.id,
                    "request": {
                        "timestamp": a.requested.iso(),
                        "url": sub.url,
                        "headers": [
                            {"name": "Content-Length", "value": body.len().to_string()},
                            {"name": "Content-Type", "value": "application/json"},
                            {"name": "User-Agent", "value": USER_AGENT},
                            {"name": "X-Dwolla-Topic", "value": event.topic},
                            {"name": crate::signature::SIGNATURE_HEADER, "value": signature},
                        ],
                        "body": body,
                    },
                    "responses": response,
                })
            })
            .collect();
        json!({
            "_links": {
                "self": self.link(&format!("/webhooks/{}", rec.id), "webhook"),
                "subscription": self.link(&format!("/webhook-subscriptions/{}", sub.id), "webhook-subscription"),
                "event": self.link(&format!("/events/{}", event.id), "event"),
                "retries": self.link(&format!("/webhooks/{}/retries", rec.id), "retry"),
            },
            "id": rec.id,
            "topic": event.topic,
            "accountId": self.account.id,
            "eventId": event.id,
            "subscriptionId": sub.id,
            "attempts": attempts,
        })
    }
}

impl Store {
    /// Pauses or unpauses a subscription (`idx` from [`Store::subscription_idx`]).
    pub fn set_subscription_paused(&mut self, idx: u32, paused: bool) {
        self.subscriptions[idx as usize].paused = paused;
    }

    /// Deletes a subscription: it gets no new webhooks and its queued ones are dropped.
    pub fn delete_subscription(&mut self, idx: u32) {
        self.subscriptions[idx as usize].deleted = true;
    }
}
