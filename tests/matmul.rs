//! Matmul on the test adapter against the f64 reference: every epilogue x {f32, f16} x
//! {tiled, subgroup} over awkward shapes, the automatic variant switch, argument errors and
//! a property test over random small shapes.
//!
//! Tolerances (`|got - want| <= atol + rtol * |want|`):
//! - f32: rtol 1e-5, atol 1e-5. The GPU sums K <= 100 f32 products of magnitude < 1, so its
//!   rounding stays far below 1e-5 of the result; atol covers results near 0 after
//!   cancellation, and the f32 erf of GELU (<= 2e-7 absolute).
//! - f16: inputs (x, W, bias, residual) are rounded to f16 before the reference, so only the
//!   f32 accumulation (as above) and the one rounding of the stored f16 output differ:
//!   2^-11 ~ 4.9e-4 relative. rtol 1e-3 leaves a factor 2; atol 1e-4 covers the f32 part
//!   near 0 (f16 spacing there is finer).

mod common;

use common::Cap;
use common::matmul_case::Case;
use common::require::require_once;

use proptest::prelude::*;
use wgbert::ops::choice::Choices;
use wgbert::ops::matmul::{self, Epilogue, MatmulArgs, MatmulVariant, tiled};
use wgbert::ops::{Activation, DType, Rows};
use wgbert::runtime::PlanBuilder;

const GELU: Activation = Activation::GeluErf;

/// `common::MATMUL_SHAPES` plus an exact tile.
const SHAPES: &[common::MatmulShape] = &[
    common::MATMUL_SHAPES[0],
    common::MATMUL_SHAPES[1],
    common::MATMUL_SHAPES[2],
    common::MATMUL_SHAPES[3],
    common::MATMUL_SHAPES[4],
    common::MatmulShape::new(64, 32, 64),
];

fn tolerance(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F32 => (1e-5, 1e-5),
        DType::F16 => (1e-4, 1e-3),
    }
}

fn variants() -> Vec<MatmulVariant> {
    if common::require(common::Cap::Subgroups, "the subgroup matmul cases") {
        vec![MatmulVariant::Tiled, MatmulVariant::Subgroup]
    } else {
        vec![MatmulVariant::Tiled]
    }
}

/// Runs one case on the GPU (plan built for `cap` rows, run once per entry of `runs`) and
/// checks each run against the reference.
fn check(c: Case, cap: usize, runs: &[usize], seed: u64) {
    check_with(c, cap, runs, seed, None);
}

/// `check`, with the tiled kernel at `tiles` when given (`c.variant` is then ignored).
fn check_with(c: Case, cap: usize, runs: &[usize], seed: u64, tiles: Option<tiled::Config>) {
    let kernel = tiles.map(|cfg| {
        (
            tiled::kernel(c.dtype, c.epilogue, c.bias, cfg),
            tiled::tile(cfg, c.epilogue),
        )
    });
    let what = format!("{c:?} tiles {tiles:?}");
    let none = &Choices::default();
    common::matmul_case::check(&what, none, c, cap, runs, seed, kernel, tolerance(c.dtype));
}

/// Every case of the tiled kernel's configuration tests: each candidate configuration x
/// f32 and f16 x the four epilogue kinds x bias on and off x T = 1, 65 and 300 (ragged tiles
/// of every size; K 24, 100 and 40), with a seed of its own from `seed`.
fn every_tiled_case(mut seed: u64, mut check: impl FnMut(tiled::Config, Case, usize, u64)) {
    let epilogues = [
        Epilogue::None,
        Epilogue::Residual,
        Epilogue::Act(GELU),
        Epilogue::GeGlu(GELU),
    ];
    for config in tiled::CANDIDATES {
        for dtype in common::dtypes() {
            for epilogue in epilogues {
                for bias in [false, true] {
                    for i in [0, 2, 4] {
                        let common::MatmulShape { t, k, n } = common::MATMUL_SHAPES[i];
                        let c = Case {
                            k,
                            n,
                            dtype,
                            variant: None,
                            epilogue,
                            bias,
                        };
                        check(config, c, t, seed);
                        seed += 10;
                    }
                }
            }
        }
    }
}

/// Every candidate tile configuration of the tiled kernel (what `ops::tune` times and may
/// choose) on `every_tiled_case`, each plan run at its full row count and at one row.
#[test]
fn every_tiled_configuration_matches_the_reference() {
    every_tiled_case(7, |config, c, t, seed| {
        check_with(c, t, &[t, 1], seed, Some(config))
    });
}

/// The CPU-adapter build of every candidate configuration (`tiled::direct_kernel`: operands
/// read straight from the buffers, four k per load) on `every_tiled_case` (K a multiple of
/// 4, ragged T and N), each plan run at its full row count and at one row. It runs on any
/// adapter; `record` chooses it on CPU adapters only.
#[test]
fn every_direct_configuration_matches_the_reference() {
    every_tiled_case(9, |config, c, t, seed| {
        let kernel = tiled::direct_kernel(c.dtype, c.epilogue, c.bias, config, c.k as u32)
            .expect("K is a multiple of 4");
        let build = Some((kernel, tiled::tile(config, c.epilogue)));
        let what = format!("{c:?} direct tiles {config:?}");
        let (none, tol) = (&Choices::default(), tolerance(c.dtype));
        common::matmul_case::check(&what, none, c, t, &[t, 1], seed, build, tol);
    });
    // K off a multiple of 4 has no direct build.
    assert!(tiled::direct_kernel(DType::F32, Epilogue::None, false, tiled::DEFAULT, 5).is_none());
}

/// Every shape x dtype x variant for one epilogue, with and without bias.
fn sweep(epilogue: Epilogue, biases: &[bool]) {
    let mut seed = 1;
    for dtype in common::dtypes() {
        for variant in variants() {
            for &bias in biases {
                for &common::MatmulShape { t, k, n } in SHAPES {
                    let c = Case {
                        k,
                        n,
                        dtype,
                        variant: Some(variant),
                        epilogue,
                        bias,
                    };
                    check(c, t, &[t], seed);
                    seed += 10;
                }
            }
        }
    }
}

#[test]
fn plain_product() {
    sweep(Epilogue::None, &[false]);
}

#[test]
fn bias() {
    sweep(Epilogue::None, &[true]);
}

#[test]
fn residual_add() {
    sweep(Epilogue::Residual, &[false, true]);
}

#[test]
fn activation() {
    sweep(Epilogue::Act(GELU), &[false, true]);
}

#[test]
fn geglu() {
    sweep(Epilogue::GeGlu(GELU), &[false, true]);
}

#[test]
fn other_activations() {
    for act in [Activation::GeluTanh, Activation::Silu, Activation::Relu] {
        for variant in variants() {
            for epilogue in [Epilogue::Act(act), Epilogue::GeGlu(act)] {
                let c = Case {
                    k: 37,
                    n: 19,
                    dtype: DType::F32,
                    variant: Some(variant),
                    epilogue,
                    bias: true,
                };
                check(c, 67, &[67], 77);
            }
        }
    }
}

/// One plan, automatic variant: runs with few rows and many rows (either side of
/// SMALL_ROWS), then few again, so each launch fully rewrites its rows.
#[test]
fn automatic_variant_switches_with_the_row_count() {
    for dtype in common::dtypes() {
        for epilogue in [Epilogue::Residual, Epilogue::GeGlu(GELU)] {
            let c = Case {
                k: 40,
                n: 70,
                dtype,
                variant: None,
                epilogue,
                bias: true,
            };
            let small = matmul::SMALL_ROWS as usize;
            check(c, 130, &[3, 130, small, small + 1, 1], 5);
        }
    }
}

#[test]
fn zero_rows_is_a_skipped_launch() {
    let c = Case {
        k: 8,
        n: 8,
        dtype: DType::F32,
        variant: None,
        epilogue: Epilogue::None,
        bias: false,
    };
    check(c, 4, &[0, 4], 9);
}

#[test]
fn bad_arguments_are_typed_errors() {
    let gpu = common::gpu();
    let mut b = PlanBuilder::new(gpu.clone());
    let x = b.input("x", 4 * 8 * 4);
    let w = b.input("w", 16 * 8 * 4);
    let r = b.input("r", 4 * 16 * 4);
    let y = b.output("y", 4 * 16 * 4);
    let tiny = b.input("tiny", 8);
    let ok = MatmulArgs {
        x,
        w,
        bias: None,
        residual: None,
        y,
        rows: Rows::Fixed(4),
        k: 8,
        n: 16,
        dtype: DType::F32,
        epilogue: Epilogue::None,
        variant: Some(MatmulVariant::Tiled),
    };
    let cases = [
        (
            "residual must be set",
            MatmulArgs {
                epilogue: Epilogue::Residual,
                ..ok
            },
        ),
        (
            "unless the epilogue is Residual",
            MatmulArgs {
                residual: Some(r),
                ..ok
            },
        ),
        (
            "weight must be at least",
            MatmulArgs {
                epilogue: Epilogue::GeGlu(GELU),
                ..ok
            },
        ),
        (
            "bias must be at least",
            MatmulArgs {
                bias: Some(tiny),
                ..ok
            },
        ),
        (
            "at most 4",
            MatmulArgs {
                rows: Rows::Fixed(5),
                ..ok
            },
        ),
        ("must be positive", MatmulArgs { k: 0, ..ok }),
    ];
    for (want, args) in cases {
        let e = matmul::record(&mut b, &Choices::default(), "m", &args).unwrap_err();
        assert!(
            matches!(e, wgbert::Error::OpArg { op: "matmul", .. }),
            "{e}"
        );
        assert!(e.to_string().contains(want), "{want}: {e}");
    }
    // The output bound as an input too is refused by the plan.
    let e =
        matmul::record(&mut b, &Choices::default(), "m", &MatmulArgs { x: y, ..ok }).unwrap_err();
    assert!(e.to_string().contains("bound twice"), "{e}");
    matmul::record(&mut b, &Choices::default(), "m", &ok).unwrap();
}

fn epilogue_strategy() -> impl Strategy<Value = Epilogue> {
    prop_oneof![
        Just(Epilogue::None),
        Just(Epilogue::Residual),
        Just(Epilogue::Act(GELU)),
        Just(Epilogue::GeGlu(GELU)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_shapes_match_the_reference(
        t in 1usize..90,
        k in 1usize..70,
        n in 1usize..80,
        epilogue in epilogue_strategy(),
        bias in any::<bool>(),
        f16 in any::<bool>(),
        subgroup in any::<bool>(),
        seed in 0u64..1000,
    ) {
        let f16 = f16 && require_once(Cap::F16, "the f16 cases of random matmul shapes");
        let dtype = if f16 { DType::F16 } else { DType::F32 };
        let subgroup =
            subgroup && require_once(Cap::Subgroups, "the subgroup cases of random matmul shapes");
        let variant = if subgroup {
            MatmulVariant::Subgroup
        } else {
            MatmulVariant::Tiled
        };
        let c = Case { k, n, dtype, variant: Some(variant), epilogue, bias };
        check(c, t, &[t], seed);
    }
}

/// RoPE fused into the Wqkv projection (`matmul::record_rope`): every tiled configuration at
/// head sizes 16, 32 and 64, f32 and f16, against the matmul then RoPE references. A
/// configuration fuses exactly when its tiles hold whole heads and the partner column d/2
/// away is in the same thread (d/2 a multiple of 16); the others get the separate pass.
#[test]
fn rope_in_the_projection_matches_the_reference_for_every_tiled_configuration() {
    for dtype in common::dtypes() {
        let tol = match dtype {
            DType::F32 => (1e-5, 1e-5),
            DType::F16 => (4e-3, 4e-3),
        };
        for head_dim in [16u32, 32, 64] {
            for config in tiled::CANDIDATES {
                let tile = tiled::tile(config, Epilogue::None);
                let kernel = tiled::kernel(dtype, Epilogue::None, true, config);
                let fused = matmul::rope_fusable(&kernel, tile, head_dim);
                let want_fused = tile.1.is_multiple_of(head_dim) && head_dim >= 32;
                assert_eq!(fused, want_fused, "{} d {head_dim}", config.name());
                let what = format!("{dtype:?} d {head_dim} {}", config.name());
                let listing = common::matmul_case::check_rope(
                    &Choices::default(),
                    &what,
                    dtype,
                    (2, head_dim),
                    40,
                    130,
                    &[130, 1],
                    Some((kernel, tile)),
                    tol,
                );
                assert_eq!(listing.contains("ROPE="), fused, "{what}: {listing}");
                assert_eq!(listing.contains("rope/main"), !fused, "{what}: {listing}");
            }
        }
        // The automatic choice with rows known at run time: few rows run the subgroup kernel
        // then the pass, many the tiled kernel (fused at the default 64x64 tiles).
        let what = format!("{dtype:?} automatic");
        let runs = [300, 3, 70];
        let none = &Choices::default();
        let listing =
            common::matmul_case::check_rope(none, &what, dtype, (4, 64), 24, 300, &runs, None, tol);
        assert!(listing.contains("ROPE="), "{listing}");
        if common::require(common::Cap::Subgroups, "RoPE after the subgroup matmul") {
            assert!(listing.contains("rope/main"), "{listing}");
        }
    }
}
