//! SPLADE pooling: MLM logits `[rows, vocab]` (f32) to one vocabulary-wide vector per
//! sequence, the max or sum over the sequence's rows of `log1p(relu(x))` (`relu`) or
//! `log1p(log1p(relu(x)))` (`log1p_relu`), as sentence-transformers' `SpladePooling`
//! computes it. A sequence's rows may arrive over several runs (chunks of rows, so the
//! logits buffer stays small): each row carries its sequence's slot in the output and a
//! flag on the sequence's first row; later rows continue from the output's value.
//! Shader: `shaders/splade.wgsl`; one thread per vocabulary column.

use crate::Result;
use crate::ops::Rows;
use crate::ops::check::{Op, rows_in};
use crate::runtime::{self, Access, Kernel, Launch, PlanBuilder, RunSizes, TensorId};

/// Flag of a slot word: this row is its sequence's first.
pub const FIRST: u32 = 0x8000_0000;

/// How the rows of a sequence combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpladeMode {
    Max,
    Sum,
}

/// The weight of one logit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpladeActivation {
    /// `log1p(relu(x))`.
    Relu,
    /// `log1p(log1p(relu(x)))`.
    Log1pRelu,
}

impl SpladeActivation {
    /// The weight of one logit, in f64.
    pub fn apply(self, x: f64) -> f64 {
        let w = x.max(0.0).ln_1p();
        match self {
            Self::Relu => w,
            Self::Log1pRelu => w.ln_1p(),
        }
    }
}

crate::gpu_params! {
    struct SpladeParams {
        rows: u32,
        vocab: u32,
        /// Rows of `out`.
        slots: u32,
        /// 0 = max, 1 = sum.
        mode: u32,
        /// 0 = relu, 1 = log1p_relu.
        act: u32,
        _pad0: u32,
        _pad1: u32,
        _pad2: u32,
    }
}

/// The kernel (one variant: logits are always f32).
pub fn kernel() -> Kernel {
    Kernel::new(
        "splade",
        "splade_pool",
        &[Access::Read, Access::Read, Access::ReadWrite],
    )
    .with_params::<SpladeParams>()
}

/// Every variant, for the shader translation test.
pub fn variants() -> Vec<Kernel> {
    vec![kernel()]
}

/// One SPLADE pooling step.
#[derive(Debug, Clone, Copy)]
pub struct SpladeArgs {
    /// f32 `[rows, vocab]`.
    pub logits: TensorId,
    /// u32 `[rows]`: the row's output slot, `| FIRST` on a sequence's first row.
    pub slots: TensorId,
    /// f32 `[slots, vocab]`.
    pub out: TensorId,
    pub rows: Rows,
    pub vocab: u32,
    pub mode: SpladeMode,
    pub activation: SpladeActivation,
}

/// Records the pooling step. Rows past what `logits` or `slots` hold are cut to their
/// capacity; a slot past `out` is skipped.
pub fn record(b: &mut PlanBuilder, label: &str, a: &SpladeArgs) -> Result<()> {
    let op = Op::new("splade", label);
    op.within("vocab", a.vocab, 1, u32::MAX)?;
    let cap = rows_in(b, a.logits, a.vocab as u64 * 4).min(rows_in(b, a.slots, 4));
    op.rows(a.rows, cap)?;
    let slots = rows_in(b, a.out, a.vocab as u64 * 4);
    let (rows, vocab) = (a.rows, a.vocab);
    let mode = match a.mode {
        SpladeMode::Max => 0,
        SpladeMode::Sum => 1,
    };
    let act = match a.activation {
        SpladeActivation::Relu => 0,
        SpladeActivation::Log1pRelu => 1,
    };
    let max_dim = b.gpu().caps().max_workgroups_per_dim;
    b.step(
        label,
        kernel(),
        &[a.logits, a.slots, a.out],
        move |s: &RunSizes| {
            let p = SpladeParams {
                rows: rows.eval(s).min(cap),
                vocab,
                slots,
                mode,
                act,
                _pad0: 0,
                _pad1: 0,
                _pad2: 0,
            };
            Launch::new(&p, runtime::grid(runtime::groups(vocab, 256), max_dim))
        },
    )
}

/// Pooled vectors `[segments, vocab]` in f64, where `cu_seqlens` (`segments + 1` entries)
/// splits the rows of `logits` into sequences.
pub fn reference(
    logits: &[f32],
    cu_seqlens: &[u32],
    vocab: usize,
    mode: SpladeMode,
    activation: SpladeActivation,
) -> Vec<f64> {
    let mut out = Vec::new();
    for w in cu_seqlens.windows(2) {
        let mut v = vec![0.0f64; vocab];
        for t in w[0] as usize..(w[1] as usize).max(w[0] as usize) {
            for (c, acc) in v.iter_mut().enumerate() {
                let x = activation.apply(logits[t * vocab + c] as f64);
                *acc = match mode {
                    SpladeMode::Max => acc.max(x),
                    SpladeMode::Sum => *acc + x,
                };
            }
        }
        out.extend(v);
    }
    out
}
