//! The simulator's HTTP side: the accept loop (`server`), the route table (`router`), what
//! every request passes through (`pipeline`), and the handlers, one file per Dwolla resource
//! family. Handlers parse and validate outside the lock, then check references and mutate
//! inside one `Shared::with` call, so each request's effect is atomic.
//!
//! Imports run one way: `server` -> `router` -> `pipeline` and the handler files -> the shared
//! helpers `respond`, `extract`, `paging`; nothing here imports `server` or `router` back.

mod accounts;
mod client_tokens;
mod control;
mod exchanges;
mod extract;
mod funding_sources;
mod paging;
mod parties;
mod pipeline;
mod respond;
mod router;
mod server;
mod token;
mod transfers;
mod webhooks;

pub use server::run;
