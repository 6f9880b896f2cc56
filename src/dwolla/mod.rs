//! The Dwolla Connect API client.
//!
//! Owns the wire format, the access token, the rate limiter and timeouts. It never touches the
//! ledger and decides no business policy: a failed call comes back as a [`DwollaError`] whose
//! [`DwollaError::disposition`] tells the caller whether the request was refused for good, may
//! be resent with the same Idempotency-Key and bytes, or needs a person to fix credentials.
//!
//! - `config`: [`DwollaConfig`] and where it comes from (the environment, flags);
//! - `client`: [`Client`], one typed method per Dwolla call, the token manager;
//! - `throttle`: one limiter for everything sent to Dwolla (rate, requests in flight, 429
//!   cool-down);
//! - `paging`: [`all_pages`] and the [`LoopGuard`] every walk through a list uses;
//! - `wire`: request bodies and resources as typed values;
//! - `error`: [`DwollaError`] and [`Disposition`].

pub mod client;
pub mod config;
pub mod error;
pub mod paging;
pub mod throttle;
pub mod wire;

pub use client::{Client, Embedded, HAL_JSON};
pub use config::{ConfigError, DwollaConfig};
pub use error::{Disposition, DwollaError, EmbeddedError};
pub use paging::{LoopGuard, all_pages};
pub use throttle::{Throttle, ThrottleConfig, ThrottleStats};
/// The Dwolla error among `err`'s causes, if any: how a caller tells a call to Dwolla that
/// failed from a local failure. Use it rather than searching the chain by hand.
pub fn dwolla_cause(err: &anyhow::Error) -> Option<&DwollaError> {
    err.chain().find_map(|cause| cause.downcast_ref())
}

/// The request a failed [`Client::root`] was making. The root is read with an access token,
/// and without a cached one the token's `POST /token` goes first: a refusal of the credentials
/// or a connection that fails there is that request's failure, not `GET /`'s, and a person
/// debugging a proxy or a firewall needs to know which one it was.
pub fn root_request(error: &DwollaError) -> &'static str {
    let token_url_named = || error.to_string().contains("/token)");
    if matches!(error, DwollaError::Credentials { .. }) || token_url_named() {
        "POST /token"
    } else {
        "GET /"
    }
}

pub use wire::{
    Amount, Created, FailureReason, Links, Page, ReportedStatus, Root, Transfer, TransferQuery,
    TransferRequest, TransferStatus,
};
