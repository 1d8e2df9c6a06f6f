//! RoPE and varlen attention on a real adapter (lavapipe in CI) against the f64 references.
//!
//! Tolerances (`|gpu - ref| <= atol + rtol * |ref|`):
//! - RoPE f32: atol 2e-6, rtol 1e-5 on values in [-1, 1]. The reference uses HF's f32 angle
//!   `f32(p) * inv_freq` and f64 sin/cos; the kernel reproduces that angle bit for bit and
//!   evaluates sin/cos to ~2e-7, so even positions ~8200 pass. (Against the *exact* angle in
//!   f64 the f32 angle itself is off by up to half an ulp of 8192, 2.4e-4 rad: that is the
//!   reference's rounding, which the kernel deliberately copies.)
//! - RoPE f16: rtol 5e-4 (half an f16 ulp, 2^-11 = 4.9e-4, from rounding the output), atol 2e-6.
//! - Attention f32: atol 1e-5, rtol 1e-5 (lavapipe's worst seen: 1.1e-6 absolute); scores are
//!   f32 dot products of <= 64 terms and exp2 is a few ulp, outputs are convex combinations
//!   of v in [-2, 2].
//! - Attention f16: rtol 5e-4 (output rounding to f16, half an ulp = 4.9e-4) + atol 1e-5 (the
//!   f32 arithmetic); inputs are the same f16-rounded values for the GPU and the reference.

mod common;

use proptest::prelude::*;
use wgbert::ops::attention::{self, AttentionArgs};
use wgbert::ops::choice::Choices;
use wgbert::ops::{DType, Rows, rope};
use wgbert::runtime::{PlanBuilder, RunSizes};

fn positions_of(lens: &[u32]) -> Vec<u32> {
    lens.iter().flat_map(|&l| 0..l).collect()
}

struct Case<'a> {
    lens: &'a [u32],
    n_heads: u32,
    head_dim: u32,
    window: Option<u32>,
    dtype: DType,
    seed: u64,
    /// Keys per sequence (`AttentionArgs::key_lens`); `None`: every row.
    keys: Option<&'a [u32]>,
}

/// Runs attention over packed random q/k/v (scale 2 so the softmax is far from uniform), with
/// the automatic choice of kernel.
fn attention_case(c: &Case) -> (Vec<f32>, Vec<f64>) {
    attention_case_with(c, None)
}

/// `attention_case` with the portable kernel at `tiles` when given.
fn attention_case_with(c: &Case, tiles: Option<attention::Tiles>) -> (Vec<f32>, Vec<f64>) {
    let kernel = tiles.map(|t| attention::kernel(common::gpu().caps(), c.dtype, c.head_dim, t));
    attention_case_kernel(c, kernel)
}

/// `attention_case` with `kernel` when given.
fn attention_case_kernel(
    c: &Case,
    kernel: Option<wgbert::runtime::Kernel>,
) -> (Vec<f32>, Vec<f64>) {
    let case = attention::PackedCase {
        lens: c.lens,
        key_lens: c.keys,
        n_heads: c.n_heads,
        head_dim: c.head_dim,
        window: c.window,
        dtype: c.dtype,
    };
    let h = (c.n_heads * c.head_dim) as usize;
    let qkv = common::stored(c.dtype, &common::rand_vec(case.rows() * 3 * h, c.seed, 2.0));
    let none = &Choices::default();
    let got = attention::run_packed(&common::gpu(), none, &case, &qkv, None, kernel).unwrap();
    let (_, cu) = RunSizes::packed(c.lens);
    let want = attention::reference_keys(&qkv, &cu, c.keys, c.n_heads, c.head_dim, c.window);
    (got, want)
}

fn tolerance(c: &Case) -> (f64, f64) {
    match c.dtype {
        DType::F32 => (1e-5, 1e-5),
        // The portable kernel: no tensor-core self-check ran for these choices (the
        // tensor-core kernel's tolerances are in tests/attention_coop.rs).
        DType::F16 => (1e-5, 5e-4),
    }
}

fn check_attention(c: &Case) {
    let (got, want) = attention_case(c);
    let (atol, rtol) = tolerance(c);
    let what = format!(
        "attention {:?} lens {:?} keys {:?} heads {} d {} window {:?}",
        c.dtype, c.lens, c.keys, c.n_heads, c.head_dim, c.window
    );
    common::assert_close(&what, &got, &want, atol, rtol);
}

#[test]
fn attention_matches_reference_across_head_dims_windows_and_lengths() {
    let lens = [1u32, 5, 17, 40, 130];
    for dtype in common::dtypes() {
        for head_dim in attention::HEAD_DIMS {
            for window in [None, Some(8), Some(16), Some(64)] {
                check_attention(&Case {
                    lens: &lens,
                    n_heads: if head_dim == 64 { 2 } else { 3 },
                    head_dim,
                    window,
                    dtype,
                    seed: head_dim as u64 + window.unwrap_or(999) as u64,
                    keys: None,
                });
            }
        }
    }
}

/// Every candidate tile configuration of the portable kernel (what `bench --kernels --sweep`
/// times) that fits the adapter: ragged sequences around every tile size, global, a band
/// narrower than a key tile and ModernBERT's 64, key limits, f32 and f16, every head size.
#[test]
fn every_tile_candidate_matches_the_reference() {
    let gpu = common::gpu();
    let lens = [1u32, 31, 33, 65, 130];
    let keys = [1u32, 20, 33, 64, 100];
    let mut checked = 0;
    for head_dim in attention::HEAD_DIMS {
        for tiles in attention::fitting(head_dim, gpu.caps()) {
            for dtype in common::dtypes() {
                for (window, limited) in [(None, false), (Some(8), true), (Some(64), false)] {
                    let c = Case {
                        lens: &lens,
                        n_heads: 2,
                        head_dim,
                        window,
                        dtype,
                        seed: u64::from(tiles.br + tiles.bc + head_dim),
                        keys: limited.then_some(&keys[..]),
                    };
                    let (got, want) = attention_case_with(&c, Some(tiles));
                    let (atol, rtol) = match dtype {
                        DType::F32 => (1e-5, 1e-5),
                        DType::F16 => (1e-5, 5e-4),
                    };
                    let what = format!(
                        "tiles {} {dtype:?} d {head_dim} window {window:?} keys {limited}",
                        tiles.name()
                    );
                    common::assert_close(&what, &got, &want, atol, rtol);
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 0, "no candidate fits the adapter");
}

/// The lanes of a query row (two at head size 32, four at 64) sum their partial scores
/// through workgroup memory where subgroups are too narrow for them or missing: that build
/// against the reference at every head size with more than one lane, ragged sequences,
/// bands and key limits, f32 and f16.
#[test]
fn row_sums_through_workgroup_memory_match_the_reference() {
    use wgbert::ops::rownorm::Reduce;
    let gpu = common::gpu();
    let lens = [1u32, 31, 33, 130];
    let keys = [1u32, 20, 33, 100];
    for head_dim in [32u32, 64] {
        assert!(attention::lanes(head_dim) > 1);
        let tiles = attention::Tiles::default_for(head_dim, gpu.caps());
        for dtype in common::dtypes() {
            for (window, limited) in [(None, false), (Some(8), true)] {
                let c = Case {
                    lens: &lens,
                    n_heads: 2,
                    head_dim,
                    window,
                    dtype,
                    seed: 7 + u64::from(head_dim),
                    keys: limited.then_some(&keys[..]),
                };
                let kernel = attention::kernel_with(Reduce::Workgroup, dtype, head_dim, tiles);
                assert!(kernel.name().contains("SHARED_SUMS=1"), "{}", kernel.name());
                let (got, want) = attention_case_kernel(&c, Some(kernel));
                let (atol, rtol) = tolerance(&c);
                let what = format!("workgroup sums {dtype:?} d {head_dim} window {window:?}");
                common::assert_close(&what, &got, &want, atol, rtol);
            }
        }
    }
}

#[test]
fn key_limited_sequences_attend_only_to_their_leading_rows() {
    // PyLate's unattended query expansion: every row is a query, only the first keys[s] rows
    // of sequence s are keys. Key counts of 1, a ragged 33 of 40 (inside one key tile), 100
    // of 130 (across tiles), a full sequence, and more keys than rows (clamped to the rows).
    let lens = [5u32, 40, 130, 17, 3];
    let keys = [1u32, 33, 100, 17, 9];
    for dtype in common::dtypes() {
        for head_dim in attention::HEAD_DIMS {
            for window in [None, Some(16)] {
                check_attention(&Case {
                    lens: &lens,
                    n_heads: 2,
                    head_dim,
                    window,
                    dtype,
                    seed: 77 + head_dim as u64,
                    keys: Some(&keys),
                });
            }
        }
    }
    // With a band, queries far past the last key have none in reach: they give zeros.
    let (got, want) = attention_case(&Case {
        lens: &[200],
        n_heads: 1,
        head_dim: 16,
        window: Some(8),
        dtype: DType::F32,
        seed: 5,
        keys: Some(&[20]),
    });
    assert!(want[150 * 16..151 * 16].iter().all(|&x| x == 0.0));
    common::assert_close("band without keys", &got, &want, 1e-5, 1e-5);
}

#[test]
fn modernbert_local_window_on_sequences_longer_than_the_band() {
    // w = local_attention / 2 = 64: only sequences over 129 tokens see the band.
    for dtype in common::dtypes() {
        check_attention(&Case {
            lens: &[300, 3, 129, 65, 200],
            n_heads: 2,
            head_dim: 64,
            window: Some(64),
            dtype,
            seed: 7,
            keys: None,
        });
    }
}

#[test]
fn a_single_token_and_a_zero_window() {
    for dtype in common::dtypes() {
        for window in [None, Some(0), Some(64)] {
            // A lone token attends to itself: the output is its v.
            check_attention(&Case {
                lens: &[1],
                n_heads: 1,
                head_dim: 32,
                window,
                dtype,
                seed: 3,
                keys: None,
            });
        }
        // An empty sequence between two others contributes nothing and disturbs nothing.
        check_attention(&Case {
            lens: &[3, 0, 5],
            n_heads: 2,
            head_dim: 16,
            window: None,
            dtype,
            seed: 5,
            keys: None,
        });
        check_attention(&Case {
            lens: &[4, 70],
            n_heads: 1,
            head_dim: 16,
            window: Some(0),
            dtype,
            seed: 4,
            keys: None,
        });
    }
}

#[test]
fn a_long_banded_sequence_past_8192_tokens() {
    // Banding keeps this cheap on lavapipe: each query tile visits (64 + 2 * 8) keys.
    check_attention(&Case {
        lens: &[8300, 2],
        n_heads: 1,
        head_dim: 16,
        window: Some(8),
        dtype: DType::F32,
        seed: 11,
        keys: None,
    });
}

#[test]
fn a_global_sequence_of_several_tiles() {
    check_attention(&Case {
        lens: &[700],
        n_heads: 1,
        head_dim: 16,
        window: None,
        dtype: DType::F32,
        seed: 12,
        keys: None,
    });
}

#[test]
fn bad_attention_arguments_are_typed_errors() {
    let gpu = common::gpu();
    let mut b = PlanBuilder::new(gpu.clone());
    let qkv = b.input("qkv", 10 * 3 * 64 * 4);
    let cu = b.input("cu", 8);
    // Smaller than the 10 rows qkv holds.
    let out = b.output("out", 9 * 64 * 4);
    let mut args = AttentionArgs {
        qkv,
        cu_seqlens: cu,
        key_lens: None,
        out,
        n_heads: 1,
        head_dim: 48,
        window: None,
        dtype: DType::F32,
        variant: None,
    };
    let e = attention::record(&mut b, &Choices::default(), "a", &args).unwrap_err();
    assert!(
        matches!(
            e,
            wgbert::Error::OpArg {
                arg: "head_dim",
                ..
            }
        ),
        "{e}"
    );
    args.head_dim = 64;
    args.n_heads = 0;
    assert!(attention::record(&mut b, &Choices::default(), "a", &args).is_err());
    args.n_heads = 1;
    let e = attention::record(&mut b, &Choices::default(), "a", &args).unwrap_err();
    assert!(matches!(e, wgbert::Error::OpArg { arg: "out", .. }), "{e}");
}

#[test]
fn corrupt_offsets_are_clamped_not_looped_over() {
    // Offsets past the batch's rows and a decreasing pair: the step must finish, finite.
    let gpu = common::gpu();
    let (t, h) = (5u64, 16u64);
    let cu = [0u32, 5, 2, 4_000_000_000];
    let mut b = PlanBuilder::new(gpu.clone());
    let qkv = b.input("qkv", t * 3 * h * 4);
    let cu_t = b.input("cu", 16);
    let out = b.output("out", t * h * 4);
    let args = AttentionArgs {
        qkv,
        cu_seqlens: cu_t,
        key_lens: None,
        out,
        n_heads: 1,
        head_dim: 16,
        window: None,
        dtype: DType::F32,
        variant: None,
    };
    attention::record(&mut b, &Choices::default(), "a", &args).unwrap();
    let mut plan = b.build().unwrap();
    plan.write(
        qkv,
        bytemuck::cast_slice(&common::rand_vec((t * 3 * h) as usize, 1, 1.0)),
    )
    .unwrap();
    plan.write(cu_t, bytemuck::cast_slice(&cu)).unwrap();
    plan.run(&RunSizes {
        rows: t as u32,
        segments: 3,
        max_segment: 5,
        selected: 0,
    })
    .unwrap();
    let got = DType::F32.decode(&plan.read(out, 0, t * h * 4).unwrap());
    assert!(got.iter().all(|v| v.is_finite()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn attention_random_shapes(
        lens in proptest::collection::vec(1u32..150, 1..4),
        window in proptest::option::of(0u32..40),
        dim_index in 0usize..3,
        n_heads in 1u32..3,
        seed in 0u64..1000,
    ) {
        check_attention(&Case {
            lens: &lens,
            n_heads,
            head_dim: attention::HEAD_DIMS[dim_index],
            window,
            dtype: DType::F32,
            seed,
            keys: None,
        });
    }
}

/// Records RoPE over every token row (`Rows::Tokens`) of `qkv`, at (heads, head_dim, theta).
fn record_rope(
    b: &mut PlanBuilder,
    qkv: wgbert::runtime::TensorId,
    positions: wgbert::runtime::TensorId,
    (n_heads, head_dim, theta): (u32, u32, f32),
    dtype: DType,
) {
    let rows = Rows::Tokens;
    rope::record(
        b, "rope", qkv, positions, rows, n_heads, head_dim, theta, dtype,
    )
    .unwrap();
}

/// Runs RoPE in place on an external qkv buffer and reads it back.
fn rope_case(
    lens: &[u32],
    n_heads: u32,
    head_dim: u32,
    theta: f32,
    dtype: DType,
) -> (Vec<f32>, Vec<f64>) {
    let gpu = common::gpu();
    let (sizes, _) = RunSizes::packed(lens);
    let positions = positions_of(lens);
    let t = positions.len() as u64;
    let h = (n_heads * head_dim) as u64;
    let es = dtype.size();
    let x = common::stored(dtype, &common::rand_vec((t * 3 * h) as usize, 5, 1.0));
    // One spare row: rows past RunSizes::rows must not move.
    let mut bytes = dtype.encode(&x);
    bytes.resize(((t + 1) * 3 * h * es) as usize, 0);
    let buf = gpu.upload("qkv", &bytes).unwrap();
    let mut b = PlanBuilder::new(gpu.clone());
    let qkv_t = b.external("qkv", &buf);
    let pos_t = b.input("positions", (t + 1) * 4);
    record_rope(&mut b, qkv_t, pos_t, (n_heads, head_dim, theta), dtype);
    let mut plan = b.build().unwrap();
    plan.write(pos_t, bytemuck::cast_slice(&positions)).unwrap();
    plan.run(&sizes).unwrap();
    let all = gpu.read("qkv", &buf, 0, (t + 1) * 3 * h * es).unwrap();
    let got = dtype.decode(&all);
    let mut want = rope::reference(&x, &positions, n_heads, head_dim, theta);
    want.extend(std::iter::repeat_n(0.0, (3 * h) as usize));
    (got, want)
}

#[test]
fn rope_matches_reference_with_positions_restarting_per_sequence() {
    for dtype in common::dtypes() {
        let (atol, rtol) = match dtype {
            DType::F32 => (2e-6, 1e-5),
            DType::F16 => (2e-6, 5e-4),
        };
        for (theta, head_dim, n_heads) in [(10000.0, 64, 2), (160000.0, 64, 1), (10000.0, 16, 3)] {
            let lens = [1u32, 3, 65, 129];
            let (got, want) = rope_case(&lens, n_heads, head_dim, theta, dtype);
            let what = format!("rope {dtype:?} theta {theta} d {head_dim}");
            common::assert_close(&what, &got, &want, atol, rtol);
        }
    }
}

#[test]
fn rope_keeps_the_reference_angle_at_long_positions() {
    // Positions 0..8205: phi reaches 8204 rad at c = 0, where WGSL's own sin/cos may err by
    // ~5e-4; the kernel's reduction keeps the f32 tolerance.
    for dtype in common::dtypes() {
        let (atol, rtol) = match dtype {
            DType::F32 => (2e-6, 1e-5),
            DType::F16 => (2e-6, 5e-4),
        };
        for theta in [10000.0, 160000.0] {
            let (got, want) = rope_case(&[8205, 7], 1, 16, theta, dtype);
            let what = format!("long rope {dtype:?} theta {theta}");
            common::assert_close(&what, &got, &want, atol, rtol);
        }
    }
}

#[test]
fn rope_then_attention_in_one_plan() {
    // The ModernBERT order: rotate in place, then attend; checked against both references.
    let gpu = common::gpu();
    let lens = [3u32, 140, 20];
    let (n_heads, head_dim, window, theta) = (2u32, 64u32, Some(64), 10000.0f32);
    let (sizes, cu) = RunSizes::packed(&lens);
    let positions = positions_of(&lens);
    let t = positions.len() as u64;
    let h = (n_heads * head_dim) as u64;
    let x = common::rand_vec((t * 3 * h) as usize, 21, 2.0);
    let buf = gpu.upload("qkv", bytemuck::cast_slice(&x)).unwrap();
    let mut b = PlanBuilder::new(gpu.clone());
    let qkv_t = b.external("qkv", &buf);
    let pos_t = b.input("positions", t * 4);
    let cu_t = b.input("cu", cu.len() as u64 * 4);
    let out_t = b.output("out", t * h * 4);
    let dtype = DType::F32;
    record_rope(&mut b, qkv_t, pos_t, (n_heads, head_dim, theta), dtype);
    let args = AttentionArgs {
        qkv: qkv_t,
        cu_seqlens: cu_t,
        key_lens: None,
        out: out_t,
        n_heads,
        head_dim,
        window,
        dtype,
        variant: None,
    };
    attention::record(&mut b, &Choices::default(), "attention", &args).unwrap();
    let mut plan = b.build().unwrap();
    plan.write(pos_t, bytemuck::cast_slice(&positions)).unwrap();
    plan.write(cu_t, bytemuck::cast_slice(&cu)).unwrap();
    plan.run(&sizes).unwrap();
    let got = dtype.decode(&plan.read(out_t, 0, t * h * 4).unwrap());
    let rotated: Vec<f32> = rope::reference(&x, &positions, n_heads, head_dim, theta)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let want = attention::reference(&rotated, &cu, n_heads, head_dim, window);
    common::assert_close("rope + attention", &got, &want, 2e-5, 1e-5);
}

#[test]
fn bad_rope_arguments_are_op_errors() {
    let gpu = common::gpu();
    let mut b = PlanBuilder::new(gpu.clone());
    let qkv = b.input("qkv", 3 * 64 * 4);
    let pos = b.input("pos", 4);
    for (heads, dim, theta) in [(1, 63, 1e4), (1, 128, 1e4), (0, 64, 1e4), (1, 64, -1.0)] {
        let e = rope::record(
            &mut b,
            "rope",
            qkv,
            pos,
            Rows::Tokens,
            heads,
            dim,
            theta,
            DType::F32,
        )
        .unwrap_err();
        assert!(matches!(e, wgbert::Error::OpArg { op: "rope", .. }), "{e}");
    }
}

/// A score scale (the square of a scaled RoPE's attention factor) gives what the reference
/// gives with the queries multiplied by it: global and windowed, ragged sequences, both
/// head sizes of the family's models, f32 and f16.
#[test]
fn scaled_scores_match_the_reference_with_scaled_queries() {
    let gpu = common::gpu();
    let lens = [1u32, 7, 70, 33];
    let (sizes, cu) = RunSizes::packed(&lens);
    let t = sizes.rows as usize;
    for dtype in common::dtypes() {
        for (n_heads, head_dim, window, s) in [(2, 64, None, 1.3f32), (3, 32, Some(8), 0.6)] {
            let h = (n_heads * head_dim) as usize;
            let qkv = common::stored(dtype, &common::rand_vec(t * 3 * h, 77, 2.0));
            let es = dtype.size();
            let mut b = PlanBuilder::new(gpu.clone());
            let args = AttentionArgs {
                qkv: b.input("qkv", (t * 3 * h) as u64 * es),
                cu_seqlens: b.input("cu_seqlens", cu.len() as u64 * 4),
                key_lens: None,
                out: b.output("out", (t * h) as u64 * es),
                n_heads,
                head_dim,
                window,
                dtype,
                variant: None,
            };
            attention::record_scaled(&mut b, &Choices::default(), "a", &args, s).unwrap();
            let mut plan = b.build().unwrap();
            plan.write(args.qkv, &dtype.encode(&qkv)).unwrap();
            plan.write(args.cu_seqlens, bytemuck::cast_slice(&cu))
                .unwrap();
            plan.run(&sizes).unwrap();
            let got = dtype.decode(&plan.read(args.out, 0, (t * h) as u64 * es).unwrap());
            let mut scaled = qkv.clone();
            for row in scaled.chunks_mut(3 * h) {
                row[..h].iter_mut().for_each(|q| *q *= s);
            }
            let want = attention::reference(&scaled, &cu, n_heads, head_dim, window);
            let (atol, rtol) = match dtype {
                DType::F32 => (1e-5, 1e-5),
                DType::F16 => (1e-5, 5e-4),
            };
            let what = format!("scaled attention {dtype:?} d {head_dim} scale {s}");
            common::assert_close(&what, &got, &want, atol, rtol);
        }
    }
    let mut b = PlanBuilder::new(gpu.clone());
    let args = AttentionArgs {
        qkv: b.input("qkv", 3 * 64 * 4),
        cu_seqlens: b.input("cu_seqlens", 8),
        key_lens: None,
        out: b.output("out", 64 * 4),
        n_heads: 1,
        head_dim: 64,
        window: None,
        dtype: DType::F32,
        variant: None,
    };
    for bad in [0.0, -1.0, f32::NAN] {
        let e = attention::record_scaled(&mut b, &Choices::default(), "a", &args, bad);
        assert!(e.is_err(), "score scale {bad} accepted");
    }
}

/// RoPE with a frequency table (a scaled RoPE's: zeros included, which do not rotate)
/// against the reference with the same table.
#[test]
fn rope_with_a_frequency_table_matches_the_reference() {
    let gpu = common::gpu();
    let lens = [1u32, 5, 130];
    let (sizes, _) = RunSizes::packed(&lens);
    let positions = positions_of(&lens);
    let t = positions.len() as u64;
    let (n_heads, head_dim) = (2u32, 16u32);
    let h = (n_heads * head_dim) as u64;
    let table = [1.0, 0.4, 0.07, 3e-3, 1e-4, 2.5e-6, 0.0, 0.0];
    for dtype in common::dtypes() {
        let es = dtype.size();
        let x = common::stored(dtype, &common::rand_vec((t * 3 * h) as usize, 9, 1.0));
        let buf = gpu.upload("qkv", &dtype.encode(&x)).unwrap();
        let mut b = PlanBuilder::new(gpu.clone());
        let qkv = b.external("qkv", &buf);
        let pos = b.input("positions", t * 4);
        let freq = rope::Frequencies::table(&table);
        let heads = (n_heads, head_dim);
        rope::record_freq(&mut b, "rope", qkv, pos, Rows::Tokens, heads, freq, dtype).unwrap();
        let mut plan = b.build().unwrap();
        plan.write(pos, bytemuck::cast_slice(&positions)).unwrap();
        plan.run(&sizes).unwrap();
        let got = dtype.decode(&gpu.read("qkv", &buf, 0, t * 3 * h * es).unwrap());
        let want = rope::reference_freq(&x, &positions, n_heads, head_dim, &table);
        let rtol = if dtype == DType::F32 { 1e-5 } else { 5e-4 };
        common::assert_close(&format!("rope table {dtype:?}"), &got, &want, 2e-6, rtol);
        let mut b = PlanBuilder::new(gpu.clone());
        let (qkv, pos) = (b.input("qkv", t * 3 * h * es), b.input("positions", t * 4));
        let short = rope::Frequencies::table(&table[..4]);
        let e = rope::record_freq(&mut b, "r", qkv, pos, Rows::Tokens, heads, short, dtype);
        assert!(e.is_err(), "4 frequencies for heads of 16");
    }
}
