//! Matmul: `Y[T, N] = X[T, K] · W^T (+ bias) (+ epilogue)` with W in PyTorch `[out, in]`
//! layout, f32 or f16 storage and f32 accumulation, for any T, K, N.
//!
//! Variants (`MatmulVariant`): a shared-memory tiled kernel (`shaders/matmul.wgsl`, 64x64
//! output tiles) for any row count, and a subgroup-reduction kernel
//! (`shaders/matmul_subgroup.wgsl`) that wins when there are few rows (MLM head, pooled
//! classifier). Epilogues fuse bias, residual add, an activation or GeGLU into the store, so
//! GeGLU's 2I-wide intermediate never reaches memory.
//!
//! A tensor-core variant (`shaders/matmul_coop.wgsl`, see `ops::matmul_coop`) replaces the
//! tiled one for f16 when the adapter has cooperative matrices and the kernel passed its
//! run-time self-check on the device.
//!
//! Without a forced variant, a step whose row count is only known at run time is recorded
//! twice when the adapter has subgroups: the subgroup kernel runs when the run has at most
//! `SMALL_ROWS` rows and the tiled one otherwise (the other launch is skipped).

use crate::ops::{Activation, DType, Rows, matmul_coop};
use crate::runtime::{self, Access, Capabilities, Kernel, Launch, PlanBuilder, RunSizes, TensorId};
use crate::{Error, Result};

/// What the kernel does with `acc = x · W[col] (+ bias[col])` before storing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Epilogue {
    /// `y = acc`.
    None,
    /// `y = acc + residual[row, col]`; `residual` is `[T, N]`, a buffer apart from `y`.
    Residual,
    /// `y = act(acc)`.
    Act(Activation),
    /// W is `[2I, K]` and `n` is I: `y[:, c] = act(acc[c]) * acc[I + c]`, in one kernel.
    GeGlu(Activation),
}

/// Which kernel computes the product; `record` picks among the variants the adapter supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatmulVariant {
    /// Shared-memory tiles of 64x64 outputs, 256 threads of 4x4 each; any adapter.
    Tiled,
    /// One subgroup per output column, lanes split K, `subgroupAdd` reduces; for few rows.
    /// Needs `Capabilities::subgroups`; correct for any subgroup size.
    Subgroup,
    /// Cooperative matrices (tensor cores), 128x64 tiles of four 32-wide subgroups; f16
    /// storage only. Needs `matmul_coop::supported`.
    Coop,
}

/// Up to this many rows the subgroup kernel is chosen over the tiled one (64-row tiles leave
/// most of the tile idle and give too few workgroups for narrow outputs).
pub const SMALL_ROWS: u32 = 32;

/// Rows and output columns of one tiled workgroup (columns halve for GeGLU).
const TILE_M: u32 = 64;
const TILE_N: u32 = 64;
/// Output columns of one subgroup-kernel workgroup.
const SUBGROUP_COLS: u32 = 4;

/// One matmul step. Sizes in elements; `rows` says which run size is T.
#[derive(Debug, Clone, Copy)]
pub struct MatmulArgs {
    /// `[T, K]` activations.
    pub x: TensorId,
    /// `[N, K]` weight (`[2N, K]` for GeGLU), PyTorch `[out, in]`.
    pub w: TensorId,
    /// `[N]` bias (`[2N]` for GeGLU), if the checkpoint has one.
    pub bias: Option<TensorId>,
    /// `[T, N]`, required by (and only allowed with) `Epilogue::Residual`.
    pub residual: Option<TensorId>,
    /// `[T, N]` output; fully written for the run's rows.
    pub y: TensorId,
    pub rows: Rows,
    pub k: u32,
    /// Output width; for GeGLU the half width I.
    pub n: u32,
    pub dtype: DType,
    pub epilogue: Epilogue,
    /// Forces a variant (tests, benchmarks); `None` lets `record` choose from the adapter.
    pub variant: Option<MatmulVariant>,
}

/// The uniform of both matmul shaders (`MatmulParams` in `shaders/common/matmul_epilogue.wgsl`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MatmulParams {
    pub rows: u32,
    pub k: u32,
    /// Output width (the half width for GeGLU).
    pub n: u32,
    /// Workgroups along the output width.
    pub tiles_n: u32,
    /// Workgroups in all; the shader skips ids past this.
    pub tiles: u32,
    pub _pad: [u32; 3],
}

impl MatmulVariant {
    fn shader(self) -> &'static str {
        match self {
            MatmulVariant::Tiled => "matmul",
            MatmulVariant::Subgroup => "matmul_subgroup",
            MatmulVariant::Coop => "matmul_coop",
        }
    }

    /// Whether the adapter can run this variant.
    pub fn supported(self, caps: &Capabilities) -> bool {
        match self {
            MatmulVariant::Tiled => true,
            MatmulVariant::Subgroup => caps.subgroups,
            MatmulVariant::Coop => matmul_coop::supported(caps),
        }
    }

    /// Parameters and workgroup count for `rows` rows (zero workgroups when `rows` is 0).
    pub fn params(self, epilogue: Epilogue, rows: u32, k: u32, n: u32) -> MatmulParams {
        let (tiles_m, tiles_n) = match self {
            MatmulVariant::Tiled => {
                let cols = match epilogue {
                    Epilogue::GeGlu(_) => TILE_N / 2,
                    _ => TILE_N,
                };
                (rows.div_ceil(TILE_M), n.div_ceil(cols))
            }
            MatmulVariant::Subgroup => (u32::from(rows > 0), n.div_ceil(SUBGROUP_COLS)),
            MatmulVariant::Coop => matmul_coop::tiles(epilogue, rows, n),
        };
        MatmulParams {
            rows,
            k,
            n,
            tiles_n,
            tiles: tiles_m.saturating_mul(tiles_n),
            _pad: [0; 3],
        }
    }
}

/// The kernel of one variant: `variant` x `dtype` x `epilogue` x bias present.
/// Storage bindings: x, w, y, then bias and residual when present.
pub fn kernel(variant: MatmulVariant, dtype: DType, epilogue: Epilogue, bias: bool) -> Kernel {
    let mut access = vec![Access::Read, Access::Read, Access::ReadWrite];
    let mut k = dtype.apply(Kernel::new(variant.shader(), "main", &[]));
    // The BIAS / RESIDUAL defines carry their binding numbers.
    if bias {
        access.push(Access::Read);
        k = k.define("BIAS", access.len());
    }
    match epilogue {
        Epilogue::None => {}
        Epilogue::Residual => {
            access.push(Access::Read);
            k = k.define("RESIDUAL", access.len());
        }
        Epilogue::Act(a) => k = k.define("ACT", a.wgsl()),
        Epilogue::GeGlu(a) => k = k.define("GEGLU", 1).define("ACT", a.wgsl()),
    }
    k.bindings = access;
    k
}

/// Every matmul kernel the crate can create (for the shader translation test).
pub fn variants() -> Vec<Kernel> {
    let acts = [
        Activation::GeluErf,
        Activation::GeluTanh,
        Activation::Silu,
        Activation::Relu,
    ];
    let mut epilogues = vec![Epilogue::None, Epilogue::Residual];
    epilogues.extend(acts.iter().map(|&a| Epilogue::Act(a)));
    epilogues.extend(acts.iter().map(|&a| Epilogue::GeGlu(a)));
    let mut v = Vec::new();
    for variant in [MatmulVariant::Tiled, MatmulVariant::Subgroup] {
        for dtype in [DType::F32, DType::F16] {
            for &e in &epilogues {
                for bias in [false, true] {
                    v.push(kernel(variant, dtype, e, bias));
                }
            }
        }
    }
    v
}

/// Floating-point operations of one product (2 per multiply-add; GeGLU counts both halves).
pub fn flops(t: u64, k: u64, n: u64, epilogue: Epilogue) -> u64 {
    let width = match epilogue {
        Epilogue::GeGlu(_) => 2 * n,
        _ => n,
    };
    2 * t * k * width
}

/// Checks the arguments against the tensors' sizes and returns the most rows they hold.
pub(crate) fn check(b: &PlanBuilder, label: &str, a: &MatmulArgs) -> Result<u32> {
    let bad = |m: String| Err(Error::PlanInput(format!("matmul '{label}': {m}")));
    if a.k == 0 || a.n == 0 {
        return bad(format!("k = {} and n = {} must be positive", a.k, a.n));
    }
    if a.dtype == DType::F16 && !b.gpu().caps().f16 {
        return Err(Error::Unsupported(format!(
            "matmul '{label}': f16 storage needs SHADER_F16"
        )));
    }
    let es = a.dtype.size();
    let (k, n) = (a.k as u64, a.n as u64);
    let w_rows = match a.epilogue {
        Epilogue::GeGlu(_) => 2 * n,
        _ => n,
    };
    if b.bytes(a.w) < w_rows * k * es {
        return bad(format!(
            "weight holds {} bytes, needs [{w_rows}, {k}] x {es}",
            b.bytes(a.w)
        ));
    }
    let bias_bytes = a.bias.map(|t| b.bytes(t));
    if bias_bytes.is_some_and(|bytes| bytes < w_rows * es) {
        return bad(format!(
            "bias holds {bias_bytes:?} bytes, needs [{w_rows}] x {es}"
        ));
    }
    let mut cap = (b.bytes(a.x) / (k * es)).min(b.bytes(a.y) / (n * es));
    match (a.epilogue, a.residual) {
        (Epilogue::Residual, Some(r)) => cap = cap.min(b.bytes(r) / (n * es)),
        (Epilogue::Residual, None) => return bad("the residual epilogue needs a residual".into()),
        (_, Some(_)) => return bad("a residual is only read by Epilogue::Residual".into()),
        (_, None) => {}
    }
    // Indices are u32 in the shaders.
    let cap = cap.min(u32::MAX as u64 / k.max(n)) as u32;
    match a.rows {
        Rows::Fixed(r) if r > cap => bad(format!("{r} rows, but the buffers hold {cap}")),
        _ => Ok(cap),
    }
}

/// Records the step(s) of one matmul. The variant is `args.variant` if set (an error when the
/// adapter lacks it), else chosen from the adapter and the row count (see the module docs;
/// the first automatic choice of Coop on a device runs its self-check).
/// Rows past the buffers' capacity are clamped to it (the plan's owner checks run sizes).
pub fn record(b: &mut PlanBuilder, label: &str, args: &MatmulArgs) -> Result<()> {
    let cap = check(b, label, args)?;
    let caps = b.gpu().caps().clone();
    // The variant for many rows; Coop only after its self-check on this device.
    let big = || {
        if matmul_coop::usable(b.gpu(), args.dtype) {
            MatmulVariant::Coop
        } else {
            MatmulVariant::Tiled
        }
    };
    // (variant, rows it runs for: lo..=hi)
    let plan: Vec<(MatmulVariant, u32, u32)> = match args.variant {
        Some(v) if !v.supported(&caps) => {
            let needs = match v {
                MatmulVariant::Coop => "16x16x16 f16/f32 cooperative matrices, 32-wide subgroups",
                _ => "subgroups",
            };
            return Err(Error::Unsupported(format!(
                "matmul '{label}': the {v:?} variant needs {needs}"
            )));
        }
        Some(MatmulVariant::Coop) if args.dtype != DType::F16 => {
            return Err(Error::Unsupported(format!(
                "matmul '{label}': the Coop variant stores f16 only"
            )));
        }
        Some(v) => vec![(v, 0, u32::MAX)],
        None if !MatmulVariant::Subgroup.supported(&caps) => vec![(big(), 0, u32::MAX)],
        None => match args.rows {
            Rows::Fixed(r) if r <= SMALL_ROWS => vec![(MatmulVariant::Subgroup, 0, u32::MAX)],
            Rows::Fixed(_) => vec![(big(), 0, u32::MAX)],
            _ => vec![
                (MatmulVariant::Subgroup, 0, SMALL_ROWS),
                (big(), SMALL_ROWS + 1, u32::MAX),
            ],
        },
    };
    for (variant, lo, hi) in plan {
        let kernel = kernel(variant, args.dtype, args.epilogue, args.bias.is_some());
        let step_label = if lo == 0 && hi == u32::MAX {
            label.to_string()
        } else {
            format!("{label} ({variant:?}, rows {lo}..={hi})")
        };
        record_step(b, step_label, kernel, args, variant, cap, lo, hi)?;
    }
    Ok(())
}

/// Records one launch of `kernel` (a build of `variant`) that runs when the run's rows are in
/// `lo..=hi`, clamped to `cap`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_step(
    b: &mut PlanBuilder,
    step_label: String,
    kernel: Kernel,
    args: &MatmulArgs,
    variant: MatmulVariant,
    cap: u32,
    lo: u32,
    hi: u32,
) -> Result<()> {
    let mut bindings = vec![args.x, args.w, args.y];
    bindings.extend(args.bias);
    bindings.extend(args.residual);
    let max_dim = b.gpu().caps().max_workgroups_per_dim;
    let a = *args;
    let name = step_label.clone();
    b.step(step_label, kernel, &bindings, move |s: &RunSizes| {
        let want = a.rows.eval(s);
        if want > cap {
            log::warn!("matmul '{name}': {want} rows clamped to the capacity {cap}");
        }
        let rows = want.min(cap);
        let p = variant.params(a.epilogue, rows, a.k, a.n);
        let wg = if rows < lo || rows > hi || p.tiles == 0 {
            [0, 0, 0]
        } else {
            runtime::grid(p.tiles, max_dim)
        };
        Launch::new(&p, wg)
    })
}

/// CPU reference with f64 accumulation. `x` is `[t, k]`, `w` `[n, k]` (`[2n, k]` for GeGLU),
/// `bias` `[n]` (`[2n]`), `residual` `[t, n]` (read by `Epilogue::Residual` only).
#[allow(clippy::too_many_arguments)]
pub fn reference(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    t: usize,
    k: usize,
    n: usize,
    epilogue: Epilogue,
) -> Vec<f64> {
    let dot = |r: usize, c: usize| -> f64 {
        let xr = &x[r * k..(r + 1) * k];
        let wr = &w[c * k..(c + 1) * k];
        let s: f64 = xr.iter().zip(wr).map(|(&a, &b)| a as f64 * b as f64).sum();
        s + bias.map_or(0.0, |b| b[c] as f64)
    };
    let mut y = Vec::with_capacity(t * n);
    for r in 0..t {
        for c in 0..n {
            let v = dot(r, c);
            y.push(match epilogue {
                Epilogue::None => v,
                Epilogue::Residual => v + residual.map_or(0.0, |res| res[r * n + c] as f64),
                Epilogue::Act(a) => a.apply(v),
                Epilogue::GeGlu(a) => a.apply(v) * dot(r, n + c),
            });
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workgroup_counts_cover_every_output() {
        let p = MatmulVariant::Tiled.params(Epilogue::None, 65, 24, 129);
        assert_eq!((p.tiles_n, p.tiles), (3, 6));
        let p = MatmulVariant::Tiled.params(Epilogue::GeGlu(Activation::GeluErf), 64, 8, 33);
        assert_eq!((p.tiles_n, p.tiles), (2, 2));
        let p = MatmulVariant::Subgroup.params(Epilogue::None, 300, 8, 17);
        assert_eq!((p.tiles_n, p.tiles), (5, 5));
        assert_eq!(
            MatmulVariant::Subgroup
                .params(Epilogue::None, 0, 8, 17)
                .tiles,
            0
        );
        assert_eq!(std::mem::size_of::<MatmulParams>(), 32);
    }

    #[test]
    fn kernels_bind_bias_and_residual_after_y() {
        let k = kernel(MatmulVariant::Tiled, DType::F16, Epilogue::Residual, true);
        assert_eq!(k.bindings.len(), 5);
        assert!(k.name().contains("BIAS=4") && k.name().contains("RESIDUAL=5"));
        let k = kernel(
            MatmulVariant::Subgroup,
            DType::F32,
            Epilogue::Residual,
            false,
        );
        assert!(k.name().contains("RESIDUAL=4"), "{}", k.name());
        assert_eq!(variants().len(), 80);
    }

    #[test]
    fn reference_geglu_pairs_input_and_gate_rows() {
        // x = [1, 2]; W rows: input [1, 0], gate [0, 1]; bias [0.5, -1].
        let y = reference(
            &[1.0, 2.0],
            &[1.0, 0.0, 0.0, 1.0],
            Some(&[0.5, -1.0]),
            None,
            1,
            2,
            1,
            Epilogue::GeGlu(Activation::Relu),
        );
        assert_eq!(y, vec![1.5 * 1.0]);
    }
}
