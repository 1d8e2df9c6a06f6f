//! Per-device autotuning of tile configurations. The first time a (kernel family, shape
//! class, precision) is needed on an adapter, every candidate configuration that passes its
//! CPU-reference check on the device is timed with timestamp queries on a representative
//! shape, and the fastest is used from then on. Choices are kept for the process and cached
//! on disk, keyed by adapter, backend, driver, driver version and crate version, so a new
//! driver or a new wgbert tunes again.
//!
//! Today one family is tuned: the tiled matmul (`matmul::tiled::CANDIDATES`), in two row
//! classes. Settings: `WGBERT_AUTOTUNE` ([`Setting`]: unset tunes on real GPUs, `1` on any
//! adapter, `0` never); `WGBERT_CACHE` names the cache directory (default: the platform's
//! cache directory, e.g. `~/.cache/wgbert`). An adapter without timestamp queries keeps the
//! default: wall-clock timing of single dispatches is too noisy to choose by.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::ops::DType;
use crate::ops::coop::f16_values;
use crate::ops::matmul::{self, Epilogue, MatmulArgs, tiled};
use crate::ops::{Activation, Rows};
use crate::progress::Progress;
use crate::runtime::{Gpu, PlanBuilder, RunSizes};
use crate::{Error, Result};

/// The tuned kernel family (its name in caches and reports).
pub const MATMUL_TILED: &str = "matmul_tiled";

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

    fn entry(&self, op: &str, class: RowClass, dtype: DType) -> String {
        format!(
            "{}|{}|{}|wgbert {}|{op}|{}|{}",
            self.adapter_part(),
            self.driver,
            self.driver_info,
            env!("CARGO_PKG_VERSION"),
            class.name(),
            dtype.wgsl()
        )
    }

    fn same_slot(&self, key: &str, op: &str, class: RowClass, dtype: DType) -> bool {
        let tail = format!("|{op}|{}|{}", class.name(), dtype.wgsl());
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
    pub fn get(&self, dev: &DeviceKey, op: &str, class: RowClass, dtype: DType) -> Option<Entry> {
        self.read().entries.remove(&dev.entry(op, class, dtype))
    }

    /// Stores an entry, dropping those of the same adapter and slot made with another driver
    /// or crate version. Written to a temporary file and renamed, so concurrent processes
    /// never read half a file.
    pub fn put(
        &self,
        dev: &DeviceKey,
        op: &str,
        class: RowClass,
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

/// The tuned choices of this process: (device, class, precision) to configuration.
type Table = HashMap<(String, RowClass, DType), tiled::Config>;
static TUNED: Mutex<Option<Table>> = Mutex::new(None);
/// Held while tuning, so that threads loading models at once tune once.
static TUNING: Mutex<()> = Mutex::new(());

fn table_key(gpu: &Gpu, class: RowClass, dtype: DType) -> (String, RowClass, DType) {
    (
        DeviceKey::of(gpu).entry(MATMUL_TILED, class, dtype),
        class,
        dtype,
    )
}

/// The tiled matmul configuration for `class` and `dtype` on this device: the tuned one when
/// `ensure_tiled` or `tune_tiled` has run, else the default.
pub fn tiled_config(gpu: &Gpu, class: RowClass, dtype: DType) -> tiled::Config {
    let key = table_key(gpu, class, dtype);
    TUNED
        .lock()
        .ok()
        .and_then(|t| t.as_ref().and_then(|t| t.get(&key).copied()))
        .unwrap_or(tiled::DEFAULT)
}

/// Uses `config` for `class` and `dtype` on this device from now on in this process, as if
/// tuned (an application that knows its best tile, or a test of the per-class plan).
pub fn pin_tiled(gpu: &Gpu, class: RowClass, dtype: DType, config: tiled::Config) {
    remember(gpu, class, dtype, config);
}

fn remember(gpu: &Gpu, class: RowClass, dtype: DType, config: tiled::Config) {
    if let Ok(mut t) = TUNED.lock() {
        t.get_or_insert_with(HashMap::new)
            .insert(table_key(gpu, class, dtype), config);
    }
}

/// One class's choice, as reported by `wgbert tune` and `wgbert info`.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub op: &'static str,
    pub class: &'static str,
    pub dtype: &'static str,
    pub config: String,
    /// Where it came from: "tuned", "cache", "default (…why)".
    pub source: String,
    pub timings: BTreeMap<String, Option<f64>>,
}

/// What `ensure_tiled` may do to get a choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Report what this process or the cache holds, else the default; never time.
    Lookup,
    /// This process, else the cache, else tune now (what loading a model does).
    Ensure,
    /// Tune now whatever is known (`wgbert tune`).
    Force,
}

/// Makes sure the tiled matmul has a configuration for every row class in `dtype` on this
/// device: from this process, the disk cache, or by tuning now, as `mode` allows.
/// `WGBERT_AUTOTUNE=0` leaves the defaults. `progress` hears of each candidate timed.
pub fn ensure_tiled(
    gpu: &Arc<Gpu>,
    dtype: DType,
    cache: &Cache,
    mode: Mode,
    progress: Option<&dyn Progress>,
) -> Result<Vec<Choice>> {
    let force = mode == Mode::Force;
    let mut out = Vec::new();
    let base = |class: RowClass, config: tiled::Config, source: String| Choice {
        op: MATMUL_TILED,
        class: class.name(),
        dtype: dtype.wgsl(),
        config: config.name(),
        source,
        timings: BTreeMap::new(),
    };
    let setting = Setting::from_env()?;
    if setting == Setting::Off {
        for class in RowClass::ALL {
            out.push(base(
                class,
                tiled::DEFAULT,
                "default (WGBERT_AUTOTUNE=0)".into(),
            ));
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
    let candidates: Vec<tiled::Config> = tiled::CANDIDATES
        .into_iter()
        .filter(|c| c.fits(gpu.caps()))
        .collect();
    for class in RowClass::ALL {
        let in_process = TUNED.lock().ok().and_then(|t| {
            t.as_ref()
                .and_then(|t| t.get(&table_key(gpu, class, dtype)).copied())
        });
        if let (false, Some(config)) = (force, in_process) {
            out.push(base(class, config, "this process".into()));
            continue;
        }
        let cached = cache.get(&dev, MATMUL_TILED, class, dtype);
        if let (false, Some(entry)) = (force, &cached) {
            if let Some(config) = tiled::Config::parse(&entry.config).filter(|c| c.fits(gpu.caps()))
            {
                remember(gpu, class, dtype, config);
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
            out.push(base(class, tiled::DEFAULT, format!("default ({why})")));
            continue;
        }
        if let Some(p) = progress {
            let what = format!("tuning {MATMUL_TILED} {} {}", class.name(), dtype.wgsl());
            p.start(&what, candidates.len() as u64);
        }
        let timestamps = gpu.caps().timestamps;
        let (config, timings) = pick(
            &candidates,
            tiled::DEFAULT,
            timestamps,
            |c| check_tiled(gpu, dtype, c),
            |c| {
                let t = time_tiled(gpu, dtype, c, class.representative());
                if let Some(p) = progress {
                    p.advance(1, &c.name());
                }
                t
            },
        )?;
        if let Some(p) = progress {
            p.finish();
        }
        remember(gpu, class, dtype, config);
        let timings: BTreeMap<String, Option<f64>> =
            timings.into_iter().map(|(c, t)| (c.name(), t)).collect();
        let source = if timestamps {
            let entry = Entry {
                config: config.name(),
                timings: timings.clone(),
            };
            // A cache that cannot be written (read-only home) costs a re-tune next time.
            if let Err(e) = cache.put(&dev, MATMUL_TILED, class, dtype, entry) {
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

/// Seconds per run of one configuration on `(t, k, n)`: one warm-up run, then the mean GPU
/// time of three (timestamp queries).
pub fn time_tiled(
    gpu: &Arc<Gpu>,
    dtype: DType,
    config: tiled::Config,
    (t, k, n): (u32, u32, u32),
) -> Result<f64> {
    let es = dtype.size();
    let mut b = PlanBuilder::new(gpu.clone());
    let x = b.input("tune x", t as u64 * k as u64 * es);
    let wbuf = gpu.upload(
        "tune w",
        &dtype.encode(&f16_values((k * n) as usize, 3, 0.1)),
    )?;
    let w = b.external("tune w", &wbuf);
    let y = b.output("tune y", t as u64 * n as u64 * es);
    let args = MatmulArgs {
        x,
        w,
        bias: None,
        residual: None,
        y,
        rows: Rows::Fixed(t),
        k,
        n,
        dtype,
        epilogue: Epilogue::None,
        variant: None,
    };
    let kernel = tiled::kernel(dtype, Epilogue::None, false, config);
    matmul::record_kernel(
        &mut b,
        "tune",
        &args,
        kernel,
        tiled::tile(config, Epilogue::None),
    )?;
    let mut plan = b.build()?;
    let sizes = RunSizes::default();
    plan.run(&sizes)?;
    let reps = 3;
    let mut ns = 0.0;
    for _ in 0..reps {
        ns += plan.run_profiled(&sizes)?.total_ns();
    }
    Ok(ns / reps as f64 * 1e-9)
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
