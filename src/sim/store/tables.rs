//! The `Store` and its records: every resource type and table of the simulator with their
//! indexes, the seeded random generator that draws ids, and the link rendering all HAL bodies
//! share. The records are plain data here, so that the family files can all build on this one
//! without importing each other in a circle. The per-family files
//! (`accounts`, `parties`, `funding_sources`, `exchanges`, `transfers`, `webhooks`) add their
//! own `impl Store` blocks; this file holds only what all of them need.
//!
//! Must not touch: HTTP (no axum), the lock (`state`), or any family's rules.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::Duration;

use rand::RngCore;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::secret::Secret;
use crate::sim::clock::SimTime;

pub const HAL: &str = "application/vnd.dwolla.v1.hal+json";

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

// ----- the records, one group per family (their rules live in the family files) -----

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferStatus {
    Created,
    Pending,
    Processed,
    Failed,
    Returned,
}

/// The steps a transfer takes after `created`, each with the failure code it sets, if any.
pub type Plan = Vec<(TransferStatus, Option<String>)>;

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
    pub(super) plan: Plan,
    pub(super) next_step: usize,
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

/// Every table and index; fields without `pub` are indexes only the family files maintain.
pub struct Store {
    pub base_url: String,
    pub config: StoreConfig,
    pub rng: StdRng,
    pub account: Account,
    pub treasury_partners: Vec<TreasuryPartner>,
    pub treasury_accounts: Vec<TreasuryAccount>,
    pub funding_sources: Vec<FundingSource>,
    pub(super) fs_index: HashMap<Uuid, usize>,
    pub(super) fs_by_party: HashMap<Uuid, Vec<u32>>,
    pub(super) fs_fingerprints: HashSet<(Option<Uuid>, [u8; 32])>,
    pub external_parties: Vec<ExternalParty>,
    pub(super) party_index: HashMap<Uuid, usize>,
    pub(super) party_emails: HashSet<String>,
    pub exchange_partners: Vec<ExchangePartner>,
    pub exchanges: Vec<Exchange>,
    pub transfers: Vec<Transfer>,
    pub(super) transfer_index: HashMap<Uuid, u32>,
    pub(super) transfers_by_correlation: HashMap<String, Vec<u32>>,
    pub(super) transfers_by_party: HashMap<Uuid, Vec<u32>>,
    pub(super) lifecycle: BinaryHeap<Reverse<(i64, u32)>>,
    pub events: Vec<Event>,
    pub(super) event_index: HashMap<Uuid, u32>,
    pub subscriptions: Vec<Subscription>,
    pub webhooks: Vec<WebhookRec>,
    pub(super) webhook_index: HashMap<Uuid, u32>,
    pub(super) webhooks_by_subscription: HashMap<u32, Vec<u32>>,
    pub(super) webhook_queue: BinaryHeap<Reverse<(i64, u64, u32)>>,
    pub(super) queue_seq: u64,
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

    pub fn link(&self, path: &str, resource_type: &str) -> Value {
        json!({"href": format!("{}{path}", self.base_url), "type": HAL, "resource-type": resource_type})
    }
}
