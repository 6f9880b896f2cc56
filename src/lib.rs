//! payrun: a durable payout batch worker. CSV payout files go into a ledger (a SQLite file, or
//! PostgreSQL for several workers), each payout
//! goes to Dwolla Connect as a transfer exactly once, and every transfer is followed to its end.
//!
//! # Layout
//! See ARCHITECTURE.md for the code map, the invariants and the layering order, which
//! `tests/it/layering.rs` keeps: a room imports only rooms below it, no two top-level modules
//! import each other round a circle, and only `cli` imports `cli` or names clap. In one line
//! each:
//! - `cli`: the command line, one file per subcommand: flags, settings, printing and exit
//!   statuses (the binary is a one-line `main`); the library below never imports it;
//! - `exit`: the documented exit statuses;
//! - `telemetry`: tracing set-up;
//! - `calendar`, `payday`, `clock`: banking days, pay dates and send windows, the injectable clock;
//! - `money`: integer cents, their strict parse, and every cents-to-text conversion;
//! - `payout`: payout states, Dwolla's transfer status and the one transition function;
//! - `ledger`: all SQL, the migrations and the single-writer lock; `ledger::engine` the
//!   interfaces both engines implement, `ledger::postgres` the PostgreSQL one (row claims,
//!   workers and leases, COPY ingest);
//! - `ingest`: CSV payout files into the ledger, validated, all or nothing;
//! - `secret`: a string type that never prints;
//! - `names`: file names as printed and logged, control characters escaped;
//! - `signature`: webhook HMAC signing and verification;
//! - `config`: the configuration file and its layering under environment and flags;
//! - `dwolla`: the Dwolla Connect API client, its wire types, throttle and list paging;
//! - `sender`: `payrun send`, every due payout to Dwolla exactly once; `sender::fleet` a
//!   worker's heartbeat and share of the rate limit on a PostgreSQL ledger;
//! - `inbox`, `operate`, `plan`: the drop folder, unattended cycles (`run`, `watch`), dry runs;
//! - `onboard`: the Connect resources from the command line, and the payee directory;
//! - `drop_in`: `POST /client-tokens` for Dwolla's drop-in components;
//! - `report`: reports finance signs off (CSV, JSON, HTML) and reconciliation against Dwolla;
//! - `tracking`: following sent transfers to their end (polls, spooled webhook events);
//! - `webhooks`: `serve`, the webhook receiver, and webhook subscriptions;
//! - `demo`: `payrun demo`, the whole job end to end against the simulator in process;
//! - `failure`, `fixtures`: what a failure code means for the next payment; generated files;
//! - `listener`: the accept loop of every public HTTP endpoint, with header and body deadlines
//!   and a connection cap;
//! - `sim`: the local Dwolla Connect simulator, a black box that imports nothing of payrun's
//!   ledger, sender or tracking (HTTP in `sim::http`, state in `sim::state` and `sim::store`).

pub mod calendar;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod drop_in;
pub mod dwolla;
pub mod exit;
pub mod failure;
pub mod fixtures;
pub mod inbox;
pub mod ingest;
pub mod ledger;
pub mod listener;
pub mod money;
pub mod names;
pub mod onboard;
pub mod operate;
pub mod payday;
pub mod payout;
pub mod plan;
pub mod report;
pub mod secret;
pub mod sender;
pub mod signature;
pub mod sim;
pub mod telemetry;
pub mod tracking;
pub mod webhooks;
