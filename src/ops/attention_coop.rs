//! The tensor-core attention (`shaders/attention_coop.wgsl`): the varlen flash attention of
//! `ops::attention` with QK^T and PV on 16x16x16 f16 cooperative matrices (f32 accumulators),
//! f32 softmax, 64 queries x 64 keys per block, four 32-wide subgroups per workgroup; f16
//! storage only. Same arguments, parameters, dispatch and semantics as the portable kernel.
//!
//! This module owns what is particular to it: whether an adapter can run it, its kernel
//! variants and workgroup-memory budget, the emulated build (`EMULATE`: plain loops for the
//! cooperative operations, smaller key blocks where workgroup memory is short) that tests its
//! tiling on adapters without cooperative matrices, and the run-time self-check. Like
//! `matmul_coop`, `attention::record` chooses it by itself only after the self-check passed
//! on the device (kept per adapter for the process); `WGBERT_COOP=0` turns that off.
//! `record` here forces it (tests, benchmarks) and skips the self-check.
//!
//! Precision: P is rounded to f16 for the PV product and the normaliser sums the rounded
//! values, so each output is a convex combination of v with weights off by at most 2^-11
//! relative: |error| <= 2^-11 * max |v_j - o| plus the f16 rounding of the output.

use std::sync::Arc;

use crate::ops::DType;
use crate::ops::attention::{self, AttentionArgs};
use crate::ops::coop::{self, Verdicts};
use crate::runtime::{Access, Capabilities, Gpu, Kernel, PlanBuilder, RunSizes};
use crate::{Error, Result};

/// Query rows per workgroup (`BR` in the shader; the portable kernel's too).
pub const BR: u32 = 64;
/// Invocations of one workgroup: four subgroups of `SUBGROUP_SIZE`, 16 query rows each.
pub const INVOCATIONS: u32 = 128;
pub const SUBGROUP_SIZE: u32 = 32;
/// Head sizes with a compiled variant (multiples of the 16-wide fragments).
pub const HEAD_DIMS: [u32; 3] = [16, 32, 64];
/// Keys per block and row padding (f16 elements) of the real kernel.
pub const BC: u32 = 64;
pub const PAD: u32 = 8;
/// Workgroup memory of the real kernel at head_dim 64 (the largest).
pub const WORKGROUP_BYTES: u32 = workgroup_bytes(64, BC, PAD);

/// Bytes of workgroup memory for (head_dim, keys per block, padding): f16 Q [BR][d + pad],
/// K/V [bc][d + pad] and P [BR][bc + pad], and the f32 tile of S / O_blk
/// [BR][max(bc, d) + pad / 2].
pub const fn workgroup_bytes(head_dim: u32, bc: u32, pad: u32) -> u32 {
    let ld = head_dim + pad;
    let halves = BR * ld + bc * ld + BR * (bc + pad);
    let width = if bc > head_dim { bc } else { head_dim };
    2 * halves + 4 * BR * (width + pad / 2)
}

/// Whether the adapter can run the real kernel: 16x16x16 f16 cooperative matrices with f32
/// accumulators, f16 shaders, subgroups fixed at 32 lanes (128 invocations are exactly the
/// four subgroups the query tile is split into) and enough workgroup memory.
pub fn supported(caps: &Capabilities) -> bool {
    caps.f16
        && caps.coop_16x16_f32()
        && caps.subgroups
        && caps.subgroup_min_size == SUBGROUP_SIZE
        && caps.subgroup_max_size == SUBGROUP_SIZE
        && caps.max_workgroup_storage >= WORKGROUP_BYTES
        && caps.max_invocations >= INVOCATIONS
}

fn build(head_dim: u32, bc: u32, pad: u32) -> Kernel {
    DType::F16
        .apply(Kernel::new(
            "attention_coop",
            "main",
            &[Access::Read, Access::Read, Access::ReadWrite],
        ))
        .define("HEAD_DIM", head_dim)
        .define("BC", bc)
        .define("PAD", pad)
}

/// The real kernel for one head size.
pub fn kernel(head_dim: u32) -> Kernel {
    build(head_dim, BC, PAD)
}

/// The emulated build (`EMULATE`) for a device with `max_workgroup_storage` bytes: the real
/// tile if it fits, else 32-key blocks, padded if that fits (lavapipe's 32 KiB: head_dim 16
/// runs 64-key blocks, 32 padded 32-key blocks, 64 unpadded 32-key blocks).
pub fn emulated_kernel(head_dim: u32, max_workgroup_storage: u32) -> Option<Kernel> {
    [(BC, PAD), (32, PAD), (32, 0)]
        .into_iter()
        .find(|&(bc, pad)| workgroup_bytes(head_dim, bc, pad) <= max_workgroup_storage)
        .map(|(bc, pad)| build(head_dim, bc, pad).define("EMULATE", 1))
}

/// Every real kernel (for the shader translation test); emulated builds are test-only.
pub fn variants() -> Vec<Kernel> {
    HEAD_DIMS.iter().map(|&d| kernel(d)).collect()
}

fn check_f16(label: &str, args: &AttentionArgs) -> Result<()> {
    if args.dtype != DType::F16 {
        return Err(Error::Unsupported(format!(
            "attention '{label}': the cooperative-matrix kernel stores f16 only"
        )));
    }
    Ok(())
}

/// Records one attention step with the real kernel (no self-check). `Error::Unsupported`
/// for f32 or where the adapter lacks what `supported` asks for.
pub fn record(b: &mut PlanBuilder, label: &str, args: &AttentionArgs) -> Result<()> {
    check_f16(label, args)?;
    if !supported(b.gpu().caps()) {
        return Err(Error::Unsupported(format!(
            "attention '{label}': needs 16x16x16 f16/f32 cooperative matrices, 32-wide \
             subgroups and {WORKGROUP_BYTES} bytes of workgroup memory"
        )));
    }
    attention::record_kernel(b, label, args, Some(kernel(args.head_dim)))
}

/// Records one attention step with the emulated kernel (tests on adapters without
/// cooperative matrices); same arguments and checks as `attention::record`.
pub fn record_emulated(b: &mut PlanBuilder, label: &str, args: &AttentionArgs) -> Result<()> {
    check_f16(label, args)?;
    let caps = b.gpu().caps();
    if !caps.f16 || caps.max_invocations < INVOCATIONS {
        return Err(Error::Unsupported(format!(
            "attention '{label}': the emulated kernel needs SHADER_F16 and 128 invocations"
        )));
    }
    let k = emulated_kernel(args.head_dim, caps.max_workgroup_storage).ok_or_else(|| {
        Error::Unsupported(format!(
            "attention '{label}': the emulated kernel does not fit the workgroup memory"
        ))
    })?;
    attention::record_kernel(b, label, args, Some(k))
}

/// Whether `attention::record` may choose this kernel on its own: f16, a head size it has,
/// supported, not turned off by `WGBERT_COOP=0`, and the self-check (run on first use, kept
/// per adapter) agrees with the CPU reference. A failed check logs a warning once.
pub fn usable(gpu: &Arc<Gpu>, dtype: DType, head_dim: u32) -> bool {
    static VERDICTS: Verdicts = Verdicts::new("attention", "portable kernel");
    dtype == DType::F16
        && HEAD_DIMS.contains(&head_dim)
        && supported(gpu.caps())
        && coop::enabled_by_env()
        && VERDICTS.verified(gpu, self_check)
}

/// Self-check cases (sequence lengths, window), run for every head size: ragged query tiles
/// and key blocks, a lone token, and a band narrower than a block on a multi-block sequence.
const CHECKS: &[(&[u32], Option<u32>)] = &[(&[1, 70, 130], None), (&[150, 9], Some(8))];

/// Self-check tolerance: v in [-1, 1], so P's f16 rounding moves an output by at most
/// 2 * 2^-11 ~ 1e-3, plus the output's own rounding; a wrong kernel misses by O(0.1).
const CHECK_ATOL: f64 = 2e-3;
const CHECK_RTOL: f64 = 1e-3;

/// Runs the forced kernel on `CHECKS` for every head size and compares with
/// `attention::reference`.
pub fn self_check(gpu: &Arc<Gpu>) -> Result<()> {
    let n_heads = 2u32;
    for (i, &(lens, window)) in CHECKS.iter().enumerate() {
        for &head_dim in &HEAD_DIMS {
            let mut cu = vec![0u32];
            for l in lens {
                cu.push(cu[cu.len() - 1] + l);
            }
            let t = cu[cu.len() - 1] as u64;
            let h = (n_heads * head_dim) as u64;
            let qkv = f16_values((t * 3 * h) as usize, 31 + i as u64 + head_dim as u64);
            let mut b = PlanBuilder::new(gpu.clone());
            let qkv_t = b.input("coop check qkv", t * 3 * h * 2);
            let cu_t = b.input("coop check cu_seqlens", cu.len() as u64 * 4);
            let out_t = b.output("coop check out", t * h * 2);
            let args = AttentionArgs {
                qkv: qkv_t,
                cu_seqlens: cu_t,
                out: out_t,
                n_heads,
                head_dim,
                window,
                dtype: DType::F16,
            };
            record(&mut b, "coop attention self-check", &args)?;
            let mut plan = b.build()?;
            plan.write(qkv_t, &DType::F16.encode(&qkv))?;
            plan.write(cu_t, bytemuck::cast_slice(&cu))?;
            plan.run(&RunSizes {
                rows: t as u32,
                segments: lens.len() as u32,
                max_segment: lens.iter().copied().max().unwrap_or(0),
                selected: 0,
            })?;
            let got = DType::F16.decode(&plan.read(out_t, 0, t * h * 2)?);
            let want = attention::reference(&qkv, &cu, n_heads, head_dim, window);
            if let Some((j, g, r)) = got
                .iter()
                .zip(&want)
                .enumerate()
                .map(|(j, (&g, &r))| (j, g, r))
                .find(|&(_, g, r)| {
                    !g.is_finite() || (g as f64 - r).abs() > CHECK_ATOL + CHECK_RTOL * r.abs()
                })
            {
                return Err(Error::Unsupported(format!(
                    "self-check lens {lens:?} d={head_dim} window {window:?}: out[{}, {}] = \
                     {g}, reference {r}",
                    j as u64 / h,
                    j as u64 % h
                )));
            }
        }
    }
    Ok(())
}

/// Deterministic values in [-1, 1], rounded to f16.
fn f16_values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let v: Vec<f32> = (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect();
    DType::F16.decode(&DType::F16.encode(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workgroup_memory_fits_48_kib() {
        const { assert!(WORKGROUP_BYTES <= 48 * 1024) };
        assert_eq!(WORKGROUP_BYTES, 45056);
        for d in HEAD_DIMS {
            assert!(workgroup_bytes(d, BC, PAD) <= WORKGROUP_BYTES);
        }
    }

    #[test]
    fn emulated_tiles_fit_32_kib() {
        let name = |d| {
            emulated_kernel(d, 32768)
                .map(|k| k.name())
                .unwrap_or_default()
        };
        assert!(name(16).contains("BC=64,PAD=8"), "{}", name(16));
        assert!(name(32).contains("BC=32,PAD=8"), "{}", name(32));
        assert!(name(64).contains("BC=32,PAD=0"), "{}", name(64));
        assert!(name(64).contains("EMULATE=1"));
        assert!(
            emulated_kernel(64, 49152)
                .unwrap()
                .name()
                .contains("BC=64,PAD=8")
        );
        assert!(emulated_kernel(64, 16384).is_none());
    }
}
