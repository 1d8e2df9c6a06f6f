//! The tensor-core matmul (`MatmulVariant::Coop`, `shaders/matmul_coop.wgsl`).
//!
//! - Variant choice: where the adapter lacks cooperative matrices (lavapipe of Debian 12),
//!   forcing Coop is `Error::Unsupported` and the automatic choice records the tiled/subgroup
//!   kernels; where it has them (lavapipe of Mesa 26: 8x8x8, 8 lanes; NVIDIA: 16x16x16, 32),
//!   the automatic choice is Coop exactly when the self-check passed. With `WGBERT_COOP=1`
//!   (scripts/test_coop.sh) the tensor-core kernel must be chosen, and is asserted to be.
//! - The emulated build (`EMULATE`: fragments as per-invocation arrays, plain loops for the
//!   cooperative operations) against the f64 reference: checks the tiling, double-buffered
//!   staging, zero padding, warp-tile offsets, load layouts and the staged epilogue on any
//!   adapter, lavapipe included, at both fragment sizes and subgroup sizes 8 to 64 (narrower
//!   lanes than the workgroup is sized for too). Slow, so tiny shapes.
//! - The real kernel against the f64 reference over awkward shapes and every epilogue, ONLY
//!   where the adapter supports it: on Debian 12's lavapipe these tests are skips
//!   (`common::require`: logged, failures under `WGBERT_REQUIRE=coop`); on Mesa 26
//!   (`scripts/test_coop.sh`) and on GPUs they run.
//! - Its SPIR-V really contains cooperative-matrix instructions (so the naga translation test
//!   covers them).
//!
//! Tolerance (`|got - want| <= atol + rtol * |want|`), as tests/matmul.rs for f16: inputs
//! are rounded to f16 before the reference, so only the f32 accumulation (products of f16 are
//! exact in f32; K <= 130 sums of magnitude < 1) and the one f16 rounding of the output
//! (2^-11 relative) differ: rtol 1e-3, atol 1e-4.

mod common;

use common::Cap;
use common::matmul_case::Case;

use wgbert::ops::coop::{FRAGMENTS, Mode, Shape};
use wgbert::ops::matmul::{self, Epilogue, MatmulArgs, MatmulVariant, coop};
use wgbert::ops::{Activation, DType, Rows};
use wgbert::runtime::PlanBuilder;

const GELU: Activation = Activation::GeluErf;
const ATOL: f64 = 1e-4;
const RTOL: f64 = 1e-3;

fn coop_supported() -> bool {
    coop::supported(common::gpu().caps()).is_ok()
}

/// The real tensor-core kernel's checks run where the adapter has cooperative matrices.
fn require_coop(checks: &str) -> bool {
    common::require(Cap::Coop, checks)
}

/// Plain arguments over fresh tensors of `b` (rows fixed at `t`).
fn args(b: &mut PlanBuilder, t: u32, k: u32, n: u32, dtype: DType) -> MatmulArgs {
    let es = dtype.size() as u32;
    MatmulArgs {
        x: b.input("x", (t * k * es) as u64),
        w: b.input("w", (n * k * es) as u64),
        bias: None,
        residual: None,
        y: b.output("y", (t * n * es) as u64),
        rows: Rows::Fixed(t),
        k,
        n,
        dtype,
        epilogue: Epilogue::None,
        variant: None,
    }
}

#[test]
fn variant_choice_follows_the_adapter() {
    let gpu = common::gpu();
    if !common::require(Cap::F16, "the variant choice of f16 matmuls") {
        return;
    }
    // The self-checks run (as when a model loads), so the automatic choice may take Coop.
    let choices = common::checked_choices();
    // Rows known only at run time: both row ranges are recorded.
    let mut b = PlanBuilder::new(gpu.clone());
    let a = MatmulArgs {
        rows: Rows::Tokens,
        ..args(&mut b, 200, 64, 96, DType::F16)
    };
    matmul::record(&mut b, choices, "auto", &a).unwrap();
    let fixed = args(&mut b, 200, 64, 96, DType::F16);
    matmul::record(&mut b, choices, "auto fixed", &fixed).unwrap();
    let listing = b.build().unwrap().describe();
    let coop = matmul::coop_status(&gpu, choices, DType::F16).is_ok();
    assert_eq!(listing.contains("matmul_coop/"), coop, "{listing}");
    assert_eq!(listing.contains("matmul/main"), !coop, "{listing}");
    if common::require(Cap::Subgroups, "the subgroup matmul for few rows") {
        assert!(listing.contains("matmul_subgroup/"), "{listing}");
    }
    // f32 never uses Coop, forced or not.
    let mut b = PlanBuilder::new(gpu.clone());
    let a = args(&mut b, 200, 64, 96, DType::F32);
    matmul::record(&mut b, choices, "f32", &a).unwrap();
    assert!(!b.build().unwrap().describe().contains("matmul_coop/"));
    let mut b = PlanBuilder::new(gpu.clone());
    let forced = MatmulArgs {
        variant: Some(MatmulVariant::Coop),
        ..args(&mut b, 200, 64, 96, DType::F32)
    };
    let e = matmul::record(&mut b, choices, "f32 coop", &forced).unwrap_err();
    assert!(matches!(e, wgbert::Error::Unsupported(_)), "{e}");

    let forced = MatmulArgs {
        variant: Some(MatmulVariant::Coop),
        ..args(&mut b, 200, 64, 96, DType::F16)
    };
    let r = matmul::record(&mut b, choices, "coop", &forced);
    if coop_supported() {
        r.unwrap();
    } else {
        eprintln!("adapter has no usable cooperative matrices: Coop is Unsupported, as it must be");
        let e = r.unwrap_err();
        assert!(matches!(e, wgbert::Error::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("cooperative"), "{e}");
        assert!(matmul::coop_status(&gpu, choices, DType::F16).is_err());
    }
}

/// How a case builds the kernel.
#[derive(Debug, Clone, Copy)]
enum Build {
    /// What `matmul::record` chooses (the real kernel at the tuned or default configuration).
    Auto,
    /// The real kernel at the adapter's shape and this configuration.
    Real(coop::Config),
    /// The EMULATE build at this shape, lane count and configuration.
    Emulated(Shape, u32, coop::Config),
}

/// Runs one f16 case built as `build` and checks it against the reference.
fn check(t: usize, k: usize, n: usize, epilogue: Epilogue, bias: bool, build: Build, seed: u64) {
    let c = Case {
        k,
        n,
        dtype: DType::F16,
        variant: Some(MatmulVariant::Coop),
        epilogue,
        bias,
    };
    let kernel = match build {
        Build::Auto => None,
        Build::Real(config) => {
            let shape = coop::supported(common::gpu().caps()).unwrap();
            Some((
                coop::kernel(shape, config, epilogue, bias, k as u32),
                coop::tile(shape, config, epilogue),
            ))
        }
        Build::Emulated(shape, lanes, config) => Some((
            coop::emulated_kernel(shape, lanes, config, epilogue, bias, k as u32),
            coop::tile(shape, config, epilogue),
        )),
    };
    let what = format!("K={k} N={n} {epilogue:?} bias={bias} {build:?}");
    let choices = common::checked_choices();
    common::matmul_case::check(&what, choices, c, t, &[t], seed, kernel, (ATOL, RTOL));
}

/// Tiling logic without tensor cores: ragged row/column tiles, K below, off and across the
/// 32-wide blocks (both staging buffers) with vector loads (K a multiple of 4) and scalar
/// ones (ragged K), two row tiles, and each epilogue kind.
#[test]
fn emulated_kernel_matches_the_reference() {
    if !common::require(Cap::F16, "the emulated tensor-core matmul") {
        return;
    }
    let cases = [
        (1, 24, 17, Epilogue::None, false),
        (70, 100, 90, Epilogue::None, true),
        (129, 5, 33, Epilogue::Residual, true),
        (40, 72, 40, Epilogue::GeGlu(GELU), true),
        (33, 40, 20, Epilogue::GeGlu(Activation::Silu), false),
        (20, 16, 64, Epilogue::Act(GELU), true),
        (65, 70, 40, Epilogue::Residual, false),
    ];
    // (fragment, subgroup size the workgroup is sized for, lanes the "driver" runs)
    let builds = [
        ([16, 16, 16], 32, 32),
        ([8, 8, 8], 8, 8),
        ([8, 8, 8], 32, 8),
        ([16, 16, 16], 64, 64),
        ([8, 8, 8], 16, 16),
    ];
    for (j, &(frag, subgroup, lanes)) in builds.iter().enumerate() {
        let shape = Shape::of(frag, subgroup);
        for (i, &(t, k, n, e, bias)) in cases.iter().enumerate() {
            let seed = 100 + 10 * i as u64 + 1000 * j as u64;
            let build = Build::Emulated(shape, lanes, coop::default_for(shape, &caps()));
            check(t, k, n, e, bias, build, seed);
        }
    }
}

/// Workgroup limits wide enough for every candidate (the emulated builds run on any adapter).
fn caps() -> wgbert::runtime::Capabilities {
    wgbert::runtime::Capabilities {
        max_workgroup_storage: 49152,
        max_invocations: 1024,
        ..Default::default()
    }
}

/// Every fragment shape the kernel is written for (NVIDIA's 16x8x16 and 16x8x8, Intel's
/// 8x16x16 and 8x8x16 besides 16x16x16 and 8x8x8), emulated at 32 lanes and at narrower
/// subgroups than the workgroup is sized for, at its default configuration and the one of
/// twice the accumulators: ragged row and column tiles, K off the 32-wide blocks and below
/// a fragment's depth, vector and scalar loads, GeGLU's paired W rows.
#[test]
fn every_fragment_shape_matches_the_reference() {
    if !common::require(
        Cap::F16,
        "the emulated tensor-core matmul at every fragment shape",
    ) {
        return;
    }
    let cases = [
        (70, 100, 90, Epilogue::Residual, true),
        (33, 40, 20, Epilogue::GeGlu(GELU), false),
        (129, 8, 17, Epilogue::Act(GELU), true),
    ];
    let mut seed = 3000;
    for frag in FRAGMENTS {
        let shape = Shape::of(frag, 32);
        let default = coop::default_for(shape, &caps());
        let wide = coop::Config {
            wm: 1,
            wn: 2,
            acc: 2 * default.acc,
        };
        // Every case at the default; one each at 16 lanes and at twice the accumulators.
        let builds = [(32, default, 3), (16, default, 1), (32, wide, 1)];
        for (lanes, config, n_cases) in builds {
            for &(t, k, n, e, bias) in &cases[..n_cases] {
                check(
                    t,
                    k,
                    n,
                    e,
                    bias,
                    Build::Emulated(shape, lanes, config),
                    seed,
                );
                seed += 10;
            }
        }
    }
}

/// Every tile configuration (warp grid and accumulators per lane), emulated at 8x8x8,
/// 16x16x16 and 16x8x16: ragged row and column tiles, vector and scalar loads, GeGLU's paired
/// W rows across the grid's columns.
#[test]
fn emulated_configurations_match_the_reference() {
    if !common::require(Cap::F16, "the emulated tensor-core matmul configurations") {
        return;
    }
    let cases = [
        (70, 100, 90, Epilogue::Residual, true),
        (40, 70, 40, Epilogue::GeGlu(GELU), true),
    ];
    let shapes = [
        ([8, 8, 8], 8, 8),
        ([16, 16, 16], 32, 32),
        ([16, 8, 16], 32, 32),
    ];
    let mut seed = 5000;
    for config in coop::CANDIDATES {
        for &(frag, subgroup, lanes) in &shapes {
            let shape = Shape::of(frag, subgroup);
            for &(t, k, n, e, bias) in &cases {
                check(
                    t,
                    k,
                    n,
                    e,
                    bias,
                    Build::Emulated(shape, lanes, config),
                    seed,
                );
                seed += 10;
            }
        }
    }
}

/// The real kernel: awkward shapes x every epilogue, with and without bias. Runs only where
/// the adapter supports cooperative matrices (the GPU machine); skipped on lavapipe.
#[test]
fn coop_kernel_matches_the_reference() {
    if !require_coop("the real tensor-core matmul cases") {
        return;
    }
    let mut shapes = common::MATMUL_SHAPES.to_vec();
    // Exact 16x16-fragment tiles, and several ragged tiles each way.
    shapes.extend([
        common::MatmulShape::new(128, 64, 64),
        common::MatmulShape::new(257, 130, 200),
    ]);
    let mut seed = 1;
    for e in matmul::all_epilogues() {
        for bias in [false, true] {
            for &common::MatmulShape { t, k, n } in &shapes {
                check(t, k, n, e, bias, Build::Auto, seed);
                seed += 10;
            }
        }
    }
}

/// The real kernel at every tile configuration the adapter fits: awkward shapes over several
/// row and column tiles, vector and scalar loads, each epilogue kind. Runs only where the
/// adapter supports cooperative matrices (Mesa 26 lavapipe, GPUs).
#[test]
fn every_coop_configuration_matches_the_reference() {
    let gpu = common::gpu();
    if !require_coop("every real tensor-core matmul configuration") {
        return;
    }
    let shape = coop::supported(gpu.caps()).unwrap();
    let cases = [
        (257, 130, 200, Epilogue::Residual, true),
        (70, 102, 90, Epilogue::None, false),
        (129, 64, 72, Epilogue::GeGlu(GELU), true),
        (33, 44, 48, Epilogue::Act(Activation::Silu), false),
    ];
    let configs = coop::fitting(shape, gpu.caps());
    let default = coop::default_for(shape, gpu.caps());
    assert!(configs.contains(&default), "{configs:?}");
    let mut seed = 7000;
    for config in configs {
        for &(t, k, n, e, bias) in &cases {
            check(t, k, n, e, bias, Build::Real(config), seed);
            seed += 10;
        }
    }
}

/// The device's own self-check (what `matmul::record` runs before choosing Coop by itself).
#[test]
fn self_check_passes_where_supported() {
    let gpu = common::gpu();
    if !require_coop("the tensor-core matmul's self-check") {
        return;
    }
    let shape = coop::supported(gpu.caps()).unwrap();
    matmul::self_check(&gpu, shape).unwrap();
}

/// With `WGBERT_COOP=1` (scripts/test_coop.sh on Mesa 26) the tensor-core kernel must be
/// what the automatic choice records, at the adapter's shape; on an adapter without
/// cooperative matrices the same setting must be a clear error.
#[test]
fn required_coop_is_chosen_or_refused() {
    let gpu = common::gpu();
    if common::coop_mode() != Mode::Required {
        let checks = "the required tensor-core matmul (scripts/test_coop.sh)";
        common::require::skip("WGBERT_COOP=1", "WGBERT_COOP is not 1", checks);
        return;
    }
    let (choices, got) = common::checked();
    let got = got.clone();
    if !coop_supported() {
        let e = got.unwrap_err();
        assert!(e.contains("cooperative matri"), "{e}");
        return;
    }
    let k = got.unwrap();
    assert!(k.matmul.starts_with("matmul_coop"), "{k:?}");
    assert_eq!(k.coop_reason, None);
    let shape = matmul::coop_status(&gpu, choices, DType::F16).unwrap();
    let mut b = PlanBuilder::new(gpu.clone());
    let a = args(&mut b, 200, 64, 96, DType::F16);
    matmul::record(&mut b, choices, "auto", &a).unwrap();
    let listing = b.build().unwrap().describe();
    let want = format!("FM={},FN={},FK={},COOP=", shape.m, shape.n, shape.k);
    assert!(listing.contains("matmul_coop/"), "{listing}");
    assert!(listing.contains(&want), "{want}: {listing}");
    assert!(!listing.contains("EMULATE"), "{listing}");
    eprintln!("tensor-core matmul chosen: {}", k.matmul);
}

/// The translation test in tests/shaders.rs covers the real cooperative-matrix code only if
/// the Coop kernels compile to SPIR-V cooperative-matrix instructions.
#[test]
fn coop_kernels_emit_cooperative_matrix_spirv() {
    let s8 = Shape::square(8, 8);
    let s16 = Shape::square(16, 32);
    let nv = Shape::of([16, 8, 8], 32);
    for (kernel, want) in [
        (
            coop::kernel(s16, coop::DEFAULT, Epilogue::GeGlu(GELU), true, 768),
            true,
        ),
        (
            coop::kernel(s8, coop::DEFAULT, Epilogue::Residual, false, 770),
            true,
        ),
        (
            coop::kernel(nv, coop::DEFAULT, Epilogue::Residual, false, 768),
            true,
        ),
        (
            coop::emulated_kernel(s8, 8, coop::DEFAULT, Epilogue::Residual, true, 768),
            false,
        ),
    ] {
        let ops = common::spirv::opcodes(&common::spirv::words(&kernel));
        for op in common::spirv::COOP_OPS {
            assert_eq!(ops.contains(&op), want, "{}: opcode {op}", kernel.name());
        }
    }
}

/// RoPE fused into the Wqkv projection on the tensor-core kernel: fused where the output
/// tile holds whole heads (the partner column is in the staged row), the separate pass
/// otherwise, emulated (slow: a few builds) at three fragment shapes, f16, against the
/// matmul then RoPE references. The default 64-column tile (two warp tiles of 32) fuses
/// head sizes 16 and 64 (also 2x4's 128 columns).
#[test]
fn emulated_rope_in_the_projection_matches_the_reference() {
    if !common::require(Cap::F16, "RoPE in the emulated tensor-core projection") {
        return;
    }
    let wide = coop::Config {
        wm: 2,
        wn: 4,
        acc: 32,
    };
    for (frag, subgroup, configs) in [
        ([8, 8, 8], 8, vec![coop::DEFAULT, wide]),
        ([16, 16, 16], 32, vec![coop::DEFAULT]),
        ([16, 8, 16], 32, vec![coop::DEFAULT]),
    ] {
        let shape = Shape::of(frag, subgroup);
        for config in configs {
            for head_dim in [16u32, 64] {
                let kernel =
                    coop::emulated_kernel(shape, subgroup, config, Epilogue::None, true, 40);
                let build = Some((kernel, coop::tile(shape, config, Epilogue::None)));
                rope_case(
                    head_dim,
                    build,
                    &format!("{} {} emulated", shape.name(), config.name()),
                );
            }
        }
    }
}

/// The same on the real kernel at every configuration the adapter fits (Mesa 26 lavapipe,
/// GPUs), and through the automatic choice.
#[test]
fn rope_in_the_projection_matches_the_reference() {
    let gpu = common::gpu();
    if !require_coop("RoPE in the real tensor-core projection") {
        return;
    }
    let shape = coop::supported(gpu.caps()).unwrap();
    for config in coop::fitting(shape, gpu.caps()) {
        for head_dim in [16u32, 32, 64] {
            let kernel = coop::kernel(shape, config, Epilogue::None, true, 40);
            let build = Some((kernel, coop::tile(shape, config, Epilogue::None)));
            rope_case(head_dim, build, &config.name());
        }
    }
    let _ = common::checked_choices();
    rope_case(64, None, "automatic");
}

/// One `check_rope` case (2 heads, K = 40, 130 rows run at 130 and 1) that asserts the plan
/// fused exactly when `matmul::rope_fusable` says so.
fn rope_case(head_dim: u32, build: Option<(wgbert::runtime::Kernel, (u32, u32))>, what: &str) {
    let fused = build
        .as_ref()
        .map(|(k, tile)| matmul::rope_fusable(k, *tile, head_dim));
    if let (Some(f), Some((_, tile))) = (fused, &build) {
        assert_eq!(f, tile.1.is_multiple_of(head_dim), "{what} d {head_dim}");
    }
    let what = format!("{what} d {head_dim}");
    let tol = (4e-3, 4e-3);
    let listing = common::matmul_case::check_rope(
        common::checked_choices(),
        &what,
        DType::F16,
        (2, head_dim),
        40,
        130,
        &[130, 1],
        build,
        tol,
    );
    if let Some(f) = fused {
        assert_eq!(listing.contains("ROPE="), f, "{what}: {listing}");
        assert_eq!(listing.contains("rope/main"), !f, "{what}: {listing}");
    }
}
