//! `wgbert bench`: tokens/s, peak GPU memory and per-kernel GPU time on the benchmark
//! workloads (lists of sequence lengths, the same file format as the reference benchmark),
//! on a random-weight model of the real shapes or a given model; `--kernels` sweeps matmul
//! and attention shapes and prints TFLOP/s.

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
    /// A random-weight model of the real shapes instead of --model (no download).
    #[arg(long, value_parser = ["base", "large"])]
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
    let vocab = enc.config().vocab_size as u32;
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
    if !a.json {
        println!(
            "adapter {} ({:?}), {:?}, weights {} MiB",
            gpu.info().name,
            gpu.info().backend,
            enc.dtype(),
            enc.weight_bytes() >> 20
        );
        println!(
            "{:<22} {:>8} {:>14} {:>12} {:>14}",
            "workload", "tokens", "tokens/s", "ms/run", "peak MiB"
        );
    }
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
        let tokens: usize = lengths.iter().sum();
        let mut peak = 0u64;
        for b in &batches {
            peak = peak.max(enc.run_batch(b)?);
        }
        let t0 = Instant::now();
        for _ in 0..a.iters {
            for b in &batches {
                enc.run_batch(b)?;
            }
        }
        let secs = t0.elapsed().as_secs_f64() / a.iters as f64;
        let mut profile = Profile::default();
        let mut kernels = serde_json::Map::new();
        if gpu.caps().timestamps {
            for b in &batches {
                let p = enc.profile_batch(b)?;
                profile.steps.extend(p.steps);
            }
            for (family, ns, n) in profile.by_family() {
                kernels.insert(family, json!({ "ms": ns / 1e6, "steps": n }));
            }
        }
        let peak_mib = (peak + enc.weight_bytes()) as f64 / (1u64 << 20) as f64;
        let tps = tokens as f64 / secs;
        if !a.json {
            println!(
                "{name:<22} {tokens:>8} {tps:>14.0} {:>12.2} {peak_mib:>14.1}",
                secs * 1e3
            );
            for (family, ns, n) in profile.by_family() {
                println!(
                    "    {family:<18} {:>10.3} ms  {:>5.1}%  ({n} steps)",
                    ns / 1e6,
                    100.0 * ns / profile.total_ns().max(1.0)
                );
            }
        }
        report.insert(
            name.clone(),
            json!({ "tokens": tokens, "batches": batches.len(), "tok_per_s": tps.round(), "ms_per_run": secs * 1e3,
                    "peak_mem_mib": peak_mib.round(), "kernels_ms": kernels }),
        );
    }
    if a.json {
        println!("{}", serde_json::Value::Object(report));
    }
    Ok(())
}
