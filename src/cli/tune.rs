//! `wgbert tune`: times every candidate tile configuration on this device now (with a
//! progress bar), keeps the fastest that passes its check, and caches it on disk for later
//! runs (`ops::tune`): the tiled matmul per row class and the portable attention kernel at
//! ModernBERT's head size, and in f16, where the adapter has cooperative matrices and the
//! tensor-core kernels pass their self-check, the tensor-core matmul per row class and the
//! tensor-core attention at that head size. Loading a model does the same on first use; this runs it
//! explicitly, for f32 and f16 (or the global `--dtype`), and reports every candidate's time.

use anyhow::Result;
use clap::Args;
use wgbert::ops::DType;
use wgbert::ops::tune::{self, Cache, Mode};
use wgbert::runtime::Gpu;

use super::Global;

/// The head size of every ModernBERT (base: 768 / 12, large: 1024 / 16); a model of another
/// head size tunes its own when it loads.
pub const MODERNBERT_HEAD_DIM: u32 = 64;

#[derive(Args, Debug)]
pub struct TuneArgs {
    /// One JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(g: &Global, a: &TuneArgs) -> Result<()> {
    let gpu = Gpu::new(&g.gpu_options())?;
    let dtypes: Vec<DType> = match g.dtype {
        Some(d) => vec![d.into()],
        None if gpu.caps().f16 => vec![DType::F32, DType::F16],
        None => vec![DType::F32],
    };
    let cache = Cache::default_location();
    let bar = super::progress::Bar::unless(g.quiet || a.json);
    let mut choices = Vec::new();
    for dtype in dtypes {
        choices.extend(tune::ensure_tiled(
            &gpu,
            dtype,
            &cache,
            Mode::Force,
            bar.as_deref(),
        )?);
        if dtype == DType::F16 {
            // The tensor-core matmul, where its self-check passes (as a model load requires).
            wgbert::ops::f16_kernels(&gpu)?;
            if wgbert::ops::matmul::coop_status(&gpu, dtype).is_ok() {
                choices.extend(tune::ensure_coop(
                    &gpu,
                    &cache,
                    Mode::Force,
                    bar.as_deref(),
                )?);
            }
            if wgbert::ops::attention::coop_status(&gpu, dtype).is_ok() {
                choices.extend(tune::ensure_coop_attention(
                    &gpu,
                    &[MODERNBERT_HEAD_DIM],
                    &cache,
                    Mode::Force,
                    bar.as_deref(),
                )?);
            }
        }
        choices.extend(tune::ensure_attention(
            &gpu,
            dtype,
            &[MODERNBERT_HEAD_DIM],
            &cache,
            Mode::Force,
            bar.as_deref(),
        )?);
    }
    let cache_path = cache.path().map(|p| p.display().to_string());
    if a.json {
        let out = serde_json::json!({
            "adapter": gpu.info().name,
            "timestamps": gpu.caps().timestamps,
            "cache": cache_path,
            "choices": choices,
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "adapter {} ({:?}); cache {}",
        gpu.info().name,
        gpu.info().backend,
        cache_path
            .as_deref()
            .unwrap_or("none (choices kept for this run only)")
    );
    for c in &choices {
        println!(
            "{} {} {}: {} ({})",
            c.op, c.class, c.dtype, c.config, c.source
        );
        for (name, t) in &c.timings {
            match t {
                Some(s) => println!("    {name:<8} {:>10.3} ms", s * 1e3),
                None => println!("    {name:<8} {:>10}", "-"),
            }
        }
    }
    Ok(())
}
