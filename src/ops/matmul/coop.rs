//! The tensor-core matmul (`MatmulVariant::Coop`, `shaders/matmul_coop.wgsl`): cooperative
//! F x F x F f16 matrices (F = 16 or 8, the shape the adapter reports) with f32 accumulators,
//! output tiles of 8F x 4F (4F x 2F... halved columns for GeGLU) in four warp tiles of 4 x 2
//! fragments, a workgroup of four subgroups of the adapter's largest subgroup size (8 to 64).
//! Inputs are staged through two K blocks of workgroup memory; where K is a multiple of 4 the
//! next block is fetched with 8-byte vector loads into registers while the current one is
//! multiplied. Same bindings, parameters and epilogues as the tiled kernel; f16 storage only.
//!
//! This module owns what is particular to the variant: whether an adapter can run it, its
//! tile, its kernel builds (real and `EMULATE`, which tests the tiling on adapters without
//! cooperative matrices) and the shapes of its self-check. The self-check itself, and the
//! choice, live with the family (`ops::matmul`).

use super::kernel::{Epilogue, MatmulVariant, all_epilogues, kernel as family_kernel};
use crate::ops::coop::{self, Shape};
use crate::ops::{Activation, DType};
use crate::runtime::{Capabilities, Kernel};

/// Row stride in halves of the staged X and W rows (32 k each, padded).
const LDS: u32 = 40;
/// Warp tiles (subgroups that multiply) per workgroup.
pub const WARP_TILES: u32 = 4;

/// The output tile of one workgroup (rows, output columns) at fragment size `frag`.
pub fn tile(frag: u32, epilogue: Epilogue) -> (u32, u32) {
    match epilogue {
        Epilogue::GeGlu(_) => (8 * frag, 2 * frag),
        _ => (8 * frag, 4 * frag),
    }
}

/// Workgroup memory: two K blocks of the tile's X and W rows in f16, and the f32 staging
/// tile of half the output tile.
pub const fn workgroup_bytes(frag: u32) -> u32 {
    let (tm, tn) = (8 * frag, 4 * frag);
    2 * (tm + tn) * LDS * 2 + tm / 2 * tn * 4
}

/// Invocations of one workgroup: four subgroups of the largest size.
pub fn invocations(shape: Shape) -> u32 {
    WARP_TILES * shape.subgroup
}

/// The shape this kernel runs at on the adapter, or why it cannot run there.
pub fn supported(caps: &Capabilities) -> std::result::Result<Shape, String> {
    let s = coop::shape(caps)?;
    if caps.max_workgroup_storage < workgroup_bytes(s.frag) {
        return Err(format!(
            "matmul needs {} bytes of workgroup memory, the adapter has {}",
            workgroup_bytes(s.frag),
            caps.max_workgroup_storage
        ));
    }
    if caps.max_invocations < invocations(s) {
        return Err(format!(
            "matmul needs {} invocations per workgroup, the adapter allows {}",
            invocations(s),
            caps.max_invocations
        ));
    }
    Ok(s)
}

/// The real kernel for `epilogue`, with or without bias, at `shape`, for inner size `k`:
/// 8-byte vector loads prefetched into registers (`VEC`) where `k` is a multiple of 4 (every
/// ModernBERT matmul), scalar loads otherwise.
pub fn kernel(shape: Shape, epilogue: Epilogue, bias: bool, k: u32) -> Kernel {
    build(shape, shape.subgroup, epilogue, bias, k)
}

/// Whether the build for inner size `k` loads vectors of four k.
pub fn vector_loads(k: u32) -> bool {
    k.is_multiple_of(4)
}

fn build(shape: Shape, lanes: u32, epilogue: Epilogue, bias: bool, k: u32) -> Kernel {
    let kernel = family_kernel(MatmulVariant::Coop, DType::F16, epilogue, bias)
        .define("FRAG", shape.frag)
        .define("SG", lanes)
        .define("WG", invocations(shape));
    if vector_loads(k) {
        kernel.define("VEC", 1)
    } else {
        kernel
    }
}

/// The same kernel with the cooperative operations emulated by plain loops (`EMULATE`),
/// `lanes` wide subgroups in a workgroup sized for `shape.subgroup` (lanes below it leave the
/// extra subgroups to staging, as a driver running narrower subgroups would). Slow: tests.
pub fn emulated_kernel(shape: Shape, lanes: u32, epilogue: Epilogue, bias: bool, k: u32) -> Kernel {
    build(shape, lanes, epilogue, bias, k).define("EMULATE", 1)
}

/// Every real kernel at both fragment sizes, with vector and scalar loads (for the shader
/// translation test).
pub fn variants() -> Vec<Kernel> {
    let mut v = Vec::new();
    for frag in coop::FRAGS {
        let shape = Shape { frag, subgroup: 32 };
        for e in all_epilogues() {
            for bias in [false, true] {
                for k in [768, 770] {
                    v.push(kernel(shape, e, bias, k));
                }
            }
        }
    }
    v
}

/// One self-check case: T, K, N, epilogue, bias.
pub type Case = (usize, usize, usize, Epilogue, bool);

/// Self-check cases: every (epilogue, bias) build the encoder can record, with T = 130
/// (ragged row tiles at both fragment sizes) and K cycling over the inputs of
/// ModernBERT-large's matmuls (1024 hidden, 2624 intermediate, 5248 its GeGLU pair), N off
/// the column tile (vector loads); plus a short K off the 32-wide block and off the 4-wide
/// vectors (scalar loads) and a single row.
pub fn checks() -> Vec<Case> {
    const KS_LARGE: [usize; 3] = [1024, 2624, 5248];
    let mut v = Vec::new();
    for (i, e) in all_epilogues().into_iter().enumerate() {
        for bias in [false, true] {
            let k = KS_LARGE[(2 * i + usize::from(bias)) % KS_LARGE.len()];
            v.push((130, k, 40, e, bias));
        }
    }
    v.push((70, 102, 90, Epilogue::None, true));
    v.push((1, 72, 33, Epilogue::GeGlu(Activation::GeluErf), true));
    v
}

/// Self-check tolerance. Inputs are f16 (products exact in f32), sums f32 in the tensor
/// cores' order, output rounded once to f16 (2^-11 relative): a wrong kernel misses by O(1).
pub const CHECK_ATOL: f64 = 2e-3;
pub const CHECK_RTOL: f64 = 2e-3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_and_memory_follow_the_fragment() {
        assert_eq!(tile(16, Epilogue::None), (128, 64));
        assert_eq!(tile(8, Epilogue::GeGlu(Activation::Relu)), (64, 16));
        const { assert!(workgroup_bytes(16) <= 48 * 1024) };
        assert_eq!(workgroup_bytes(16), 47104);
        assert_eq!(workgroup_bytes(8), 19456);
    }

    #[test]
    fn kernels_carry_their_shape() {
        let v = variants();
        assert_eq!(v.len(), 80);
        assert!(v.iter().all(|k| k.shader == "matmul_coop"));
        let s = Shape {
            frag: 8,
            subgroup: 8,
        };
        let k = kernel(s, Epilogue::Residual, true, 768);
        let name = k.name();
        assert!(
            name.contains("ELEM=f16") && name.contains("RESIDUAL=5"),
            "{name}"
        );
        assert!(name.contains("FRAG=8") && name.contains("WG=32"), "{name}");
        assert!(name.contains("VEC=1"), "{name}");
        let e = emulated_kernel(s, 8, Epilogue::None, false, 102).name();
        assert!(e.contains("EMULATE=1") && !e.contains("VEC"), "{e}");
        assert_eq!(checks().len(), 22);
    }
}
