//! The tensor-core attention (`AttentionVariant::Coop`, `shaders/attention_coop.wgsl`): the
//! varlen flash attention of `ops::attention` with QK^T and PV on F x F x F f16 cooperative
//! matrices (F = 16 or 8, the adapter's shape; f32 accumulators), f32 softmax, 64 queries x
//! 64 keys per block, 128 invocations whose subgroups (8 to 64 lanes) loop over the F-row
//! slabs of the query tile; f16 storage only. Same arguments, parameters, dispatch and
//! semantics as the portable kernel.
//!
//! This module owns what is particular to the variant: whether an adapter can run it, its
//! kernel builds and workgroup-memory budget, the emulated build (`EMULATE`: plain loops for
//! the cooperative operations, smaller key blocks where workgroup memory is short) that tests
//! its tiling on adapters without cooperative matrices, and the cases of its self-check. The
//! self-check itself and the choice live with the family (`ops::attention`).
//!
//! Precision: P is rounded to f16 for the PV product and the normaliser sums the rounded
//! values, so each output is a convex combination of v with weights off by at most 2^-11
//! relative: |error| <= 2^-11 * max |v_j - o| plus the f16 rounding of the output.

use super::kernel::AttentionParams;
use crate::ops::DType;
use crate::ops::coop::{self, Shape};
use crate::runtime::{Access, Capabilities, Kernel};

/// The shader file of the tensor-core kernel.
pub const SHADER: &str = "attention_coop";
/// Query rows per workgroup (`BR` in the shader).
pub const BR: u32 = 64;
/// Invocations of one workgroup (two per query row in the softmax).
pub const INVOCATIONS: u32 = 128;
/// Head sizes with a compiled variant (multiples of both fragment sizes).
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

/// Key blocks and padding for one head size within `max_workgroup_storage` bytes: 64-key
/// padded blocks where they fit, else 32-key blocks, padded if that fits (lavapipe's 32 KiB:
/// head_dim 16 runs 64-key blocks, 32 padded 32-key blocks, 64 unpadded 32-key blocks).
/// Unpadded rows stay multiples of 16 bytes, as cooperative loads require.
fn key_block(head_dim: u32, max_workgroup_storage: u32) -> Option<(u32, u32)> {
    [(BC, PAD), (32, PAD), (32, 0)]
        .into_iter()
        .find(|&(bc, pad)| workgroup_bytes(head_dim, bc, pad) <= max_workgroup_storage)
}

/// The shape the real kernel runs at on the adapter, or why it cannot run there.
pub fn supported(caps: &Capabilities) -> std::result::Result<Shape, String> {
    let s = coop::shape(caps)?;
    let least = workgroup_bytes(64, 32, 0);
    if caps.max_workgroup_storage < least {
        return Err(format!(
            "attention needs {least} bytes of workgroup memory, the adapter has {}",
            caps.max_workgroup_storage
        ));
    }
    if caps.max_invocations < INVOCATIONS {
        return Err(format!(
            "attention needs {INVOCATIONS} invocations per workgroup, the adapter allows {}",
            caps.max_invocations
        ));
    }
    Ok(s)
}

fn build(frag: u32, lanes: u32, head_dim: u32, bc: u32, pad: u32) -> Kernel {
    DType::F16
        .apply(Kernel::new(
            SHADER,
            "main",
            &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
        ))
        .with_params::<AttentionParams>()
        .define("HEAD_DIM", head_dim)
        .define("BR", BR)
        .define("BC", bc)
        .define("PAD", pad)
        .define("FRAG", frag)
        .define("SG", lanes)
}

/// The real kernel for one head size at `shape` on a device with `max_workgroup_storage`
/// bytes (`key_block`), if it fits.
pub fn kernel(shape: Shape, head_dim: u32, max_workgroup_storage: u32) -> Option<Kernel> {
    key_block(head_dim, max_workgroup_storage)
        .map(|(bc, pad)| build(shape.frag, shape.subgroup, head_dim, bc, pad))
}

/// The emulated build (`EMULATE`, subgroups of `lanes`) with the same key blocks as `kernel`.
pub fn emulated_kernel(
    frag: u32,
    lanes: u32,
    head_dim: u32,
    max_workgroup_storage: u32,
) -> Option<Kernel> {
    key_block(head_dim, max_workgroup_storage)
        .map(|(bc, pad)| build(frag, lanes, head_dim, bc, pad).define("EMULATE", 1))
}

/// Every real kernel at both fragment sizes, with 48 and 32 KiB of workgroup memory (for
/// the shader translation test).
pub fn variants() -> Vec<Kernel> {
    let mut v = Vec::new();
    for frag in coop::FRAGS {
        let shape = Shape { frag, subgroup: 32 };
        for storage in [49152, 32768] {
            v.extend(HEAD_DIMS.iter().filter_map(|&d| kernel(shape, d, storage)));
        }
    }
    v
}

/// One self-check case: sequence lengths, window, and keys per sequence (`key_lens`).
pub struct Check {
    pub lens: &'static [u32],
    pub window: Option<u32>,
    pub key_lens: Option<&'static [u32]>,
}

/// Self-check cases, run for every head size: ragged T = 130 with a lone token and a 70-token
/// sequence (ragged query tiles and key blocks); a window of 64 over a 300-token sequence
/// (blocks skipped on both sides of the band), with keys limited to rows below 250 and 5
/// (queries past the last key, and blocks of the band left without keys).
pub const CHECKS: &[Check] = &[
    Check {
        lens: &[1, 70, 130],
        window: None,
        key_lens: None,
    },
    Check {
        lens: &[300, 9],
        window: Some(64),
        key_lens: Some(&[250, 5]),
    },
];

/// Self-check tolerance: v in [-1, 1], so P's f16 rounding moves an output by at most
/// 2 * 2^-11 ~ 1e-3, plus the output's own rounding; a wrong kernel misses by O(0.1).
pub const CHECK_ATOL: f64 = 2e-3;
pub const CHECK_RTOL: f64 = 1e-3;

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
            emulated_kernel(8, 8, d, 32768)
                .map(|k| k.name())
                .unwrap_or_default()
        };
        assert!(name(16).contains("BC=64,PAD=8"), "{}", name(16));
        assert!(name(32).contains("BC=32,PAD=8"), "{}", name(32));
        assert!(name(64).contains("BC=32,PAD=0"), "{}", name(64));
        assert!(name(64).contains("EMULATE=1") && name(64).contains("FRAG=8"));
        let big = emulated_kernel(16, 32, 64, 49152).map(|k| k.name());
        assert!(big.is_some_and(|n| n.contains("BC=64,PAD=8")));
        assert!(emulated_kernel(16, 32, 64, 16384).is_none());
        assert_eq!(variants().len(), 12);
    }
}
