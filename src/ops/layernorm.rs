//! LayerNorm over rows, `y = (h - mean) / sqrt(var + eps) * w (+ b)` with population
//! variance and f32 statistics, where `h = x` or, fused with the residual add, `h = x + r`
//! (then `h` is also written: it is the new residual stream). Shader: `shaders/layernorm.wgsl`
//! with the row reduction of `shaders/common/rownorm.wgsl`, which the embedding and pooling
//! kernels share; the helpers for that layout (values per thread, reduction flavour) live here.

use crate::ops::{DType, Rows};
use crate::runtime::{self, Access, Capabilities, Kernel, Launch, PlanBuilder, RunSizes, TensorId};
use crate::{Error, Result};

/// Threads of a row workgroup (`RN_WG` in `common/rownorm.wgsl`).
pub const ROW_THREADS: u32 = 128;
/// Values per thread of the largest variant (`PT`).
pub const MAX_PER_THREAD: u32 = 32;
/// Widest row the row kernels take (4096).
pub const MAX_HIDDEN: u32 = ROW_THREADS * MAX_PER_THREAD;

/// The `PT` buckets the row kernels are built with (powers of two).
pub const PER_THREAD_BUCKETS: [u32; 6] = [1, 2, 4, 8, 16, 32];

/// Values each thread holds for a row of `hidden` (the `PT` define): the power of two that
/// covers `hidden / ROW_THREADS`, so a model needs one variant per row width.
pub fn per_thread(hidden: u32) -> Result<u32> {
    if hidden == 0 || hidden > MAX_HIDDEN {
        return Err(Error::PlanInput(format!(
            "row kernels take 1..={MAX_HIDDEN} features per row, got {hidden}"
        )));
    }
    Ok(hidden.div_ceil(ROW_THREADS).next_power_of_two())
}

/// How a workgroup reduces a row's partial sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reduce {
    /// Shared-memory tree: portable.
    Workgroup,
    /// `subgroupAdd`, then one partial per subgroup: fewer barriers, needs `SUBGROUP`.
    Subgroup,
}

impl Reduce {
    /// The fastest flavour this device supports.
    pub fn best(caps: &Capabilities) -> Reduce {
        if caps.subgroups {
            Reduce::Subgroup
        } else {
            Reduce::Workgroup
        }
    }

    pub(crate) fn apply(self, k: Kernel) -> Kernel {
        match self {
            Reduce::Workgroup => k,
            Reduce::Subgroup => k.define("SUBGROUP", 1),
        }
    }

    pub(crate) fn check(self, caps: &Capabilities) -> Result<()> {
        if self == Reduce::Subgroup && !caps.subgroups {
            return Err(Error::Unsupported(
                "subgroup operations (SUBGROUP) for the row reduction".into(),
            ));
        }
        Ok(())
    }
}

/// Refuses f16 storage on a device without `SHADER_F16`.
pub(crate) fn check_dtype(caps: &Capabilities, dtype: DType) -> Result<()> {
    if dtype == DType::F16 && !caps.f16 {
        return Err(Error::Unsupported(
            "f16 storage needs SHADER_F16; use f32 on this adapter".into(),
        ));
    }
    Ok(())
}

/// Rows of `row_bytes` that tensor `t` holds.
pub(crate) fn rows_in(b: &PlanBuilder, t: TensorId, row_bytes: u64) -> u32 {
    (b.bytes(t) / row_bytes.max(1)).min(u32::MAX as u64) as u32
}

/// Requires that `t` holds at least `bytes` (weights, fixed-size outputs).
pub(crate) fn need_bytes(
    b: &PlanBuilder,
    label: &str,
    what: &str,
    t: TensorId,
    bytes: u64,
) -> Result<()> {
    if b.bytes(t) < bytes {
        return Err(Error::PlanInput(format!(
            "step '{label}': {what} holds {} bytes, needs {bytes}",
            b.bytes(t)
        )));
    }
    Ok(())
}

/// Refuses a fixed row count over the `cap` rows a step's buffers hold. Run-time counts
/// (`Rows::Tokens`...) are clamped to `cap` in the launch instead, so a run with more rows
/// than the plan was built for cannot write past the buffers.
pub(crate) fn check_rows(label: &str, rows: Rows, cap: u32) -> Result<()> {
    if let Rows::Fixed(n) = rows
        && n > cap
    {
        return Err(Error::PlanInput(format!(
            "step '{label}': {n} rows, but its buffers hold {cap}"
        )));
    }
    Ok(())
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LnParams {
    rows: u32,
    hidden: u32,
    eps: f32,
    has_bias: u32,
}

/// One LayerNorm step. With `residual`, computes `h = x + residual` into `sum_out` (both must
/// be given, and differ from every other tensor of the step) and normalises `h`.
#[derive(Debug, Clone, Copy)]
pub struct LayerNormArgs {
    pub x: TensorId,
    pub residual: Option<TensorId>,
    pub sum_out: Option<TensorId>,
    pub weight: TensorId,
    /// Only for `norm_bias` configs; ModernBERT releases have none.
    pub bias: Option<TensorId>,
    pub y: TensorId,
    pub rows: Rows,
    pub hidden: u32,
    pub eps: f32,
    pub dtype: DType,
}

/// The kernel for a row width, storage type, plain or fused-residual form and reduction.
pub fn kernel(dtype: DType, hidden: u32, residual: bool, reduce: Reduce) -> Result<Kernel> {
    Ok(make(dtype, per_thread(hidden)?, residual, reduce))
}

fn make(dtype: DType, pt: u32, residual: bool, reduce: Reduce) -> Kernel {
    let k = if residual {
        Kernel::new(
            "layernorm",
            "add_layernorm",
            &[
                Access::Read,
                Access::Read,
                Access::Read,
                Access::Read,
                Access::ReadWrite,
                Access::ReadWrite,
            ],
        )
        .define("RESIDUAL", 1)
    } else {
        Kernel::new(
            "layernorm",
            "layernorm",
            &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
        )
    };
    reduce.apply(dtype.apply(k.define("PT", pt)))
}

/// Every variant, for the shader translation test.
pub fn variants() -> Vec<Kernel> {
    let mut v = Vec::new();
    for dtype in [DType::F32, DType::F16] {
        for pt in PER_THREAD_BUCKETS {
            for residual in [false, true] {
                for reduce in [Reduce::Workgroup, Reduce::Subgroup] {
                    v.push(make(dtype, pt, residual, reduce));
                }
            }
        }
    }
    v
}

/// Records a LayerNorm step with the device's best reduction.
pub fn record(b: &mut PlanBuilder, label: &str, a: &LayerNormArgs) -> Result<()> {
    let reduce = Reduce::best(b.gpu().caps());
    record_with(b, label, a, reduce)
}

/// Records a LayerNorm step with a chosen reduction (tests cover both).
pub fn record_with(
    b: &mut PlanBuilder,
    label: &str,
    a: &LayerNormArgs,
    reduce: Reduce,
) -> Result<()> {
    let caps = b.gpu().caps().clone();
    check_dtype(&caps, a.dtype)?;
    reduce.check(&caps)?;
    if !(a.eps.is_finite() && a.eps >= 0.0) {
        return Err(Error::PlanInput(format!(
            "step '{label}': eps {} must be finite and >= 0",
            a.eps
        )));
    }
    let kernel = kernel(a.dtype, a.hidden, a.residual.is_some(), reduce)?;
    let vec_bytes = a.hidden as u64 * a.dtype.size();
    need_bytes(b, label, "the weight", a.weight, vec_bytes)?;
    if let Some(bias) = a.bias {
        need_bytes(b, label, "the bias", bias, vec_bytes)?;
    }
    let bias = a.bias.unwrap_or(a.weight);
    let mut cap = rows_in(b, a.x, vec_bytes).min(rows_in(b, a.y, vec_bytes));
    let bindings = match (a.residual, a.sum_out) {
        (Some(r), Some(h)) => {
            cap = cap
                .min(rows_in(b, r, vec_bytes))
                .min(rows_in(b, h, vec_bytes));
            vec![a.x, r, a.weight, bias, h, a.y]
        }
        (None, None) => vec![a.x, a.weight, bias, a.y],
        _ => {
            return Err(Error::PlanInput(format!(
                "step '{label}': the fused residual LayerNorm needs both `residual` and `sum_out`"
            )));
        }
    };
    check_rows(label, a.rows, cap)?;
    let (rows, hidden, eps, has_bias) = (a.rows, a.hidden, a.eps, a.bias.is_some() as u32);
    let max_dim = caps.max_workgroups_per_dim;
    b.step(label, kernel, &bindings, move |s: &RunSizes| {
        let n = rows.eval(s).min(cap);
        let p = LnParams {
            rows: n,
            hidden,
            eps,
            has_bias,
        };
        Launch::new(&p, runtime::grid(n, max_dim))
    })
}

/// `LN(x)` row by row in f64 (population variance, eps inside the sqrt).
pub fn reference(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    hidden: usize,
    eps: f32,
) -> Vec<f64> {
    let h: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    normalise(&h, weight, bias, hidden, eps)
}

/// The fused form in f64: returns `(h, LN(h))` with `h = x + residual`.
pub fn reference_add(
    x: &[f32],
    residual: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    hidden: usize,
    eps: f32,
) -> (Vec<f64>, Vec<f64>) {
    let h: Vec<f64> = x
        .iter()
        .zip(residual)
        .map(|(&a, &b)| a as f64 + b as f64)
        .collect();
    let y = normalise(&h, weight, bias, hidden, eps);
    (h, y)
}

fn normalise(h: &[f64], weight: &[f32], bias: Option<&[f32]>, hidden: usize, eps: f32) -> Vec<f64> {
    let mut y = Vec::with_capacity(h.len());
    for row in h.chunks_exact(hidden) {
        let mean = row.iter().sum::<f64>() / hidden as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / hidden as f64;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        for (c, v) in row.iter().enumerate() {
            let b = bias.map_or(0.0, |b| b[c] as f64);
            y.push((v - mean) * rstd * weight[c] as f64 + b);
        }
    }
    y
}
