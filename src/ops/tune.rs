//! Per-device autotuning of tile configurations: the search that fills an
//! `ops::choice::Choices`. The first time a (kernel family, shape class, precision) is
//! needed on a device, every candidate configuration that passes its CPU-reference check on
//! the device is timed with timestamp queries on a representative shape, and the fastest is
//! chosen. Choices are cached on disk ([`Cache`]), keyed by adapter, backend, driver, driver
//! version and crate version, so a new driver or a new wgbert tunes again; the same file
//! keeps the verdicts of the tensor-core self-checks (`ops::f16_kernels`).
//!
//! Four families are tuned ([`Family`]): the tiled matmul (`matmul::tiled::CANDIDATES`) and
//! the tensor-core matmul (`matmul::coop::CANDIDATES`, f16) in two row classes each, and the
//! portable and tensor-core attention kernels (`attention::CANDIDATES`,
//! `attention::coop::CANDIDATES`) per head size. [`choose`] makes the choices of a model
//! load. Settings come in [`TuneOptions`] (`LoadOptions::from_env` reads `WGBERT_AUTOTUNE`,
//! `WGBERT_CACHE` and `WGBERT_BENCH_SMALL` into it). An adapter without timestamp queries
//! keeps the default: wall-clock timing of single dispatches is too noisy to choose by.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ops::choice::Choices;
pub use crate::ops::choice::RowClass;
use crate::ops::coop::{self as coop_mode, Verdict, f16_values, first_mismatch};
use crate::ops::matmul::{self, Epilogue, coop, tiled};
use crate::ops::{Activation, DType, F16Kernels, attention, timing};
use crate::progress::Progress;
use crate::runtime::{Gpu, RunSizes};
use crate::{Error, Result};

/// Runs timed per candidate, after one warm-up run.
const TIMED_RUNS: usize = 3;

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

/// What identifies a device for the cache: a change in any field invalidates its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKey {
    pub adapter: String,
    pub backend: String,
    pub driver: String,
    pub driver_info: String,
}

impl DeviceKey {
    pub fn of(gpu: &Gpu) -> DeviceKey {
        let i = gpu.info();
        DeviceKey {
            adapter: i.name.clone(),
            backend: format!("{:?}", i.backend),
            driver: i.driver.clone(),
            driver_info: i.driver_info.clone(),
        }
    }

    /// The adapter alone (entries of other drivers or crate versions are replaced).
    fn adapter_part(&self) -> String {
        format!("{}|{}", self.adapter, self.backend)
    }

    fn entry(&self, op: &str, class: &str, dtype: DType) -> String {
        format!(
            "{}|{}|{}|wgbert {}|{op}|{class}|{}",
            self.adapter_part(),
            self.driver,
            self.driver_info,
            env!("CARGO_PKG_VERSION"),
            dtype.wgsl()
        )
    }

    fn check(&self, check: &str) -> String {
        format!(
            "{}|{}|{}|wgbert {}|{check}",
            self.adapter_part(),
            self.driver,
            self.driver_info,
            env!("CARGO_PKG_VERSION"),
        )
    }

    fn same_check(&self, key: &str, check: &str) -> bool {
        key.starts_with(&format!("{}|", self.adapter_part())) && key.ends_with(&format!("|{check}"))
    }

    fn same_slot(&self, key: &str, op: &str, class: &str, dtype: DType) -> bool {
        let tail = format!("|{op}|{class}|{}", dtype.wgsl());
        key.starts_with(&format!("{}|", self.adapter_part())) && key.ends_with(&tail)
    }
}

/// One cached choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The chosen configuration's name (`64x64`).
    pub config: String,
    /// Seconds per run of each candidate on the representative shape; `null` for one that
    /// failed its check.
    pub timings: BTreeMap<String, Option<f64>>,
}

/// The on-disk cache: one JSON file, `tune.json`, in a directory: tuned tiles and the
/// verdicts of the tensor-core self-checks.
#[derive(Debug, Clone)]
pub struct Cache {
    path: Option<PathBuf>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    entries: BTreeMap<String, Entry>,
    /// Self-check verdicts: `null` for a pass, else why the kernel failed.
    #[serde(default)]
    checks: BTreeMap<String, Option<String>>,
}

impl Cache {
    /// The cache in `dir`.
    pub fn in_dir(dir: &Path) -> Cache {
        Cache {
            path: Some(dir.join("tune.json")),
        }
    }

    /// No cache: choices and verdicts are kept for the process only.
    pub fn none() -> Cache {
        Cache { path: None }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn read(&self) -> CacheFile {
        let Some(path) = &self.path else {
            return CacheFile::default();
        };
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                log::warn!("ignoring the tuning cache {}: {e}", path.display());
                CacheFile::default()
            }),
            Err(_) => CacheFile::default(),
        }
    }

    /// The cached entry for this device, family, class and precision.
    pub fn get(&self, dev: &DeviceKey, op: &str, class: &str, dtype: DType) -> Option<Entry> {
        self.read().entries.remove(&dev.entry(op, class, dtype))
    }

    /// Stores an entry, dropping those of the same adapter and slot made with another driver
    /// or crate version.
    pub fn put(
        &self,
        dev: &DeviceKey,
        op: &str,
        class: &str,
        dtype: DType,
        entry: Entry,
    ) -> Result<()> {
        self.update(|file| {
            file.entries
                .retain(|k, _| !dev.same_slot(k, op, class, dtype));
            file.entries.insert(dev.entry(op, class, dtype), entry);
        })
    }

    /// The cached verdict of self-check `check` on this device (same key as the tiles).
    pub fn verdict(&self, dev: &DeviceKey, check: &str) -> Option<Verdict> {
        let v = self.read().checks.remove(&dev.check(check))?;
        Some(v.map_or(Ok(()), Err))
    }

    /// Stores the verdict of self-check `check` on this device, dropping that of another
    /// driver or crate version.
    pub fn put_verdict(&self, dev: &DeviceKey, check: &str, verdict: &Verdict) -> Result<()> {
        self.update(|file| {
            file.checks.retain(|k, _| !dev.same_check(k, check));
            file.checks.insert(dev.check(check), verdict.clone().err());
        })
    }

    /// Whether the file holds verdicts for this device (reports).
    pub fn has_verdicts(&self, dev: &DeviceKey) -> bool {
        let prefix = dev.check("");
        self.read().checks.keys().any(|k| k.starts_with(&prefix))
    }

    /// Reads, changes and writes the file: written to a temporary file and renamed, so
    /// concurrent processes never read half a file.
    fn update(&self, change: impl FnOnce(&mut CacheFile)) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut file = self.read();
        change(&mut file);
        let io = |e: std::io::Error| Error::Io {
            path: path.clone(),
            source: e,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension(format!("json.{}", std::process::id()));
        let text = serde_json::to_string_pretty(&file)
            .map_err(|e| Error::Option(format!("tuning cache: {e}")))?;
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// Each candidate with its time, `None` where it was not timed (failed check, no timestamps).
pub type Timings<C> = Vec<(C, Option<f64>)>;

/// The fastest candidate among those whose `check` passes, timed by `time` (seconds); the
/// default when the adapter has no timestamps or no candidate passes. Every candidate's
/// time, `None` where its check failed (or it was not timed).
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

/// A tile configuration of a tuned family, named in caches and reports (`64x64`).
pub trait TileConfig: Copy + Send + 'static {
    fn name(self) -> String;
}

impl TileConfig for tiled::Config {
    fn name(self) -> String {
        tiled::Config::name(self)
    }
}

impl TileConfig for coop::Config {
    fn name(self) -> String {
        coop::Config::name(self)
    }
}

impl TileConfig for attention::Tiles {
    fn name(self) -> String {
        attention::Tiles::name(self)
    }
}

/// The class a family is tuned per, named in caches and reports: a matmul row class, or an
/// attention head size (`u32`, named `d64`).
pub trait ShapeClass: Copy {
    fn name(self) -> String;
}

impl ShapeClass for RowClass {
    fn name(self) -> String {
        RowClass::name(self).to_string()
    }
}

impl ShapeClass for u32 {
    fn name(self) -> String {
        format!("d{self}")
    }
}

/// A kernel family whose tile configuration is tuned per device, shape class and precision.
pub trait Family {
    /// The family's name in caches and reports.
    const OP: &'static str;
    type Config: TileConfig;
    type Class: ShapeClass;
    /// The candidates this device can run for `class`.
    fn candidates(gpu: &Gpu, class: Self::Class) -> Vec<Self::Config>;
    /// The static choice: without tuning, timestamps or a passing candidate.
    fn default(gpu: &Gpu, class: Self::Class) -> Self::Config;
    /// The CPU-reference check of one candidate on the device.
    fn check(gpu: &Arc<Gpu>, dtype: DType, class: Self::Class, config: Self::Config) -> Result<()>;
    /// Seconds per run of one candidate on the class's representative shape (`small`: an
    /// eighth of it).
    fn time(
        gpu: &Arc<Gpu>,
        dtype: DType,
        class: Self::Class,
        config: Self::Config,
        small: bool,
    ) -> Result<f64>;
    /// The configuration `choices` holds for `class` and `dtype`.
    fn get(choices: &Choices, class: Self::Class, dtype: DType) -> Option<Self::Config>;
    /// Puts `config` into `choices` for `class` and `dtype`.
    fn set(choices: &mut Choices, class: Self::Class, dtype: DType, config: Self::Config);
}

/// The tiled matmul, tuned per row class.
pub struct TiledMatmul;

impl Family for TiledMatmul {
    const OP: &'static str = MATMUL_TILED;
    type Config = tiled::Config;
    type Class = RowClass;

    fn candidates(gpu: &Gpu, _: RowClass) -> Vec<tiled::Config> {
        tiled::fitting(gpu.caps())
    }

    fn default(_: &Gpu, _: RowClass) -> tiled::Config {
        tiled::DEFAULT
    }

    fn check(gpu: &Arc<Gpu>, dtype: DType, _: RowClass, config: tiled::Config) -> Result<()> {
        check_tiled(gpu, dtype, config)
    }

    fn time(
        gpu: &Arc<Gpu>,
        dtype: DType,
        class: RowClass,
        config: tiled::Config,
        small: bool,
    ) -> Result<f64> {
        time_tiled(gpu, dtype, config, representative(class, small))
    }

    fn get(choices: &Choices, class: RowClass, dtype: DType) -> Option<tiled::Config> {
        choices.tiled(class, dtype)
    }

    fn set(choices: &mut Choices, class: RowClass, dtype: DType, config: tiled::Config) {
        choices.set_tiled(class, dtype, config);
    }
}

/// The tensor-core matmul (f16 only), tuned per row class. Its candidates are the grids that
/// fit the adapter at its cooperative-matrix shape; none where it has no usable ones.
pub struct CoopMatmul;

impl Family for CoopMatmul {
    const OP: &'static str = MATMUL_COOP;
    type Config = coop::Config;
    type Class = RowClass;

    fn candidates(gpu: &Gpu, _: RowClass) -> Vec<coop::Config> {
        let caps = gpu.caps();
        coop::supported(caps).map_or_else(|_| Vec::new(), |shape| coop::fitting(shape, caps))
    }

    fn default(gpu: &Gpu, _: RowClass) -> coop::Config {
        let caps = gpu.caps();
        coop::supported(caps).map_or(coop::DEFAULT, |shape| coop::default_for(shape, caps))
    }

    fn check(gpu: &Arc<Gpu>, _: DType, _: RowClass, config: coop::Config) -> Result<()> {
        check_coop(gpu, config)
    }

    fn time(
        gpu: &Arc<Gpu>,
        _: DType,
        class: RowClass,
        config: coop::Config,
        small: bool,
    ) -> Result<f64> {
        time_coop(gpu, config, representative(class, small))
    }

    fn get(choices: &Choices, class: RowClass, _: DType) -> Option<coop::Config> {
        choices.coop_matmul(class)
    }

    fn set(choices: &mut Choices, class: RowClass, _: DType, config: coop::Config) {
        choices.set_coop_matmul(class, config);
    }
}

/// The portable attention kernel, tuned per head size.
pub struct PortableAttention;

impl Family for PortableAttention {
    const OP: &'static str = ATTENTION;
    type Config = attention::Tiles;
    /// The head size.
    type Class = u32;

    fn candidates(gpu: &Gpu, head_dim: u32) -> Vec<attention::Tiles> {
        attention::fitting(head_dim, gpu.caps())
    }

    fn default(gpu: &Gpu, head_dim: u32) -> attention::Tiles {
        attention::Tiles::default_for(head_dim, gpu.caps())
    }

    fn check(gpu: &Arc<Gpu>, dtype: DType, d: u32, tiles: attention::Tiles) -> Result<()> {
        check_attention(gpu, dtype, d, tiles)
    }

    fn time(
        gpu: &Arc<Gpu>,
        dtype: DType,
        d: u32,
        tiles: attention::Tiles,
        small: bool,
    ) -> Result<f64> {
        time_attention(gpu, dtype, d, tiles, small)
    }

    fn get(choices: &Choices, d: u32, dtype: DType) -> Option<attention::Tiles> {
        choices.attention(d, dtype)
    }

    fn set(choices: &mut Choices, d: u32, dtype: DType, tiles: attention::Tiles) {
        choices.set_attention(d, dtype, tiles);
    }
}

/// The tensor-core attention kernel (f16 only), tuned per head size. Its candidates are the
/// tiles that fit the adapter's workgroup memory; none where it has no usable cooperative
/// matrices.
pub struct CoopAttention;

impl Family for CoopAttention {
    const OP: &'static str = ATTENTION_COOP;
    type Config = attention::Tiles;
    /// The head size.
    type Class = u32;

    fn candidates(gpu: &Gpu, head_dim: u32) -> Vec<attention::Tiles> {
        let caps = gpu.caps();
        match attention::coop::supported(caps) {
            Ok(_) => attention::coop::fitting(head_dim, caps.max_workgroup_storage),
            Err(_) => Vec::new(),
        }
    }

    fn default(gpu: &Gpu, head_dim: u32) -> attention::Tiles {
        attention::coop::default_tiles(head_dim, gpu.caps().max_workgroup_storage)
            .unwrap_or(attention::coop::DEFAULT)
    }

    fn check(gpu: &Arc<Gpu>, _: DType, d: u32, tiles: attention::Tiles) -> Result<()> {
        check_coop_attention(gpu, d, tiles)
    }

    fn time(gpu: &Arc<Gpu>, _: DType, d: u32, tiles: attention::Tiles, small: bool) -> Result<f64> {
        let shape = attention::coop::supported(gpu.caps()).map_err(Error::Unsupported)?;
        let storage = gpu.caps().max_workgroup_storage;
        let kernel = attention::coop::kernel(shape, d, tiles, storage).ok_or_else(|| {
            Error::Unsupported(format!("{ATTENTION_COOP} {}: does not fit", tiles.name()))
        })?;
        time_attention_kernel(gpu, DType::F16, d, kernel, small)
    }

    fn get(choices: &Choices, d: u32, _: DType) -> Option<attention::Tiles> {
        choices.coop_attention(d)
    }

    fn set(choices: &mut Choices, d: u32, _: DType, tiles: attention::Tiles) {
        choices.set_coop_attention(d, tiles);
    }
}

/// The candidate (or the default) of `F` named `name` on this device.
fn named<F: Family>(gpu: &Gpu, class: F::Class, name: &str) -> Option<F::Config> {
    F::candidates(gpu, class)
        .into_iter()
        .chain([F::default(gpu, class)])
        .find(|&c| c.name() == name)
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
/// tensor-core self-checks (f16, or where `WGBERT_COOP=1` requires them; `ops::f16_kernels`),
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
        Some(crate::ops::f16_kernels(gpu, &mut choices, &cache)?)
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
            if let Some(config) = named::<F>(gpu, class, &entry.config) {
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
        let (config, timings) = pick(
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
        )?;
        if let Some(p) = progress {
            p.finish();
        }
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

/// The CPU-reference check of one tiled configuration: ragged shapes with the plain and the
/// GeGLU epilogue (bias included), so that no wrong build is ever timed or chosen.
pub fn check_tiled(gpu: &Arc<Gpu>, dtype: DType, config: tiled::Config) -> Result<()> {
    let cases = [
        coop::Case::new(70, 100, 90, Epilogue::None, false),
        coop::Case::new(33, 40, 48, Epilogue::GeGlu(Activation::GeluErf), true),
    ];
    let tol = match dtype {
        DType::F32 => 1e-4,
        DType::F16 => 4e-3,
    };
    for (i, &case) in cases.iter().enumerate() {
        let build = (
            tiled::kernel(dtype, case.epilogue, case.bias, config),
            tiled::tile(config, case.epilogue),
        );
        matmul::check_build(gpu, dtype, case, build, (tol, tol), 101 + 7 * i as u64).map_err(
            |e| Error::Unsupported(format!("{MATMUL_TILED} {} check: {e}", config.name())),
        )?;
    }
    Ok(())
}

/// The CPU-reference check of one tensor-core configuration at the adapter's shape: ragged
/// shapes with vector loads (the plain epilogue with a residual and bias, GeGLU) and with
/// scalar loads (K off a multiple of 4), each over several row and column tiles.
pub fn check_coop(gpu: &Arc<Gpu>, config: coop::Config) -> Result<()> {
    let shape = coop::supported(gpu.caps()).map_err(Error::Unsupported)?;
    let cases = [
        coop::Case::new(150, 100, 150, Epilogue::Residual, true),
        coop::Case::new(70, 72, 90, Epilogue::GeGlu(Activation::GeluErf), true),
        coop::Case::new(33, 102, 40, Epilogue::None, false),
    ];
    matmul::check_coop(gpu, shape, config, &cases, 301)
        .map_err(|e| Error::Unsupported(format!("{MATMUL_COOP} {} check: {e}", config.name())))
}

/// Seconds per run of one tensor-core configuration on `(t, k, n)` (as `time_tiled`).
pub fn time_coop(gpu: &Arc<Gpu>, config: coop::Config, shape: (u32, u32, u32)) -> Result<f64> {
    let s = coop::supported(gpu.caps()).map_err(Error::Unsupported)?;
    let kernel = coop::kernel(s, config, Epilogue::None, false, shape.1);
    let build = Some((kernel, coop::tile(s.frag, config, Epilogue::None)));
    let dtype = DType::F16;
    let none = &Choices::default();
    let (mut plan, sizes) =
        timing::matmul_plan(gpu, none, dtype, shape, Epilogue::None, None, build)?;
    timing::seconds(gpu, &mut plan, &sizes, TIMED_RUNS)
}

/// Seconds per run of one configuration on `(t, k, n)`: one warm-up run, then the mean GPU
/// time of three (timestamp queries).
pub fn time_tiled(
    gpu: &Arc<Gpu>,
    dtype: DType,
    config: tiled::Config,
    shape: (u32, u32, u32),
) -> Result<f64> {
    let kernel = tiled::kernel(dtype, Epilogue::None, false, config);
    let build = Some((kernel, tiled::tile(config, Epilogue::None)));
    let none = &Choices::default();
    let (mut plan, sizes) =
        timing::matmul_plan(gpu, none, dtype, shape, Epilogue::None, None, build)?;
    timing::seconds(gpu, &mut plan, &sizes, TIMED_RUNS)
}

/// The CPU-reference check of one attention tile configuration: ragged sequences around
/// every tile size, global and banded (window 8, narrower than a key tile) with key limits.
pub fn check_attention(
    gpu: &Arc<Gpu>,
    dtype: DType,
    head_dim: u32,
    tiles: attention::Tiles,
) -> Result<()> {
    let tol = match dtype {
        DType::F32 => 1e-4,
        DType::F16 => 4e-3,
    };
    let kernel = attention::kernel(dtype, head_dim, tiles);
    check_attention_kernel(gpu, dtype, head_dim, kernel, (tol, tol))
        .map_err(|e| Error::Unsupported(format!("{ATTENTION} {} check {e}", tiles.name())))
}

/// The same check for one tile configuration of the tensor-core attention kernel, at the
/// adapter's shape (its self-check tolerance: P is rounded to f16).
pub fn check_coop_attention(gpu: &Arc<Gpu>, head_dim: u32, tiles: attention::Tiles) -> Result<()> {
    let what = |e: &dyn std::fmt::Display| format!("{ATTENTION_COOP} {} check {e}", tiles.name());
    let shape = attention::coop::supported(gpu.caps()).map_err(Error::Unsupported)?;
    let storage = gpu.caps().max_workgroup_storage;
    let kernel = attention::coop::kernel(shape, head_dim, tiles, storage)
        .ok_or_else(|| Error::Unsupported(what(&"does not fit the adapter")))?;
    let tol = (attention::coop::CHECK_ATOL, attention::coop::CHECK_RTOL);
    check_attention_kernel(gpu, DType::F16, head_dim, kernel, tol)
        .map_err(|e| Error::Unsupported(what(&e)))
}

/// Runs an attention kernel on ragged sequences (1, 33, 70 and 130 tokens, two heads),
/// globally and banded (window 8) with key limits, against the reference within
/// `(atol, rtol)`: the first element off, or an error of the run.
fn check_attention_kernel(
    gpu: &Arc<Gpu>,
    dtype: DType,
    head_dim: u32,
    kernel: crate::runtime::Kernel,
    (atol, rtol): (f64, f64),
) -> Result<()> {
    let lens = [1u32, 33, 70, 130];
    let keys = [1u32, 20, 70, 100];
    for (window, key_lens) in [(None, None), (Some(8), Some(&keys[..]))] {
        let case = attention::PackedCase {
            lens: &lens,
            key_lens,
            n_heads: 2,
            head_dim,
            window,
            dtype,
        };
        let h = (2 * head_dim) as usize;
        let qkv = f16_values(case.rows() * 3 * h, 17, 2.0);
        let none = &Choices::default();
        let got = attention::run_packed(gpu, none, &case, &qkv, None, Some(kernel.clone()))?;
        let (_, cu) = RunSizes::packed(&lens);
        let want = attention::reference_keys(&qkv, &cu, key_lens, 2, head_dim, window);
        if let Some((j, g, r)) = first_mismatch(&got, &want, atol, rtol) {
            return Err(Error::Unsupported(format!(
                "{case:?}: out[{}, {}] = {g}, reference {r}",
                j / h,
                j % h
            )));
        }
    }
    Ok(())
}

/// Seconds per run of one attention tile configuration on ModernBERT-base's global layer
/// shape: 4 sequences of 512 tokens, 12 heads (one sequence of 128 with `small`, for
/// software adapters).
pub fn time_attention(
    gpu: &Arc<Gpu>,
    dtype: DType,
    head_dim: u32,
    tiles: attention::Tiles,
    small: bool,
) -> Result<f64> {
    let kernel = attention::kernel(dtype, head_dim, tiles);
    time_attention_kernel(gpu, dtype, head_dim, kernel, small)
}

/// `time_attention` for any attention kernel build.
pub fn time_attention_kernel(
    gpu: &Arc<Gpu>,
    dtype: DType,
    head_dim: u32,
    kernel: crate::runtime::Kernel,
    small: bool,
) -> Result<f64> {
    let seqs = if small { (1, 128) } else { (4, 512) };
    let none = &Choices::default();
    let (mut plan, sizes) =
        timing::attention_plan(gpu, none, dtype, seqs, (12, head_dim), None, Some(kernel))?;
    timing::seconds(gpu, &mut plan, &sizes, TIMED_RUNS)
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
    }
}
