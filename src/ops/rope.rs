//! Rotary position embedding (GPT-NeoX `rotate_half`) applied in place to the Q and K blocks of
//! the packed QKV activation `[rows, 3H]`, with the angle rounded exactly as HF rounds it.
//! The encoder fuses it into the Wqkv projection's store where that kernel's tiles hold whole
//! heads (`matmul::record_rope`); this pass serves the other steps. Not fused into attention:
//! attention loads each key row many times (once per query tile), so rotating at load time
//! would redo the trigonometry per load.

use crate::Result;
use crate::ops::check::Op;
use crate::ops::{DType, Rows};
use crate::runtime::{self, Access, Kernel, Launch, PlanBuilder, RunSizes, TensorId};

/// Invocations per workgroup (must match `@workgroup_size` in `shaders/rope.wgsl`).
const WG: u32 = 64;
/// Frequencies the parameter block holds (head_dim <= 64).
const MAX_HALF: usize = 32;
const _: () = assert!(MAX_HALF == 8 * 4, "RopeParams::inv_freq holds 8 vec4");

crate::gpu_params! {
    /// The parameters of `shaders/rope.wgsl` (160 bytes).
    pub struct RopeParams {
        pub n_rows: u32,
        pub n_heads: u32,
        pub head_dim: u32,
        pub half_dim: u32,
        /// Row stride of qkv in elements (3H).
        pub stride: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
        /// `inv_freq[c]` as f32 bits, four per vec4 (MAX_HALF = 32 of them).
        pub inv_freq: [[u32; 4]; 8],
    }
}

/// The kernel of one precision.
pub fn kernel(dtype: DType) -> Kernel {
    dtype
        .apply(Kernel::new(
            "rope",
            "main",
            &[Access::ReadWrite, Access::Read],
        ))
        .with_params::<RopeParams>()
}

/// Every variant, for the translation test.
pub fn variants() -> Vec<Kernel> {
    vec![kernel(DType::F32), kernel(DType::F16)]
}

/// `inv_freq[c] = 1 / theta^(2c/d)` for `c < d/2`, rounded like HF's
/// `1.0 / (theta ** (arange(0, d, 2).float() / d))` in f32: the exponent is an f32 division,
/// the power is the correctly rounded f32 of the exact power (what libm/Sleef `powf` return),
/// and the reciprocal is an f32 division.
pub fn inv_freq(head_dim: u32, theta: f32) -> Vec<f32> {
    powers(head_dim, theta)
        .iter()
        .map(|pw| 1.0f32 / pw)
        .collect()
}

/// `theta^(2c/d)` for `c < d/2`, rounded as `inv_freq` rounds it (the scaled RoPEs of
/// `model::config::rope` divide by these).
pub fn powers(head_dim: u32, theta: f32) -> Vec<f32> {
    (0..head_dim / 2)
        .map(|c| {
            let e = (2 * c) as f32 / head_dim as f32;
            (theta as f64).powf(e as f64) as f32
        })
        .collect()
}

/// The frequencies of one layer's rotation, `inv_freq[c]` for `c < head_dim / 2`: from a
/// theta (`1 / theta^(2c/d)`, `inv_freq`), or a table of a scaled RoPE
/// (`model::config::rope`: linear, yarn, llama3...). `Copy`, at most `MAX_HALF` entries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frequencies {
    inv: [f32; MAX_HALF],
    len: usize,
}

impl Frequencies {
    /// `1 / theta^(2c/d)` for heads of `head_dim` (see [`inv_freq`]).
    pub fn theta(head_dim: u32, theta: f32) -> Self {
        Self::table(&inv_freq(head_dim.min(2 * MAX_HALF as u32), theta))
    }

    /// A table of at most `MAX_HALF` frequencies (more are cut; `check` refuses them).
    pub fn table(inv: &[f32]) -> Self {
        let mut f = Frequencies {
            inv: [0.0; MAX_HALF],
            len: inv.len(),
        };
        for (slot, &x) in f.inv.iter_mut().zip(inv) {
            *slot = x;
        }
        f
    }

    pub fn values(&self) -> &[f32] {
        &self.inv[..self.len.min(MAX_HALF)]
    }
}

pub(crate) fn check(op: Op, n_heads: u32, head_dim: u32, freq: &Frequencies) -> Result<()> {
    op.within("n_heads", n_heads, 1, u32::MAX)?;
    if !head_dim.is_multiple_of(2) {
        return Err(op.err("head_dim", "even", head_dim));
    }
    op.within("head_dim", head_dim, 2, 2 * MAX_HALF as u32)?;
    if freq.len != head_dim as usize / 2 {
        return Err(op.err("frequencies", format_args!("{}", head_dim / 2), freq.len));
    }
    match freq
        .values()
        .iter()
        .find(|f| !(f.is_finite() && **f >= 0.0))
    {
        Some(bad) => Err(op.err("frequencies", "finite and >= 0", bad)),
        None => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn record(
    b: &mut PlanBuilder,
    label: &str,
    qkv: TensorId,
    positions: TensorId,
    rows: Rows,
    n_heads: u32,
    head_dim: u32,
    theta: f32,
    dtype: DType,
) -> Result<()> {
    let op = Op::new("rope", label);
    op.positive("theta", theta)?;
    let r = (n_heads, head_dim, Frequencies::theta(head_dim, theta));
    record_range(b, label, qkv, positions, rows, r, dtype, (0, u32::MAX))
}

/// `record` with the frequencies of a scaled RoPE.
#[allow(clippy::too_many_arguments)]
pub fn record_freq(
    b: &mut PlanBuilder,
    label: &str,
    qkv: TensorId,
    positions: TensorId,
    rows: Rows,
    (n_heads, head_dim): (u32, u32),
    freq: Frequencies,
    dtype: DType,
) -> Result<()> {
    let r = (n_heads, head_dim, freq);
    record_range(b, label, qkv, positions, rows, r, dtype, (0, u32::MAX))
}

/// `record` for a step that runs only when the run's rows are in `lo..=hi` (zero workgroups
/// otherwise): the pass after a Wqkv step that could not fuse it (`matmul::record_rope`).
#[allow(clippy::too_many_arguments)]
pub fn record_range(
    b: &mut PlanBuilder,
    label: &str,
    qkv: TensorId,
    positions: TensorId,
    rows: Rows,
    (n_heads, head_dim, freq): (u32, u32, Frequencies),
    dtype: DType,
    (lo, hi): (u32, u32),
) -> Result<()> {
    let op = Op::new("rope", label);
    check(op, n_heads, head_dim, &freq)?;
    op.dtype(b.gpu().caps(), dtype)?;
    let stride = 3 * n_heads * head_dim;
    let row_bytes = stride as u64 * dtype.size();
    let capacity = (b.bytes(qkv) / row_bytes).min(b.bytes(positions) / 4);
    let capacity = u32::try_from(capacity).unwrap_or(u32::MAX);
    let bits = freq;
    let mut freq = [0u32; MAX_HALF];
    for (slot, f) in freq.iter_mut().zip(bits.values()) {
        *slot = f.to_bits();
    }
    let half = head_dim / 2;
    let max_dim = b.gpu().caps().max_workgroups_per_dim;
    b.step(
        label,
        kernel(dtype),
        &[qkv, positions],
        move |s: &RunSizes| {
            // The rows range is judged on the clamped count, as the matmul steps judge it.
            let n_rows = rows.eval(s).min(capacity);
            let n_rows = if n_rows < lo || n_rows > hi {
                0
            } else {
                n_rows
            };
            let params = RopeParams {
                n_rows,
                n_heads,
                head_dim,
                half_dim: half,
                stride,
                _pad0: 0,
                _pad1: 0,
                _pad2: 0,
                inv_freq: bytemuck::cast(freq),
            };
            let items = n_rows as u64 * half as u64;
            let groups = u32::try_from(items.div_ceil(WG as u64)).unwrap_or(u32::MAX);
            let wg = if groups == 0 {
                [0, 0, 0]
            } else {
                runtime::grid(groups, max_dim)
            };
            Launch::new(&params, wg)
        },
    )
}

/// The CPU reference: `qkv [rows, 3H]` with q and k rotated (v copied), in f64 arithmetic on
/// the f32 angle `f32(p) * inv_freq[c]` that HF computes. Call it with the values the GPU
/// holds (already rounded to the storage precision).
pub fn reference(
    qkv: &[f32],
    positions: &[u32],
    n_heads: u32,
    head_dim: u32,
    theta: f32,
) -> Vec<f64> {
    reference_freq(
        qkv,
        positions,
        n_heads,
        head_dim,
        &inv_freq(head_dim, theta),
    )
}

/// `reference` with given frequencies `inv` (`head_dim / 2` of them).
pub fn reference_freq(
    qkv: &[f32],
    positions: &[u32],
    n_heads: u32,
    head_dim: u32,
    inv: &[f32],
) -> Vec<f64> {
    let (nh, d) = (n_heads as usize, head_dim as usize);
    let stride = 3 * nh * d;
    let mut out: Vec<f64> = qkv.iter().map(|&x| x as f64).collect();
    for (row, &pos) in positions.iter().enumerate() {
        if (row + 1) * stride > qkv.len() {
            break;
        }
        for (c, &f) in inv.iter().enumerate() {
            let phi = ((pos as f32) * f) as f64;
            let (sin, cos) = phi.sin_cos();
            for h in 0..2 * nh {
                let a = row * stride + h * d + c;
                let b = a + d / 2;
                let (x0, x1) = (qkv[a] as f64, qkv[b] as f64);
                out[a] = x0 * cos - x1 * sin;
                out[b] = x1 * cos + x0 * sin;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn inv_freq_starts_at_one_and_decays_like_hf() {
        let f = super::inv_freq(64, 10000.0);
        assert_eq!(f.len(), 32);
        assert_eq!(f[0], 1.0);
        // 1 / 10000^(62/64), f32.
        assert!((f[31] as f64 - 10000f64.powf(-62.0 / 64.0)).abs() < 1e-11);
    }

    const OP: crate::ops::check::Op = crate::ops::check::Op {
        name: "rope",
        step: "test",
    };

    #[test]
    fn bad_shapes_are_op_errors() {
        use super::Frequencies;
        let f = |d: u32| Frequencies::theta(d, 1e4);
        assert!(super::check(OP, 0, 64, &f(64)).is_err());
        assert!(super::check(OP, 12, 63, &f(63)).is_err());
        assert!(super::check(OP, 12, 128, &f(128)).is_err());
        assert!(
            super::check(OP, 12, 64, &f(32)).is_err(),
            "16 frequencies for d = 64"
        );
        let nan = Frequencies::table(&[f32::NAN; 32]);
        assert!(super::check(OP, 12, 64, &nan).is_err());
        assert!(super::check(OP, 12, 64, &Frequencies::theta(64, 160000.0)).is_ok());
    }
}
