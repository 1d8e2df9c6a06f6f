//! Per-device autotuning of tile configurations: the search that fills an
//! `ops::choice::Choices`. The first time a (kernel family, shape class, precision) is
//! needed on a device, every candidate configuration that passes its CPU-reference check on
//! the device is timed with timestamp queries on a representative shape, and the fastest is
//! chosen. Choices are cached on disk ([`Cache`]), keyed by adapter, backend, driver, driver
//! version and crate version, so a new driver or a new wgbert tunes again; the same file
//! keeps the verdicts of the tensor-core self-checks (`f16_kernels`).
//!
//! Four families are tuned ([`Family`]): the tiled matmul (`matmul::tiled::CANDIDATES`) and
//! the tensor-core matmul (`matmul::coop::CANDIDATES`, f16) in two row classes each, and the
//! portable and tensor-core attention kernels (`attention::CANDIDATES`,
//! `attention::coop::CANDIDATES`) per head size. [`choose`] makes the choices of a model
//! load. Settings come in [`TuneOptions`] (`LoadOptions::from_env` reads `WGBERT_AUTOTUNE`,
//! `WGBERT_CACHE` and `WGBERT_BENCH_SMALL` into it). An adapter without timestamp queries
//! keeps the default: wall-clock timing of single dispatches is too noisy to choose by.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

mod cache;
mod checks;
mod families;
mod verdicts;

pub use cache::{Cache, DeviceKey, Entry};
pub use checks::{
    check_attention, check_coop, check_coop_attention, check_tiled, time_attention,
    time_attention_kernel, time_coop, time_tiled,
};
pub use families::{
    CoopAttention, CoopMatmul, Family, PortableAttention, ShapeClass, TileConfig, TiledMatmul,
};
pub use verdicts::{F16Kernels, f16_kernels, verify};

use crate::ops::choice::Choices;
pub use crate::ops::choice::RowClass;
use crate::ops::coop as coop_mode;
use crate::ops::matmul::{self, coop};
use crate::ops::{DType, attention};
use crate::progress::Progress;
use crate::runtime::Gpu;
use crate::{Error, Result};

/// The tuned kernel families (their names in caches and reports).
pub const MATMUL_TILED: &str = "matmul_tiled";
pub const MATMUL_COOP: &str = "matmul_coop";
pub const ATTENTION: &str = "attention";
pub const ATTENTION_COOP: &str = "attention_coop";

/// The shape (T, K, N) the candidates of a row class are timed on: ModernBERT-base's
/// attention output projection at a representative row count (an eighth of each side with
/// `small`, for software adapters).
pub fn representative(class: RowClass, small: bool) -> (u32, u32, u32) {
    let (t, k, n) = match class {
        RowClass::Mid => (256, 768, 768),
        RowClass::Large => (1024, 768, 768),
    };
    if small {
        (t / 8, k / 8, n / 8)
    } else {
        (t, k, n)
    }
}

/// `WGBERT_AUTOTUNE`: unset tunes on real GPUs only (timings of a CPU adapter such as
/// lavapipe say nothing about a GPU, and take minutes there), `1` tunes on any adapter, `0`
/// never (static defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Setting {
    Off,
    #[default]
    Auto,
    On,
}

impl Setting {
    /// A `WGBERT_AUTOTUNE` value (`None`: unset).
    pub fn parse(value: Option<&str>) -> Result<Setting> {
        match value {
            None | Some("") => Ok(Setting::Auto),
            Some("1") => Ok(Setting::On),
            Some("0") => Ok(Setting::Off),
            Some(other) => Err(Error::Option(format!(
                "WGBERT_AUTOTUNE must be 0 or 1, got {other:?}"
            ))),
        }
    }
}

/// How kernel choices are searched and kept (part of `LoadOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TuneOptions {
    /// Whether to tune (`WGBERT_AUTOTUNE`).
    pub autotune: Setting,
    /// The directory of the tuning cache (`tune.json`: tuned tiles and self-check
    /// verdicts) and of the compiled-pipeline cache; `None` keeps choices for the process
    /// only (`WGBERT_CACHE`, else the platform's cache directory, in
    /// `LoadOptions::from_env`).
    pub cache_dir: Option<PathBuf>,
    /// Time candidates on an eighth of the representative shapes (`WGBERT_BENCH_SMALL=1`,
    /// for software adapters).
    pub small_shapes: bool,
}

impl TuneOptions {
    /// The tuning cache in `cache_dir`.
    pub fn cache(&self) -> Cache {
        match &self.cache_dir {
            Some(d) => Cache::in_dir(d),
            None => Cache::none(),
        }
    }
}

/// Each candidate with its time, `None` where it was not timed (failed check, no timestamps).
pub type Timings<C> = Vec<(C, Option<f64>)>;

/// The fastest candidate among those whose `check` passes, timed by `time` (seconds); the
/// default when the adapter has no timestamps or no candidate passes. Every candidate's
/// time, `None` where its check failed (or it was not timed). A check that was inconclusive
/// (`Error::Inconclusive`: the device read back nothing) ends the search with that error:
/// its timings would say as little.
pub fn pick<C: Copy>(
    candidates: &[C],
    default: C,
    timestamps: bool,
    mut check: impl FnMut(C) -> Result<()>,
    mut time: impl FnMut(C) -> Result<f64>,
) -> Result<(C, Timings<C>)> {
    if !timestamps {
        return Ok((default, candidates.iter().map(|&c| (c, None)).collect()));
    }
    let mut timings = Vec::new();
    let mut best: Option<(C, f64)> = None;
    for &c in candidates {
        if let Err(e) = check(c) {
            if let Error::Inconclusive(_) = e {
                return Err(e);
            }
            log::warn!("autotune: a candidate failed its check and is never used: {e}");
            timings.push((c, None));
            continue;
        }
        let t = time(c)?;
        timings.push((c, Some(t)));
        if best.is_none_or(|(_, b)| t < b) {
            best = Some((c, t));
        }
    }
    Ok((best.map_or(default, |(c, _)| c), timings))
}

/// One class's choice, as reported by `wgbert tune` and `wgbert info`.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub op: &'static str,
    pub class: String,
    pub dtype: &'static str,
    pub config: String,
    /// Where it came from: "tuned", "cache", "chosen" (already in the choices given),
    /// "default (…why)".
    pub source: String,
    pub timings: BTreeMap<String, Option<f64>>,
}

/// What `ensure` may do to get a choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Report what the choices or the cache hold, else the default; never time.
    Lookup,
    /// The choices, else the cache, else tune now (what loading a model does).
    Ensure,
    /// Tune now whatever is known (`wgbert tune`).
    Force,
}

/// A model load's kernel choices on one device, and how they were made.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub choices: Choices,
    /// The f16 kernels the device runs (after the tensor-core self-checks), for f16 models
    /// and where tensor cores are required.
    pub kernels: Option<F16Kernels>,
    /// Each tuned family's choice and its source.
    pub tiles: Vec<Choice>,
}

/// The kernel choices for a model in `dtype` with heads of `head_dim` on this device,
/// starting from `choices` (its coop mode, and any tiles pinned there are kept): the
/// tensor-core self-checks (f16, or where `WGBERT_COOP=1` requires them; `f16_kernels`),
/// then the tiles of the kernels the model runs, as `mode` allows (the matmul's, tensor-core
/// or tiled, and the attention kernel's at its head size, tensor-core or portable).
pub fn choose(
    gpu: &Arc<Gpu>,
    mut choices: Choices,
    opts: &TuneOptions,
    dtype: DType,
    head_dim: u32,
    mode: Mode,
    progress: Option<&dyn Progress>,
) -> Result<Chosen> {
    let cache = opts.cache();
    let kernels = if dtype == DType::F16 || choices.coop == coop_mode::Mode::Required {
        Some(f16_kernels(gpu, &mut choices, &cache)?)
    } else {
        None
    };
    let mut tiles = Vec::new();
    if matmul::coop_status(gpu, &choices, dtype).is_ok() {
        tiles.extend(ensure_coop(gpu, &mut choices, opts, mode, progress)?);
    } else {
        tiles.extend(ensure_tiled(
            gpu,
            &mut choices,
            dtype,
            opts,
            mode,
            progress,
        )?);
    }
    let portable = attention::HEAD_DIMS.contains(&head_dim);
    let coop_head = attention::coop::HEAD_DIMS.contains(&head_dim);
    let d = [head_dim];
    if coop_head && attention::coop_status(gpu, &choices, dtype).is_ok() {
        tiles.extend(ensure_coop_attention(
            gpu,
            &mut choices,
            &d,
            opts,
            mode,
            progress,
        )?);
    } else if portable {
        tiles.extend(ensure_attention(
            gpu,
            &mut choices,
            dtype,
            &d,
            opts,
            mode,
            progress,
        )?);
    }
    Ok(Chosen {
        choices,
        kernels,
        tiles,
    })
}

/// `ensure` for the tiled matmul, every row class.
pub fn ensure_tiled(
    gpu: &Arc<Gpu>,
    choices: &mut Choices,
    dtype: DType,
    opts: &TuneOptions,
    mode: Mode,
    progress: Option<&dyn Progress>,
) -> Result<Vec<Choice>> {
    ensure::<TiledMatmul>(gpu, choices, dtype, &RowClass::ALL, opts, mode, progress)
}

/// `ensure` for the tensor-core matmul (f16), every row class; nothing where the adapter
/// has no usable cooperative matrices.
pub fn ensure_coop(
    gpu: &Arc<Gpu>,
    choices: &mut Choices,
    opts: &TuneOptions,
    mode: Mode,
    progress: Option<&dyn Progress>,
) -> Result<Vec<Choice>> {
    if coop::supported(gpu.caps()).is_err() {
        return Ok(Vec::new());
    }
    let classes = &RowClass::ALL;
    ensure::<CoopMatmul>(gpu, choices, DType::F16, classes, opts, mode, progress)
}

/// `ensure` for the portable attention kernel at these head sizes.
pub fn ensure_attention(
    gpu: &Arc<Gpu>,
    choices: &mut Choices,
    dtype: DType,
    head_dims: &[u32],
    opts: &TuneOptions,
    mode: Mode,
    progress: Option<&dyn Progress>,
) -> Result<Vec<Choice>> {
    ensure::<PortableAttention>(gpu, choices, dtype, head_dims, opts, mode, progress)
}

/// `ensure` for the tensor-core attention kernel (f16) at these head sizes; nothing where
/// the adapter has no usable cooperative matrices.
pub fn ensure_coop_attention(
    gpu: &Arc<Gpu>,
    choices: &mut Choices,
    head_dims: &[u32],
    opts: &TuneOptions,
    mode: Mode,
    progress: Option<&dyn Progress>,
) -> Result<Vec<Choice>> {
    if attention::coop::supported(gpu.caps()).is_err() {
        return Ok(Vec::new());
    }
    ensure::<CoopAttention>(gpu, choices, DType::F16, head_dims, opts, mode, progress)
}

/// Makes sure `choices` holds a configuration of family `F` for every class of `classes` in
/// `dtype` on this device: the one it holds already, else the disk cache's, else one tuned
/// now, as `mode` allows (a default is reported, not put into `choices`). `WGBERT_AUTOTUNE=0`
/// leaves the defaults. `progress` hears of each candidate timed.
pub fn ensure<F: Family>(
    gpu: &Arc<Gpu>,
    choices: &mut Choices,
    dtype: DType,
    classes: &[F::Class],
    opts: &TuneOptions,
    mode: Mode,
    progress: Option<&dyn Progress>,
) -> Result<Vec<Choice>> {
    let force = mode == Mode::Force;
    let mut out = Vec::new();
    let base = |class: F::Class, config: F::Config, source: String| Choice {
        op: F::OP,
        class: class.name(),
        dtype: dtype.wgsl(),
        config: config.name(),
        source,
        timings: BTreeMap::new(),
    };
    let setting = opts.autotune;
    if setting == Setting::Off {
        for &class in classes {
            let config = F::get(choices, class, dtype).unwrap_or_else(|| F::default(gpu, class));
            out.push(base(class, config, "default (WGBERT_AUTOTUNE=0)".into()));
        }
        return Ok(out);
    }
    // A model load on a CPU adapter uses what `wgbert tune` cached, and never times.
    let cpu = gpu.info().device_type == wgpu::DeviceType::Cpu;
    let mode = match mode {
        Mode::Ensure if cpu && setting == Setting::Auto => Mode::Lookup,
        m => m,
    };
    let cache = opts.cache();
    let dev = DeviceKey::of(gpu);
    for &class in classes {
        let class_name = class.name();
        let default = F::default(gpu, class);
        if let (false, Some(config)) = (force, F::get(choices, class, dtype)) {
            out.push(base(class, config, "chosen".into()));
            continue;
        }
        let cached = cache.get(&dev, F::OP, &class_name, dtype);
        if let (false, Some(entry)) = (force, &cached) {
            if let Some(config) = families::named::<F>(gpu, class, &entry.config) {
                F::set(choices, class, dtype, config);
                out.push(Choice {
                    timings: entry.timings.clone(),
                    ..base(class, config, "cache".into())
                });
                continue;
            }
        }
        if mode == Mode::Lookup {
            let why = if cpu {
                "a CPU adapter: `wgbert tune` times it"
            } else {
                "not tuned yet"
            };
            out.push(base(class, default, format!("default ({why})")));
            continue;
        }
        let candidates = F::candidates(gpu, class);
        if let Some(p) = progress {
            let what = format!("tuning {} {class_name} {}", F::OP, dtype.wgsl());
            p.start(&what, candidates.len() as u64);
        }
        let timestamps = gpu.caps().timestamps;
        let picked = pick(
            &candidates,
            default,
            timestamps,
            |c| F::check(gpu, dtype, class, c),
            |c| {
                let t = F::time(gpu, dtype, class, c, opts.small_shapes);
                if let Some(p) = progress {
                    p.advance(1, &c.name());
                }
                t
            },
        );
        if let Some(p) = progress {
            p.finish();
        }
        // A device that read back nothing leaves the default in place and nothing cached.
        let (config, timings) = match picked {
            Err(Error::Inconclusive(why)) => {
                let source = format!("default (inconclusive, not cached: {why})");
                out.push(base(class, default, source));
                continue;
            }
            r => r?,
        };
        F::set(choices, class, dtype, config);
        let timings: BTreeMap<String, Option<f64>> =
            timings.into_iter().map(|(c, t)| (c.name(), t)).collect();
        let source = if timestamps {
            let entry = Entry {
                config: config.name(),
                timings: timings.clone(),
            };
            // A cache that cannot be written (read-only home) costs a re-tune next time.
            if let Err(e) = cache.put(&dev, F::OP, &class_name, dtype, entry) {
                log::warn!("autotune: the choice is not cached: {e}");
            }
            "tuned".to_string()
        } else {
            "default (no timestamp queries)".to_string()
        };
        out.push(Choice {
            timings,
            ..base(class, config, source)
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_takes_the_fastest_that_passes_and_never_a_failing_one() {
        let times = [3.0, 1.0, 2.0];
        let check = |c: usize| {
            if c == 1 {
                Err(Error::Unsupported("wrong answers".into()))
            } else {
                Ok(())
            }
        };
        let (c, t) = pick(&[0, 1, 2], 0, true, check, |c| Ok(times[c])).unwrap();
        assert_eq!(c, 2, "candidate 1 is fastest but failed its check");
        assert_eq!(t, vec![(0, Some(3.0)), (1, None), (2, Some(2.0))]);
        // No timestamps: the default, nothing timed.
        let (c, t) = pick(&[0, 1, 2], 0, false, |_| Ok(()), |_| panic!("timed")).unwrap();
        assert_eq!((c, t.iter().all(|x| x.1.is_none())), (0, true));
        // Nothing passes: the default.
        let fail = |_| Err(Error::Unsupported("no".into()));
        assert_eq!(pick(&[1, 2], 0, true, fail, |_| Ok(1.0)).unwrap().0, 0);
        // A device that reads back nothing: no choice, nothing timed.
        let zeros = |_| Err(Error::Inconclusive("zeros".into()));
        let r = pick(&[1, 2], 0, true, zeros, |_| panic!("timed"));
        assert!(matches!(r, Err(Error::Inconclusive(_))));
    }
}
