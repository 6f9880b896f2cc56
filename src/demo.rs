//! `payrun demo`: the whole job, end to end, on one machine, in seconds. It starts the
//! simulator in this process, drops `samples/payroll.csv` into a fresh inbox, runs one
//! unattended cycle (ingest, send), receives Dwolla's signed webhooks on a real local
//! endpoint, tracks every transfer to settlement on the simulator's fast clock (including two
//! late ACH returns), and writes the CSV, JSON and HTML reports.
//!
//! It uses the same library calls as `run`, `serve` and `track`; only the clock is the
//! simulator's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::InboxDirs;
use crate::dwolla::wire::CreateWebhookSubscription;
use crate::dwolla::{Client, DwollaConfig};
use crate::ingest::{IngestOptions, row::Limits};
use crate::ledger::postgres::{PgLedger, ScratchSchema};
use crate::ledger::{
    self, BatchSelection, CycleLedger, Ledger, LedgerPlace, ReportLedger, TrackLedger,
};
use crate::money::Cents;
use crate::operate::{Cycle, run_cycle};
use crate::report::summary::Summary;
use crate::secret::Secret;
use crate::sender::fleet::Fleet;
use crate::sender::{SendConfig, progress::Display};
use crate::sim::{SimConfig, SimHandle};
use crate::tracking::{self, TrackConfig, TrackOptions};
use crate::webhooks::{self, ServeConfig};

/// The sample the demo pays: 50 payees the simulator knows, five of them set to fail or to be
/// returned after settling.
const PAYROLL: &[u8] = include_bytes!("../samples/payroll.csv");

/// What the demo did, for its closing summary and for tests.
#[derive(Debug)]
pub struct DemoOutcome {
    pub dir: PathBuf,
    pub reports: Vec<PathBuf>,
    pub summary: Summary,
    pub events_applied: u64,
    pub poll_requests: u64,
    pub transfers_at_dwolla: usize,
    pub elapsed: Duration,
}

/// Where the demo keeps its ledger.
#[derive(Debug, Clone)]
pub enum DemoLedger {
    /// A new SQLite file in the demo's folder.
    File,
    /// A schema of its own in the PostgreSQL database at this URL, dropped at the end, so
    /// that the sample payroll never mixes with a real ledger's batches.
    Postgres(String),
}

/// Runs the demo in `dir` (created; reports stay there afterwards).
pub async fn run(dir: PathBuf, ledger: DemoLedger) -> anyhow::Result<DemoOutcome> {
    let started = Instant::now();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create {}", crate::names::shown(&dir)))?;
    let settle = Duration::from_secs(1);
    let sim = crate::sim::spawn(SimConfig {
        settle,
        ..SimConfig::new()
    })
    .await?;
    let demo = Demo {
        dir: &dir,
        sim: &sim,
        settle,
        started,
    };
    let result = demo.run_on(ledger).await;
    sim.shutdown().await;
    result
}

/// One demo's folder, simulator and clock.
struct Demo<'a> {
    dir: &'a Path,
    sim: &'a SimHandle,
    settle: Duration,
    started: Instant,
}

impl Demo<'_> {
    async fn run_on(&self, ledger: DemoLedger) -> anyhow::Result<DemoOutcome> {
        let dirs = InboxDirs::new(&self.dir.join("inbox"), &Default::default());
        crate::inbox::create_dirs(&dirs)?;
        std::fs::write(dirs.inbox.join("payroll.csv"), PAYROLL)?;
        println!("payrun demo in {}", crate::names::shown(self.dir));
        println!("  simulator (Dwolla Connect) at {}", self.sim.base_url());
        let client = sim_client(self.sim)?;
        match ledger {
            DemoLedger::File => {
                let path = self.dir.join("payrun.db");
                let ledger = Ledger::open_writer(&path)?;
                self.pay_and_follow(ledger, &LedgerPlace::File(path), &client, &dirs)
                    .await
            }
            DemoLedger::Postgres(url) => self.on_postgres(&url, &client, &dirs).await,
        }
    }

    /// The demo as one worker of a PostgreSQL ledger, in a scratch schema dropped at the end
    /// whatever happened.
    async fn on_postgres(
        &self,
        url: &str,
        client: &Client,
        dirs: &InboxDirs,
    ) -> anyhow::Result<DemoOutcome> {
        let scratch = ScratchSchema::create(url, "payrun_demo")?;
        println!(
            "  ledger: schema {} in {}, dropped at the end",
            scratch.name(),
            crate::ledger::postgres::shown_url(url)
        );
        let result = async {
            let mut ledger = PgLedger::open(scratch.url())?;
            let fleet = Fleet::join(&mut ledger, client).await?;
            let place = LedgerPlace::Postgres(scratch.url().to_string());
            let outcome = self.pay_and_follow(ledger, &place, client, dirs).await;
            let now = ledger::timestamp(time::OffsetDateTime::now_utc());
            fleet.leave(now).await?;
            outcome
        }
        .await;
        let name = scratch.name().to_string();
        match (result, scratch.drop_schema()) {
            (Ok(outcome), Ok(())) => Ok(outcome),
            (Ok(_), Err(error)) => {
                Err(anyhow::Error::from(error).context(format!("cannot drop schema {name}")))
            }
            (Err(error), dropped) => {
                if let Err(drop_error) = dropped {
                    tracing::warn!("schema {name} is left behind: {drop_error}");
                }
                Err(error)
            }
        }
    }

    /// Ingests and sends the sample in one unattended cycle, follows every transfer to its end
    /// by webhooks and polling, and writes the reports.
    async fn pay_and_follow<L: CycleLedger + ReportLedger>(
        &self,
        ledger: L,
        place: &LedgerPlace,
        client: &Client,
        dirs: &InboxDirs,
    ) -> anyhow::Result<DemoOutcome> {
        let webhooks = Webhooks::start(client, place).await?;
        println!("  webhooks arrive at {}", webhooks.url);

        let cycle = demo_cycle(self.sim, dirs);
        let (_stop, stopping) = tokio::sync::watch::channel(false);
        let (mut ledger, summary) = run_cycle(ledger, client, &cycle, &stopping).await;
        for line in summary?.lines() {
            println!("  {line}");
        }
        let tracked = self
            .settle_everything(&mut ledger, place, client, &cycle.track, &stopping)
            .await?;
        webhooks.stop().await?;

        let everything = BatchSelection {
            batch: None,
            received_since: None,
        };
        let (reports, summary) = crate::report::write_reports(&ledger, &everything, &dirs.reports)?;
        Ok(DemoOutcome {
            dir: self.dir.to_path_buf(),
            reports,
            summary,
            events_applied: tracked.events_applied,
            poll_requests: tracked.poll_requests,
            transfers_at_dwolla: self.sim.transfers().len(),
            elapsed: self.started.elapsed(),
        })
    }
}

/// A client for the simulator, with room to send the whole sample at once.
fn sim_client(sim: &SimHandle) -> anyhow::Result<Client> {
    Ok(Client::new(DwollaConfig {
        base_url: sim.base_url().to_string(),
        key: sim.key().to_string(),
        secret: Secret::new(sim.secret()),
        rate_per_second: 100,
        max_in_flight: 30,
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
    })?)
}

/// The webhook endpoint, on a real local port, subscribed at the simulator.
struct Webhooks {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Webhooks {
    async fn start(client: &Client, ledger: &LedgerPlace) -> anyhow::Result<Webhooks> {
        let secret = crate::webhooks::generate_secret();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!(
            "http://{}{}",
            listener.local_addr()?,
            webhooks::WEBHOOK_PATH
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(webhooks::serve(
            listener,
            ServeConfig {
                ledger: ledger.clone(),
                env_secret: Some(secret.clone()),
                limits: crate::listener::ConnectionLimits::standard(
                    webhooks::DEFAULT_MAX_BODY_BYTES,
                ),
                // This process holds the ledger; tracking applies the spooled events.
                applier: None,
                extra_routes: None,
            },
            async move {
                let _ = stopped.await;
            },
        ));
        client
            .create_webhook_subscription(
                &CreateWebhookSubscription {
                    url: url.clone(),
                    secret,
                },
                None,
            )
            .await
            .context("cannot subscribe to the simulator's webhooks")?;
        Ok(Webhooks { url, stop, serving })
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.serving.await.context("the webhook endpoint failed")?
    }
}

/// The unattended cycle `run` would do, on the simulator's fast clock.
fn demo_cycle(sim: &SimHandle, dirs: &InboxDirs) -> Cycle {
    let mut send = SendConfig::new(sim.source_funding_source(), 30);
    send.progress = Display::Off;
    let mut track = TrackConfig::standard();
    track.poll_unsettled_every = Duration::from_millis(500);
    track.poll_processed_every = Duration::from_millis(500);
    Cycle {
        dirs: Some(dirs.clone()),
        stable_for: Duration::ZERO,
        wait_for_settling: true,
        follow_up: "followed below as the simulator settles them",
        ingest: IngestOptions {
            allow_partial: false,
            limits: Limits {
                max_amount: Cents::new(1_000_000).expect("positive"),
            },
            max_errors_shown: 50,
            awaiting_approval: false,
            pay_dates: crate::ingest::PayDateRules::default(),
            repeat_guard: crate::ingest::RepeatGuard::default(),
        },
        send,
        track,
        settle_deadline: None,
        reports: dirs.reports.clone(),
        clock: crate::clock::Clock::wall(),
    }
}

/// What tracking did while the demo waited for settlement.
struct Tracked {
    events_applied: u64,
    poll_requests: u64,
}

impl Demo<'_> {
    /// Dwolla settles transfers over days; the simulator's clock does it in steps of `settle`.
    /// Each step fires webhooks, which `serve` spools and tracking applies, with polling as
    /// the backstop, until nothing is left to settle and the late returns have come in.
    async fn settle_everything<L: TrackLedger + Send>(
        &self,
        ledger: &mut L,
        place: &LedgerPlace,
        client: &Client,
        track: &TrackConfig,
        stopping: &tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<Tracked> {
        let mut tracked = Tracked {
            events_applied: 0,
            poll_requests: 0,
        };
        let mut quiet_steps = 0;
        for _ in 0..20 {
            self.sim.advance_clock(self.settle);
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut spool = place.existing_spool()?;
            let report = tracking::track(
                ledger,
                spool.as_deref_mut(),
                client,
                track,
                &TrackOptions::default(),
                stopping.clone(),
            )
            .await?;
            tracked.events_applied += report.events.n_applied;
            tracked.poll_requests += report.n_requests_polling;
            let moved: u64 = report.tally.moved_to.values().sum();
            quiet_steps = if moved == 0 && report.counts.n_unsettled == 0 {
                quiet_steps + 1
            } else {
                0
            };
            if quiet_steps >= 3 {
                break;
            }
        }
        Ok(tracked)
    }
}

/// The closing summary a person reads.
pub fn render(outcome: &DemoOutcome) -> String {
    let overall = &outcome.summary.overall;
    let mut out = String::new();
    out.push_str(&format!(
        "\nDone in {:.1} s: {} payouts, {} USD; {} transfers at Dwolla (one per payout).\n",
        outcome.elapsed.as_secs_f64(),
        overall.payouts,
        overall.total,
        outcome.transfers_at_dwolla
    ));
    out.push_str(&format!(
        "Followed to the end by {} webhook events and {} polling requests.\n\n",
        outcome.events_applied, outcome.poll_requests
    ));
    for line in overall.states.iter().filter(|line| line.count > 0) {
        out.push_str(&format!(
            "  {:<13} {:>4}  {:>14} USD\n",
            line.state.as_str(),
            line.count,
            line.total
        ));
    }
    let tie = &overall.tie_out;
    out.push_str(&format!(
        "\nTie-out: input {} USD = sum over states {} USD ({}).\n",
        tie.input_total,
        tie.sum_over_states,
        if outcome.summary.ties_out() {
            "ties out to the cent"
        } else {
            "DOES NOT TIE OUT"
        }
    ));
    if !outcome.summary.exceptions.is_empty() {
        out.push_str("\nNeeds a person:\n");
        for reason in &outcome.summary.exceptions {
            let code = reason.failure_code.as_deref().unwrap_or("-");
            out.push_str(&format!(
                "  {} x {} {} ({} USD): {}\n",
                reason.count,
                reason.state.as_str(),
                code,
                reason.total,
                reason.action
            ));
        }
    }
    out.push_str("\nReports:\n");
    for path in &outcome.reports {
        out.push_str(&format!("  {}\n", crate::names::shown(path)));
    }
    out
}
