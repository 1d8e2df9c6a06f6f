//! LayerNorm (plain and fused with the residual add) and the embedding gather + LayerNorm on
//! the test adapter against the f64 references, over awkward shapes, both storage types and
//! both row reductions.
//!
//! Tolerances (`|gpu - ref| <= atol + rtol * |ref|`):
//! - f32: atol 1e-5, rtol 1e-5. Statistics are f32 sums of <= 4096 values (tree/subgroup
//!   order, error ~ log2(n) ulp); outputs are O(|w| * few). The atol of a row is scaled by
//!   its conditioning max(1, |mean| / std) (see `assert_ln_close`).
//! - f16: atol 1e-4, rtol 1e-3. The reference takes the same f16-rounded inputs (and, for
//!   the fused form, the same f16-rounded sum h), so the gap is the final rounding of y to
//!   f16: half an ulp, 2^-11 ~ 4.9e-4 relative; 1e-3 leaves a factor 2 for the f32 math.
//! - the fused sum h: f32 rtol 1e-7 (one f32 rounding), f16 rtol 1e-3 (one f16 rounding).

mod common;

use common::require::require_once;
use common::{Cap, assert_close, norm_weights, rand_vec, stored};
use proptest::prelude::*;
use wgbert::ops::embedding::{self, EmbeddingArgs};
use wgbert::ops::layernorm::{self, LayerNormArgs, Reduce};
use wgbert::ops::{DType, Rows};
use wgbert::runtime::{PlanBuilder, RunSizes};

const EPS: f32 = 1e-5;

fn tol(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F32 => (1e-5, 1e-5),
        DType::F16 => (1e-4, 1e-3),
    }
}

/// `assert_close` with the absolute tolerance of each row scaled by its conditioning
/// `max(1, |mean| / std)`: an f32 mean carries an error of ~ulp(|mean|), which
/// `(h - mean) / std` magnifies by |mean| / std (a row of 3 values near 3 can have std 0.01).
#[allow(clippy::too_many_arguments)]
fn assert_ln_close(
    what: &str,
    got: &[f32],
    want: &[f64],
    input: &[f32],
    hidden: usize,
    atol: f64,
    rtol: f64,
) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (r, row) in input.chunks_exact(hidden).enumerate() {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / hidden as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / hidden as f64;
        let kappa = (mean.abs() / (var + EPS as f64).sqrt()).max(1.0);
        let at = r * hidden..(r + 1) * hidden;
        for c in at.clone() {
            let (g, w) = (got[c] as f64, want[c]);
            let ok = (g - w).abs() <= atol * kappa + rtol * w.abs();
            assert!(
                ok,
                "{what}: row {r} col {} got {g} want {w} (atol {atol} x conditioning {kappa:.1}, rtol {rtol})",
                c - at.start
            );
        }
    }
}

/// The rows the embedding kernel normalises (zeros for out-of-range ids).
fn want_input(ids: &[u32], table: &[f32], hidden: usize, vocab: usize) -> Vec<f32> {
    ids.iter()
        .flat_map(|&i| {
            let i = i as usize;
            if i < vocab {
                table[i * hidden..(i + 1) * hidden].to_vec()
            } else {
                vec![0.0; hidden]
            }
        })
        .collect()
}

fn reductions() -> Vec<Reduce> {
    let mut r = vec![Reduce::Workgroup];
    if common::require(common::Cap::Subgroups, "the subgroup reductions") {
        r.push(Reduce::Subgroup);
    }
    r
}

struct LnCase {
    rows: usize,
    hidden: usize,
    residual: bool,
    bias: bool,
    dtype: DType,
    reduce: Reduce,
    seed: u64,
}

/// Runs one LayerNorm step on `rows` rows of a plan built for `rows + spare`; returns
/// (h, y) from the GPU decoded to f32 (h empty without residual).
fn run_ln(c: &LnCase, x: &[f32], r: &[f32], w: &[f32], b: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let gpu = common::gpu();
    let (dt, h) = (c.dtype, c.hidden as u64);
    let cap = (c.rows as u64 + 2) * h * dt.size();
    let mut pb = PlanBuilder::new(gpu.clone());
    let xt = pb.input("x", cap);
    let rt = pb.input("r", cap);
    let wt = pb.input("w", h * dt.size());
    let bt = pb.input("b", h * dt.size());
    let ht = pb.output("h", cap);
    let yt = pb.output("y", cap);
    let args = LayerNormArgs {
        x: xt,
        residual: c.residual.then_some(rt),
        sum_out: c.residual.then_some(ht),
        weight: wt,
        bias: c.bias.then_some(bt),
        y: yt,
        rows: Rows::Tokens,
        hidden: c.hidden as u32,
        eps: EPS,
        dtype: dt,
    };
    layernorm::record_with(&mut pb, "ln", &args, c.reduce).unwrap();
    let mut plan = pb.build().unwrap();
    plan.write(xt, &dt.encode(x)).unwrap();
    plan.write(rt, &dt.encode(r)).unwrap();
    plan.write(wt, &dt.encode(w)).unwrap();
    plan.write(bt, &dt.encode(b)).unwrap();
    plan.run(&RunSizes {
        rows: c.rows as u32,
        ..Default::default()
    })
    .unwrap();
    let n = c.rows as u64 * h * dt.size();
    let y = dt.decode(&plan.read(yt, 0, n).unwrap());
    let hs = if c.residual {
        dt.decode(&plan.read(ht, 0, n).unwrap())
    } else {
        Vec::new()
    };
    (hs, y)
}

fn check_ln(c: &LnCase) {
    let (rows, hidden, dt) = (c.rows, c.hidden, c.dtype);
    let n = rows * hidden;
    // An offset mean and uneven scale: the centred two-pass variance must hold up.
    let x: Vec<f32> = rand_vec(n, c.seed, 2.0).iter().map(|v| v + 3.0).collect();
    let x = stored(dt, &x);
    let r = stored(dt, &rand_vec(n, c.seed + 1, 1.5));
    let (w, b) = norm_weights(hidden, c.seed + 2, dt);
    let bias = c.bias.then_some(b.as_slice());
    let (h, y) = run_ln(c, &x, &r, &w, &b);
    let what = format!(
        "LN rows {rows} hidden {hidden} residual {} bias {} {dt:?} {:?}",
        c.residual, c.bias, c.reduce
    );
    let (atol, rtol) = tol(dt);
    if c.residual {
        let (h_ref, _) = layernorm::reference_add(&x, &r, &w, bias, hidden, EPS);
        let h_rtol = if dt == DType::F32 { 1e-7 } else { 1e-3 };
        assert_close(&format!("{what}: h"), &h, &h_ref, 1e-30, h_rtol);
        // y normalises the stored h: rebuild it exactly as the kernel rounds it.
        let h_stored: Vec<f32> = stored(
            dt,
            &x.iter().zip(&r).map(|(a, b)| a + b).collect::<Vec<_>>(),
        );
        let y_ref = layernorm::reference(&h_stored, &w, bias, hidden, EPS);
        assert_ln_close(
            &format!("{what}: y"),
            &y,
            &y_ref,
            &h_stored,
            hidden,
            atol,
            rtol,
        );
    } else {
        let y_ref = layernorm::reference(&x, &w, bias, hidden, EPS);
        assert_ln_close(&what, &y, &y_ref, &x, hidden, atol, rtol);
    }
}

/// Checks every combination of `shapes` (rows, hidden) x `residuals` x `biases` x `dtypes` x
/// `reduces`, with seeds counting up from `seed`.
fn check_ln_grid(
    shapes: &[(usize, usize)],
    (residuals, biases): (&[bool], &[bool]),
    dtypes: &[DType],
    reduces: &[Reduce],
    mut seed: u64,
) {
    for &dtype in dtypes {
        for &reduce in reduces {
            for &(rows, hidden) in shapes {
                for &residual in residuals {
                    for &bias in biases {
                        seed += 10;
                        check_ln(&LnCase {
                            rows,
                            hidden,
                            residual,
                            bias,
                            dtype,
                            reduce,
                            seed,
                        });
                    }
                }
            }
        }
    }
}

#[test]
fn layernorm_matches_reference_over_awkward_shapes() {
    let mut shapes = Vec::new();
    for hidden in [17, 32, 48, 100, 768, 1024] {
        for rows in [1, 3, 65, 129, 300] {
            shapes.push((rows, hidden));
        }
    }
    let best = Reduce::best(common::gpu().caps());
    check_ln_grid(
        &shapes,
        (&[false, true], &[false]),
        &[DType::F32],
        &[best],
        1,
    );
}

#[test]
fn layernorm_every_variant_f32_f16_bias_and_reduction() {
    let shapes = [(1, 17), (3, 100), (65, 768), (7, 1), (2, 2049), (4, 4096)];
    let on_off = [false, true];
    check_ln_grid(
        &shapes,
        (&on_off, &on_off),
        &common::dtypes(),
        &reductions(),
        1000,
    );
}

#[test]
fn a_constant_row_normalises_to_the_bias_without_nan() {
    let c = LnCase {
        rows: 2,
        hidden: 48,
        residual: false,
        bias: true,
        dtype: DType::F32,
        reduce: Reduce::Workgroup,
        seed: 0,
    };
    let x = vec![5.0f32; 96];
    let w = vec![2.0f32; 48];
    let b = rand_vec(48, 9, 1.0);
    let (_, y) = run_ln(&c, &x, &x, &w, &b);
    let want: Vec<f64> = b.iter().chain(&b).map(|&v| v as f64).collect();
    assert_close("constant rows", &y, &want, 1e-6, 0.0);
}

#[test]
fn zero_rows_skip_and_bad_arguments_are_errors() {
    let gpu = common::gpu();
    let mut pb = PlanBuilder::new(gpu.clone());
    let x = pb.input("x", 64 * 4);
    let w = pb.input("w", 64 * 4);
    let y = pb.output("y", 64 * 4);
    let args = LayerNormArgs {
        x,
        residual: None,
        sum_out: None,
        weight: w,
        bias: None,
        y,
        rows: Rows::Tokens,
        hidden: 64,
        eps: EPS,
        dtype: DType::F32,
    };
    layernorm::record(&mut pb, "ln", &args).unwrap();
    let mut plan = pb.build().unwrap();
    plan.run(&RunSizes::default()).unwrap();
    assert_eq!(plan.read(y, 0, 256).unwrap(), vec![0u8; 256]);

    let mut pb = PlanBuilder::new(gpu.clone());
    let (x, w, y) = (pb.input("x", 4), pb.input("w", 4), pb.output("y", 4));
    let base = LayerNormArgs {
        x,
        weight: w,
        y,
        hidden: 1,
        ..args
    };
    let cases = [
        LayerNormArgs { hidden: 0, ..base },
        LayerNormArgs {
            hidden: 4097,
            ..base
        },
        LayerNormArgs { hidden: 2, ..base },
        LayerNormArgs {
            eps: f32::NAN,
            ..base
        },
        LayerNormArgs {
            rows: Rows::Fixed(2),
            ..base
        },
        LayerNormArgs {
            residual: Some(x),
            ..base
        },
    ];
    for (i, a) in cases.iter().enumerate() {
        let e = layernorm::record(&mut pb, "bad", a).expect_err(&format!("case {i}"));
        assert!(
            matches!(
                e,
                wgbert::Error::OpArg {
                    op: "layernorm",
                    ..
                }
            ),
            "case {i}: {e}"
        );
    }
}

struct EmbCase {
    rows: usize,
    hidden: usize,
    vocab: usize,
    bias: bool,
    dtype: DType,
    reduce: Reduce,
    seed: u64,
}

fn check_embedding(c: &EmbCase) {
    let gpu = common::gpu();
    let (dt, h) = (c.dtype, c.hidden);
    let table = stored(dt, &rand_vec(c.vocab * h, c.seed, 2.0));
    let (w, b) = norm_weights(h, c.seed + 1, dt);
    // Ids cover the first and last rows, repeats, and one past the table (-> zero row).
    let mut ids: Vec<u32> = (0..c.rows)
        .map(|t| ((t * 7919 + c.seed as usize) % c.vocab) as u32)
        .collect();
    ids[0] = (c.vocab - 1) as u32;
    if c.rows > 2 {
        ids[1] = 0;
        ids[2] = c.vocab as u32 + 5;
    }
    let mut pb = PlanBuilder::new(gpu.clone());
    let idt = pb.input("ids", c.rows as u64 * 4);
    let tt = pb.input("table", (c.vocab * h) as u64 * dt.size());
    let wt = pb.input("w", h as u64 * dt.size());
    let bt = pb.input("b", h as u64 * dt.size());
    let yt = pb.output("y", (c.rows * h) as u64 * dt.size());
    let args = EmbeddingArgs {
        ids: idt,
        table: tt,
        weight: wt,
        bias: c.bias.then_some(bt),
        y: yt,
        rows: Rows::Tokens,
        hidden: h as u32,
        vocab: c.vocab as u32,
        eps: EPS,
        dtype: dt,
    };
    embedding::record_with(&mut pb, "embed", &args, c.reduce).unwrap();
    let mut plan = pb.build().unwrap();
    plan.write(idt, bytemuck::cast_slice(&ids)).unwrap();
    plan.write(tt, &dt.encode(&table)).unwrap();
    plan.write(wt, &dt.encode(&w)).unwrap();
    plan.write(bt, &dt.encode(&b)).unwrap();
    plan.run(&RunSizes {
        rows: c.rows as u32,
        ..Default::default()
    })
    .unwrap();
    let y = dt.decode(&plan.read(yt, 0, (c.rows * h) as u64 * dt.size()).unwrap());
    let bias = c.bias.then_some(b.as_slice());
    let want = embedding::reference(&ids, &table, &w, bias, h, c.vocab, EPS);
    let (atol, rtol) = tol(dt);
    let what = format!(
        "embedding rows {} hidden {h} vocab {} bias {} {dt:?} {:?}",
        c.rows, c.vocab, c.bias, c.reduce
    );
    let rows_in: Vec<f32> = want_input(&ids, &table, h, c.vocab);
    assert_ln_close(&what, &y, &want, &rows_in, h, atol, rtol);
}

#[test]
fn embedding_layernorm_matches_reference() {
    let mut seed = 5000;
    for dtype in common::dtypes() {
        for reduce in reductions() {
            for (rows, hidden, vocab) in [
                (1, 17, 3),
                (3, 48, 50),
                (65, 100, 97),
                (129, 768, 300),
                (300, 32, 1000),
            ] {
                for bias in [false, true] {
                    seed += 10;
                    check_embedding(&EmbCase {
                        rows,
                        hidden,
                        vocab,
                        bias,
                        dtype,
                        reduce,
                        seed,
                    });
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn layernorm_proptest(
        rows in 1usize..40,
        hidden in 1usize..1100,
        residual in any::<bool>(),
        bias in any::<bool>(),
        f16 in any::<bool>(),
        seed in 0u64..1_000_000,
    ) {
        let f16 = f16 && require_once(Cap::F16, "the f16 cases of random layernorm shapes");
        let dtype = if f16 { DType::F16 } else { DType::F32 };
        // The subgroup reduction where the adapter has subgroups, else the workgroup one.
        require_once(Cap::Subgroups, "the subgroup reduction of random layernorm shapes");
        let best = Reduce::best(common::gpu().caps());
        check_ln_grid(&[(rows, hidden)], (&[residual], &[bias]), &[dtype], &[best], seed);
    }
}

#[test]
fn layernorm_spreads_rows_past_one_dispatch_dimension() {
    let rows = common::gpu().caps().max_workgroups_per_dim as usize + 100;
    check_ln(&LnCase {
        rows,
        hidden: 3,
        residual: true,
        bias: false,
        dtype: DType::F32,
        reduce: Reduce::best(common::gpu().caps()),
        seed: 77,
    });
}
