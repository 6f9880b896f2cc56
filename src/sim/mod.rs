//! A local Dwolla Connect simulator (issue 3): the Connect API over real HTTP, in memory, with
//! fault injection, its own clock, a transfer lifecycle and signed webhooks.
//!
//! It is a black box to the rest of payrun: it imports only `signature` (to sign webhooks) and
//! `secret` (so secrets never print). Tests run it in-process with [`spawn`]; `payrun sim` runs
//! it standalone through [`serve`].
//!
//! # Layout, in import order (each file imports only files below it; none imports this one)
//! - this `mod.rs`: the public API ([`SimHandle`], [`spawn`], [`serve`]) and `payrun sim`;
//! - `http/`: the HTTP side, itself in import order: `server` (the accept loop, which can close
//!   a connection without a response for the drop fault), `router` (every route in one table),
//!   `pipeline` (what every request passes through: request id, statistics, rate limit,
//!   injected faults, `Accept` and bearer-token checks, Idempotency-Key handling), one handler
//!   file per resource family (`token`, `accounts` and treasury, `parties`, `funding_sources`,
//!   `exchanges`, `transfers`, `webhooks` with events, `client_tokens`, `control` for
//!   `/_sim/*`), and the helpers they share: `respond`, `extract`, `paging`;
//! - `engine`: moves transfers along on the simulator's clock and delivers webhooks;
//! - `state/`: the lock-protected shared state (`shared`), and what acts on it: `admission`
//!   (rate limit and faults), `tokens`, `idempotency`, `inspect` (statistics, clock, transfers);
//! - `seed`: the fixed ids every start has;
//! - `store/`: the resources (records and indexes in `tables`), one file per resource family:
//!   `accounts` (and treasury), `parties`, `funding_sources`, `exchanges`, `transfers` (and the
//!   lifecycle), `webhooks` (events and deliveries), `client_tokens`; `page` for lists;
//! - `config` (public settings and reports), `validate`, `failures`, `error`, `clock`: pure
//!   helpers.
//!
//! # Choices where Dwolla documents nothing (also in README)
//! - Idempotency-Key reused with a different method, path or body (after the first request
//!   finished, within 24 h): **400 ValidationError** naming the key reuse; nothing is created.
//!   Dwolla only says the key deduplicates "the same key and request body"; silently creating
//!   a second transfer is the dangerous outcome for a payout worker, and a replay of a
//!   different request would hide a client bug, so the simulator refuses loudly. While the
//!   first request is in flight any reuse gets 409 `Conflict`. Only 2xx outcomes are
//!   remembered: a request refused with 4xx/5xx created nothing, so its key is free again.
//! - Webhook topics: `transfer:created|pending|processed|failed|returned`,
//!   `external_party:created`, `funding_source:created|removed` and
//!   `external_party.funding_source:created|removed`, the list in Dwolla's Connect
//!   webhook-events page (the sandbox table's `account.transfer:*` form is not used).
//! - The clock: real time plus an offset (`POST /_sim/advance`); tokens, keys, the lifecycle
//!   and webhook retries all follow it.

mod clock;
mod config;
mod engine;
mod error;
mod failures;
mod http;
mod seed;
mod state;
mod store;
mod validate;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use tokio::net::TcpListener;

pub use config::{DEFAULT_KEY, DEFAULT_SECRET, Faults, SimConfig, SimStats, SimTransfer};
pub use seed::{
    ACCOUNT_ID, SOURCE_FUNDING_SOURCE_ID, TREASURY_ACCOUNT_ID, UNLINKED_FUNDING_SOURCE_ID,
};
use state::Shared;
use state::inspect;

/// A running simulator.
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("base_url", &self.shared.base_url)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn key(&self) -> &str {
        &self.shared.config.key
    }

    pub fn secret(&self) -> &str {
        self.shared.config.secret.expose()
    }

    pub fn account_id(&self) -> &str {
        ACCOUNT_ID
    }

    /// The full URL of the seeded source funding source.
    pub fn source_funding_source(&self) -> String {
        format!(
            "{}/funding-sources/{SOURCE_FUNDING_SOURCE_ID}",
            self.base_url()
        )
    }

    /// The full URL of seeded external party `n`'s funding source (`n` in 1..=13).
    pub fn party_funding_source(&self, n: u8) -> String {
        format!(
            "{}/funding-sources/{}",
            self.base_url(),
            seed::party_funding_source_id(n)
        )
    }

    /// The full URL of seeded external party `n` (`n` in 1..=13).
    pub fn external_party(&self, n: u8) -> String {
        format!(
            "{}/external-parties/{}",
            self.base_url(),
            seed::external_party_id(n)
        )
    }

    pub fn stats(&self) -> SimStats {
        inspect::stats(&self.shared)
    }

    pub fn faults(&self) -> Faults {
        self.shared.with(|st, _| st.faults.clone())
    }

    pub fn set_faults(&self, faults: Faults) {
        self.shared.with(|st, _| st.faults = faults);
    }

    /// Moves the simulator's clock forward and applies every lifecycle step now due.
    pub fn advance_clock(&self, by: Duration) {
        inspect::advance(&self.shared, by);
    }

    pub fn transfers(&self) -> Vec<SimTransfer> {
        inspect::sim_transfers(&self.shared)
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds 127.0.0.1 on a free port and serves in a tokio task until [`SimHandle::shutdown`].
pub async fn spawn(config: SimConfig) -> anyhow::Result<SimHandle> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shared = build(config, addr);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(http::run(listener, shared.clone(), async move {
        let _ = rx.await;
    }));
    Ok(SimHandle {
        shared,
        addr,
        shutdown: Some(tx),
        task,
    })
}

/// Serves on an already-bound listener until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: SimConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let shared = build(config, addr);
    http::run(listener, shared, shutdown).await
}

/// The URL clients use for `addr` (an unspecified address is reached on 127.0.0.1), as the
/// simulator builds it for its own links.
pub fn base_url_for(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        match addr.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            std::net::IpAddr::V4(v4) => v4.to_string(),
        }
    };
    format!("http://{ip}:{}", addr.port())
}

fn build(config: SimConfig, addr: SocketAddr) -> Arc<Shared> {
    let base_url = base_url_for(addr);
    let store_config = store::StoreConfig {
        settle: config.settle,
        webhook_time_scale: config.webhook_time_scale,
        webhook_duplicate_rate: config.webhook_duplicate_rate,
        webhook_reorder_rate: config.webhook_reorder_rate,
        webhook_reorder_delay: config.webhook_reorder_delay,
        webhook_auto_pause_failures: config.webhook_auto_pause_failures,
    };
    let mut store = store::Store::new(
        base_url.clone(),
        store_config,
        rand::rngs::StdRng::seed_from_u64(config.seed),
        store::Account {
            id: seed::id(ACCOUNT_ID),
            name: seed::ACCOUNT_NAME.to_string(),
            created: clock::SimTime(1_736_175_600_000),
        },
    );
    seed::seed(&mut store);
    Shared::new(config, base_url, store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let config = SimConfig {
            secret: crate::secret::Secret::new("top-secret-value"),
            ..SimConfig::new()
        };
        assert!(!format!("{config:?}").contains("top-secret-value"));
    }

    #[test]
    fn holds_100k_transfers_and_pages_them_without_scanning() {
        let shared = build(
            SimConfig {
                settle: Duration::from_secs(3600),
                ..SimConfig::new()
            },
            "127.0.0.1:1".parse().unwrap(),
        );
        let source = seed::id(SOURCE_FUNDING_SOURCE_ID);
        shared.with(|st, now| {
            for i in 0..100_000u32 {
                let dest = seed::party_funding_source_id((i % 8 + 1) as u8);
                st.store.add_transfer(
                    source,
                    dest,
                    1_000 + i64::from(i),
                    Some(format!("c-{}", i % 50_000)),
                    None,
                    None,
                    now,
                );
            }
        });
        let started = Instant::now();
        shared.with(|st, _| {
            let s = &st.store;
            let seqs = s.transfers_for_correlation("c-7");
            let p = store::page(|i| seqs[i], seqs.len(), 25, None);
            assert_eq!(p.items, vec![50_007, 7]);
            // The oldest page of the unfiltered list, reached by cursor.
            let p = store::page(|i| i as u32, s.transfers.len(), 200, Some(150));
            assert_eq!(p.items.len(), 150);
            assert_eq!(p.next, None);
            let party = seed::external_party_id(3);
            let seqs = s.transfers_for_party(party);
            assert_eq!(seqs.len(), 12_500);
            let p = store::page(|i| seqs[i], seqs.len(), 200, Some(seqs[100]));
            assert_eq!(p.items.len(), 100);
            for &i in &p.items {
                assert_eq!(s.transfers[i as usize].party, party);
            }
        });
        // Index lookups, not scans: far below what one scan of 100,000 transfers costs.
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "{:?}",
            started.elapsed()
        );
    }
}
