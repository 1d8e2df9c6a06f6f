//! Pooling of packed sequences to one f32 vector each (`[segments, hidden]`): the first row
//! (`cls`) or the mean of the sequence's rows (`mean`), optionally L2-normalised like
//! `torch.nn.functional.normalize` (`x / max(||x||, 1e-12)`). The segments come from
//! `cu_seqlens` and `RunSizes::segments`. An empty sequence pools to zeros.
//! Shader: `shaders/pooling.wgsl`; one workgroup per sequence.

use crate::Result;
use crate::ops::DType;
use crate::ops::check::{Op, rows_in};
use crate::ops::rownorm::{PER_THREAD_BUCKETS, per_thread};
use crate::runtime::{self, Access, Kernel, Launch, PlanBuilder, RunSizes, TensorId};

/// How a sequence becomes one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum PoolMode {
    /// The sequence's first row (the `[CLS]` token).
    Cls,
    /// The mean over the sequence's rows.
    Mean,
}

crate::gpu_params! {
    struct PoolParams {
        segments: u32,
        hidden: u32,
        rows: u32,
        /// 0 = cls, 1 = mean.
        mode: u32,
        normalize: u32,
        _pad0: u32,
        _pad1: u32,
        _pad2: u32,
    }
}

/// One pooling step.
#[derive(Debug, Clone, Copy)]
pub struct PoolArgs {
    /// Packed states `[rows, hidden]` in `dtype`.
    pub x: TensorId,
    /// `u32 [segments + 1]` sequence offsets.
    pub cu_seqlens: TensorId,
    /// `f32 [segments, hidden]`.
    pub out: TensorId,
    pub hidden: u32,
    pub mode: PoolMode,
    pub normalize: bool,
    pub dtype: DType,
}

fn make(dtype: DType, pt: u32) -> Kernel {
    let k = Kernel::new(
        "pooling",
        "pool",
        &[Access::Read, Access::Read, Access::ReadWrite],
    );
    dtype.apply(k.define("PT", pt)).with_params::<PoolParams>()
}

/// Every variant, for the shader translation test.
pub fn variants() -> Vec<Kernel> {
    let mut v = Vec::new();
    for dtype in [DType::F32, DType::F16] {
        for pt in PER_THREAD_BUCKETS {
            v.push(make(dtype, pt));
        }
    }
    v
}

/// Records a pooling step over `RunSizes::segments` sequences of `RunSizes::rows` rows.
/// Sequence bounds past the rows are clamped in the kernel; more segments than `out` (or
/// `cu_seqlens`) holds are cut to its capacity.
pub fn record(b: &mut PlanBuilder, label: &str, a: &PoolArgs) -> Result<()> {
    let op = Op::new("pooling", label);
    let caps = b.gpu().caps();
    op.dtype(caps, a.dtype)?;
    let kernel = make(a.dtype, per_thread(op, a.hidden)?);
    let row_cap = rows_in(b, a.x, a.hidden as u64 * a.dtype.size());
    let seg_cap =
        rows_in(b, a.out, a.hidden as u64 * 4).min(rows_in(b, a.cu_seqlens, 4).saturating_sub(1));
    let (hidden, mode, normalize) = (a.hidden, a.mode, a.normalize as u32);
    let max_dim = caps.max_workgroups_per_dim;
    b.step(
        label,
        kernel,
        &[a.x, a.cu_seqlens, a.out],
        move |s: &RunSizes| {
            let n = s.segments.min(seg_cap);
            let p = PoolParams {
                segments: n,
                hidden,
                rows: s.rows.min(row_cap),
                mode: match mode {
                    PoolMode::Cls => 0,
                    PoolMode::Mean => 1,
                },
                normalize,
                _pad0: 0,
                _pad1: 0,
                _pad2: 0,
            };
            Launch::new(&p, runtime::grid(n, max_dim))
        },
    )
}

/// Pooled vectors `[segments, hidden]` in f64, where `cu_seqlens` has `segments + 1` entries.
pub fn reference(
    x: &[f32],
    cu_seqlens: &[u32],
    hidden: usize,
    mode: PoolMode,
    normalize: bool,
) -> Vec<f64> {
    let mut out = Vec::new();
    for w in cu_seqlens.windows(2) {
        let (start, end) = (w[0] as usize, (w[1] as usize).max(w[0] as usize));
        let end = match mode {
            PoolMode::Cls => end.min(start + 1),
            PoolMode::Mean => end,
        };
        let mut v = vec![0.0f64; hidden];
        for t in start..end {
            for (c, acc) in v.iter_mut().enumerate() {
                *acc += x[t * hidden + c] as f64;
            }
        }
        let n = (end - start).max(1) as f64;
        v.iter_mut().for_each(|a| *a /= n);
        if normalize {
            let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12);
            v.iter_mut().for_each(|a| *a /= norm);
        }
        out.extend(v);
    }
    out
}
