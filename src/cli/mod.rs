//! Command-line definitions and dispatch.

mod bench;
mod bench_kernels;
mod csr;
mod embed;
mod embed_sparse;
mod info;
mod input;
mod kernels;
mod late;
mod output;
mod progress;
mod quantized;
mod rerank;
mod serve;
mod tasks;
mod tune;

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use wgbert::encoder::{Encoder, LoadOptions};
use wgbert::hub::HubOptions;
use wgbert::ops::DType;
use wgbert::runtime::GpuOptions;

/// ModernBERT on any GPU: fill-mask, embeddings, classification, serving, benchmarks.
#[derive(Parser, Debug)]
#[command(name = "wgbert", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command understands.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Model: a hub id (owner/name[@revision]) or a local directory.
    #[arg(
        long,
        global = true,
        default_value = "answerdotai/ModernBERT-base",
        env = "WGBERT_MODEL"
    )]
    pub model: String,
    /// tokenizer.json to use instead of the model's.
    #[arg(long, global = true)]
    pub tokenizer: Option<PathBuf>,
    /// Storage precision (default: f16 where the GPU has it, else f32).
    #[arg(long, global = true, value_enum)]
    pub dtype: Option<DTypeArg>,
    /// Graphics backend(s): vulkan, metal, dx12, gl (comma-separated).
    #[arg(long, global = true, env = "WGPU_BACKEND")]
    pub backend: Option<String>,
    /// Use the first adapter whose name contains this, or `#N`: the N-th adapter (from 0) of
    /// the chosen backends.
    #[arg(long, global = true, env = "WGPU_ADAPTER_NAME")]
    pub adapter: Option<String>,
    /// Never touch the network: use the hub cache or a local directory.
    #[arg(long, global = true)]
    pub offline: bool,
    /// Cut texts longer than the model's limit instead of refusing them.
    #[arg(long, global = true)]
    pub truncate: bool,
    /// Largest number of tokens in one GPU batch (default: sized to the device).
    #[arg(long, global = true)]
    pub max_tokens: Option<usize>,
    /// Largest storage binding to use: bytes, or a number with KiB, MiB or GiB. Only lowers
    /// the adapter's own limit; weights over it are held in row pieces (`info --model`
    /// lists them). Default: `WGBERT_MAX_BINDING`, else the adapter's limit.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_binding)]
    pub max_binding: Option<u64>,
    /// Print the encoder's recorded plan (steps, buffers, peak memory) on stderr.
    #[arg(long, global = true)]
    pub dump_plan: bool,
    /// No progress output on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Print where the time to the result went (load, self-check, compile, run, in seconds)
    /// and the device's counters (pipelines created, self-checks run, pipeline-cache bytes
    /// loaded) as one `timings: {json}` line on stderr.
    #[arg(long, global = true)]
    pub timings: bool,
    /// Whether `--model` (or `WGBERT_MODEL`) was given rather than defaulted.
    #[arg(skip)]
    pub model_given: bool,
}

impl Cli {
    /// Parses the command line (exiting with clap's message on a bad one), noting whether
    /// the model was named or is the default.
    pub fn parse_args() -> Cli {
        let matches = Cli::command().get_matches();
        let given = matches
            .value_source("model")
            .is_some_and(|s| s != ValueSource::DefaultValue);
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        cli.global.model_given = given;
        cli
    }
}

/// `--max-binding`: a size (`wgbert::runtime::parse_size`).
fn parse_binding(text: &str) -> Result<u64, String> {
    wgbert::runtime::parse_size(text).map_err(|e| e.to_string())
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DTypeArg {
    F16,
    F32,
}

impl From<DTypeArg> for DType {
    fn from(d: DTypeArg) -> DType {
        match d {
            DTypeArg::F16 => DType::F16,
            DTypeArg::F32 => DType::F32,
        }
    }
}

impl Global {
    /// The load options: the environment's (`LoadOptions::from_env`), then the flags.
    pub fn load_options(&self) -> anyhow::Result<LoadOptions> {
        let env = LoadOptions::from_env()?;
        Ok(LoadOptions {
            dtype: self.dtype.map(Into::into),
            gpu: GpuOptions {
                backend: self.backend.clone(),
                adapter: self.adapter.clone(),
                max_binding: self.max_binding.or(env.gpu.max_binding),
                ..env.gpu
            },
            hub: HubOptions {
                offline: self.offline || env.hub.offline,
                ..env.hub
            },
            tokenizer: self.tokenizer.clone(),
            truncate: self.truncate,
            max_batch_tokens: self.max_tokens,
            progress: progress::Bar::unless(self.quiet),
            ..env
        })
    }

    /// `--timings`: the time since `started` (before the load) split into the load's parts,
    /// plan compilation and the rest (running), with the device's counters.
    pub fn report_timings(&self, enc: &Encoder, started: std::time::Instant) {
        if !self.timings {
            return;
        }
        let t = enc.timings();
        let total = started.elapsed();
        let run = total.saturating_sub(t.load + t.self_check + t.compile);
        let line = serde_json::json!({
            "total_s": total.as_secs_f64(),
            "load_s": t.load.as_secs_f64(),
            "self_check_s": t.self_check.as_secs_f64(),
            "compile_s": t.compile.as_secs_f64(),
            "run_s": run.as_secs_f64(),
            "counters": enc.gpu().counters(),
            "pipeline_cache": enc.gpu().pipeline_cache_path(),
        });
        eprintln!("timings: {line}");
    }

    pub fn load(&self) -> anyhow::Result<Encoder> {
        let opts = self.load_options()?;
        let enc = Encoder::load(&self.model, &opts)?;
        if !self.quiet {
            let mib = enc.weight_bytes() >> 20;
            let (dtype, adapter) = (enc.dtype(), &enc.gpu().info().name);
            eprintln!("loaded {} ({mib} MiB, {dtype:?}) on {adapter}", self.model);
        }
        if self.dump_plan {
            eprintln!("{}", enc.describe_plan(enc.capacity())?);
        }
        Ok(enc)
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List GPU adapters with their features and limits; given a model (`--model`), also
    /// the device memory it holds once loaded and at its full batch capacity.
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Predict the tokens hidden behind [MASK] in each text.
    FillMask(tasks::FillMaskArgs),
    /// Embed texts (for retrieval / RAG / code search).
    Embed(embed::EmbedArgs),
    /// Sequence classification with a fine-tuned classifier.
    Classify(tasks::ClassifyArgs),
    /// Score documents against a query, best first (cross-encoder, bi-encoder or ColBERT).
    Rerank(rerank::RerankArgs),
    /// Throughput on the benchmark workloads, and kernel sweeps.
    Bench(bench::BenchArgs),
    /// Time every candidate tile configuration on this device and cache the fastest.
    Tune(tune::TuneArgs),
    /// Every kernel build the engine can make on the adapter; `--compile` creates each
    /// pipeline (no dispatch, no self-check, no tuning, no cache), its name on stderr first.
    Kernels(kernels::KernelsArgs),
    /// HTTP server: TEI and OpenAI embeddings APIs, rerank, predict, fill-mask.
    Serve(serve::ServeArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Info { json } => info::run(&cli.global, json),
        Command::FillMask(a) => tasks::fill_mask(&cli.global, &a),
        Command::Embed(a) => embed::run(&cli.global, &a),
        Command::Classify(a) => tasks::classify(&cli.global, &a),
        Command::Rerank(a) => rerank::run(&cli.global, &a),
        Command::Bench(a) => bench::run(&cli.global, &a),
        Command::Tune(a) => tune::run(&cli.global, &a),
        Command::Kernels(a) => kernels::run(&cli.global, &a),
        Command::Serve(a) => serve::run(&cli.global, &a),
    }
}
