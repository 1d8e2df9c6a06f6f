//! What every matmul variant shares: the epilogues, the variant names and the kernel build
//! with its bindings (x, w, y, then bias and residual when present). The family module and
//! its variant modules both build on this; neither imports the other's functions.

use crate::ops::{Activation, DType};
use crate::runtime::{Access, Kernel};

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
    /// Cooperative matrices (tensor cores) at the adapter's fragment shape and subgroup
    /// size; f16 storage only. Needs `coop::supported`.
    Coop,
}

impl MatmulVariant {
    /// The variant's name in plan listings and reports (its shader).
    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::Tiled => "matmul",
            MatmulVariant::Subgroup => "matmul_subgroup",
            MatmulVariant::Coop => "matmul_coop",
        }
    }
}

crate::gpu_params! {
    /// The uniform of every matmul shader (`p` in `shaders/common/matmul_epilogue.wgsl`).
    #[derive(Default, PartialEq, Eq)]
    pub struct MatmulParams {
        pub rows: u32,
        pub k: u32,
        /// Output width (the half width for GeGLU).
        pub n: u32,
        /// Workgroups along the output width.
        pub tiles_n: u32,
        /// Workgroups in all; the shader skips ids past this.
        pub tiles: u32,
        /// Row stride of y (and of the residual) in elements: `n`, or the full width of an
        /// output that this product fills only columns `col0..col0 + n` of (`OutCols`).
        pub ldy: u32,
        /// The first output column this product writes.
        pub col0: u32,
        pub _pad0: u32,
    }
}

/// The kernel of one variant: `variant` x `dtype` x `epilogue` x bias present.
/// Storage bindings: x, w, y, then bias and residual when present.
/// Coop builds also need the shape defines `coop::kernel` adds.
pub fn kernel(variant: MatmulVariant, dtype: DType, epilogue: Epilogue, bias: bool) -> Kernel {
    let mut access = vec![Access::Read, Access::Read, Access::ReadWrite];
    let mut k = dtype
        .apply(Kernel::new(variant.name(), "main", &[]))
        .with_params::<MatmulParams>();
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

/// `kernel` (plain epilogue) with RoPE fused into its store (`ROPE`, see
/// common/matmul_epilogue.wgsl): two more bindings after the others, the row positions and
/// the frequencies (f32 bits) of heads of `head_dim`.
pub fn with_rope(mut kernel: Kernel, head_dim: u32) -> Kernel {
    kernel.bindings.extend([Access::Read, Access::Read]);
    let n = kernel.bindings.len();
    kernel
        .define("ROPE", n - 1)
        .define("ROPE_FREQ", n)
        .define("ROPE_D", head_dim)
}

/// The k per global load of a vector-load build (`VEC`) for inner size `k`: 8 (16 bytes of
/// f16, `VEC8`) where `k` is a multiple of 8, 4 where it is a multiple of 4, else 1 (scalar
/// loads only).
pub fn vector_width(k: u32) -> u32 {
    if k.is_multiple_of(8) {
        8
    } else if k.is_multiple_of(4) {
        4
    } else {
        1
    }
}

/// Every epilogue with every activation.
pub fn all_epilogues() -> Vec<Epilogue> {
    let acts = [
        Activation::GeluErf,
        Activation::GeluTanh,
        Activation::Silu,
        Activation::Relu,
    ];
    let mut e = vec![Epilogue::None, Epilogue::Residual];
    e.extend(acts.iter().map(|&a| Epilogue::Act(a)));
    e.extend(acts.iter().map(|&a| Epilogue::GeGlu(a)));
    e
}
