//! Row gather `y[i] = x[index[i]]`: the MLM and token heads run only on the selected rows
//! (e.g. `[MASK]` positions, `Rows::Selected`), and per-sequence rows are picked the same way.
//! An index past the rows `x` holds writes a zero row (the host validates indices; the kernel
//! only keeps a bad one from reading foreign memory). Shader: `shaders/gather.wgsl`.

use crate::Result;
use crate::ops::check::{Op, rows_in};
use crate::ops::{DType, Rows};
use crate::runtime::{self, Access, Kernel, Launch, PlanBuilder, RunSizes, TensorId};

crate::gpu_params! {
    struct GatherParams {
        rows: u32,
        hidden: u32,
        src_rows: u32,
        _pad: u32,
    }
}

/// The kernel for a storage type.
pub fn kernel(dtype: DType) -> Kernel {
    dtype
        .apply(Kernel::new(
            "gather",
            "gather_rows",
            &[Access::Read, Access::Read, Access::ReadWrite],
        ))
        .with_params::<GatherParams>()
}

/// Every variant, for the shader translation test.
pub fn variants() -> Vec<Kernel> {
    vec![kernel(DType::F32), kernel(DType::F16)]
}

/// Records `y[i] = x[index[i]]` for `i < rows` (`index`: `u32` per output row).
#[allow(clippy::too_many_arguments)]
pub fn record(
    b: &mut PlanBuilder,
    label: &str,
    x: TensorId,
    index: TensorId,
    y: TensorId,
    rows: Rows,
    hidden: u32,
    dtype: DType,
) -> Result<()> {
    let op = Op::new("gather", label);
    op.dtype(b.gpu().caps(), dtype)?;
    op.within("hidden", hidden, 1, u32::MAX)?;
    let row_bytes = hidden as u64 * dtype.size();
    let src_rows = rows_in(b, x, row_bytes);
    let cap = rows_in(b, index, 4).min(rows_in(b, y, row_bytes));
    op.rows(rows, cap)?;
    let max_dim = b.gpu().caps().max_workgroups_per_dim;
    b.step(label, kernel(dtype), &[x, index, y], move |s: &RunSizes| {
        let n = rows.eval(s).min(cap);
        let p = GatherParams {
            rows: n,
            hidden,
            src_rows,
            _pad: 0,
        };
        Launch::new(&p, runtime::grid(n, max_dim))
    })
}

/// `x[index[i]]` rows in f64; an index past `x` gives a zero row, like the kernel.
pub fn reference(x: &[f32], index: &[u32], hidden: usize) -> Vec<f64> {
    let src_rows = x.len() / hidden;
    let mut y = Vec::with_capacity(index.len() * hidden);
    for &i in index {
        let i = i as usize;
        if i < src_rows {
            y.extend(x[i * hidden..(i + 1) * hidden].iter().map(|&v| v as f64));
        } else {
            y.extend(std::iter::repeat_n(0.0, hidden));
        }
    }
    y
}
