//! The head kernels on the test adapter against the f64 references: pooling (cls / mean,
//! optional L2 normalisation), row gather, and top-k of the softmax over a row of logits.
//!
//! Tolerances (`|gpu - ref| <= atol + rtol * |ref|`):
//! - pooling, f32 output for both storage types: atol 1e-6, rtol 1e-5. The reference takes
//!   the same (f16-rounded) inputs; the GPU error is the f32 sum over <= 300 rows.
//! - gather: exact (a copy).
//! - top-k: indices exact (the selection compares the same f32 values, no arithmetic);
//!   probabilities rtol 1e-5, atol 1e-9: exp in f32 (~1e-7 relative per term) and an f32
//!   sum over up to 50368 terms with online rescaling (~1e-6 relative).

mod common;

use common::{assert_close, rand_vec};
use proptest::prelude::*;
use wgbert::ops::pooling::{self, PoolArgs, PoolMode};
use wgbert::ops::{DType, Rows, gather, topk};
use wgbert::runtime::{PlanBuilder, RunSizes};

fn pool_case(
    lens: &[u32],
    hidden: usize,
    mode: PoolMode,
    normalize: bool,
    dtype: DType,
    seed: u64,
) {
    let gpu = common::gpu();
    let (cu, sizes) = common::packed(lens);
    let (rows, segs) = (sizes.rows as usize, lens.len());
    let mut x = dtype.decode(&dtype.encode(&rand_vec(rows * hidden, seed, 2.0)));
    // The first row of sequence 0 is all zeros: its normalised cls must stay 0, not NaN.
    if rows > 0 && lens[0] > 0 {
        x[..hidden].fill(0.0);
    }
    let mut b = PlanBuilder::new(gpu.clone());
    let xt = b.input("x", (rows.max(1) * hidden) as u64 * dtype.size());
    let cut = b.input("cu_seqlens", (segs as u64 + 1) * 4);
    let out = b.output("pooled", (segs * hidden) as u64 * 4);
    pooling::record(
        &mut b,
        "pool",
        &PoolArgs {
            x: xt,
            cu_seqlens: cut,
            out,
            hidden: hidden as u32,
            mode,
            normalize,
            dtype,
        },
    )
    .unwrap();
    let mut plan = b.build().unwrap();
    plan.write(xt, &dtype.encode(&x)).unwrap();
    plan.write(cut, bytemuck::cast_slice(&cu)).unwrap();
    plan.run(&sizes).unwrap();
    let got: Vec<f32> =
        bytemuck::cast_slice(&plan.read(out, 0, (segs * hidden) as u64 * 4).unwrap()).to_vec();
    let want = pooling::reference(&x, &cu, hidden, mode, normalize);
    let what =
        format!("pool {mode:?} normalize {normalize} lens {lens:?} hidden {hidden} {dtype:?}");
    assert_close(&what, &got, &want, 1e-6, 1e-5);
}

#[test]
fn pooling_matches_reference() {
    let mut seed = 1;
    for dtype in common::dtypes() {
        for hidden in [17, 48, 100, 768] {
            for mode in [PoolMode::Cls, PoolMode::Mean] {
                for normalize in [false, true] {
                    seed += 1;
                    pool_case(&[1, 2, 7, 40], hidden, mode, normalize, dtype, seed);
                    pool_case(&[300], hidden, mode, normalize, dtype, seed + 100);
                    // An empty sequence pools to zeros.
                    pool_case(&[3, 0, 65], hidden, mode, normalize, dtype, seed + 200);
                }
            }
        }
    }
}

fn gather_case(src_rows: usize, index: &[u32], hidden: usize, dtype: DType, rows: Rows) {
    let gpu = common::gpu();
    let x = dtype.decode(&dtype.encode(&rand_vec(src_rows * hidden, 7, 3.0)));
    let n = index.len();
    let mut b = PlanBuilder::new(gpu.clone());
    let xt = b.input("x", (src_rows * hidden) as u64 * dtype.size());
    let it = b.input("index", n as u64 * 4);
    let yt = b.output("y", (n * hidden) as u64 * dtype.size());
    gather::record(&mut b, "gather", xt, it, yt, rows, hidden as u32, dtype).unwrap();
    let mut plan = b.build().unwrap();
    plan.write(xt, &dtype.encode(&x)).unwrap();
    plan.write(it, bytemuck::cast_slice(index)).unwrap();
    plan.run(&RunSizes {
        rows: src_rows as u32,
        selected: n as u32,
        ..Default::default()
    })
    .unwrap();
    let got = dtype.decode(
        &plan
            .read(yt, 0, (n * hidden) as u64 * dtype.size())
            .unwrap(),
    );
    let want = gather::reference(&x, index, hidden);
    assert_close(
        &format!("gather {n} of {src_rows} x {hidden} {dtype:?}"),
        &got,
        &want,
        0.0,
        0.0,
    );
}

#[test]
fn gather_picks_rows_and_zeroes_bad_indices() {
    for dtype in common::dtypes() {
        for hidden in [17, 48, 100, 768] {
            gather_case(3, &[2], hidden, dtype, Rows::Selected);
            // Repeats, reverse order, first/last row, one index past the source (zeros).
            gather_case(
                65,
                &[64, 0, 0, 31, 65, 7, 1 << 30],
                hidden,
                dtype,
                Rows::Selected,
            );
            let all: Vec<u32> = (0..129).rev().collect();
            gather_case(300, &all, hidden, dtype, Rows::Fixed(129));
        }
    }
}

/// Runs top-k over `rows` rows of `vocab` logits; returns the decoded GPU result.
fn run_topk(logits: &[f32], rows: usize, vocab: usize, k: usize) -> Vec<Vec<(u32, f32)>> {
    let gpu = common::gpu();
    let mut b = PlanBuilder::new(gpu.clone());
    let lt = b.input("logits", (rows * vocab) as u64 * 4);
    let out = b.output("top", topk::out_bytes(rows as u32, k as u32));
    topk::record(
        &mut b,
        "topk",
        lt,
        out,
        Rows::Selected,
        vocab as u32,
        k as u32,
    )
    .unwrap();
    let mut plan = b.build().unwrap();
    plan.write(lt, bytemuck::cast_slice(logits)).unwrap();
    plan.run(&RunSizes {
        selected: rows as u32,
        ..Default::default()
    })
    .unwrap();
    let bytes = plan
        .read(out, 0, topk::out_bytes(rows as u32, k as u32))
        .unwrap();
    topk::decode(&bytes, rows, k)
}

fn check_topk(logits: &[f32], rows: usize, vocab: usize, k: usize, what: &str) {
    let got = run_topk(logits, rows, vocab, k);
    let want = topk::reference(logits, vocab, k);
    assert_eq!(got.len(), rows, "{what}: rows");
    assert_eq!(want.len(), rows, "{what}: reference rows");
    for r in 0..rows {
        let gi: Vec<u32> = got[r].iter().map(|p| p.0).collect();
        let wi: Vec<u32> = want[r].iter().map(|p| p.0).collect();
        assert_eq!(gi, wi, "{what}: row {r} indices (vocab {vocab}, k {k})");
        let gp: Vec<f32> = got[r].iter().map(|p| p.1).collect();
        let wp: Vec<f64> = want[r].iter().map(|p| p.1).collect();
        assert_close(
            &format!("{what}: row {r} probabilities"),
            &gp,
            &wp,
            1e-9,
            1e-5,
        );
    }
}

#[test]
fn topk_small_vocabularies_and_k_past_the_vocabulary() {
    for (rows, vocab, k) in [
        (1, 1, 1),
        (3, 5, 8),
        (2, 17, 5),
        (65, 100, 10),
        (3, 1000, 64),
        (1, 64, 64),
    ] {
        let logits = rand_vec(rows * vocab, (vocab * 31 + k) as u64, 8.0);
        check_topk(&logits, rows, vocab, k, "random");
    }
}

#[test]
fn topk_ties_go_to_the_lower_index() {
    let (rows, vocab) = (4, 333);
    // Few distinct values: long runs of equal logits around every rank boundary.
    let mut logits: Vec<f32> = rand_vec(rows * vocab, 3, 3.0)
        .iter()
        .map(|v| v.round())
        .collect();
    // Row 2 all equal; row 3 mixes -0.0 and +0.0 at the top.
    logits[2 * vocab..3 * vocab].fill(1.5);
    for (i, v) in logits[3 * vocab..].iter_mut().enumerate() {
        *v = if i % 3 == 0 {
            -0.0
        } else if i % 3 == 1 {
            0.0
        } else {
            -1.0
        };
    }
    for k in [1, 7, 64] {
        check_topk(&logits, rows, vocab, k, "ties");
    }
}

#[test]
fn topk_full_modernbert_vocabulary() {
    let (rows, vocab) = (3, 50368);
    let mut logits = rand_vec(rows * vocab, 11, 12.0);
    // Row 1: a quantised row (ties everywhere); row 2: a clear winner at the last index.
    for v in &mut logits[vocab..2 * vocab] {
        *v = (*v * 4.0).round() / 4.0;
    }
    logits[3 * vocab - 1] = 40.0;
    for k in [10, 64] {
        check_topk(&logits, rows, vocab, k, "vocab 50368");
    }
}

#[test]
fn topk_rejects_bad_k() {
    let gpu = common::gpu();
    let mut b = PlanBuilder::new(gpu.clone());
    let lt = b.input("logits", 400);
    let out = b.output("top", 8 * 65);
    for k in [0, 65] {
        let e = topk::record(&mut b, "topk", lt, out, Rows::Selected, 100, k).unwrap_err();
        assert!(
            matches!(
                e,
                wgbert::Error::OpArg {
                    op: "topk",
                    arg: "k",
                    ..
                }
            ),
            "{e}"
        );
    }
    let e = topk::record(&mut b, "topk", lt, out, Rows::Fixed(2), 100, 5).unwrap_err();
    assert!(
        matches!(
            e,
            wgbert::Error::OpArg {
                op: "topk",
                arg: "rows",
                ..
            }
        ),
        "{e}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn topk_proptest(
        rows in 1usize..4,
        vocab in 1usize..3000,
        k in 1usize..=64,
        levels in prop_oneof![Just(0u32), 1u32..16],
        seed in 0u64..1_000_000,
    ) {
        // levels 0: continuous logits; otherwise quantised to `levels` steps (many ties).
        let logits: Vec<f32> = rand_vec(rows * vocab, seed, 6.0)
            .into_iter()
            .map(|v| if levels == 0 { v } else { (v * levels as f32).round() / levels as f32 })
            .collect();
        check_topk(&logits, rows, vocab, k, "proptest");
    }
}

#[test]
fn gather_spreads_rows_past_one_dispatch_dimension() {
    // More rows than max_workgroups_per_dim (65535 on most adapters): the grid spills into y.
    let n = common::gpu().caps().max_workgroups_per_dim as usize + 100;
    let index: Vec<u32> = (0..n as u32).rev().collect();
    gather_case(n, &index, 1, DType::F32, Rows::Selected);
}
