//! Everything that needs the one lock: [`Shared`] (the lock, the clock, the configuration and
//! the engine's wake-up) and the rules acting on the guarded [`State`], one file per concern.
//!
//! Order inside: `shared` at the bottom; `admission` (faults), `tokens` (access tokens),
//! `idempotency` and `inspect` (the `/_sim` views) each import only `shared`. None imports this
//! `mod.rs`, which only re-exports.
//!
//! Must not touch: HTTP routing or responses (the `http` layer), webhook sending (`engine`).

mod admission;
mod idempotency;
pub mod inspect;
mod shared;
mod tokens;

pub use admission::{Admission, Draw};
pub use idempotency::Claim;
pub use shared::{Shared, State, StoredResponse};
pub use tokens::TokenCheck;
