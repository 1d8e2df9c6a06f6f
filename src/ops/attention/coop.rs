//! The tensor-core attention (`AttentionVariant::Coop`, `shaders/attention_coop.wgsl`): the
//! varlen flash attention of `ops::attention` with QK^T and PV on f16 cooperative matrices
//! of the adapter's shape (`ops::coop::Shape`; f32 accumulators), f32 softmax, 128
//! invocations whose subgroups (8 to 64 lanes) loop over the output fragments of each
//! product; f16 storage only. Same arguments, parameters, dispatch and semantics as the
//! portable kernel. Tile configurations ([`Tiles`]: query rows, so 128 / rows invocations
//! per softmax row, and keys per block) are [`CANDIDATES`], timed by the autotuner
//! (`ops::tune`); 32 x 32 when nothing was tuned.
//!
//! This module owns what is particular to the variant: whether an adapter can run it, its
//! kernel builds and workgroup-memory budget, the emulated build (`EMULATE`: plain loops for
//! the cooperative operations) that tests its tiling on adapters without cooperative
//! matrices, and the cases of its self-check. The self-check itself and the choice live with
//! the family (`ops::attention`).
//!
//! Precision: P is rounded to f16 for the PV product and the normaliser sums the rounded
//! values, so each output is a convex combination of v with weights off by at most 2^-11
//! relative: |error| <= 2^-11 * max |v_j - o| plus the f16 rounding of the output.

use super::Tiles;
use super::kernel::AttentionParams;
use crate::ops::DType;
use crate::ops::coop::{self, Shape};
use crate::runtime::{Access, Capabilities, Kernel};

/// The shader file of the tensor-core kernel.
pub const SHADER: &str = "attention_coop";
/// Invocations of one workgroup (128 / query rows per softmax row).
pub const INVOCATIONS: u32 = 128;
/// Head sizes with a compiled variant (multiples of both fragment sizes).
pub const HEAD_DIMS: [u32; 3] = [16, 32, 64];
/// Row padding (f16 elements) where workgroup memory allows it.
pub const PAD: u32 = 8;
/// The configuration when nothing was tuned: 32 query rows (four invocations per softmax
/// row), 32 keys per block. The drivers' statistics chose it (`docs/gpu-compilers.md`): at
/// head size 64 it takes 104 registers on NVIDIA without spills (64 x 64 took 136 and
/// spilled to registers) and 20 KiB of workgroup memory (64 x 64: 44 KiB), so AMD runs three
/// times the waves per SIMD.
pub const DEFAULT: Tiles = Tiles { br: 32, bc: 32 };
/// Workgroup memory of the largest configuration at head_dim 64 (the largest).
pub const WORKGROUP_BYTES: u32 = workgroup_bytes(64, Tiles { br: 64, bc: 64 }, PAD);

/// What the autotuner times: the default, then 64-key blocks (fewer blocks per query tile),
/// 64-row query tiles (two invocations per softmax row, half the workgroups) and both.
pub const CANDIDATES: [Tiles; 4] = [
    DEFAULT,
    Tiles { br: 32, bc: 64 },
    Tiles { br: 64, bc: 32 },
    Tiles { br: 64, bc: 64 },
];

/// Bytes of workgroup memory for (head_dim, tiles, padding): f16 Q [br][d + pad],
/// K/V [bc][d + pad] and P [br][bc + pad], and the f32 tile of S / O_blk
/// [br][max(bc, d) + pad / 2].
pub const fn workgroup_bytes(head_dim: u32, tiles: Tiles, pad: u32) -> u32 {
    let (br, bc) = (tiles.br, tiles.bc);
    let ld = head_dim + pad;
    let halves = br * ld + bc * ld + br * (bc + pad);
    let width = if bc > head_dim { bc } else { head_dim };
    2 * halves + 4 * br * (width + pad / 2)
}

/// The row padding `tiles` runs with at `head_dim` within `max_workgroup_storage` bytes:
/// `PAD` where it fits, else none (unpadded rows stay multiples of 16 bytes, as cooperative
/// loads require); `None` where neither fits or the tiles do not divide the work.
pub fn padding(head_dim: u32, tiles: Tiles, max_workgroup_storage: u32) -> Option<u32> {
    let lanes = INVOCATIONS / tiles.br;
    // Fragment rows and columns of both sizes; whole P columns and output vectors per lane.
    let divides = INVOCATIONS.is_multiple_of(tiles.br)
        && tiles.br.is_multiple_of(16)
        && tiles.bc.is_multiple_of(16)
        && tiles.bc.is_multiple_of(lanes)
        && head_dim.is_multiple_of(4 * lanes);
    [PAD, 0]
        .into_iter()
        .find(|&pad| divides && workgroup_bytes(head_dim, tiles, pad) <= max_workgroup_storage)
}

/// The candidates that fit `max_workgroup_storage` bytes at `head_dim`.
pub fn fitting(head_dim: u32, max_workgroup_storage: u32) -> Vec<Tiles> {
    CANDIDATES
        .into_iter()
        .filter(|&t| padding(head_dim, t, max_workgroup_storage).is_some())
        .collect()
}

/// The configuration used untuned: [`DEFAULT`], padded where that fits, else unpadded;
/// `None` where neither fits.
pub fn default_tiles(head_dim: u32, max_workgroup_storage: u32) -> Option<Tiles> {
    padding(head_dim, DEFAULT, max_workgroup_storage).map(|_| DEFAULT)
}

/// Why the kernel is never run at `shape` though the adapter reports it, if so: Intel's
/// 8x8x16 and 8x16x16. Intel's compiler builds cooperative-matrix shaders at SIMD32 unless
/// the pipeline asks for another subgroup size, which wgpu cannot, and this kernel's softmax
/// and output rows spill to memory at SIMD32 in every tile configuration
/// (`docs/gpu-compilers.md`).
pub fn unused_at(shape: Shape) -> Option<&'static str> {
    (shape.m == 8 && shape.k == 16).then_some(
        "Intel's 8x8x16 and 8x16x16 compile at SIMD32, where every tile configuration of the \
         attention spills to memory (wgpu cannot ask for a narrower subgroup)",
    )
}

/// The shape the real kernel runs at on the adapter, or why it cannot run there.
pub fn supported(caps: &Capabilities) -> std::result::Result<Shape, String> {
    let s = coop::shape(caps)?;
    if let Some(why) = unused_at(s) {
        return Err(why.into());
    }
    if default_tiles(64, caps.max_workgroup_storage).is_none() {
        let least = workgroup_bytes(64, DEFAULT, 0);
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

fn build(shape: Shape, lanes: u32, head_dim: u32, tiles: Tiles, pad: u32) -> Kernel {
    let kernel = DType::F16
        .apply(Kernel::new(
            SHADER,
            "main",
            &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
        ))
        .with_params::<AttentionParams>()
        .define("HEAD_DIM", head_dim)
        .define("BR", tiles.br)
        .define("BC", tiles.bc)
        .define("PAD", pad);
    shape.apply(kernel, lanes)
}

/// The real kernel for one head size and tile configuration at `shape` on a device with
/// `max_workgroup_storage` bytes (`padding`), if it fits.
pub fn kernel(
    shape: Shape,
    head_dim: u32,
    tiles: Tiles,
    max_workgroup_storage: u32,
) -> Option<Kernel> {
    padding(head_dim, tiles, max_workgroup_storage)
        .map(|pad| build(shape, shape.subgroup, head_dim, tiles, pad))
}

#[doc(hidden)]
/// The emulated build (`EMULATE`, subgroups of `lanes`) of what `kernel` builds.
pub fn emulated_kernel(
    shape: Shape,
    lanes: u32,
    head_dim: u32,
    tiles: Tiles,
    max_workgroup_storage: u32,
) -> Option<Kernel> {
    padding(head_dim, tiles, max_workgroup_storage).map(|pad| {
        let mut k = build(shape, lanes, head_dim, tiles, pad).define("EMULATE", 1);
        // Emulated fragments are plain arrays: nothing to reshape.
        k.coop_shape = None;
        k
    })
}

/// Every real kernel at every fragment shape, with 48 and 32 KiB of workgroup memory, every
/// candidate (for the shader translation test).
pub fn variants() -> Vec<Kernel> {
    let mut v = Vec::new();
    for f in coop::FRAGMENTS {
        let shape = Shape::of(f, 32);
        for storage in [49152, 32768] {
            for d in HEAD_DIMS {
                for t in CANDIDATES {
                    v.extend(kernel(shape, d, t, storage));
                }
            }
        }
    }
    v.sort_by_key(|k| k.name());
    v.dedup();
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
            for t in CANDIDATES {
                assert!(workgroup_bytes(d, t, PAD) <= WORKGROUP_BYTES);
            }
            assert_eq!(fitting(d, 49152), CANDIDATES);
        }
    }

    #[test]
    fn defaults_fit_32_kib() {
        let name = |d| {
            default_tiles(d, 32768)
                .and_then(|t| emulated_kernel(Shape::square(8, 8), 8, d, t, 32768))
                .map(|k| k.name())
                .unwrap_or_default()
        };
        for d in HEAD_DIMS {
            assert!(name(d).contains("BR=32,BC=32,PAD=8"), "{}", name(d));
        }
        assert!(name(64).contains("EMULATE=1") && name(64).contains("FM=8,FN=8,FK=8"));
        assert_eq!(default_tiles(64, 49152), Some(DEFAULT));
        assert_eq!(default_tiles(64, 16384), None);
        assert!(unused_at(Shape::of([8, 16, 16], 32)).is_some());
        assert!(unused_at(Shape::of([16, 8, 16], 32)).is_none());
        // Tiles that do not divide the work: query rows off the fragment, or more lanes per
        // row than the head has output vectors.
        assert_eq!(padding(64, Tiles { br: 40, bc: 64 }, 49152), None);
        assert_eq!(padding(4, Tiles { br: 32, bc: 32 }, 49152), None);
        assert!(fitting(64, 32768).len() >= 2);
        assert!(!variants().is_empty());
    }
}
