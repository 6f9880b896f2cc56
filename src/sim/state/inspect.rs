//! Inspection (the `/_sim/*` views and [`SimHandle`](crate::sim::SimHandle)'s methods):
//! statistics, every transfer as the simulator holds it, and moving the clock forward.
//!
//! Must not touch: fault settings (callers set `State::faults` directly) or HTTP.

use std::time::Duration;

use super::shared::Shared;
use crate::sim::config::{SimStats, SimTransfer};
use crate::sim::validate::format_cents;

pub fn stats(sim: &Shared) -> SimStats {
    sim.with(|st, _| {
        let mut stats = st.stats.clone();
        stats.events = st.store.events.len() as u64;
        stats
    })
}

pub fn advance(sim: &Shared, by: Duration) {
    sim.clock.advance(by);
    // Apply the steps now due before returning, so the caller sees them at once.
    sim.with(|_, _| {});
    sim.wake.notify_one();
}

pub fn sim_transfers(sim: &Shared) -> Vec<SimTransfer> {
    sim.with(|st, _| {
        st.store
            .transfers
            .iter()
            .map(|t| SimTransfer {
                id: t.id.to_string(),
                amount: format_cents(t.cents),
                source_funding_source: t.source_fs.to_string(),
                destination_funding_source: t.dest_fs.to_string(),
                correlation_id: t.correlation_id.clone(),
                metadata: t.metadata.clone(),
                status: t.status.as_str().to_string(),
                failure_code: t.failure_code.clone(),
                idempotency_key: t.idempotency_key.clone(),
                created: t.created.iso(),
            })
            .collect()
    })
}
