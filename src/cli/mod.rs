//! Command-line definitions and dispatch.

mod info;

use clap::{Parser, Subcommand};

/// ModernBERT on any GPU: fill-mask, embeddings, classification, benchmarks.
#[derive(Parser, Debug)]
#[command(name = "wgbert", version, about, long_about = None)]
pub struct Cli {
    /// Graphics backend(s): vulkan, metal, dx12, gl (comma-separated).
    #[arg(long, global = true, env = "WGPU_BACKEND")]
    pub backend: Option<String>,
    /// Use the first adapter whose name contains this.
    #[arg(long, global = true, env = "WGPU_ADAPTER_NAME")]
    pub adapter: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List GPU adapters with their features and limits.
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Info { json } => info::run(cli.backend.as_deref(), json),
    }
}
