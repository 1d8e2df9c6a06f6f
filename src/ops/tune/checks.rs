//! The on-device checks (against the CPU reference) and timings of tile candidates.

use std::sync::Arc;

use super::{ATTENTION, ATTENTION_COOP, MATMUL_COOP, MATMUL_TILED};
use crate::ops::choice::Choices;
use crate::ops::coop::{compare, f16_values, named};
use crate::ops::matmul::{self, Epilogue, coop, tiled};
use crate::ops::{Activation, DType, attention, timing};
use crate::runtime::{Gpu, RunSizes};
use crate::{Error, Result};

/// Runs timed per candidate, after one warm-up run.
const TIMED_RUNS: usize = 3;

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
            tiled::build(
                gpu.caps(),
                dtype,
                case.epilogue,
                case.bias,
                config,
                case.k as u32,
            ),
            tiled::tile(config, case.epilogue),
        );
        matmul::check_build(gpu, dtype, case, build, (tol, tol), 101 + 7 * i as u64)
            .map_err(|e| named(format_args!("{MATMUL_TILED} {} check", config.name()), e))?;
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
        .map_err(|e| named(format_args!("{MATMUL_COOP} {} check", config.name()), e))
}

/// Seconds per run of one tensor-core configuration on `(t, k, n)` (as `time_tiled`).
pub fn time_coop(gpu: &Arc<Gpu>, config: coop::Config, shape: (u32, u32, u32)) -> Result<f64> {
    let s = coop::supported(gpu.caps()).map_err(Error::Unsupported)?;
    let kernel = coop::kernel(s, config, Epilogue::None, false, shape.1);
    let build = Some((kernel, coop::tile(s, config, Epilogue::None)));
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
    let kernel = tiled::build(gpu.caps(), dtype, Epilogue::None, false, config, shape.1);
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
    let kernel = attention::kernel(gpu.caps(), dtype, head_dim, tiles);
    check_attention_kernel(gpu, dtype, head_dim, kernel, (tol, tol))
        .map_err(|e| named(format_args!("{ATTENTION} {} check", tiles.name()), e))
}

/// The same check for one tile configuration of the tensor-core attention kernel, at the
/// adapter's shape (its self-check tolerance: P is rounded to f16).
pub fn check_coop_attention(gpu: &Arc<Gpu>, head_dim: u32, tiles: attention::Tiles) -> Result<()> {
    let what = format!("{ATTENTION_COOP} {} check", tiles.name());
    let shape = attention::coop::supported(gpu.caps()).map_err(Error::Unsupported)?;
    let storage = gpu.caps().max_workgroup_storage;
    let kernel = attention::coop::kernel(shape, head_dim, tiles, storage)
        .ok_or_else(|| Error::Unsupported(format!("{what}: does not fit the adapter")))?;
    let tol = (attention::coop::CHECK_ATOL, attention::coop::CHECK_RTOL);
    check_attention_kernel(gpu, DType::F16, head_dim, kernel, tol).map_err(|e| named(what, e))
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
        compare(&got, &want, (atol, rtol), |j| {
            format!("{case:?}: out[{}, {}]", j / h, j % h)
        })?;
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
    let kernel = attention::kernel(gpu.caps(), dtype, head_dim, tiles);
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
