//! Several workers on one PostgreSQL ledger: this process's registration, its heartbeat, and
//! its share of Dwolla's per-application rate limit.
//!
//! Each heartbeat renews the worker's lease (and its claimed payouts'), publishes its own
//! congestion factor, and learns how many workers are live and the lowest factor among them:
//! this process then starts at most R / live workers requests in any second, paced down to
//! that factor, so N workers together never exceed R and a 429 at one slows them all. A
//! worker that joins waits until every other live worker's next heartbeat is due (so that all
//! have counted it) before it sends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::with_ledger;
use crate::dwolla::Client;
use crate::ledger::LateBatch;
use crate::ledger::postgres::{FleetShare, PgLedger};

/// This process's membership of the fleet, from [`Fleet::join`] to [`Fleet::leave`].
pub struct Fleet {
    heartbeat: Arc<Mutex<PgLedger>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Fleet {
    /// Registers `ledger`'s connection as a worker, takes its first share of the rate, and
    /// starts the heartbeat on a second connection. Call inside the runtime.
    pub async fn join(ledger: &mut PgLedger, client: &Client) -> anyhow::Result<Fleet> {
        let worker = ledger.join_as_worker()?;
        let every = ledger.leases().heartbeat;
        let heartbeat = Arc::new(Mutex::new(ledger.reconnect()?));
        let share = beat(&heartbeat, client).await?;
        tracing::info!(
            %worker,
            live_workers = share.live_workers,
            "joined the workers of this ledger; each takes its share of the rate limit"
        );
        if !share.others_beat_within.is_zero() {
            // The others learn of us at their next heartbeat; until then they may still be
            // using our part of the rate. A dead worker's beat is past: it is not waited for.
            let margin = Duration::from_millis(100);
            tokio::time::sleep(share.others_beat_within + margin).await;
            beat(&heartbeat, client).await?;
        }
        let (stop, stopping) = watch::channel(false);
        let task = tokio::spawn(keep_beating(
            heartbeat.clone(),
            client.clone(),
            every,
            stopping,
        ));
        Ok(Fleet {
            heartbeat,
            stop,
            task,
        })
    }

    /// Stops the heartbeat, leaves the fleet (releasing any claim left, so that another worker
    /// may take it at once), and notes the sent dates of the batches sent.
    pub async fn leave(self, now: String) -> anyhow::Result<Vec<LateBatch>> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        with_ledger(&self.heartbeat, |l| l.leave()).await?;
        with_ledger(&self.heartbeat, move |l| l.note_sent_batches(&now)).await
    }
}

/// One heartbeat: renews the leases, and sets the client's share.
async fn beat(heartbeat: &Arc<Mutex<PgLedger>>, client: &Client) -> anyhow::Result<FleetShare> {
    let factor = client.congestion_factor();
    let share = with_ledger(heartbeat, move |l| l.heartbeat(factor)).await?;
    client.set_fleet_share(share.live_workers, share.rate_factor);
    Ok(share)
}

async fn keep_beating(
    heartbeat: Arc<Mutex<PgLedger>>,
    client: Client,
    every: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopping.changed() => return,
        }
        if let Err(error) = beat(&heartbeat, &client).await {
            // The claims hold until the lease passes; a ledger that stays away fails the
            // sender's own commits, which ends the run.
            tracing::warn!("heartbeat failed: {error:#}");
        }
    }
}
