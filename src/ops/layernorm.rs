//! LayerNorm over rows, `y = (h - mean) / sqrt(var + eps) * w (+ b)` with population
//! variance and f32 statistics, where `h = x` or, fused with the residual add, `h = x + r`
//! (then `h` is also written: it is the new residual stream). Shader: `shaders/layernorm.wgsl`
//! with the row reduction of `shaders/common/rownorm.wgsl`, which the embedding and pooling
//! kernels share (see `ops::rownorm`).

use crate::Result;
use crate::ops::check::{Op, rows_in};
pub use crate::ops::rownorm::Reduce;
use crate::ops::rownorm::{self, PER_THREAD_BUCKETS};
use crate::ops::{DType, Rows};
use crate::runtime::{self, Access, Kernel, Launch, PlanBuilder, RunSizes, TensorId};

crate::gpu_params! {
    struct LnParams {
        rows: u32,
        hidden: u32,
        eps: f32,
        has_bias: u32,
    }
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
    reduce
        .apply(dtype.apply(k.define("PT", pt)))
        .with_params::<LnParams>()
}

/// Every variant, for the shader translation test.
pub fn variants() -> Vec<Kernel> {
    let mut v = Vec::new();
    for dtype in [DType::F32, DType::F16] {
        for pt in PER_THREAD_BUCKETS {
            for residual in [false, true] {
                for reduce in Reduce::ALL {
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
    let op = Op::new("layernorm", label);
    let norm = rownorm::checked(op, b, a.dtype, a.hidden, reduce, a.eps)?;
    let (bias, has_bias) = norm.weights(op, b, a.weight, a.bias)?;
    let vec_bytes = norm.row_bytes;
    let kernel = make(a.dtype, norm.pt, a.residual.is_some(), reduce);
    let mut cap = rows_in(b, a.x, vec_bytes).min(rows_in(b, a.y, vec_bytes));
    let bindings = match (a.residual, a.sum_out) {
        (Some(r), Some(h)) => {
            cap = cap
                .min(rows_in(b, r, vec_bytes))
                .min(rows_in(b, h, vec_bytes));
            vec![a.x, r, a.weight, bias, h, a.y]
        }
        (None, None) => vec![a.x, a.weight, bias, a.y],
        (r, _) => {
            let got = if r.is_some() {
                "residual alone"
            } else {
                "sum_out alone"
            };
            return Err(op.err("residual/sum_out", "both given or both absent", got));
        }
    };
    op.rows(a.rows, cap)?;
    let max_dim = norm.max_dim;
    let (rows, hidden, eps) = (a.rows, a.hidden, a.eps);
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
