//! The tensor-core attention (`ops::attention::coop`, `shaders/attention_coop.wgsl`).
//!
//! - Variant choice: where the adapter lacks cooperative matrices (lavapipe of Debian 12),
//!   forcing it is `Error::Unsupported` and `attention::record` records the portable kernel;
//!   where it has them (lavapipe of Mesa 26, GPUs), the automatic choice for f16 is the
//!   tensor-core kernel exactly when the self-check passed; with `WGBERT_COOP=1` it must be.
//!   f32 never uses it.
//! - The emulated build (`EMULATE`: fragments as per-invocation data, plain loops for the
//!   cooperative operations) against the f64 reference on any adapter, lavapipe included:
//!   checks Q/K/V staging and zero padding, the split of fragments over subgroups, the S and
//!   O_blk round trips, masking, the online softmax with its two or four invocations per
//!   row, block skipping in window mode and the output layout, at every fragment shape,
//!   subgroups of 8 to 64 lanes and every tile configuration that fits.
//! - The real kernel against the reference ONLY where the adapter supports it: on Debian
//!   12's lavapipe these tests are skips (`common::require`: logged, failures under
//!   `WGBERT_REQUIRE=coop`); on Mesa 26 (`scripts/test_coop.sh`) and GPUs they run, with the
//!   device's self-check.
//! - Its SPIR-V really contains cooperative-matrix instructions (so the naga translation test
//!   covers them); the emulated builds translate too and contain none.
//!
//! Tolerance (`|got - want| <= atol + rtol * |want|`): inputs are the same f16 values for the
//! GPU and the reference; scores are exact f16 products summed in f32. P is rounded to f16
//! (2^-11 relative) and the normaliser sums the rounded weights, so an output, a convex
//! combination of v in [-2, 2], moves by at most 2^-11 * max |v_j - o| <= 4 * 2^-11 ~ 2e-3 in
//! the worst case; but the roundings of independent weights cancel like a random walk, and
//! lavapipe's worst over every case here is 2.0e-4. atol 5e-4 (2.5x that) still fails a
//! normaliser off by 0.1% (checked by mutating the kernel); rtol 5e-4 is the output's own f16
//! rounding (half an ulp, 2^-11).

mod common;

use common::Cap;
use wgbert::ops::DType;
use wgbert::ops::attention::{self, AttentionArgs, AttentionVariant, Tiles, coop};
use wgbert::ops::coop::{Mode, Shape};
use wgbert::runtime::{PlanBuilder, RunSizes};

const ATOL: f64 = 5e-4;
const RTOL: f64 = 5e-4;

fn coop_supported() -> bool {
    coop::supported(common::gpu().caps()).is_ok()
}

/// The real tensor-core kernel's checks run where the adapter has cooperative matrices.
fn require_coop(checks: &str) -> bool {
    common::require(Cap::Coop, checks)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Build {
    /// The EMULATE build at (fragment shape, subgroup lanes), with the default tiles.
    Emulated([u32; 3], u32),
    /// The EMULATE build at (fragment shape, subgroup lanes) and these tiles.
    EmulatedTiles([u32; 3], u32, Tiles),
    /// What `attention::record` chooses (the real kernel, tuned or default tiles).
    Real,
    /// The real kernel at these tiles.
    RealTiles(Tiles),
}

/// Runs one f16 case with `build` over packed random q/k/v (scale 2, so the softmax is far
/// from uniform) and checks it against `attention::reference`.
fn check(lens: &[u32], n_heads: u32, head_dim: u32, window: Option<u32>, build: Build) {
    check_keys(lens, None, n_heads, head_dim, window, build);
}

/// `check` where sequence s attends only to its first `keys[s]` rows.
fn check_keys(
    lens: &[u32],
    keys: Option<&[u32]>,
    n_heads: u32,
    head_dim: u32,
    window: Option<u32>,
    build: Build,
) {
    let gpu = common::gpu();
    let case = attention::PackedCase {
        lens,
        key_lens: keys,
        n_heads,
        head_dim,
        window,
        dtype: DType::F16,
    };
    let t = case.rows() as u64;
    let h = (n_heads * head_dim) as u64;
    let seed = t + head_dim as u64 + window.map_or(999, u64::from);
    let qkv = common::stored(
        DType::F16,
        &common::rand_vec((t * 3 * h) as usize, seed, 2.0),
    );
    let storage = gpu.caps().max_workgroup_storage;
    let kernel = match build {
        Build::Emulated(frag, lanes) => {
            let tiles = coop::default_tiles(head_dim, storage).unwrap();
            let shape = Shape::of(frag, lanes);
            Some(coop::emulated_kernel(shape, lanes, head_dim, tiles, storage).unwrap())
        }
        Build::EmulatedTiles(frag, lanes, tiles) => {
            let shape = Shape::of(frag, lanes);
            Some(coop::emulated_kernel(shape, lanes, head_dim, tiles, storage).unwrap())
        }
        Build::Real => None,
        Build::RealTiles(tiles) => {
            let shape = coop::supported(gpu.caps()).unwrap();
            Some(coop::kernel(shape, head_dim, tiles, storage).unwrap())
        }
    };
    let choices = common::checked_choices();
    let coop = Some(AttentionVariant::Coop);
    let got = attention::run_packed(&gpu, choices, &case, &qkv, coop, kernel).unwrap();
    let (_, cu) = RunSizes::packed(lens);
    let want = attention::reference_keys(&qkv, &cu, keys, n_heads, head_dim, window);
    let what = format!(
        "coop attention ({build:?}) lens {lens:?} keys {keys:?} heads {n_heads} d {head_dim} \
         window {window:?}"
    );
    common::assert_close(&what, &got, &want, ATOL, RTOL);
}

const LENS: [&[u32]; 2] = [&[1, 5, 17, 40, 130], &[300, 129, 65]];
const WINDOWS: [Option<u32>; 3] = [None, Some(8), Some(64)];

fn all_cases(build: Build) {
    for lens in LENS {
        for head_dim in coop::HEAD_DIMS {
            for window in WINDOWS {
                check(lens, 2, head_dim, window, build);
            }
        }
    }
}

/// Whether the adapter can run the emulated build of `checks`: f16, and subgroups (the
/// softmax row max is a subgroup shuffle reduction).
fn has_f16(checks: &str) -> bool {
    common::require(Cap::F16, checks) && common::require(Cap::Subgroups, checks)
}

/// The kernel's tiling without tensor cores: ragged query tiles and key blocks, sequences of
/// one token, bands narrower than a block and the ModernBERT band (64) on > 129 tokens.
#[test]
fn emulated_kernel_matches_the_reference() {
    if !has_f16("the emulated tensor-core attention") {
        return;
    }
    // 16x16x16 fragments on 32 lanes (NVIDIA), 8x8x8 on 8 (lavapipe 26) in full.
    all_cases(Build::Emulated(S16, 32));
    all_cases(Build::Emulated(S8, 8));
    // Other subgroup sizes: fewer subgroups than row slabs, and more.
    for build in [
        Build::Emulated(S8, 64),
        Build::Emulated(S16, 64),
        Build::Emulated(S16, 8),
    ] {
        check(&[300, 129, 65], 2, 32, Some(64), build);
        check(&[1, 5, 17, 40, 130], 2, 64, None, build);
    }
}

/// 16x16x16 and 8x8x8 fragments.
const S16: [u32; 3] = [16, 16, 16];
const S8: [u32; 3] = [8, 8, 8];

/// Every other fragment shape the kernel is written for (NVIDIA's 16x8x16 and 16x8x8,
/// Intel's 8x16x16 and 8x8x16), emulated at 32 lanes: S and P V with rectangular fragments
/// of both depths over ragged query tiles, key blocks and bands, every head size, key limits.
#[test]
fn every_fragment_shape_matches_the_reference() {
    if !has_f16("the emulated tensor-core attention at every fragment shape") {
        return;
    }
    for frag in wgbert::ops::coop::FRAGMENTS {
        let build = Build::Emulated(frag, 32);
        for head_dim in coop::HEAD_DIMS {
            check(&[1, 5, 17, 40, 130], 2, head_dim, None, build);
        }
        check(&[300, 129, 65], 2, 64, Some(64), build);
        check_keys(&[5, 40, 130], Some(&[1, 33, 100]), 2, 32, Some(8), build);
    }
}

/// Every tile configuration that fits the adapter (32-row query tiles run four invocations
/// per softmax row), emulated at both fragment sizes: ragged tiles and blocks, bands, key
/// limits, every head size.
#[test]
fn emulated_tile_configurations_match_the_reference() {
    if !has_f16("the emulated tensor-core attention tiles") {
        return;
    }
    let storage = common::gpu().caps().max_workgroup_storage;
    for build_of in [
        |t| Build::EmulatedTiles(S16, 32, t),
        |t| Build::EmulatedTiles(S8, 8, t),
    ] {
        for head_dim in coop::HEAD_DIMS {
            for tiles in coop::fitting(head_dim, storage) {
                let build = build_of(tiles);
                check(&[1, 5, 17, 40, 130], 2, head_dim, None, build);
                check(&[300, 129, 65], 2, head_dim, Some(8), build);
                let (lens, keys) = ([5u32, 40, 130], [1u32, 33, 100]);
                check_keys(&lens, Some(&keys), 2, head_dim, None, build);
            }
        }
    }
}

/// Edge cases on the emulated build: a zero window (each query sees only itself), an empty
/// sequence between two others, three heads, and key-limited sequences.
#[test]
fn emulated_kernel_edge_cases() {
    if !has_f16("the emulated tensor-core attention's edge cases") {
        return;
    }
    for build in [Build::Emulated(S16, 32), Build::Emulated(S8, 8)] {
        check(&[1], 1, 64, Some(0), build);
        check(&[3, 0, 70], 3, 32, None, build);
        check(&[4, 70], 1, 16, Some(0), build);
        key_limited(build);
    }
}

/// PyLate's unattended query expansion: every row a query, only the first keys[s] rows of
/// sequence s keys (one key; ragged in a block; across blocks; all; more than the rows).
fn key_limited(build: Build) {
    let (lens, keys) = ([5u32, 40, 130, 17, 3], [1u32, 33, 100, 17, 9]);
    for head_dim in coop::HEAD_DIMS {
        check_keys(&lens, Some(&keys), 2, head_dim, None, build);
    }
    check_keys(&[300, 9], Some(&[250, 5]), 2, 32, Some(64), build);
}

/// The real kernel over the same cases. Runs only where the adapter supports cooperative
/// matrices (the GPU machine); skipped on lavapipe.
#[test]
fn coop_kernel_matches_the_reference() {
    if !require_coop("the real tensor-core attention cases") {
        return;
    }
    all_cases(Build::Real);
    check(&[1], 1, 64, Some(0), Build::Real);
    check(&[3, 0, 70], 3, 32, None, Build::Real);
    check(&[1000, 2], 2, 64, None, Build::Real);
    check(&[2100], 2, 64, Some(64), Build::Real);
    key_limited(Build::Real);
}

/// The real kernel at every tile configuration that fits the adapter. Runs only where the
/// adapter supports cooperative matrices (Mesa 26 lavapipe, GPUs).
#[test]
fn every_coop_tile_configuration_matches_the_reference() {
    if !require_coop("every real tensor-core attention tile configuration") {
        return;
    }
    let storage = common::gpu().caps().max_workgroup_storage;
    for head_dim in coop::HEAD_DIMS {
        let fitting = coop::fitting(head_dim, storage);
        assert!(fitting.len() >= 2, "d {head_dim}: {fitting:?}");
        for tiles in fitting {
            let build = Build::RealTiles(tiles);
            check(&[1, 5, 17, 40, 130], 2, head_dim, None, build);
            check(&[300, 129, 65], 2, head_dim, Some(64), build);
            let (lens, keys) = ([5u32, 40, 130], [1u32, 33, 100]);
            check_keys(&lens, Some(&keys), 2, head_dim, Some(8), build);
        }
    }
}

/// The device's own self-check (what `attention::record` runs before choosing the kernel).
#[test]
fn self_check_passes_where_supported() {
    if !require_coop("the tensor-core attention's self-check") {
        return;
    }
    let gpu = common::gpu();
    let shape = coop::supported(gpu.caps()).unwrap();
    attention::self_check(&gpu, shape).unwrap();
}

fn args_of(b: &mut PlanBuilder, dtype: DType) -> AttentionArgs {
    let es = dtype.size();
    AttentionArgs {
        qkv: b.input("qkv", 10 * 3 * 128 * es),
        cu_seqlens: b.input("cu", 8),
        key_lens: None,
        out: b.output("out", 10 * 128 * es),
        n_heads: 2,
        head_dim: 64,
        window: None,
        dtype,
        variant: None,
    }
}

fn forced(b: &mut PlanBuilder, dtype: DType) -> AttentionArgs {
    AttentionArgs {
        variant: Some(AttentionVariant::Coop),
        ..args_of(b, dtype)
    }
}

#[test]
fn variant_choice_follows_the_adapter() {
    let gpu = common::gpu();
    if !has_f16("the variant choice of f16 attention") {
        return;
    }
    let choices = common::checked_choices();
    let coop = attention::coop_status(&gpu, choices, DType::F16).is_ok();
    let mut b = PlanBuilder::new(gpu.clone());
    let a = args_of(&mut b, DType::F16);
    attention::record(&mut b, choices, "auto", &a).unwrap();
    let listing = b.build().unwrap().describe();
    assert_eq!(listing.contains("attention_coop/"), coop, "{listing}");
    assert_eq!(listing.contains("attention/main"), !coop, "{listing}");

    // f32 never uses it, automatically or forced.
    let mut b = PlanBuilder::new(gpu.clone());
    let a = args_of(&mut b, DType::F32);
    attention::record(&mut b, choices, "f32", &a).unwrap();
    assert!(!b.build().unwrap().describe().contains("attention_coop/"));
    let mut b = PlanBuilder::new(gpu.clone());
    let a = forced(&mut b, DType::F32);
    let e = attention::record(&mut b, choices, "f32 coop", &a).unwrap_err();
    assert!(matches!(e, wgbert::Error::Unsupported(_)), "{e}");
    assert!(attention::coop_status(&gpu, choices, DType::F32).is_err());

    let a = forced(&mut b, DType::F16);
    let r = attention::record(&mut b, choices, "coop", &a);
    if coop_supported() {
        r.unwrap();
    } else {
        eprintln!(
            "adapter has no usable cooperative matrices: forcing is Unsupported, as it must be"
        );
        let e = r.unwrap_err();
        assert!(matches!(e, wgbert::Error::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("cooperative"), "{e}");
        assert!(!coop);
    }
    // Bad arguments stay typed errors on the forced paths.
    let bad = AttentionArgs {
        head_dim: 48,
        ..forced(&mut b, DType::F16)
    };
    let k = coop::emulated_kernel(Shape::square(8, 8), 8, 64, Tiles { br: 64, bc: 32 }, 32768);
    assert!(attention::record_kernel(&mut b, "bad", &bad, k).is_err());
}

/// With `WGBERT_COOP=1` (scripts/test_coop.sh on Mesa 26) the automatic choice must record
/// the real tensor-core kernel at the adapter's shape.
#[test]
fn required_coop_is_chosen() {
    let gpu = common::gpu();
    if common::coop_mode() != Mode::Required {
        let checks = "the required tensor-core attention (scripts/test_coop.sh)";
        common::require::skip("WGBERT_COOP=1", "WGBERT_COOP is not 1", checks);
        return;
    }
    if !require_coop("the required tensor-core attention") {
        return;
    }
    let (choices, k) = common::checked();
    let k = k.as_ref().unwrap();
    assert!(k.attention.starts_with("attention_coop"), "{k:?}");
    let shape = attention::coop_status(&gpu, choices, DType::F16).unwrap();
    let mut b = PlanBuilder::new(gpu.clone());
    let a = args_of(&mut b, DType::F16);
    attention::record(&mut b, choices, "auto", &a).unwrap();
    let listing = b.build().unwrap().describe();
    assert!(listing.contains("attention_coop/"), "{listing}");
    let want = format!("FM={},FN={},FK={},", shape.m, shape.n, shape.k);
    assert!(listing.contains(&want), "{want}: {listing}");
    assert!(!listing.contains("EMULATE"), "{listing}");
    eprintln!("tensor-core attention chosen: {}", k.attention);
}

/// The translation test in tests/shaders.rs covers the real cooperative-matrix code only if
/// the kernels compile to SPIR-V cooperative-matrix instructions; the emulated builds (not in
/// `ops::all_kernels`) are translated here and must contain none.
#[test]
fn coop_kernels_emit_cooperative_matrix_spirv() {
    let mut kernels: Vec<(wgbert::runtime::Kernel, bool)> =
        coop::variants().into_iter().map(|k| (k, true)).collect();
    for d in coop::HEAD_DIMS {
        for storage in [32768, 49152] {
            let tiles = coop::default_tiles(d, storage).unwrap();
            let k = coop::emulated_kernel(Shape::square(8, 8), 8, d, tiles, storage).unwrap();
            kernels.push((k, false));
        }
    }
    for (kernel, want) in kernels {
        let ops = common::spirv::opcodes(&common::spirv::words(&kernel));
        for op in common::spirv::COOP_OPS {
            assert_eq!(ops.contains(&op), want, "{}: opcode {op}", kernel.name());
        }
    }
}
