//! The workers sending from one PostgreSQL ledger: each registers, renews its lease with a
//! heartbeat (the lease of every payout it claimed), and learns from it how many share Dwolla's
//! rate limit and how slow the most throttled of them is going.

use super::PgLedger;
use crate::ledger::Result;

/// A worker's id in the `workers` table and on the payouts it claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerId(pub uuid::Uuid);

impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What a heartbeat learns about the workers alive now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FleetShare {
    /// Live workers, this one included: each takes 1/n of the application's rate.
    pub live_workers: u32,
    /// The lowest rate factor any live worker reports (1 = full rate; a 429 lowers it).
    pub rate_factor: f64,
    /// How long until every other live worker's next heartbeat is due (and so until all of
    /// them count this one); zero when none is.
    pub others_beat_within: std::time::Duration,
}

impl PgLedger {
    /// Registers this process as a worker with a fresh id and a lease.
    pub fn join_as_worker(&mut self) -> Result<WorkerId> {
        let id = WorkerId(uuid::Uuid::new_v4());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let pid = std::process::id() as i32;
        let (lease, every) = (self.lease_ms(), self.heartbeat_ms());
        self.block(self.client.execute(
            "INSERT INTO workers (id, host, pid, lease_until, next_heartbeat_by)
             VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond',
                     now() + $5 * interval '1 millisecond')",
            &[&id.0, &host, &pid, &lease, &every],
        ))?;
        self.worker = Some(id);
        Ok(id)
    }

    pub(super) fn worker_or_error(&self) -> Result<uuid::Uuid> {
        self.worker
            .map(|worker| worker.0)
            .ok_or_else(|| self.invalid("this connection has not joined as a worker".into()))
    }

    pub(super) fn lease_ms(&self) -> f64 {
        self.leases.lease.as_secs_f64() * 1000.0
    }

    pub(super) fn heartbeat_ms(&self) -> f64 {
        self.leases.heartbeat.as_secs_f64() * 1000.0
    }

    /// Renews this worker's lease (which is its claimed payouts' lease too: no payout row is
    /// touched, so a heartbeat never waits on the sender's locks), publishes its rate factor,
    /// and returns the share of the rate it may use.
    pub fn heartbeat(&mut self, rate_factor: f64) -> Result<FleetShare> {
        let worker = self.worker_or_error()?;
        let (lease, every) = (self.lease_ms(), self.heartbeat_ms());
        let factor = rate_factor.clamp(0.01, 1.0);
        let row = self.block(async {
            self.client
                .execute(
                    "INSERT INTO workers (id, host, pid, lease_until, rate_factor, next_heartbeat_by)
                     VALUES ($1, 'unknown', 0, now() + $2 * interval '1 millisecond', $3,
                             now() + $4 * interval '1 millisecond')
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(),
                         lease_until = excluded.lease_until, rate_factor = excluded.rate_factor,
                         next_heartbeat_by = excluded.next_heartbeat_by",
                    &[&worker, &lease, &factor, &every],
                )
                .await?;
            self.client
                .query_one(
                    "SELECT count(*), coalesce(min(rate_factor), 1),
                            coalesce(extract(epoch FROM max(next_heartbeat_by)
                                FILTER (WHERE id != $1) - now()), 0)::float8
                     FROM workers WHERE lease_until > now()",
                    &[&worker],
                )
                .await
        })?;
        let others: f64 = row.get(2);
        Ok(FleetShare {
            live_workers: (row.get::<_, i64>(0) as u32).max(1),
            rate_factor: row.get(1),
            others_beat_within: std::time::Duration::from_secs_f64(others.max(0.0)),
        })
    }

    /// Leaves the fleet: the worker's row goes, and its claims are released, so that another
    /// worker may take what it left in doubt at once rather than after the lease.
    pub fn leave(&mut self) -> Result<()> {
        let worker = self.worker_or_error()?;
        self.block(async {
            self.client
                .execute(
                    "UPDATE payouts SET claimed_by = NULL
                     WHERE claimed_by = $1 AND state = 'submitting'",
                    &[&worker],
                )
                .await?;
            self.client
                .execute("DELETE FROM workers WHERE id = $1", &[&worker])
                .await?;
            // Workers dead for a day are history nobody reads.
            self.client
                .execute(
                    "DELETE FROM workers WHERE lease_until < now() - interval '1 day'",
                    &[],
                )
                .await
        })?;
        self.worker = None;
        Ok(())
    }
}
