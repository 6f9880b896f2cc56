//! The command line: flags, subcommands, and the mapping from outcomes to exit statuses.
//! Each subcommand is one call into the library; no business rule lives here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit;
use crate::telemetry::{self, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "payrun",
    version,
    about = "Durable payout batch worker for Dwolla Connect"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// More log detail (repeatable).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less log detail (repeatable).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the local Dwolla Connect simulator.
    Sim(crate::sim::SimArgs),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return exit::code(if err.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let verbosity = (cli.verbose as i8).saturating_sub(cli.quiet as i8);
    telemetry::init(cli.log_format, verbosity);
    let result = match cli.command {
        Command::Sim(args) => crate::sim::run_cli(args).map(|()| exit::OK),
    };
    match result {
        Ok(status) => exit::code(status),
        Err(err) => {
            eprintln!("payrun: error: {err:#}");
            exit::code(exit::INTERNAL)
        }
    }
}
