//! `payrun demo`: the whole job end to end against the built-in simulator.

use std::path::PathBuf;

use clap::Args;

use super::runtime::runtime;
use crate::demo::DemoLedger;
use crate::exit;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to put the demo's ledger, inbox and reports [default: a new folder in the
    /// system's temporary directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Runs the demo with its ledger in `ledger`: a file in its folder, or a scratch schema in the
/// PostgreSQL database that `--ledger` names.
pub(super) fn run(args: &DemoArgs, ledger: DemoLedger) -> anyhow::Result<u8> {
    let dir = args.dir.clone().unwrap_or_else(|| {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        std::env::temp_dir().join(format!("payrun-demo-{stamp}-{}", std::process::id()))
    });
    let outcome = runtime()?.block_on(crate::demo::run(dir, ledger))?;
    print!("{}", crate::demo::render(&outcome));
    Ok(if outcome.summary.ties_out() {
        exit::OK
    } else {
        exit::ATTENTION
    })
}
