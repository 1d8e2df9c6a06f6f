//! Shared test helpers: one GPU per test process (lavapipe in CI), random data, tolerance
//! checks, packed-batch sizes, one matmul case against its reference (`matmul_case`), the
//! SPIR-V opcode scan (`spirv`), model directories with the CLI patterns (`model_dir`) and
//! the one way a check is skipped where a capability is missing (`require`). Each test binary
//! uses a part of them.
#![allow(dead_code)]

pub mod matmul_case;
pub mod model_dir;
pub mod parity;
pub mod require;
pub mod spirv;

pub use require::{Cap, require};

use std::sync::{Arc, OnceLock};

use wgbert::ops::DType;
use wgbert::runtime::{Gpu, GpuOptions, RunSizes};

/// One matmul test shape: `t` rows, inner size `k`, `n` outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulShape {
    pub t: usize,
    pub k: usize,
    pub n: usize,
}

impl MatmulShape {
    pub const fn new(t: usize, k: usize, n: usize) -> MatmulShape {
        MatmulShape { t, k, n }
    }
}

/// Matmul shapes: T in {1, 3, 65, 129, 300}, K and N off the 16/64 grids.
pub const MATMUL_SHAPES: [MatmulShape; 5] = [
    MatmulShape::new(1, 24, 17),
    MatmulShape::new(3, 40, 48),
    MatmulShape::new(65, 100, 70),
    MatmulShape::new(129, 5, 33),
    MatmulShape::new(300, 40, 70),
];

/// The test GPU: the adapter the environment names, as the CLI reads it
/// (`test_gpu_options`). Fails loudly when no adapter exists: CI installs lavapipe.
pub fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::new(&test_gpu_options()) {
        Ok(g) => g,
        Err(e) => panic!("tests need a GPU adapter (install mesa-vulkan-drivers): {e}"),
    })
    .clone()
}

/// The options of the test GPU: the environment's, as the CLI reads them
/// (`LoadOptions::from_env`: `WGPU_BACKEND`, `WGPU_ADAPTER_NAME`, `WGBERT_SHADER_CHECKS`,
/// `WGBERT_CPU_AS_GPU`, and `WGBERT_MAX_BINDING`, so that a suite can run with weights held
/// in row pieces), without a pipeline cache on disk.
pub fn test_gpu_options() -> GpuOptions {
    let env = wgbert::encoder::LoadOptions::from_env().unwrap_or_else(|e| panic!("{e}"));
    GpuOptions {
        pipeline_cache_dir: None,
        ..env.gpu
    }
}

/// The tensor-core mode the environment asks for (`WGBERT_COOP`, read as the CLI reads it:
/// `LoadOptions::from_env`).
pub fn coop_mode() -> wgbert::ops::coop::Mode {
    wgbert::encoder::LoadOptions::from_env().unwrap().coop
}

/// The kernel choices after the tensor-core self-checks on the test GPU in `coop_mode()`, as
/// a model load makes them (tiles at their defaults), and what `ops::tune::f16_kernels` said:
/// once per test process (no disk cache).
pub fn checked() -> &'static (
    wgbert::ops::choice::Choices,
    Result<wgbert::ops::tune::F16Kernels, String>,
) {
    static CHECKED: OnceLock<(
        wgbert::ops::choice::Choices,
        Result<wgbert::ops::tune::F16Kernels, String>,
    )> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let mut c = wgbert::ops::choice::Choices::new(coop_mode());
        let none = wgbert::ops::tune::Cache::none();
        let k = wgbert::ops::tune::f16_kernels(&gpu(), &mut c, &none).map_err(|e| e.to_string());
        (c, k)
    })
}

/// `checked().0`: the choices with the self-checks' verdicts.
pub fn checked_choices() -> &'static wgbert::ops::choice::Choices {
    &checked().0
}

/// Asserts `|got - want| <= atol + rtol * |want|` everywhere, naming the worst index.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0usize, 0.0f64);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        let excess = err - (atol + rtol * w.abs());
        if !(g.is_finite()) || excess > worst.1 {
            worst = (i, if g.is_finite() { excess } else { f64::INFINITY });
        }
    }
    assert!(
        worst.1 <= 0.0,
        "{what}: worst index {} got {} want {} (atol {atol}, rtol {rtol})",
        worst.0,
        got[worst.0],
        want[worst.0]
    );
}

/// A deterministic pseudo-random vector in [-scale, scale].
pub fn rand_vec(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// `tests/fixtures/`: beside the sources when they are where the tests were built, else
/// relative to the working directory (test binaries carried to another machine and run from
/// the repository root).
pub fn fixtures_dir() -> std::path::PathBuf {
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    if built.is_dir() {
        built
    } else {
        std::path::PathBuf::from("tests/fixtures")
    }
}

/// The storage types the test adapter supports: f32, and f16 where it has SHADER_F16 (else
/// the f16 cases are a skip, `require`, once per call).
pub fn dtypes() -> Vec<DType> {
    if require(Cap::F16, "the f16 cases") {
        vec![DType::F32, DType::F16]
    } else {
        vec![DType::F32]
    }
}

/// `v` rounded to what `dtype` storage holds, so references see the kernel's inputs.
pub fn stored(dtype: DType, v: &[f32]) -> Vec<f32> {
    dtype.decode(&dtype.encode(v))
}

/// A norm's scale near 1 and its shift, rounded to `dtype`.
pub fn norm_weights(n: usize, seed: u64, dtype: DType) -> (Vec<f32>, Vec<f32>) {
    let w: Vec<f32> = rand_vec(n, seed, 1.0).iter().map(|v| v + 1.0).collect();
    (
        stored(dtype, &w),
        stored(dtype, &rand_vec(n, seed + 1, 0.5)),
    )
}

/// The `cu_seqlens` of sequences of `lens` tokens packed back to back, and the run sizes of
/// that batch.
pub fn packed(lens: &[u32]) -> (Vec<u32>, RunSizes) {
    let (sizes, cu) = RunSizes::packed(lens);
    (cu, sizes)
}

/// The shape of a small random ModernBERT for end-to-end tests (`random_config`).
pub struct TinyModel {
    pub vocab: u32,
    pub hidden: u32,
    pub intermediate: u32,
    pub layers: u32,
    pub heads: u32,
    /// Every n-th layer is global, the others windowed.
    pub global_every: u32,
    /// The window's full width (`local_attention`).
    pub window: u32,
}

/// A ModernBERT config of `m`'s shape: GELU, no biases, rope theta 160000 (global) and
/// 10000 (local), 4096 positions.
pub fn random_config(m: &TinyModel) -> wgbert::model::config::ModelConfig {
    let json = serde_json::json!({
        "architectures": ["ModernBertModel"],
        "model_type": "modernbert",
        "vocab_size": m.vocab,
        "hidden_size": m.hidden,
        "intermediate_size": m.intermediate,
        "num_hidden_layers": m.layers,
        "num_attention_heads": m.heads,
        "max_position_embeddings": 4096,
        "global_attn_every_n_layers": m.global_every,
        "local_attention": m.window,
        "global_rope_theta": 160000.0,
        "local_rope_theta": 10000.0,
        "hidden_activation": "gelu",
        "norm_eps": 1e-05,
        "attention_bias": false,
        "mlp_bias": false,
        "norm_bias": false,
        "pad_token_id": 0,
        "cls_token_id": 1,
        "sep_token_id": 2
    });
    wgbert::model::config::ModelConfig::from_json_str(&json.to_string(), "tiny/config.json")
        .unwrap()
}

/// A fixture model loaded on the test GPU in `dtype`.
pub fn load(dir: &std::path::Path, dtype: DType) -> wgbert::encoder::Encoder {
    let opts = wgbert::encoder::LoadOptions {
        dtype: Some(dtype),
        ..Default::default()
    };
    wgbert::encoder::Encoder::load_on(gpu(), dir.to_str().unwrap(), &opts).unwrap()
}

/// Integers of a JSON list (quantized values).
pub fn ints(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_i64().unwrap_or_else(|| panic!("not an integer: {x}")))
        .collect()
}

/// A quantized vector's values as integers.
pub fn quantized_ints(q: &wgbert::sentence::quantize::Quantized) -> Vec<i64> {
    use wgbert::sentence::quantize::Quantized;
    match q {
        Quantized::I8(v) => v.iter().map(|&x| x as i64).collect(),
        Quantized::U8(v) => v.iter().map(|&x| x as i64).collect(),
        Quantized::F32(_) => panic!("not quantized"),
    }
}
