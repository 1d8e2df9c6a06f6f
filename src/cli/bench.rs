//! `wgbert bench`: tokens/s, peak device memory and per-kernel GPU time on the benchmark
//! workloads (lists of sequence lengths, the same file format as the reference benchmark),
//! on a random-weight model of the real shapes or a given model; `--kernels` sweeps matmul
//! and attention shapes and prints TFLOP/s.
//!
//! Each workload starts from an encoder without plans (`Encoder::trim`) and the device's
//! peak reset, so its peak is its own: the device bytes counted by the runtime (weights,
//! the shared activation arena, the buckets' inputs and outputs), and per token of the
//! largest capacity bucket it used (the activations and plans, without the weights). The
//! JSON adds the peak an arena per capacity bucket would have held (the design before the
//! shared arena, `DeviceBytes::arena_per_bucket`), for comparison.
//! `--dry-run` builds the plans the workload needs without running them: the same memory
//! figures, no timing. A workload that cannot run on the adapter (a sequence over the
//! capacity, a buffer over the limits) is skipped and listed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use wgbert::encoder::Encoder;
use wgbert::model::config::ModelConfig;
use wgbert::runtime::{Gpu, Profile};
use wgbert::text::pack::Packer;

use super::Global;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Workloads file: {"name": [sequence lengths...], ...}.
    #[arg(long, default_value = "benches/workloads.json")]
    pub workloads: PathBuf,
    /// Only these workloads (comma-separated names).
    #[arg(long)]
    pub only: Option<String>,
    /// A random-weight model of the real shapes instead of --model (no download):
    /// ModernBERT base or large, or mmbert-base (base with a 256,000-token vocabulary).
    #[arg(long, value_parser = ["base", "large", "mmbert-base"])]
    pub random: Option<String>,
    /// Timed repetitions per workload (after one warm-up).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// One JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Sweep matmul and attention kernels instead of running workloads.
    #[arg(long)]
    pub kernels: bool,
    /// With --kernels: also time every candidate tile configuration on each matmul shape.
    #[arg(long, requires = "kernels")]
    pub sweep: bool,
    /// Build each workload's plans without running them: device memory only.
    #[arg(long, conflicts_with = "kernels")]
    pub dry_run: bool,
}

pub fn run(g: &Global, a: &BenchArgs) -> Result<()> {
    if a.kernels {
        let opts = g.load_options()?;
        let gpu = Gpu::new(&opts.gpu)?;
        let dtype = g.dtype.map(Into::into);
        return super::bench_kernels::run(&gpu, &opts, dtype, a.json, a.sweep);
    }
    if a.iters == 0 {
        bail!("--iters must be at least 1");
    }
    let text = std::fs::read_to_string(&a.workloads)
        .with_context(|| format!("cannot read workloads file {}", a.workloads.display()))?;
    let all: BTreeMap<String, Vec<usize>> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected {{\"name\": [lengths...]}}",
            a.workloads.display()
        )
    })?;
    let wanted: Option<Vec<&str>> = a.only.as_deref().map(|s| s.split(',').collect());
    let enc = match &a.random {
        Some(size) => {
            let opts = g.load_options()?;
            let gpu = Gpu::new(&opts.gpu)?;
            Encoder::random_with(gpu, ModelConfig::random(size)?, &opts)?
        }
        None => g.load()?,
    };
    let gpu = enc.gpu().clone();
    let mut report = serde_json::Map::new();
    report.insert("adapter".into(), json!(gpu.info().name));
    report.insert("backend".into(), json!(format!("{:?}", gpu.info().backend)));
    report.insert("dtype".into(), json!(format!("{:?}", enc.dtype())));
    report.insert(
        "model".into(),
        json!(
            a.random
                .as_ref()
                .map(|s| format!("random-{s}"))
                .unwrap_or(g.model.clone())
        ),
    );
    let weights = enc.weight_bytes();
    report.insert("weight_bytes".into(), json!(weights));
    report.insert("split".into(), json!(enc.weight_splits()));
    if !a.json {
        println!(
            "adapter {} ({:?}), {:?}, weights {} MiB",
            gpu.info().name,
            gpu.info().backend,
            enc.dtype(),
            weights >> 20
        );
        for split in enc.weight_splits() {
            println!(
                "{}: {} bytes in row pieces of {:?} rows",
                split.name, split.bytes, split.pieces
            );
        }
        println!(
            "{:<22} {:>8} {:>14} {:>12} {:>10} {:>12}",
            "workload", "tokens", "tokens/s", "ms/run", "peak MiB", "bytes/token"
        );
    }
    let mut skipped: Vec<String> = Vec::new();
    for (name, lengths) in &all {
        if wanted.as_ref().is_some_and(|w| !w.contains(&name.as_str())) {
            continue;
        }
        if lengths
            .iter()
            .any(|&l| l == 0 || l > enc.config().max_position_embeddings)
        {
            bail!(
                "workload {name}: lengths must be 1..={}",
                enc.config().max_position_embeddings
            );
        }
        if let Some(&l) = lengths.iter().find(|&&l| l > enc.capacity()) {
            let why = format!(
                "{name}: a sequence of {l} tokens is over this device's batch capacity of {}",
                enc.capacity()
            );
            eprintln!("skipped: {why}");
            skipped.push(why);
            continue;
        }
        match workload(&enc, a, lengths) {
            Ok(w) => {
                let peak_mib = w.peak as f64 / (1u64 << 20) as f64;
                let per_token = w.peak.saturating_sub(weights) / w.capacity.max(1) as u64;
                if !a.json {
                    let (tps, ms) = match w.secs {
                        Some(secs) => (
                            format!("{:.0}", w.tokens as f64 / secs),
                            format!("{:.2}", secs * 1e3),
                        ),
                        None => ("-".into(), "-".into()),
                    };
                    println!(
                        "{name:<22} {:>8} {tps:>14} {ms:>12} {peak_mib:>10.1} {per_token:>12}",
                        w.tokens
                    );
                    for (family, ns, n) in w.profile.by_family() {
                        println!(
                            "    {family:<18} {:>10.3} ms  {:>5.1}%  ({n} steps)",
                            ns / 1e6,
                            100.0 * ns / w.profile.total_ns().max(1.0)
                        );
                    }
                }
                let mut kernels = serde_json::Map::new();
                for (family, ns, n) in w.profile.by_family() {
                    kernels.insert(family, json!({ "ms": ns / 1e6, "steps": n }));
                }
                let mut entry = json!({
                    "tokens": w.tokens, "batches": w.batches,
                    "peak_mem_mib": peak_mib.round(), "peak_device_bytes": w.peak,
                    "capacity_tokens": w.capacity, "bytes_per_token": per_token,
                    "peak_device_bytes_arena_per_bucket": w.peak_unshared,
                });
                if let Some(secs) = w.secs {
                    entry["tok_per_s"] = json!((w.tokens as f64 / secs).round());
                    entry["ms_per_run"] = json!(secs * 1e3);
                    entry["kernels_ms"] = json!(kernels);
                }
                report.insert(name.clone(), entry);
            }
            Err(e) if too_large(&e) => {
                let why = format!("{name}: {e:#}");
                eprintln!("skipped: {why}");
                skipped.push(why);
            }
            Err(e) => return Err(e.context(format!("workload {name}"))),
        }
    }
    report.insert("skipped".into(), json!(skipped));
    if a.json {
        println!("{}", serde_json::Value::Object(report));
    }
    Ok(())
}

/// What one workload measured.
struct Workload {
    tokens: usize,
    batches: usize,
    /// The largest capacity bucket its batches used.
    capacity: usize,
    /// Peak device bytes while it was built and run.
    peak: u64,
    /// That peak with an activation arena per bucket instead of the shared one.
    peak_unshared: u64,
    /// Seconds per run over all batches (none in a dry run).
    secs: Option<f64>,
    profile: Profile,
}

/// Builds, runs and times one workload from an encoder without plans.
fn workload(enc: &Encoder, a: &BenchArgs, lengths: &[usize]) -> Result<Workload> {
    let gpu = enc.gpu();
    let vocab = enc.config().vocab_size as u32;
    let mut seed = 12345u64;
    let seqs: Vec<Vec<u32>> = lengths
        .iter()
        .map(|&l| {
            (0..l)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    5 + ((seed >> 33) as u32 % (vocab.min(50000) - 5))
                })
                .collect()
        })
        .collect();
    let source = seqs.iter().enumerate().map(|(i, s)| Ok((i, s.as_slice())));
    let batches: Vec<_> =
        Packer::new(source, enc.capacity(), enc.capacity())?.collect::<wgbert::Result<_>>()?;
    enc.trim()?;
    gpu.reset_peak();
    let mut capacity = 0;
    for b in &batches {
        capacity = capacity.max(enc.reserve(b.n_tokens())?);
    }
    let mut w = Workload {
        tokens: lengths.iter().sum(),
        batches: batches.len(),
        capacity,
        peak: 0,
        peak_unshared: 0,
        secs: None,
        profile: Profile::default(),
    };
    if !a.dry_run {
        for b in &batches {
            enc.run_batch(b)?;
        }
        let t0 = Instant::now();
        for _ in 0..a.iters {
            for b in &batches {
                enc.run_batch(b)?;
            }
        }
        w.secs = Some(t0.elapsed().as_secs_f64() / a.iters as f64);
        if gpu.caps().timestamps {
            for b in &batches {
                let p = enc.profile_batch(b)?;
                w.profile.steps.extend(p.steps);
            }
        }
    }
    w.peak = gpu.memory().peak;
    let held = enc.device_bytes()?;
    w.peak_unshared = (w.peak + held.arena_per_bucket).saturating_sub(held.arena);
    Ok(w)
}

/// Whether an error is a buffer over the adapter's limits (the case is skipped, not fatal).
pub(super) fn too_large(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<wgbert::Error>(),
            Some(wgbert::Error::BufferTooLarge { .. })
        )
    })
}
