//! `corekv bench` and `corekv report` command lines (being written).

use clap::{Args, Subcommand};

/// `corekv bench` arguments.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Comma-separated node addresses.
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub hosts: String,
}

/// `corekv report` subcommands.
#[derive(Subcommand, Debug)]
pub enum ReportCmd {
    /// Merge client reports.
    Merge {
        /// Report files.
        files: Vec<String>,
    },
}

/// Runs `corekv bench`.
pub fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("corekv bench is not built yet")
}

/// Runs `corekv report`.
pub fn report(_cmd: ReportCmd) -> anyhow::Result<()> {
    anyhow::bail!("corekv report is not built yet")
}
