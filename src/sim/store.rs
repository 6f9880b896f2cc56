//! The simulator's in-memory resources, the transfer lifecycle and the event/webhook records,
//! with their HAL+JSON renderings. Everything here is synchronous and runs under the one state
//! lock; the HTTP layer (`api.rs`) validates input and the engine (`engine.rs`) delivers
//! webhooks.
//!
//! Sizes: lists page by position in creation-ordered vectors (plus one index per filter), so a
//! page costs O(log n + limit) however many transfers exist.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, RngCore};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::clock::SimTime;
use super::failures::{GCA_051, SENTINEL_FAILURE_CODE, failure_text};
use super::validate::{format_cents, return_code_name};
use crate::secret::Secret;

pub const HAL: &str = "application/vnd.dwolla.v1.hal+json";

/// Dwolla's webhook retry schedule, delay after the previous attempt (notes section 7):
/// 15 min, 45 min, 2 h, 3 h, 6 h, 12 h, 24 h, 24 h, i.e. 8 retries over 72 hours.
pub const RETRY_DELAYS_MIN: [u64; 8] = [15, 45, 120, 180, 360, 720, 1440, 1440];

/// Settings the store needs; copied from `SimConfig` at start.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub settle: Duration,
    pub webhook_time_scale: f64,
    pub webhook_duplicate_rate: f64,
    pub webhook_reorder_rate: f64,
    pub webhook_reorder_delay: Duration,
    pub webhook_auto_pause_failures: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferStatus {
    Created,
    Pending,
    Processed,
    Failed,
    Returned,
}

impl TransferStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferStatus::Created => "created",
            TransferStatus::Pending => "pending",
            TransferStatus::Processed => "processed",
            TransferStatus::Failed => "failed",
            TransferStatus::Returned => "returned",
        }
    }

    fn topic(self) -> &'static str {
        match self {
            TransferStatus::Created => "transfer:created",
            TransferStatus::Pending => "transfer:pending",
            TransferStatus::Processed => "transfer:processed",
            TransferStatus::Failed => "transfer:failed",
            TransferStatus::Returned => "transfer:returned",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: Uuid,
    pub name: String,
    pub created: SimTime,
}

#[derive(Debug, Clone)]
pub struct TreasuryPartner {
    pub id: Uuid,
    pub name: &'static str,
    /// `achCoId` for J.P. Morgan, `gatewayCompanyId` for Wells Fargo.
    pub context_field: &'static str,
}

#[derive(Debug, Clone)]
pub struct TreasuryAccount {
    pub id: Uuid,
    pub name: String,
    pub created: SimTime,
    pub partner: Uuid,
    pub context_field: &'static str,
    pub context_value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsOwner {
    /// A main-account funding source linked to a treasury account. `ach_mismatch` marks a bank
    /// account whose registration does not match that treasury account's ACH company id:
    /// transfers from it fail with GCA-051.
    Account {
        treasury_account: Uuid,
        ach_mismatch: bool,
    },
    ExternalParty(Uuid),
}

/// A bank funding source. The account number itself is never stored: only a fingerprint of
/// routing and account number (to refuse duplicates), so it cannot leak into logs or bodies.
#[derive(Debug, Clone)]
pub struct FundingSource {
    pub id: Uuid,
    pub owner: FsOwner,
    pub name: String,
    pub bank_account_type: String,
    pub created: SimTime,
    pub removed: bool,
    pub fingerprint: Option<[u8; 32]>,
    pub exchange: Option<Uuid>,
}

#[derive(Debug, Clone)]
pub enum PartyKind {
    Business {
        business_name: String,
    },
    Personal {
        first_name: String,
        last_name: String,
    },
}

#[derive(Debug, Clone)]
pub struct ExternalParty {
    pub id: Uuid,
    pub kind: PartyKind,
    pub email: String,
    pub correlation_id: Option<String>,
    pub created: SimTime,
}

#[derive(Debug, Clone)]
pub struct ExchangePartner {
    pub id: Uuid,
    pub name: &'static str,
    pub created: &'static str,
}

#[derive(Debug, Clone)]
pub struct Exchange {
    pub id: Uuid,
    pub partner: Uuid,
    /// `None` for the main account, else the external party.
    pub party: Option<Uuid>,
    pub created: SimTime,
}

#[derive(Debug, Clone)]
pub struct Transfer {
    pub id: Uuid,
    pub created: SimTime,
    pub cents: i64,
    pub source_fs: Uuid,
    pub dest_fs: Uuid,
    /// Credit: from a main-account funding source to an external party. Debit: the reverse.
    pub credit: bool,
    pub party: Uuid,
    pub correlation_id: Option<String>,
    pub metadata: Option<Value>,
    pub status: TransferStatus,
    pub failure_code: Option<String>,
    pub idempotency_key: Option<String>,
    plan: Vec<(TransferStatus, Option<String>)>,
    next_step: usize,
}

#[derive(Debug, Clone)]
pub enum ResourceRef {
    Transfer(u32),
    ExternalParty(Uuid),
    FundingSource { id: Uuid, party: Option<Uuid> },
}

#[derive(Debug, Clone)]
pub struct Event {
    pub id: Uuid,
    pub topic: &'static str,
    pub resource: ResourceRef,
    pub created: SimTime,
}

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: Uuid,
    pub url: String,
    pub secret: Secret,
    pub paused: bool,
    pub created: SimTime,
    pub deleted: bool,
    /// Failed deliveries since the last success, and when that was: Dwolla's auto-pause rule.
    pub consecutive_failures: u32,
    pub last_success: Option<SimTime>,
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: Uuid,
    pub requested: SimTime,
    pub responded: SimTime,
    pub status: Option<u16>,
    pub response_body: String,
}

#[derive(Debug, Clone)]
pub struct WebhookRec {
    pub id: Uuid,
    pub event: u32,
    pub subscription: u32,
    pub attempts: Vec<Attempt>,
    pub retries: usize,
    pub delivered: bool,
    pub duplicated: bool,
}

/// One delivery the engine should make now.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub webhook: u32,
    pub url: String,
    pub secret: Secret,
    pub topic: &'static str,
    pub body: Vec<u8>,
}

/// A page of positions in a creation-ordered sequence, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<u32>,
    /// Cursor of the next (older) page, if any.
    pub next: Option<u32>,
    /// Cursor of the previous (newer) page: `Some(None)` for the first page.
    pub prev: Option<Option<u32>>,
}

/// Pages `len` ascending sequence numbers (`seq_at(i)`) newest first. A cursor `c` means "the
/// items with a sequence number below `c`".
pub fn page(seq_at: impl Fn(usize) -> u32, len: usize, limit: usize, cursor: Option<u32>) -> Page {
    let end = match cursor {
        None => len,
        Some(c) => {
            let (mut lo, mut hi) = (0, len);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if seq_at(mid) < c {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        }
    };
    let start = end.saturating_sub(limit);
    let items = (start..end).rev().map(&seq_at).collect();
    let next = (start > 0).then(|| seq_at(start));
    let prev = (end < len).then(|| (end + limit < len).then(|| seq_at(end + limit)));
    Page { items, next, prev }
}

pub struct Store {
    pub base_url: String,
    pub config: StoreConfig,
    pub rng: StdRng,
    pub account: Account,
    pub treasury_partners: Vec<TreasuryPartner>,
    pub treasury_accounts: Vec<TreasuryAccount>,
    pub funding_sources: Vec<FundingSource>,
    fs_index: HashMap<Uuid, usize>,
    fs_by_party: HashMap<Uuid, Vec<u32>>,
    fs_fingerprints: HashSet<(Option<Uuid>, [u8; 32])>,
    pub external_parties: Vec<ExternalParty>,
    party_index: HashMap<Uuid, usize>,
    party_emails: HashSet<String>,
    pub exchange_partners: Vec<ExchangePartner>,
    pub exchanges: Vec<Exchange>,
    pub transfers: Vec<Transfer>,
    transfer_index: HashMap<Uuid, u32>,
    transfers_by_correlation: HashMap<String, Vec<u32>>,
    transfers_by_party: HashMap<Uuid, Vec<u32>>,
    lifecycle: BinaryHeap<Reverse<(i64, u32)>>,
    pub events: Vec<Event>,
    event_index: HashMap<Uuid, u32>,
    pub subscriptions: Vec<Subscription>,
    pub webhooks: Vec<WebhookRec>,
    webhook_index: HashMap<Uuid, u32>,
    webhooks_by_subscription: HashMap<u32, Vec<u32>>,
    webhook_queue: BinaryHeap<Reverse<(i64, u64, u32)>>,
    queue_seq: u64,
}

impl Store {
    pub fn new(base_url: String, config: StoreConfig, rng: StdRng, account: Account) -> Store {
        Store {
            base_url,
            config,
            rng,
            account,
            treasury_partners: Vec::new(),
            treasury_accounts: Vec::new(),
            funding_sources: Vec::new(),
            fs_index: HashMap::new(),
            fs_by_party: HashMap::new(),
            fs_fingerprints: HashSet::new(),
            external_parties: Vec::new(),
            party_index: HashMap::new(),
            party_emails: HashSet::new(),
            exchange_partners: Vec::new(),
            exchanges: Vec::new(),
            transfers: Vec::new(),
            transfer_index: HashMap::new(),
            transfers_by_correlation: HashMap::new(),
            transfers_by_party: HashMap::new(),
            lifecycle: BinaryHeap::new(),
            events: Vec::new(),
            event_index: HashMap::new(),
            subscriptions: Vec::new(),
            webhooks: Vec::new(),
            webhook_index: HashMap::new(),
            webhooks_by_subscription: HashMap::new(),
            webhook_queue: BinaryHeap::new(),
            queue_seq: 0,
        }
    }

    /// A random (v4) id drawn from the seeded generator, so runs with the same seed and the
    /// same request order produce the same ids.
    pub fn new_id(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    // ----- lookups -----

    pub fn funding_source(&self, id: Uuid) -> Option<&FundingSource> {
        self.fs_index.get(&id).map(|&i| &self.funding_sources[i])
    }

    pub fn external_party(&self, id: Uuid) -> Option<&ExternalParty> {
        self.party_index
            .get(&id)
            .map(|&i| &self.external_parties[i])
    }

    pub fn transfer(&self, id: Uuid) -> Option<&Transfer> {
        self.transfer_index
            .get(&id)
            .map(|&i| &self.transfers[i as usize])
    }

    pub fn treasury_account(&self, id: Uuid) -> Option<&TreasuryAccount> {
        self.treasury_accounts.iter().find(|t| t.id == id)
    }

    pub fn treasury_partner(&self, id: Uuid) -> Option<&TreasuryPartner> {
        self.treasury_partners.iter().find(|t| t.id == id)
    }

    pub fn exchange_partner(&self, id: Uuid) -> Option<&ExchangePartner> {
        self.exchange_partners.iter().find(|t| t.id == id)
    }

    pub fn exchange(&self, id: Uuid) -> Option<&Exchange> {
        self.exchanges.iter().find(|t| t.id == id)
    }

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

    pub fn email_taken(&self, email: &str) -> bool {
        self.party_emails.contains(&email.to_ascii_lowercase())
    }

    pub fn fingerprint_taken(&self, party: Option<Uuid>, fingerprint: &[u8; 32]) -> Option<Uuid> {
        if !self.fs_fingerprints.contains(&(party, *fingerprint)) {
            return None;
        }
        self.funding_sources
            .iter()
            .find(|f| {
                !f.removed
                    && f.fingerprint.as_ref() == Some(fingerprint)
                    && match &f.owner {
                        FsOwner::Account { .. } => party.is_none(),
                        FsOwner::ExternalParty(p) => party == Some(*p),
                    }
            })
            .map(|f| f.id)
    }

    pub fn party_funding_sources(&self, party: Uuid) -> &[u32] {
        self.fs_by_party.get(&party).map_or(&[], Vec::as_slice)
    }

    pub fn transfers_for_correlation(&self, correlation_id: &str) -> &[u32] {
        self.transfers_by_correlation
            .get(correlation_id)
            .map_or(&[], Vec::as_slice)
    }

    pub fn transfers_for_party(&self, party: Uuid) -> &[u32] {
        self.transfers_by_party
            .get(&party)
            .map_or(&[], Vec::as_slice)
    }

    pub fn webhooks_for_subscription(&self, sub: u32) -> &[u32] {
        self.webhooks_by_subscription
            .get(&sub)
            .map_or(&[], Vec::as_slice)
    }

    // ----- creation -----

    pub fn add_treasury_account(&mut self, account: TreasuryAccount) {
        self.treasury_accounts.push(account);
    }

    pub fn add_funding_source(&mut self, fs: FundingSource, now: SimTime, emit: bool) {
        let party = match fs.owner {
            FsOwner::ExternalParty(p) => Some(p),
            FsOwner::Account { .. } => None,
        };
        if let Some(fp) = fs.fingerprint {
            self.fs_fingerprints.insert((party, fp));
        }
        let id = fs.id;
        let idx = self.funding_sources.len();
        self.fs_index.insert(id, idx);
        if let Some(p) = party {
            self.fs_by_party.entry(p).or_default().push(idx as u32);
        }
        self.funding_sources.push(fs);
        if emit {
            let topic = if party.is_some() {
                "external_party.funding_source:created"
            } else {
                "funding_source:created"
            };
            self.emit(topic, ResourceRef::FundingSource { id, party }, now);
        }
    }

    /// Marks a funding source removed; returns false if it does not exist.
    pub fn remove_funding_source(&mut self, id: Uuid, now: SimTime) -> bool {
        let Some(&idx) = self.fs_index.get(&id) else {
            return false;
        };
        let fs = &mut self.funding_sources[idx];
        if fs.removed {
            return true;
        }
        fs.removed = true;
        let party = match fs.owner {
            FsOwner::ExternalParty(p) => Some(p),
            FsOwner::Account { .. } => None,
        };
        let topic = if party.is_some() {
            "external_party.funding_source:removed"
        } else {
            "funding_source:removed"
        };
        self.emit(topic, ResourceRef::FundingSource { id, party }, now);
        true
    }

    pub fn add_external_party(&mut self, party: ExternalParty, now: SimTime, emit: bool) {
        let id = party.id;
        self.party_emails.insert(party.email.to_ascii_lowercase());
        self.party_index.insert(id, self.external_parties.len());
        self.external_parties.push(party);
        if emit {
            self.emit(
                "external_party:created",
                ResourceRef::ExternalParty(id),
                now,
            );
        }
    }

    /// Creates a transfer between two validated funding sources and schedules its lifecycle.
    #[allow(clippy::too_many_arguments)]
    pub fn add_transfer(
        &mut self,
        source_fs: Uuid,
        dest_fs: Uuid,
        cents: i64,
        correlation_id: Option<String>,
        metadata: Option<Value>,
        idempotency_key: Option<String>,
        now: SimTime,
    ) -> Uuid {
        let source = self
            .funding_source(source_fs)
            .expect("validated source")
            .clone();
        let dest = self
            .funding_source(dest_fs)
            .expect("validated destination")
            .clone();
        let (credit, account_fs, party_fs) = match (&source.owner, &dest.owner) {
            (FsOwner::Account { .. }, _) => (true, &source, &dest),
            _ => (false, &dest, &source),
        };
        let party = match party_fs.owner {
            FsOwner::ExternalParty(p) => p,
            FsOwner::Account { .. } => unreachable!("validated: one side is an external party"),
        };
        let ach_mismatch = matches!(
            account_fs.owner,
            FsOwner::Account {
                ach_mismatch: true,
                ..
            }
        );
        let plan = lifecycle_plan(ach_mismatch, cents, &party_fs.name);
        let id = self.new_id();
        let seq = self.transfers.len() as u32;
        if let Some(c) = &correlation_id {
            self.transfers_by_correlation
                .entry(c.clone())
                .or_default()
                .push(seq);
        }
        self.transfers_by_party.entry(party).or_default().push(seq);
        self.transfer_index.insert(id, seq);
        let has_steps = !plan.is_empty();
        self.transfers.push(Transfer {
            id,
            created: now,
            cents,
            source_fs,
            dest_fs,
            credit,
            party,
            correlation_id,
            metadata,
            status: TransferStatus::Created,
            failure_code: None,
            idempotency_key,
            plan,
            next_step: 0,
        });
        if has_steps {
            let due = now.plus(self.config.settle);
            self.lifecycle.push(Reverse((due.0, seq)));
        }
        self.emit(
            TransferStatus::Created.topic(),
            ResourceRef::Transfer(seq),
            now,
        );
        id
    }

    /// Applies every lifecycle step due by `now`, in time order, each stamped with its own due
    /// time (so a clock jump of several steps leaves a plausible history).
    pub fn catch_up(&mut self, now: SimTime) {
        while let Some(&Reverse((due, seq))) = self.lifecycle.peek() {
            if due > now.0 {
                break;
            }
            self.lifecycle.pop();
            let transfer = &mut self.transfers[seq as usize];
            let (status, failure) = transfer.plan[transfer.next_step].clone();
            transfer.status = status;
            if failure.is_some() {
                transfer.failure_code = failure;
            }
            transfer.next_step += 1;
            let more = transfer.next_step < transfer.plan.len();
            if more {
                let next_due = SimTime(due).plus(self.config.settle);
                self.lifecycle.push(Reverse((next_due.0, seq)));
            }
            self.emit(status.topic(), ResourceRef::Transfer(seq), SimTime(due));
        }
    }

    pub fn add_subscription(&mut self, sub: Subscription) {
        self.subscriptions.push(sub);
    }

    pub fn active_subscription_count(&self) -> usize {
        self.subscriptions.iter().filter(|s| !s.deleted).count()
    }

    // ----- events and webhooks -----

    fn emit(&mut self, topic: &'static str, resource: ResourceRef, at: SimTime) {
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
            let max_delay = super::clock::duration_ms(self.config.webhook_reorder_delay);
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

    /// When the next lifecycle step falls due, if any.
    pub fn next_lifecycle_due(&self) -> Option<SimTime> {
        self.lifecycle.peek().map(|Reverse((due, _))| SimTime(*due))
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

    // ----- renderings (HAL+JSON, field names as in the Connect spec) -----

    pub fn link(&self, path: &str, resource_type: &str) -> Value {
        json!({"href": format!("{}{path}", self.base_url), "type": HAL, "resource-type": resource_type})
    }

    pub fn account_json(&self) -> Value {
        let id = self.account.id;
        json!({
            "_links": {
                "self": self.link(&format!("/accounts/{id}"), "account"),
                "funding-sources": self.link(&format!("/accounts/{id}/funding-sources"), "funding-source"),
                "transfers": self.link(&format!("/accounts/{id}/transfers"), "transfer"),
                "exchanges": self.link("/exchanges", "exchange"),
            },
            "id": id,
            "name": self.account.name,
            "created": self.account.created.iso(),
        })
    }

    pub fn funding_source_json(&self, fs: &FundingSource) -> Value {
        let mut links = serde_json::Map::new();
        links.insert(
            "self".into(),
            self.link(&format!("/funding-sources/{}", fs.id), "funding-source"),
        );
        match &fs.owner {
            FsOwner::Account {
                treasury_account, ..
            } => {
                links.insert(
                    "treasury-account".into(),
                    self.link(
                        &format!("/treasury-accounts/{treasury_account}"),
                        "treasury-account",
                    ),
                );
                links.insert(
                    "account".into(),
                    self.link(&format!("/accounts/{}", self.account.id), "account"),
                );
            }
            FsOwner::ExternalParty(p) => {
                links.insert(
                    "external-party".into(),
                    self.link(&format!("/external-parties/{p}"), "external-party"),
                );
            }
        }
        if let Some(x) = fs.exchange {
            links.insert(
                "exchange".into(),
                self.link(&format!("/exchanges/{x}"), "exchange"),
            );
        }
        if !fs.removed {
            links.insert(
                "remove".into(),
                self.link(&format!("/funding-sources/{}", fs.id), "funding-source"),
            );
        }
        json!({
            "_links": links,
            "id": fs.id,
            "bankAccountType": fs.bank_account_type,
            "name": fs.name,
            "created": fs.created.iso(),
            "removed": fs.removed,
        })
    }

    pub fn external_party_json(&self, p: &ExternalParty) -> Value {
        let mut v = json!({
            "_links": {
                "self": self.link(&format!("/external-parties/{}", p.id), "external-party"),
                "funding-sources": self.link(&format!("/external-parties/{}/funding-sources", p.id), "funding-source"),
                "transfers": self.link(&format!("/external-parties/{}/transfers", p.id), "transfer"),
                "exchanges": self.link(&format!("/external-parties/{}/exchanges", p.id), "exchange"),
            },
            "id": p.id,
            "created": p.created.iso(),
            "email": p.email,
        });
        match &p.kind {
            PartyKind::Business { business_name } => {
                v["businessName"] = json!(business_name);
                v["externalPartyType"] = json!("business");
            }
            PartyKind::Personal {
                first_name,
                last_name,
            } => {
                v["firstName"] = json!(first_name);
                v["lastName"] = json!(last_name);
                v["externalPartyType"] = json!("personal");
            }
        }
        if let Some(c) = &p.correlation_id {
            v["correlationId"] = json!(c);
        }
        v
    }

    pub fn transfer_json(&self, t: &Transfer) -> Value {
        let account_link = self.link(&format!("/accounts/{}", self.account.id), "account");
        let party_link = self.link(&format!("/external-parties/{}", t.party), "external-party");
        let (source, destination) = if t.credit {
            (account_link, party_link)
        } else {
            (party_link, account_link)
        };
        let mut v = json!({
            "_links": {
                "self": self.link(&format!("/transfers/{}", t.id), "transfer"),
                "source": source,
                "source-funding-source": self.link(&format!("/funding-sources/{}", t.source_fs), "funding-source"),
                "destination": destination,
                "destination-funding-source": self.link(&format!("/funding-sources/{}", t.dest_fs), "funding-source"),
            },
            "id": t.id,
            "created": t.created.iso(),
            "amount": {"value": format_cents(t.cents), "currency": "USD"},
            "status": t.status.as_str(),
            "processingChannel": "ach",
        });
        if let Some(c) = &t.correlation_id {
            v["correlationId"] = json!(c);
        }
        if let Some(m) = &t.metadata {
            v["metadata"] = m.clone();
        }
        if matches!(t.status, TransferStatus::Failed | TransferStatus::Returned)
            && let Some(code) = &t.failure_code
        {
            let text = failure_text(code);
            v["failureReason"] = json!({
                "code": code,
                "description": text.description,
                "explanation": text.explanation,
            });
        }
        v
    }

    pub fn treasury_partner_json(&self, p: &TreasuryPartner) -> Value {
        json!({
            "_links": {"self": self.link(&format!("/treasury-partners/{}", p.id), "treasury-partners")},
            "id": p.id,
            "name": p.name,
        })
    }

    pub fn treasury_account_json(&self, t: &TreasuryAccount) -> Value {
        json!({
            "_links": {
                "self": self.link(&format!("/treasury-accounts/{}", t.id), "treasury-account"),
                "treasury-partner": self.link(&format!("/treasury-partners/{}", t.partner), "treasury-partners"),
                "account": self.link(&format!("/accounts/{}", self.account.id), "account"),
            },
            "id": t.id,
            "name": t.name,
            "created": t.created.iso(),
            "accountId": self.account.id,
            "treasuryPartnerId": t.partner,
            "treasuryPartnerContext": {t.context_field: t.context_value},
        })
    }

    pub fn exchange_partner_json(&self, p: &ExchangePartner) -> Value {
        json!({
            "_links": {
                "self": self.link(&format!("/exchange-partners/{}", p.id), "exchange-partner"),
            },
            "id": p.id,
            "name": p.name,
            "status": "active",
            "created": p.created,
        })
    }

    pub fn exchange_json(&self, x: &Exchange) -> Value {
        let fs_path = match x.party {
            Some(p) => format!("/external-parties/{p}/funding-sources"),
            None => format!("/accounts/{}/funding-sources", self.account.id),
        };
        json!({
            "_links": {
                "self": self.link(&format!("/exchanges/{}", x.id), "exchange"),
                "exchange-partner": self.link(&format!("/exchange-partners/{}", x.partner), "exchange-partner"),
                "funding-sources": self.link(&fs_path, "funding-source"),
            },
            "id": x.id,
            "status": "active",
            "created": x.created.iso(),
        })
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
                            {"name": "User-Agent", "value": super::engine::USER_AGENT},
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

/// The steps a new transfer will take after `created`, one per settle interval. Precedence:
/// a treasury mismatch (GCA-051) first, because such a transfer never reaches the bank; then
/// Dwolla's sentinel amounts; then a return-code name on the external party's funding source;
/// otherwise pending then processed.
fn lifecycle_plan(
    ach_mismatch: bool,
    cents: i64,
    party_fs_name: &str,
) -> Vec<(TransferStatus, Option<String>)> {
    use TransferStatus::*;
    if ach_mismatch {
        return vec![(Failed, Some(GCA_051.to_string()))];
    }
    match cents {
        101 => return vec![],
        102 => return vec![(Pending, None)],
        201 => return vec![(Processed, None)],
        999 => return vec![(Failed, Some(SENTINEL_FAILURE_CODE.to_string()))],
        _ => {}
    }
    match return_code_name(party_fs_name) {
        Some((code, true)) => vec![(Pending, None), (Processed, None), (Returned, Some(code))],
        Some((code, false)) => vec![(Pending, None), (Failed, Some(code))],
        None => vec![(Pending, None), (Processed, None)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(n: u32) -> Vec<u32> {
        (0..n).collect()
    }

    #[test]
    fn pages_walk_newest_first_and_end_without_next() {
        let s = seqs(60);
        let p1 = page(|i| s[i], s.len(), 25, None);
        assert_eq!(p1.items.first(), Some(&59));
        assert_eq!(p1.items.len(), 25);
        assert_eq!(p1.prev, None);
        let p2 = page(|i| s[i], s.len(), 25, p1.next);
        assert_eq!(p2.items.first(), Some(&34));
        assert_eq!(p2.prev, Some(None));
        let p3 = page(|i| s[i], s.len(), 25, p2.next);
        assert_eq!(p3.items, (0..10).rev().collect::<Vec<_>>());
        assert_eq!(p3.next, None);
        assert_eq!(p3.prev, Some(p1.next));
        let back = page(|i| s[i], s.len(), 25, p3.prev.unwrap());
        assert_eq!(back, p2);
    }

    #[test]
    fn pages_over_sparse_indexes() {
        let s = [3, 8, 9, 20, 41];
        let p = page(|i| s[i], s.len(), 2, None);
        assert_eq!(p.items, vec![41, 20]);
        let p = page(|i| s[i], s.len(), 2, p.next);
        assert_eq!(p.items, vec![9, 8]);
        let p = page(|i| s[i], s.len(), 2, p.next);
        assert_eq!(p.items, vec![3]);
        assert_eq!(p.next, None);
        assert_eq!(page(|i| s[i], 0, 2, None).items, Vec::<u32>::new());
    }

    #[test]
    fn plans_follow_the_documented_precedence() {
        use TransferStatus::*;
        assert_eq!(lifecycle_plan(false, 101, "R01"), vec![]);
        assert_eq!(
            lifecycle_plan(false, 102, "Checking"),
            vec![(Pending, None)]
        );
        assert_eq!(lifecycle_plan(false, 201, "R01"), vec![(Processed, None)]);
        assert_eq!(
            lifecycle_plan(false, 999, "Checking"),
            vec![(Failed, Some("R01".into()))]
        );
        assert_eq!(
            lifecycle_plan(true, 201, "Checking"),
            vec![(Failed, Some("GCA-051".into()))]
        );
        assert_eq!(
            lifecycle_plan(false, 500, "R03-late"),
            vec![
                (Pending, None),
                (Processed, None),
                (Returned, Some("R03".into()))
            ]
        );
        assert_eq!(
            lifecycle_plan(false, 500, "R02"),
            vec![(Pending, None), (Failed, Some("R02".into()))]
        );
        assert_eq!(
            lifecycle_plan(false, 500, "Checking"),
            vec![(Pending, None), (Processed, None)]
        );
    }
}
