//! A local Dwolla Connect simulator (issue 3). Placeholder until the simulator lands.

use clap::Args;

/// Flags of `payrun sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
}

pub fn run_cli(_args: SimArgs) -> anyhow::Result<()> {
    anyhow::bail!("the simulator is not built yet")
}
