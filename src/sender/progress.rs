//! What a person sees while `payrun send` works: a progress bar on a terminal, a log line every
//! few seconds otherwise (cron, CI, a log shipper).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::dwolla::Client;

/// Live counts, updated by the sender and read by the display.
#[derive(Debug, Default)]
pub struct Counters {
    pub claimed: AtomicU64,
    pub created: AtomicU64,
    pub refused: AtomicU64,
    pub needs_review: AtomicU64,
    pub deferred: AtomicU64,
    pub retrying: AtomicU64,
    pub in_flight: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// A bar when stderr is a terminal, else log lines.
    Auto,
    LogLines,
    Off,
}

pub struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
    bar: Option<indicatif::ProgressBar>,
}

const LOG_EVERY: Duration = Duration::from_secs(5);

pub fn start(display: Display, counters: Arc<Counters>, client: Client) -> Progress {
    let use_bar = display == Display::Auto && std::io::stderr().is_terminal();
    if display == Display::Off {
        return Progress {
            task: None,
            bar: None,
        };
    }
    let bar = use_bar.then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar
    });
    let drawn = bar.clone();
    let task = tokio::spawn(async move {
        let started = Instant::now();
        let tick = if drawn.is_some() {
            Duration::from_millis(200)
        } else {
            LOG_EVERY
        };
        loop {
            tokio::time::sleep(tick).await;
            let line = summary_line(&counters, &client, started.elapsed());
            match &drawn {
                Some(bar) => bar.set_message(line),
                None => tracing::info!("{line}"),
            }
        }
    });
    Progress {
        task: Some(task),
        bar,
    }
}

fn summary_line(counters: &Counters, client: &Client, elapsed: Duration) -> String {
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let stats = client.throttle_stats();
    let rate = stats.requests_started as f64 / elapsed.as_secs_f64().max(0.001);
    let paused = stats.paused_for.map_or(String::new(), |left| {
        format!(", paused {:.1}s after a 429", left.as_secs_f64())
    });
    format!(
        "sent {} of {} claimed, {} retrying, {} rejected, {} need review, {:.0} req/s{paused}",
        load(&counters.created),
        load(&counters.claimed),
        load(&counters.retrying),
        load(&counters.refused),
        load(&counters.needs_review),
        rate
    )
}

impl Progress {
    pub fn finish(self) {
        if let Some(task) = self.task {
            task.abort();
        }
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
