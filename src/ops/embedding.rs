//! Token embeddings: `y[t] = LN(E[ids[t]])`, the gather fused with the embedding LayerNorm
//! (ModernBERT has no position or token-type embeddings). Shader: `shaders/embedding.wgsl`,
//! sharing the row reduction of the LayerNorm kernels (see `ops::layernorm`).
//!
//! An id >= vocab reads nothing: its row counts as zeros, so its output is the bias (or 0).
//! The host validates ids before a run; the kernel only keeps a bad one harmless.

use crate::ops::layernorm::{
    PER_THREAD_BUCKETS, Reduce, check_dtype, check_rows, need_bytes, per_thread, rows_in,
};
use crate::ops::{DType, Rows};
use crate::runtime::{self, Access, Kernel, Launch, PlanBuilder, RunSizes, TensorId};
use crate::{Error, Result};

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct EmbedParams {
    rows: u32,
    hidden: u32,
    eps: f32,
    has_bias: u32,
    vocab: u32,
    _pad: [u32; 3],
}

/// One embedding + LayerNorm step.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddingArgs {
    /// `u32` token ids, one per row.
    pub ids: TensorId,
    /// The embedding table `[vocab, hidden]`.
    pub table: TensorId,
    pub weight: TensorId,
    pub bias: Option<TensorId>,
    pub y: TensorId,
    pub rows: Rows,
    pub hidden: u32,
    pub vocab: u32,
    pub eps: f32,
    pub dtype: DType,
}

/// The kernel for a row width, storage type and reduction.
pub fn kernel(dtype: DType, hidden: u32, reduce: Reduce) -> Result<Kernel> {
    Ok(make(dtype, per_thread(hidden)?, reduce))
}

fn make(dtype: DType, pt: u32, reduce: Reduce) -> Kernel {
    let k = Kernel::new(
        "embedding",
        "embed_layernorm",
        &[
            Access::Read,
            Access::Read,
            Access::Read,
            Access::Read,
            Access::ReadWrite,
        ],
    );
    reduce.apply(dtype.apply(k.define("PT", pt)))
}

/// Every variant, for the shader translation test.
pub fn variants() -> Vec<Kernel> {
    let mut v = Vec::new();
    for dtype in [DType::F32, DType::F16] {
        for pt in PER_THREAD_BUCKETS {
            for reduce in [Reduce::Workgroup, Reduce::Subgroup] {
                v.push(make(dtype, pt, reduce));
            }
        }
    }
    v
}

/// Records the embedding step with the device's best reduction.
pub fn record(b: &mut PlanBuilder, label: &str, a: &EmbeddingArgs) -> Result<()> {
    let reduce = Reduce::best(b.gpu().caps());
    record_with(b, label, a, reduce)
}

/// Records the embedding step with a chosen reduction.
pub fn record_with(
    b: &mut PlanBuilder,
    label: &str,
    a: &EmbeddingArgs,
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
    if a.vocab == 0 {
        return Err(Error::PlanInput(format!(
            "step '{label}': empty vocabulary"
        )));
    }
    let kernel = kernel(a.dtype, a.hidden, reduce)?;
    let vec_bytes = a.hidden as u64 * a.dtype.size();
    need_bytes(
        b,
        label,
        "the embedding table",
        a.table,
        a.vocab as u64 * vec_bytes,
    )?;
    need_bytes(b, label, "the weight", a.weight, vec_bytes)?;
    if let Some(bias) = a.bias {
        need_bytes(b, label, "the bias", bias, vec_bytes)?;
    }
    let cap = rows_in(b, a.ids, 4).min(rows_in(b, a.y, vec_bytes));
    check_rows(label, a.rows, cap)?;
    let bias = a.bias.unwrap_or(a.weight);
    let (rows, hidden, vocab, eps) = (a.rows, a.hidden, a.vocab, a.eps);
    let has_bias = a.bias.is_some() as u32;
    let max_dim = caps.max_workgroups_per_dim;
    b.step(
        label,
        kernel,
        &[a.ids, a.table, a.weight, bias, a.y],
        move |s: &RunSizes| {
            let n = rows.eval(s).min(cap);
            let p = EmbedParams {
                rows: n,
                hidden,
                eps,
                has_bias,
                vocab,
                _pad: [0; 3],
            };
            Launch::new(&p, runtime::grid(n, max_dim))
        },
    )
}

/// `LN(E[ids[t]])` in f64; an id >= vocab gives the bias row (or zeros), like the kernel.
pub fn reference(
    ids: &[u32],
    table: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    hidden: usize,
    vocab: usize,
    eps: f32,
) -> Vec<f64> {
    let mut x = Vec::with_capacity(ids.len() * hidden);
    for &id in ids {
        let id = id as usize;
        if id < vocab {
            x.extend_from_slice(&table[id * hidden..(id + 1) * hidden]);
        } else {
            x.extend(std::iter::repeat_n(0.0f32, hidden));
        }
    }
    crate::ops::layernorm::reference(&x, weight, bias, hidden, eps)
}
