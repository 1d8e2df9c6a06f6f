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
use wgbert::ops::choice::Choices;
use wgbert::ops::tune::{self, Cache, DeviceKey, Mode};
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
    /// Forget what the cache holds for this adapter (tuned tiles and tensor-core self-check
    /// verdicts, of every driver and wgbert version) and tune nothing.
    #[arg(long)]
    pub reset: bool,
}

pub fn run(g: &Global, a: &TuneArgs) -> Result<()> {
    let opts = g.load_options()?;
    let gpu = Gpu::new(&opts.gpu)?;
    if a.reset {
        return reset(&gpu, &opts.tune.cache(), a.json);
    }
    let dtypes: Vec<DType> = match g.dtype {
        Some(d) => vec![d.into()],
        None if gpu.caps().f16 => vec![DType::F32, DType::F16],
        None => vec![DType::F32],
    };
    let (t, cache) = (&opts.tune, opts.tune.cache());
    let bar = super::progress::Bar::unless(g.quiet || a.json);
    let bar = bar.as_deref();
    let d = [MODERNBERT_HEAD_DIM];
    let mut choices = Vec::new();
    for dtype in dtypes {
        let mut c = Choices::new(opts.coop);
        choices.extend(tune::ensure_tiled(
            &gpu,
            &mut c,
            dtype,
            t,
            Mode::Force,
            bar,
        )?);
        if dtype == DType::F16 {
            // The tensor-core kernels, where their self-checks pass (as a model load requires).
            tune::f16_kernels(&gpu, &mut c, &cache)?;
            if wgbert::ops::matmul::coop_status(&gpu, &c, dtype).is_ok() {
                choices.extend(tune::ensure_coop(&gpu, &mut c, t, Mode::Force, bar)?);
            }
            if wgbert::ops::attention::coop_status(&gpu, &c, dtype).is_ok() {
                let mode = Mode::Force;
                choices.extend(tune::ensure_coop_attention(&gpu, &mut c, &d, t, mode, bar)?);
            }
        }
        let mode = Mode::Force;
        choices.extend(tune::ensure_attention(
            &gpu, &mut c, dtype, &d, t, mode, bar,
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

/// `--reset`: this adapter's entries out of the tuning file.
fn reset(gpu: &Gpu, cache: &Cache, json: bool) -> Result<()> {
    let Some(path) = cache.path() else {
        anyhow::bail!("no cache directory (set WGBERT_CACHE or HOME): nothing to reset");
    };
    let removed = cache.reset(&DeviceKey::of(gpu))?;
    let adapter = &gpu.info().name;
    if json {
        let out = serde_json::json!({"adapter": adapter, "cache": path, "removed": removed});
        println!("{out}");
    } else {
        println!(
            "removed {removed} entries (tiles and self-check verdicts) of '{adapter}' from {}",
            path.display()
        );
    }
    Ok(())
}
