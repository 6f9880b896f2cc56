//! `payrun sim`: the local Dwolla Connect simulator, standalone.

use std::time::Duration;

use clap::Args;
use tokio::net::TcpListener;

use super::runtime::{runtime, wait_for_signal};
use crate::secret::Secret;
use crate::sim::{ACCOUNT_ID, DEFAULT_KEY, DEFAULT_SECRET, SOURCE_FUNDING_SOURCE_ID, SimConfig};

/// Flags of `payrun sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on (port 0 picks a free port; the JSON line says which).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Client key accepted by POST /token.
    #[arg(long, env = "PAYRUN_SIM_KEY", default_value = DEFAULT_KEY)]
    pub key: String,
    /// Client secret accepted by POST /token.
    #[arg(long, env = "PAYRUN_SIM_SECRET", default_value = DEFAULT_SECRET, hide_env_values = true, hide_default_value = true)]
    pub secret: Secret,
    /// Access-token lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_ttl: u64,
    /// Simulated milliseconds between lifecycle steps (created -> pending -> processed).
    #[arg(long, default_value_t = 1000)]
    pub settle_ms: u64,
    /// Added latency per API response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Random extra latency, uniform in 0..=N milliseconds.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// Requests per second (sliding one-second window); beyond it 429 TooManyRequests.
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// After the limit trips, answer 429 to everything for this many milliseconds.
    #[arg(long)]
    pub rate_limit_penalty_ms: Option<u64>,
    /// Send Retry-After on 429 (Dwolla documents none).
    #[arg(long)]
    pub retry_after: bool,
    /// Share of requests answered 429 TooManyRequests without effect, whatever the rate (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Share of requests answered 500 ServerError without effect (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share of requests that take effect and then lose the connection with no response (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Share of requests that take effect and whose response is held back (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub timeout_rate: f64,
    /// How long the timeout fault holds a response, in milliseconds.
    #[arg(long, default_value_t = 65_000)]
    pub timeout_hold_ms: u64,
    /// Seed for ids and fault draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Divide Dwolla's webhook retry schedule (15 min ... 72 h) by this.
    #[arg(long, default_value_t = 900.0)]
    pub webhook_time_scale: f64,
    /// Share of delivered webhooks sent a second time (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub webhook_duplicate_rate: f64,
    /// Share of webhooks delayed so that later events may arrive first (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub webhook_reorder_rate: f64,
    /// Per-transfer limit in dollars.
    #[arg(long, default_value_t = 10_000)]
    pub max_amount: u64,
    /// Round amounts with more than two decimals (banker's rounding) instead of refusing them.
    #[arg(long)]
    pub bankers_rounding: bool,
}

impl SimArgs {
    pub fn config(&self) -> SimConfig {
        SimConfig {
            key: self.key.clone(),
            secret: self.secret.clone(),
            token_ttl: Duration::from_secs(self.token_ttl),
            settle: Duration::from_millis(self.settle_ms),
            latency: Duration::from_millis(self.latency_ms),
            jitter: Duration::from_millis(self.jitter_ms),
            rate_limit: self.rate_limit,
            rate_limit_penalty: self.rate_limit_penalty_ms.map(Duration::from_millis),
            retry_after: self.retry_after,
            throttle_rate: self.throttle_rate,
            error_rate: self.error_rate,
            drop_rate: self.drop_rate,
            timeout_rate: self.timeout_rate,
            timeout_hold: Duration::from_millis(self.timeout_hold_ms),
            seed: self.seed,
            webhook_time_scale: self.webhook_time_scale,
            webhook_duplicate_rate: self.webhook_duplicate_rate,
            webhook_reorder_rate: self.webhook_reorder_rate,
            max_amount_cents: i64::try_from(self.max_amount.saturating_mul(100))
                .unwrap_or(i64::MAX),
            bankers_rounding: self.bankers_rounding,
            ..SimConfig::new()
        }
    }
}

/// `payrun sim`: prints one JSON line with what a client needs, then serves until SIGINT or
/// SIGTERM.
pub(super) fn run(args: SimArgs) -> anyhow::Result<()> {
    let config = args.config();
    for (name, rate) in [
        ("--throttle-rate", config.throttle_rate),
        ("--error-rate", config.error_rate),
        ("--drop-rate", config.drop_rate),
        ("--timeout-rate", config.timeout_rate),
        ("--webhook-duplicate-rate", config.webhook_duplicate_rate),
        ("--webhook-reorder-rate", config.webhook_reorder_rate),
    ] {
        anyhow::ensure!(
            (0.0..=1.0).contains(&rate),
            "{name} must be between 0 and 1"
        );
    }
    anyhow::ensure!(
        config.webhook_time_scale > 0.0,
        "--webhook-time-scale must be positive"
    );
    runtime()?.block_on(async move {
        let listener = TcpListener::bind(&args.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
        let base_url = crate::sim::base_url_for(listener.local_addr()?);
        let line = serde_json::json!({
            "base_url": base_url,
            "key": config.key,
            "secret": config.secret.expose(),
            "account_id": ACCOUNT_ID,
            "source_funding_source": format!("{base_url}/funding-sources/{SOURCE_FUNDING_SOURCE_ID}"),
        });
        {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{line}")?;
            stdout.flush()?;
        }
        tracing::info!(%base_url, "simulator listening");
        crate::sim::serve(listener, config, wait_for_signal()).await
    })
}
