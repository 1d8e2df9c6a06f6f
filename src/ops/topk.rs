//! Top-k of the softmax over each row of f32 logits `[rows, vocab]` (k <= 64): the k largest
//! logits, descending, ties to the lower index, each with its softmax probability (max and
//! sum of exp in f32). One workgroup per row runs a radix select (see `shaders/topk.wgsl`),
//! so the whole 50368-word ModernBERT vocabulary never leaves the GPU.
//!
//! Output layout: `u32 [rows, k, 2]`, pairs `(index, f32 bits of the probability)`; slots
//! past `min(k, vocab)` hold `(u32::MAX, 0.0)`. [`decode`] turns the bytes into pairs.

use crate::Result;
use crate::ops::Rows;
use crate::ops::check::{Op, rows_in};
use crate::runtime::{self, Access, Kernel, Launch, PlanBuilder, RunSizes, TensorId};

/// The largest k the kernel selects.
pub const MAX_K: u32 = 64;

crate::gpu_params! {
    struct TopkParams {
        rows: u32,
        vocab: u32,
        k: u32,
        /// 8-bit digits needed for vocab - 1.
        idx_digits: u32,
    }
}

/// The kernel (one variant: logits are always f32).
pub fn kernel() -> Kernel {
    Kernel::new("topk", "topk_softmax", &[Access::Read, Access::ReadWrite])
        .with_params::<TopkParams>()
}

/// Every variant, for the shader translation test.
pub fn variants() -> Vec<Kernel> {
    vec![kernel()]
}

/// Bytes of the output for `rows` rows.
pub fn out_bytes(rows: u32, k: u32) -> u64 {
    rows as u64 * k as u64 * 8
}

/// Records the top-k step: `logits` f32 `[rows, vocab]`, `out` as described in the module.
pub fn record(
    b: &mut PlanBuilder,
    label: &str,
    logits: TensorId,
    out: TensorId,
    rows: Rows,
    vocab: u32,
    k: u32,
) -> Result<()> {
    let op = Op::new("topk", label);
    op.within("k", k, 1, MAX_K)?;
    op.within("vocab", vocab, 1, u32::MAX)?;
    let cap = rows_in(b, logits, vocab as u64 * 4).min(rows_in(b, out, k as u64 * 8));
    op.rows(rows, cap)?;
    // 8-bit digits that cover vocab - 1, for the tie-breaking passes.
    let bits = 32 - (vocab - 1).leading_zeros();
    let idx_digits = bits.div_ceil(8).max(1);
    let max_dim = b.gpu().caps().max_workgroups_per_dim;
    b.step(label, kernel(), &[logits, out], move |s: &RunSizes| {
        let n = rows.eval(s).min(cap);
        let p = TopkParams {
            rows: n,
            vocab,
            k,
            idx_digits,
        };
        Launch::new(&p, runtime::grid(n, max_dim))
    })
}

/// The output bytes of `rows` rows back to `(index, probability)` lists, dropping the empty
/// slots of rows shorter than k.
pub fn decode(bytes: &[u8], rows: usize, k: usize) -> Vec<Vec<(u32, f32)>> {
    let words: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (0..rows)
        .map(|r| {
            (0..k)
                .filter_map(|j| {
                    let at = (r * k + j) * 2;
                    let (i, p) = (*words.get(at)?, *words.get(at + 1)?);
                    (i != u32::MAX).then_some((i, f32::from_bits(p)))
                })
                .collect()
        })
        .collect()
}

/// Top-k per row in f64: `(index, softmax probability)`, descending, ties to the lower index.
pub fn reference(logits: &[f32], vocab: usize, k: usize) -> Vec<Vec<(u32, f64)>> {
    logits
        .chunks_exact(vocab)
        .map(|row| {
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
            let mut order: Vec<u32> = (0..vocab as u32).collect();
            // -0 ranks like +0, as in the kernel.
            let key = |i: u32| {
                let v = row[i as usize];
                if v == 0.0 { 0.0 } else { v }
            };
            order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
            order
                .into_iter()
                .take(k)
                .map(|i| (i, (row[i as usize] as f64 - max).exp() / sum))
                .collect()
        })
        .collect()
}
