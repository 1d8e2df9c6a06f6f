//! Element-type conversion between f32 and f16 storage, for the seams where a head needs f32
//! (logits for top-k, pooled vectors) and the encoder stores f16. A no-op pair is refused.

use crate::Result;
use crate::ops::check::Op;
use crate::ops::{DType, Rows};
use crate::runtime::{Access, Kernel, Launch, PlanBuilder, TensorId, grid};

crate::gpu_params! {
    pub struct ConvertParams {
        pub n: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

pub fn kernel(from: DType, to: DType) -> Kernel {
    let k = Kernel::new("convert", "main", &[Access::Read, Access::ReadWrite])
        .define("IN", from.wgsl())
        .define("OUT", to.wgsl())
        .with_params::<ConvertParams>();
    if from == DType::F16 || to == DType::F16 {
        k.define("F16", 1)
    } else {
        k
    }
}

pub fn variants() -> Vec<Kernel> {
    vec![
        kernel(DType::F16, DType::F32),
        kernel(DType::F32, DType::F16),
    ]
}

/// Converts `rows x width` elements of `x` (in `from`) into `y` (in `to`).
#[allow(clippy::too_many_arguments)]
pub fn record(
    b: &mut PlanBuilder,
    label: &str,
    x: TensorId,
    y: TensorId,
    rows: Rows,
    width: u32,
    from: DType,
    to: DType,
) -> Result<()> {
    let op = Op::new("convert", label);
    if from == to {
        return Err(op.err(
            "to",
            format_args!("another type than {from:?}"),
            format_args!("{to:?}"),
        ));
    }
    op.dtype(b.gpu().caps(), DType::F16)?;
    let max = b.gpu().caps().max_workgroups_per_dim;
    b.step(label, kernel(from, to), &[x, y], move |s| {
        let n = rows.eval(s) * width;
        Launch::new(
            &ConvertParams {
                n,
                _pad0: 0,
                _pad1: 0,
                _pad2: 0,
            },
            grid(n.div_ceil(256), max),
        )
    })
}
