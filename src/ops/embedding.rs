//! Token embeddings: `y[t] = LN(E[ids[t]])`, the gather fused with the embedding LayerNorm
//! (ModernBERT has no position or token-type embeddings). Shader: `shaders/embedding.wgsl`,
//! sharing the row reduction of the LayerNorm kernels (see `ops::layernorm`).
//!
//! An id >= vocab reads nothing: its row counts as zeros, so its output is the bias (or 0).
//! The host validates ids before a run; the kernel only keeps a bad one harmless.
//!
//! A table larger than one storage binding is held in row pieces (`model::split`): one step
//! per piece (`record_piece`), each writing only the tokens whose ids fall in its rows (a
//! row never straddles pieces, so each token's LayerNorm stays whole in one step); the last
//! piece also writes the ids past the table.

use crate::Result;
use crate::ops::check::{Op, rows_in};
use crate::ops::rownorm::{self, PER_THREAD_BUCKETS, Reduce};
use crate::ops::{DType, Rows};
use crate::runtime::{self, Access, Kernel, Launch, PlanBuilder, RunSizes, TensorId};

crate::gpu_params! {
    struct EmbedParams {
        rows: u32,
        hidden: u32,
        eps: f32,
        has_bias: u32,
        /// Rows of this step's table (piece).
        vocab: u32,
        /// The id of the piece's first row.
        first: u32,
        /// 1: this step also writes ids past `first + vocab` (as zero rows).
        tail: u32,
        _pad0: u32,
    }
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
    reduce
        .apply(dtype.apply(k.define("PT", pt)))
        .with_params::<EmbedParams>()
}

/// Every variant, for the shader translation test.
pub fn variants() -> Vec<Kernel> {
    let mut v = Vec::new();
    for dtype in [DType::F32, DType::F16] {
        for pt in PER_THREAD_BUCKETS {
            for reduce in Reduce::ALL {
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
    record_piece_with(b, label, a, reduce, (0, true))
}

/// Records the step of one row piece of a table held in pieces: `a.table` holds the
/// `a.vocab` rows from id `first`, and the step writes the tokens whose ids are among them;
/// the `last` piece also writes ids past its end (zero rows, as `record` does). One step per
/// piece, in any order, gives what `record` gives on the whole table.
pub fn record_piece(
    b: &mut PlanBuilder,
    label: &str,
    a: &EmbeddingArgs,
    first: u32,
    last: bool,
) -> Result<()> {
    let reduce = Reduce::best(b.gpu().caps());
    record_piece_with(b, label, a, reduce, (first, last))
}

/// `record_piece` with a chosen reduction.
pub fn record_piece_with(
    b: &mut PlanBuilder,
    label: &str,
    a: &EmbeddingArgs,
    reduce: Reduce,
    (first, last): (u32, bool),
) -> Result<()> {
    let op = Op::new("embedding", label);
    if first.checked_add(a.vocab).is_none() {
        return Err(op.err("first", "first + vocab below 2^32", first));
    }
    let norm = rownorm::checked(op, b, a.dtype, a.hidden, reduce, a.eps)?;
    op.within("vocab", a.vocab, 1, u32::MAX)?;
    let table_bytes = a.vocab as u64 * norm.row_bytes;
    op.bytes(b, "table", a.table, table_bytes)?;
    let (bias, has_bias) = norm.weights(op, b, a.weight, a.bias)?;
    let cap = rows_in(b, a.ids, 4).min(rows_in(b, a.y, norm.row_bytes));
    op.rows(a.rows, cap)?;
    let kernel = make(a.dtype, norm.pt, reduce);
    let (rows, hidden, vocab, eps, max_dim) = (a.rows, a.hidden, a.vocab, a.eps, norm.max_dim);
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
                first,
                tail: u32::from(last),
                _pad0: 0,
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
