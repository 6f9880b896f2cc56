//! The simulator's in-memory resources, one file per Dwolla resource family, with their
//! HAL+JSON renderings. Everything here is synchronous and runs under the one state lock
//! (`state`); the HTTP layer validates input before calling in, and the engine sends the
//! webhooks queued here.
//!
//! Sizes: lists page by position in creation-ordered vectors (plus one index per filter), so a
//! page costs O(log n + limit) however many transfers exist.
//!
//! Order inside: `tables` (the `Store`, its records and indexes) and `page` at the bottom; the
//! family files (`accounts`, `parties`, `exchanges`, `funding_sources`, `transfers`,
//! `webhooks` with events and deliveries, `client_tokens`) each add an `impl Store` and import
//! only `tables`: no family file imports another, and none imports this `mod.rs`, which only
//! re-exports for the rest of `sim`.
//!
//! Must not touch: HTTP, the lock, the clock's source of time (callers pass `now`), or anything
//! of payrun outside `sim` except `secret` and `signature`.

mod accounts;
mod client_tokens;
mod exchanges;
mod funding_sources;
mod page;
mod parties;
mod tables;
mod transfers;
mod webhooks;

pub use page::{Page, page};
pub use tables::{
    Account, Attempt, Delivery, ExchangePartner, ExternalParty, FsOwner, FundingSource, HAL,
    PartyKind, Store, StoreConfig, Subscription, TreasuryAccount, TreasuryPartner,
};
pub use webhooks::USER_AGENT;
