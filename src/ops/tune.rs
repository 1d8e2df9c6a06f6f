//! Per-device autotuning of tile configurations. The first time a (kernel family, shape
//! class, precision) is needed on an adapter, every candidate configuration that passes its
//! CPU-reference check on the device is timed with timestamp queries on a representative
//! shape, and the fastest is used from then on. Choices are kept for the process and cached
//! on disk, keyed by adapter, backend, driver, driver version and crate version, so a new
//! driver or a new wgbert tunes again.
//!
//! Four families are tuned ([`Family`]): the tiled matmul (`matmul::tiled::CANDIDATES`) and
//! the tensor-core matmul (`matmul::coop::CANDIDATES`, f16) in two row classes each, and the
//! portable and tensor-core attention kernels (`attention::CANDIDATES`,
//! `attention::coop::CANDIDATES`) per head size.
//! Settings: `WGBERT_AUTOTUNE` ([`Setting`]: unset tunes on real GPUs, `1` on any adapter,
//! `0` never); `WGBERT_CACHE` names the cache directory (default: the platform's
//! cache directory, e.g. `~/.cache/wgbert`). An adapter without timestamp queries keeps the
//! default: wall-clock timing of single dispatches is too noisy to choose by.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::ops::coop::{f16_values, first_mismatch};
use crate::ops::matmul::{self, Epilogue, coop, tiled};
use crate::ops::{Activation, DType, attention, timing};
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

/// Row classes of the tiled matmul: the rows a run has decide which tuned tile it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RowClass {
    /// Up to 512 rows (short batches, heads).
    Mid,
    /// More than 512 rows.
    Large,
}

impl RowClass {
    pub const ALL: [RowClass; 2] = [RowClass::Mid, RowClass::Large];

    pub fn name(self) -> &'static str {
        match self {
            RowClass::Mid => "rows<=512",
            RowClass::Large => "rows>512",
        }
    }

    /// The rows of the class, `lo..=hi`.
    pub fn rows(self) -> (u32, u32) {
        match self {
            RowClass::Mid => (0, 512),
            RowClass::Large => (513, u32::MAX),
        }
    }

    /// The shape (T, K, N) its candidates are timed on: ModernBERT-base's attention output
    /// projection at a representative row count (an eighth of each side with
    /// `WGBERT_BENCH_SMALL=1`, for software adapters).
    pub fn representative(self) -> (u32, u32, u32) {
        let (t, k, n) = match self {
            RowClass::Mid => (256, 768, 768),
            RowClass::Large => (1024, 768, 768),
        };
        if std::env::var("WGBERT_BENCH_SMALL").is_ok_and(|v| v == "1") {
            (t / 8, k / 8, n / 8)
        } else {
            (t, k, n)
        }
    }
}

/// `WGBERT_AUTOTUNE`: unset tunes on real GPUs only (timings of a CPU adapter such as
/// lavapipe say nothing about a GPU, and take minutes there), `1` tunes on any adapter, `0`
/// never (static defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Off,
    Auto,
    On,
}

impl Setting {
    pub fn from_env() -> Result<Setting> {
        match std::env::var("WGBERT_AUTOTUNE").as_deref() {
            Err(_) | Ok("") => Ok(Setting::Auto),
            Ok("1") => Ok(Setting::On),
            Ok("0") => Ok(Setting::Off),
            Ok(other) => Err(Error::Option(format!(
                "WGBERT_AUTOTUNE must be 0 or 1, got {other:?}"
            ))),
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

/// The on-disk cache: one JSON file, `tune.json`, in a directory.
#[derive(Debug, Clone)]
pub struct Cache {
    path: Option<PathBuf>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    entries: BTreeMap<String, Entry>,
}

impl Cache {
    /// The cache in `dir`.
    pub fn in_dir(dir: &Path) -> Cache {
        Cache {
            path: Some(dir.join("tune.json")),
        }
    }

    /// `WGBERT_CACHE`, else the platform's cache directory; none where neither is known
    /// (choices are then kept for the process only).
    pub fn default_location() -> Cache {
        let dir = std::env::var_os("WGBERT_CACHE")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(platform_cache_dir);
        Cache {
            path: dir.map(|d| d.join("tune.json")),
        }
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
    /// or crate version. Written to a temporary file and renamed, so concurrent processes
    /// never read half a file.
    pub fn put(
        &self,
        dev: &DeviceKey,
        op: &str,
        class: &str,
        dtype: DType,
        entry: Entry,
    ) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut file = self.read();
        file.entries
            .retain(|k, _| !dev.same_slot(k, op, class, dtype));
        file.entries.insert(dev.entry(op, class, dtype), entry);
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

fn platform_cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if cfg!(windows) {
        return env("LOCALAPPDATA").map(|d| d.join("wgbert").join("cache"));
    }
    if cfg!(target_os = "macos") {
        return env("HOME").map(|h| h.join("Library/Caches/wgbert"));
    }
    env("XDG_CACHE_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".cache")))
        .map(|d| d.join("wgbert"))
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
    /// Seconds per run of one candidate on the class's representative shape.
    fn time(gpu: &Arc<Gpu>, dtype: DType, class: Self::Class, config: Self::Config) -> Result<f64>;
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

    fn time(gpu: &Arc<Gpu>, dtype: DType, class: RowClass, config: tiled::Config) -> Result<f64> {
        time_tiled(gpu, dtype, config, class.representative())
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

    fn time(gpu: &Arc<Gpu>, _: DType, class: RowClass, config: coop::Config) -> Result<f64> {
        time_coop(gpu, config, class.representative())
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

    fn time(gpu: &Arc<Gpu>, dtype: DType, d: u32, tiles: attention::Tiles) -> Result<f64> {
        time_attention(gpu, dtype, d, tiles)
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

    fn time(gpu: &Arc<Gpu>, _: DType, d: u32, tiles: attention::Tiles) -> Result<f64> {
        let shape = attention::coop::supported(gpu.caps()).map_err(Error::Unsupported)?;
        let storage = gpu.caps().max_workgroup_storage;
        let kernel = attention::coop::kernel(shape, d, tiles, storage).ok_or_else(|| {
            Error::Unsupported(format!("{ATTENTION_COOP} {}: does not fit", tiles.name()))
        })?;
        time_attention_kernel(gpu, DType::F16, d, kernel)
    }
}

/// The tuned (or pinned) choices of this process: cache key (device, family, class,
/// precision) to the family's configuration.
type Table = HashMap<String, Box<dyn Any + Send>>;
static TUNED: Mutex<Option<Table>> = Mutex::new(None);
/// Held while tuning, so that threads loading models at once tune once.
static TUNING: Mutex<()> = Mutex::new(());

fn table_key<F: Family>(gpu: &Gpu, class: F::Class, dtype: DType) -> String {
    DeviceKey::of(gpu).entry(F::OP, &class.name(), dtype)
}

/// The candidate (or the default) of `F` named `name` on this device.
fn named<F: Family>(gpu: &Gpu, class: F::Class, name: &str) -> Option<F::Config> {
    F::candidates(gpu, class)
        .into_iter()
        .chain([F::default(gpu, class)])
        .find(|&c| c.name() == name)
}

fn in_process<F: Family>(gpu: &Gpu, class: F::Class, dtype: DType) -> Option<F::Config> {
    let key = table_key::<F>(gpu, class, dtype);
    let table = TUNED.lock().ok()?;
    table
        .as_ref()?
        .get(&key)?
        .downcast_ref::<F::Config>()
        .copied()
}

/// The configuration of `F` for `class` and `dtype` on this device: the tuned one when
/// `ensure` has run (or `pin` set one), else the default.
pub fn config<F: Family>(gpu: &Gpu, class: F::Class, dtype: DType) -> F::Config {
    in_process::<F>(gpu, class, dtype).unwrap_or_else(|| F::default(gpu, class))
}

/// Uses `config` for `class` and `dtype` on this device from now on in this process, as if
/// tuned (an application that knows its best tile, or a test of the per-class plan).
pub fn pin<F: Family>(gpu: &Gpu, class: F::Class, dtype: DType, config: F::Config) {
    if let Ok(mut t) = TUNED.lock() {
        t.get_or_insert_with(HashMap::new)
            .insert(table_key::<F>(gpu, class, dtype), Box::new(config));
    }
}

/// The tiled matmul's configuration for `class` and `dtype` on this device.
pub fn tiled_config(gpu: &Gpu, class: RowClass, dtype: DType) -> tiled::Config {
    config::<TiledMatmul>(gpu, class, dtype)
}

/// `pin` for the tiled matmul.
pub fn pin_tiled(gpu: &Gpu, class: RowClass, dtype: DType, config: tiled::Config) {
    pin::<TiledMatmul>(gpu, class, dtype, config);
}

/// The tensor-core matmul's configuration for `class` on this device.
pub fn coop_config(gpu: &Gpu, class: RowClass) -> coop::Config {
    config::<CoopMatmul>(gpu, class, DType::F16)
}

/// The portable attention kernel's tiles for `head_dim` and `dtype` on this device.
pub fn attention_tiles(gpu: &Gpu, head_dim: u32, dtype: DType) -> attention::Tiles {
    config::<PortableAttention>(gpu, head_dim, dtype)
}

/// The tensor-core attention kernel's tiles for `head_dim` on this device: the tuned ones
/// when `ensure` has run, else the default; `None` where no tile fits its workgroup memory.
pub fn coop_attention_tiles(gpu: &Gpu, head_dim: u32) -> Option<attention::Tiles> {
    in_process::<CoopAttention>(gpu, head_dim, DType::F16)
        .or_else(|| attention::coop::default_tiles(head_dim, gpu.caps().max_workgroup_storage))
}

/// One class's choice, as reported by `wgbert tune` and `wgbert info`.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub op: &'static str,
    pub class: String,
    pub dtype: &'static str,
    pub config: String,
    /// Where it came from: "tuned", "cache", "default (…why)".
    pub source: String,
    pub timings: BTreeMap<String, Option<f64>>,
}

/// What `ensure` may do to get a choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Report what this process or the cache holds, else the default; never time.
    Lookup,
    /// This process, else the cache, else tune now (what loading a model does).
    Ensure,
    /// Tune now whatever is known (`wgbert tune`).
    Force,
}

/// `ensure` for the tiled matmul, every row class.
pub fn ensure_tiled(
    gpu: &Arc<Gpu>,
    dtype: DType,
    cache: &Cache,
    mode: Mode,
    progress: Option<&dyn Progress>,
) -> Result<Vec<Choice>> {
    ensure::<TiledMatmul>(gpu, dtype, &RowClass::ALL, cache, mode, progress)
}

/// `ensure` for the tensor-core matmul (f16), every row class; nothing where the adapter
/// has no usable cooperative matrices.
pub fn ensure_coop(
    gpu: &Arc<Gpu>,
    cache: &Cache,
    mode: Mode,
    progress: Option<&dyn Progress>,
) -> Result<Vec<Choice>> {
    if coop::supported(gpu.caps()).is_err() {
        return Ok(Vec::new());
    }
    ensure::<CoopMatmul>(gpu, DType::F16, &RowClass::ALL, cache, mode, progress)
}

/// `ensure` for the portable attention kernel at these head sizes.
pub fn ensure_attention(
    gpu: &Arc<Gpu>,
    dtype: DType,
    head_dims: &[u32],
    cache: &Cache,
    mode: Mode,
    progress: Option<&dyn Progress>,
) -> Result<Vec<Choice>> {
    ensure::<PortableAttention>(gpu, dtype, head_dims, cache, mode, progress)
}

/// `ensure` for the tensor-core attention kernel (f16) at these head sizes; nothing where
/// the adapter has no usable cooperative matrices.
pub fn ensure_coop_attention(
    gpu: &Arc<Gpu>,
    head_dims: &[u32],
    cache: &Cache,
    mode: Mode,
    progress: Option<&dyn Progress>,
) -> Result<Vec<Choice>> {
    if attention::coop::supported(gpu.caps()).is_err() {
        return Ok(Vec::new());
    }
    ensure::<CoopAttention>(gpu, DType::F16, head_dims, cache, mode, progress)
}

/// Makes sure family `F` has a configuration for every class of `classes` in `dtype` on this
/// device: from this process, the disk cache, or by tuning now, as `mode` allows.
/// `WGBERT_AUTOTUNE=0` leaves the defaults. `progress` hears of each candidate timed.
pub fn ensure<F: Family>(
    gpu: &Arc<Gpu>,
    dtype: DType,
    classes: &[F::Class],
    cache: &Cache,
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
    let setting = Setting::from_env()?;
    if setting == Setting::Off {
        for &class in classes {
            let default = F::default(gpu, class);
            out.push(base(class, default, "default (WGBERT_AUTOTUNE=0)".into()));
        }
        return Ok(out);
    }
    // A model load on a CPU adapter uses what `wgbert tune` cached, and never times.
    let cpu = gpu.info().device_type == wgpu::DeviceType::Cpu;
    let mode = match mode {
        Mode::Ensure if cpu && setting == Setting::Auto => Mode::Lookup,
        m => m,
    };
    let _guard = TUNING
        .lock()
        .map_err(|_| Error::Option("tuning lock poisoned".into()))?;
    let dev = DeviceKey::of(gpu);
    for &class in classes {
        let class_name = class.name();
        let default = F::default(gpu, class);
        if let (false, Some(config)) = (force, in_process::<F>(gpu, class, dtype)) {
            out.push(base(class, config, "this process".into()));
            continue;
        }
        let cached = cache.get(&dev, F::OP, &class_name, dtype);
        if let (false, Some(entry)) = (force, &cached) {
            if let Some(config) = named::<F>(gpu, class, &entry.config) {
                pin::<F>(gpu, class, dtype, config);
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
                let t = F::time(gpu, dtype, class, c);
                if let Some(p) = progress {
                    p.advance(1, &c.name());
                }
                t
            },
        )?;
        if let Some(p) = progress {
            p.finish();
        }
        pin::<F>(gpu, class, dtype, config);
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
        (70usize, 100usize, 90usize, Epilogue::None, false),
        (33, 40, 48, Epilogue::GeGlu(Activation::GeluErf), true),
    ];
    let tol = match dtype {
        DType::F32 => 1e-4,
        DType::F16 => 4e-3,
    };
    for (i, &case) in cases.iter().enumerate() {
        let (_, _, _, epilogue, bias) = case;
        let build = (
            tiled::kernel(dtype, epilogue, bias, config),
            tiled::tile(config, epilogue),
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
        (150usize, 100usize, 150usize, Epilogue::Residual, true),
        (70, 72, 90, Epilogue::GeGlu(Activation::GeluErf), true),
        (33, 102, 40, Epilogue::None, false),
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
    let (mut plan, sizes) = timing::matmul_plan(gpu, dtype, shape, Epilogue::None, None, build)?;
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
    let (mut plan, sizes) = timing::matmul_plan(gpu, dtype, shape, Epilogue::None, None, build)?;
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
        let got = attention::run_packed(gpu, &case, &qkv, None, Some(kernel.clone()))?;
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
/// shape: 4 sequences of 512 tokens, 12 heads (one sequence of 128 with
/// `WGBERT_BENCH_SMALL=1`, for software adapters).
pub fn time_attention(
    gpu: &Arc<Gpu>,
    dtype: DType,
    head_dim: u32,
    tiles: attention::Tiles,
) -> Result<f64> {
    time_attention_kernel(
        gpu,
        dtype,
        head_dim,
        attention::kernel(dtype, head_dim, tiles),
    )
}

/// `time_attention` for any attention kernel build.
pub fn time_attention_kernel(
    gpu: &Arc<Gpu>,
    dtype: DType,
    head_dim: u32,
    kernel: crate::runtime::Kernel,
) -> Result<f64> {
    let small = std::env::var("WGBERT_BENCH_SMALL").is_ok_and(|v| v == "1");
    let seqs = if small { (1, 128) } else { (4, 512) };
    let (mut plan, sizes) =
        timing::attention_plan(gpu, dtype, seqs, (12, head_dim), None, Some(kernel))?;
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
