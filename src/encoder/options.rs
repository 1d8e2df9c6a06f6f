//! `LoadOptions`: how a model loads, and `LoadOptions::from_env`, the one place where the
//! library reads environment variables.

use std::path::PathBuf;

use crate::Result;
use crate::hub::HubOptions;
use crate::ops::DType;
use crate::ops::coop;
use crate::ops::tune::{self, TuneOptions};
use crate::progress::Observer;
use crate::runtime::{GpuOptions, parse_size};

/// How to load a model. `LoadOptions::default()` reads no environment variable: tensor
/// cores automatic, autotuning on real GPUs, no disk cache; `LoadOptions::from_env` is what
/// the `wgbert` CLI uses.
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// Storage precision; `None` picks f16 where the adapter has it, else f32.
    pub dtype: Option<DType>,
    /// Adapter choice and device setup (ignored by `load_on`).
    pub gpu: GpuOptions,
    /// Whether the tensor-core kernels may, or must, be used (`WGBERT_COOP`).
    pub coop: coop::Mode,
    /// Autotuning and the cache of tuned tiles and self-check verdicts (`WGBERT_AUTOTUNE`,
    /// `WGBERT_CACHE`, `WGBERT_BENCH_SMALL`).
    pub tune: TuneOptions,
    /// Hub access (cache, offline, token, progress).
    pub hub: HubOptions,
    /// A tokenizer.json to use instead of the model's.
    pub tokenizer: Option<PathBuf>,
    /// Cut texts longer than the model's limit instead of refusing them.
    pub truncate: bool,
    /// Largest number of tokens in one batch; `None` sizes it to the device.
    pub max_batch_tokens: Option<usize>,
    /// Told about downloads (unless `hub.progress` names another observer) and about the
    /// weight upload, one tensor at a time. The library itself never prints.
    pub progress: Observer,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("dtype", &self.dtype)
            .field("gpu", &self.gpu)
            .field("coop", &self.coop)
            .field("tune", &self.tune)
            .field("hub", &self.hub)
            .field("tokenizer", &self.tokenizer)
            .field("truncate", &self.truncate)
            .field("max_batch_tokens", &self.max_batch_tokens)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl LoadOptions {
    /// The options the environment asks for: the one place where the library reads
    /// environment variables (the `wgbert` CLI calls it, then applies its flags).
    ///
    /// | variable | sets |
    /// |---|---|
    /// | `WGBERT_COOP` | `coop`: `0` off, `1` required, unset automatic |
    /// | `WGBERT_AUTOTUNE` | `tune.autotune`: `0` never, `1` on any adapter, unset on GPUs |
    /// | `WGBERT_CACHE` | `tune.cache_dir` and `gpu.pipeline_cache_dir`; unset: the platform's cache directory (`$XDG_CACHE_HOME/wgbert`, `~/.cache/wgbert`, `~/Library/Caches/wgbert`, `%LOCALAPPDATA%\wgbert\cache`) |
    /// | `WGBERT_BENCH_SMALL` | `tune.small_shapes` (`1`) |
    /// | `WGBERT_SHADER_CHECKS` | `gpu.unchecked_shaders` (`0`) |
    /// | `WGBERT_CPU_AS_GPU` | `gpu.cpu_as_gpu` (`1`: a CPU adapter chooses a GPU's kernels) |
    /// | `WGBERT_MAX_BINDING` | `gpu.max_binding` (bytes, or with `KiB`, `MiB`, `GiB`) |
    /// | `WGPU_BACKEND`, `WGPU_ADAPTER_NAME` | `gpu.backend`, `gpu.adapter` |
    /// | `HF_HUB_OFFLINE` | `hub.offline` (`1`, `true`, `yes`, `on`) |
    /// | `HF_HUB_CACHE`, `HF_HOME` | `hub.cache_dir` (`$HF_HUB_CACHE`, else `$HF_HOME/hub`) |
    /// | `HF_TOKEN`, `HF_ENDPOINT` | `hub.token`, `hub.endpoint` |
    ///
    /// A value that cannot be understood (`WGBERT_COOP=yes`) is an `Error::Option`.
    pub fn from_env() -> Result<LoadOptions> {
        let var = |k: &str| std::env::var(k).ok();
        let dir = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let platform_cache = if cfg!(windows) {
            dir("LOCALAPPDATA").map(|d| d.join("wgbert").join("cache"))
        } else if cfg!(target_os = "macos") {
            dir("HOME").map(|h| h.join("Library/Caches/wgbert"))
        } else {
            dir("XDG_CACHE_HOME")
                .or_else(|| dir("HOME").map(|h| h.join(".cache")))
                .map(|d| d.join("wgbert"))
        };
        let cache_dir = dir("WGBERT_CACHE").or(platform_cache);
        let flag = |k: &str| {
            var(k).is_some_and(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )
            })
        };
        Ok(LoadOptions {
            gpu: GpuOptions {
                backend: var("WGPU_BACKEND"),
                adapter: var("WGPU_ADAPTER_NAME"),
                unchecked_shaders: var("WGBERT_SHADER_CHECKS").is_some_and(|v| v == "0"),
                pipeline_cache_dir: cache_dir.clone(),
                cpu_as_gpu: var("WGBERT_CPU_AS_GPU").is_some_and(|v| v == "1"),
                max_binding: var("WGBERT_MAX_BINDING")
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| {
                        parse_size(&v)
                            .map_err(|e| crate::Error::Option(format!("WGBERT_MAX_BINDING: {e}")))
                    })
                    .transpose()?,
            },
            coop: coop::Mode::parse(var("WGBERT_COOP").as_deref())?,
            tune: TuneOptions {
                autotune: tune::Setting::parse(var("WGBERT_AUTOTUNE").as_deref())?,
                cache_dir,
                small_shapes: var("WGBERT_BENCH_SMALL").is_some_and(|v| v == "1"),
            },
            hub: HubOptions {
                offline: flag("HF_HUB_OFFLINE"),
                cache_dir: dir("HF_HUB_CACHE").or_else(|| dir("HF_HOME").map(|h| h.join("hub"))),
                token: var("HF_TOKEN"),
                endpoint: var("HF_ENDPOINT"),
                ..Default::default()
            },
            ..Default::default()
        })
    }
}
