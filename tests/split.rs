//! Weights larger than one storage binding, held in row pieces (`model::split`):
//! - the kernels across a split: a linear layer's pieces, each product writing its own
//!   columns of the output (every epilogue but GeGLU, tiled, subgroup and emulated
//!   tensor-core builds, f32 and f16), and the embedding gather over pieces recorded in any
//!   order, against the f64 references of the whole weight;
//! - a fixture checkpoint under a binding forced to 30 KiB: its tables in uneven pieces, and
//!   hidden states, MLM top-k and classifier logits equal to the same model in one piece;
//! - the option (`--max-binding`, `GpuOptions::max_binding`): only lowers the adapter's
//!   limit, refuses sizes below the least and what is not a size, `info --model` lists each
//!   split tensor;
//! - the real shapes on the adapter's own binding (lavapipe: 128 MiB): ModernBERT-base and
//!   -large in f32 and a 256,000-token vocabulary at hidden 768 in f16 and f32 load with
//!   random weights and run a few tokens through the encoder and the tied MLM decoder.
//!
//! Tolerances as tests/matmul.rs and tests/norms.rs state them: f32 (1e-5, 1e-5); f16 inputs
//! are rounded before the reference, leaving one f16 rounding of the output (rtol 1e-3,
//! atol 1e-4) for the matmul, and of the normalised row (values up to ~4: atol 4e-3) for the
//! embedding.

mod common;

use std::sync::Arc;

use common::model_dir::{self, expected as fixture};
use wgbert::encoder::{Encoder, LoadOptions};
use wgbert::model::config::ModelConfig;
use wgbert::model::split::SplitReport;
use wgbert::ops::coop::Shape;
use wgbert::ops::embedding::{self, EmbeddingArgs};
use wgbert::ops::matmul::{self, Epilogue, MatmulArgs, OutCols, coop, subgroup, tiled};
use wgbert::ops::{Activation, DType, Rows};
use wgbert::runtime::{Gpu, GpuOptions, Kernel, PlanBuilder, RunSizes};

/// The binding the fixture tests force: splits every parity fixture's table unevenly.
const LOW: u64 = 30 << 10;

fn tol(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F32 => (1e-5, 1e-5),
        DType::F16 => (1e-4, 1e-3),
    }
}

/// `n` rows cut into uneven pieces: a third (rounded up), the rest halved, the last the
/// remainder; one piece where n < 3.
fn cut(n: usize) -> Vec<(usize, usize)> {
    if n < 3 {
        return vec![(0, n)];
    }
    let a = n.div_ceil(3);
    let b = (n - a) / 2;
    vec![(0, a), (a, b), (a + b, n - a - b)]
}

/// How a piece's product is built: the automatic choice, or a given kernel and tile.
enum Build {
    Auto,
    Given(Kernel, (u32, u32)),
}

/// `[t, k] x W^T` with W `[n, k]` in the pieces `cut(n)`, each product recorded into its
/// columns of one `[t, n]` output (and residual), against the reference of the whole W.
#[allow(clippy::too_many_arguments)]
fn check_pieces(
    (t, k, n): (usize, usize, usize),
    dtype: DType,
    epilogue: Epilogue,
    bias: bool,
    build: &Build,
    seed: u64,
    what: &str,
) {
    let gpu = common::gpu();
    let es = dtype.size();
    let data = |len: usize, seed: u64, scale: f32| {
        common::stored(dtype, &common::rand_vec(len, seed, scale))
    };
    let x = data(t * k, seed, 1.0);
    let w = data(n * k, seed + 1, 0.5);
    let bv = data(n, seed + 2, 1.0);
    let res = data(t * n, seed + 3, 2.0);
    let residual = epilogue == Epilogue::Residual;
    let mut b = PlanBuilder::new(gpu.clone());
    let xt = b.input("x", (t * k) as u64 * es);
    let rt = residual.then(|| b.input("residual", (t * n) as u64 * es));
    let yt = b.output("y", (t * n) as u64 * es);
    let choices = common::checked_choices();
    // Recorded last piece first: no piece relies on another's writes.
    for &(first, rows) in cut(n).iter().rev() {
        let wp = &w[first * k..(first + rows) * k];
        let bp = &bv[first..first + rows];
        let wbuf = gpu.upload("w piece", &dtype.encode(wp)).unwrap();
        let bbuf = gpu.upload("bias piece", &dtype.encode(bp)).unwrap();
        let args = MatmulArgs {
            x: xt,
            w: b.external("w piece", &wbuf),
            bias: bias.then(|| b.external("bias piece", &bbuf)),
            residual: rt,
            y: yt,
            rows: Rows::Tokens,
            k: k as u32,
            n: rows as u32,
            dtype,
            epilogue,
            variant: None,
        };
        let cols = OutCols {
            ldy: n as u32,
            col0: first as u32,
        };
        match build {
            Build::Auto => matmul::record_cols(&mut b, choices, "piece", &args, cols),
            Build::Given(kernel, tile) => {
                let given = (kernel.clone(), *tile);
                matmul::record_kernel_cols(&mut b, "piece", &args, given, cols)
            }
        }
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    let mut plan = b.build().unwrap();
    plan.write(xt, &dtype.encode(&x)).unwrap();
    if let Some(rt) = rt {
        plan.write(rt, &dtype.encode(&res)).unwrap();
    }
    run_rows(&mut plan, t);
    let got = dtype.decode(&plan.read(yt, 0, (t * n) as u64 * es).unwrap());
    let (bias_v, res_v) = (bias.then_some(&bv[..]), residual.then_some(&res[..]));
    let want = matmul::reference(&x, &w, bias_v, res_v, t, k, n, epilogue);
    let (atol, rtol) = tol(dtype);
    common::assert_close(what, &got, &want, atol, rtol);
}

/// Runs `plan` over `rows` token rows.
fn run_rows(plan: &mut wgbert::runtime::Plan, rows: usize) {
    let sizes = RunSizes {
        rows: rows as u32,
        ..Default::default()
    };
    plan.run(&sizes).unwrap();
}

const EPILOGUES: [Epilogue; 3] = [
    Epilogue::None,
    Epilogue::Residual,
    Epilogue::Act(Activation::GeluErf),
];

/// The automatic choice per piece (subgroup kernel for few rows where the adapter has
/// subgroups, tiled otherwise), over the awkward shapes, every epilogue a split linear
/// layer may have, with and without bias.
#[test]
fn a_weight_in_row_pieces_gives_the_whole_product() {
    let mut seed = 100;
    for dtype in common::dtypes() {
        for &common::MatmulShape { t, k, n } in &common::MATMUL_SHAPES {
            for e in EPILOGUES {
                for bias in [false, true] {
                    let what = format!("T={t} K={k} N={n} {e:?} bias={bias} {dtype:?} auto");
                    check_pieces((t, k, n), dtype, e, bias, &Build::Auto, seed, &what);
                    seed += 10;
                }
            }
        }
    }
}

/// Every tiled configuration (staged and, where K allows, direct), the subgroup kernel and
/// the emulated tensor-core kernel at both fragment sizes, each writing its columns of a
/// wider output at an offset.
#[test]
fn every_build_writes_its_columns_of_a_wider_output() {
    let caps = common::gpu().caps().clone();
    let mut seed = 5000;
    let shapes = [(65, 40, 70), (129, 5, 33), (3, 24, 17)];
    for dtype in common::dtypes() {
        for (t, k, n) in shapes {
            for e in EPILOGUES {
                let mut builds: Vec<(String, Build)> = Vec::new();
                for c in tiled::CANDIDATES.into_iter().filter(|c| c.fits(&caps)) {
                    let tile = tiled::tile(c, e);
                    let staged = tiled::kernel(dtype, e, true, c);
                    builds.push((format!("tiled {}", c.name()), Build::Given(staged, tile)));
                    if let Some(d) = tiled::direct_kernel(dtype, e, true, c, k as u32) {
                        builds.push((format!("direct {}", c.name()), Build::Given(d, tile)));
                    }
                }
                if common::require(common::Cap::Subgroups, "the subgroup matmul in pieces") {
                    let kernel = matmul::kernel(matmul::MatmulVariant::Subgroup, dtype, e, true);
                    builds.push(("subgroup".into(), Build::Given(kernel, subgroup::tile())));
                }
                if dtype == DType::F16 && (t, k, n) == shapes[0] {
                    // Square fragments of both sizes and one non-square shape.
                    for f in [[8, 8, 8], [16, 16, 16], [16, 8, 16]] {
                        let shape = Shape::of(f, 8);
                        let kernel =
                            coop::emulated_kernel(shape, 8, coop::DEFAULT, e, true, k as u32);
                        let tile = coop::tile(shape, coop::DEFAULT, e);
                        let name = format!("emulated coop {}", shape.name());
                        builds.push((name, Build::Given(kernel, tile)));
                    }
                }
                for (name, build) in &builds {
                    let what = format!("T={t} K={k} N={n} {e:?} {dtype:?} {name}");
                    check_pieces((t, k, n), dtype, e, true, build, seed, &what);
                    seed += 10;
                }
            }
        }
    }
}

/// Output columns outside the output are an argument error, not a write past it.
#[test]
fn columns_past_the_output_are_refused() {
    let gpu = common::gpu();
    let mut b = PlanBuilder::new(gpu.clone());
    let x = b.input("x", 4 * 8 * 4);
    let w = b.input("w", 5 * 8 * 4);
    let y = b.output("y", 4 * 12 * 4);
    let args = MatmulArgs {
        x,
        w,
        bias: None,
        residual: None,
        y,
        rows: Rows::Fixed(4),
        k: 8,
        n: 5,
        dtype: DType::F32,
        epilogue: Epilogue::None,
        variant: None,
    };
    let choices = common::checked_choices();
    for (ldy, col0) in [(12, 8), (4, 0), (5, 1)] {
        let cols = OutCols { ldy, col0 };
        let e = matmul::record_cols(&mut b, choices, "m", &args, cols).unwrap_err();
        assert!(
            e.to_string().contains("output columns"),
            "{ldy} {col0}: {e}"
        );
    }
    // Rows whose columns fit the buffer: 12 columns x 4 rows hold 4 rows at col0 7.
    matmul::record_cols(&mut b, choices, "m", &args, OutCols { ldy: 12, col0: 7 }).unwrap();
    let fixed5 = MatmulArgs {
        rows: Rows::Fixed(5),
        ..args
    };
    let e = matmul::record_cols(&mut b, choices, "m", &fixed5, OutCols { ldy: 12, col0: 7 });
    assert!(e.is_err(), "5 rows of 12 columns in a buffer of 4 rows");
}

/// The embedding gather over a table in uneven pieces, recorded in reverse order: ids in
/// every piece and at each piece's first and last row, and ids past the table (the last
/// piece writes them as zero rows), against the reference of the whole table.
#[test]
fn embedding_pieces_give_the_whole_table() {
    let gpu = common::gpu();
    let (vocab, h) = (37usize, 48usize);
    let mut seed = 900;
    for dtype in common::dtypes() {
        let table = common::stored(dtype, &common::rand_vec(vocab * h, seed, 1.0));
        let (w, bvec) = common::norm_weights(h, seed + 1, dtype);
        let pieces = cut(vocab);
        let mut ids: Vec<u32> = Vec::new();
        for &(first, rows) in &pieces {
            ids.extend([
                first as u32,
                (first + rows - 1) as u32,
                (first + rows / 2) as u32,
            ]);
        }
        ids.extend([vocab as u32, u32::MAX, 0, 36, 5]);
        let t = ids.len();
        for bias in [false, true] {
            let es = dtype.size();
            let mut b = PlanBuilder::new(gpu.clone());
            let idt = b.input("ids", t as u64 * 4);
            let wt = b.input("w", h as u64 * es);
            let bt = b.input("b", h as u64 * es);
            let yt = b.output("y", (t * h) as u64 * es);
            for (i, &(first, rows)) in pieces.iter().enumerate().rev() {
                let part = &table[first * h..(first + rows) * h];
                let buf = gpu.upload("table piece", &dtype.encode(part)).unwrap();
                let args = EmbeddingArgs {
                    ids: idt,
                    table: b.external("table piece", &buf),
                    weight: wt,
                    bias: bias.then_some(bt),
                    y: yt,
                    rows: Rows::Tokens,
                    hidden: h as u32,
                    vocab: rows as u32,
                    eps: 1e-5,
                    dtype,
                };
                let last = i + 1 == pieces.len();
                embedding::record_piece(&mut b, "embed", &args, first as u32, last).unwrap();
            }
            let mut plan = b.build().unwrap();
            plan.write(idt, bytemuck::cast_slice(&ids)).unwrap();
            plan.write(wt, &dtype.encode(&w)).unwrap();
            plan.write(bt, &dtype.encode(&bvec)).unwrap();
            run_rows(&mut plan, t);
            let got = dtype.decode(&plan.read(yt, 0, (t * h) as u64 * es).unwrap());
            let bias_v = bias.then_some(bvec.as_slice());
            let want = embedding::reference(&ids, &table, &w, bias_v, h, vocab, 1e-5);
            let (atol, rtol) = match dtype {
                DType::F32 => (1e-5, 1e-5),
                DType::F16 => (4e-3, 1e-3),
            };
            let what = format!("embedding in pieces {dtype:?} bias={bias}");
            common::assert_close(&what, &got, &want, atol, rtol);
            seed += 7;
        }
    }
}

fn low_gpu() -> Arc<Gpu> {
    Gpu::new(&GpuOptions {
        max_binding: Some(LOW),
        ..Default::default()
    })
    .expect("a device with a lowered binding limit")
}

fn load_on(gpu: Arc<Gpu>, name: &str, dtype: DType) -> Encoder {
    let (dir, _) = fixture(name);
    let opts = LoadOptions {
        dtype: Some(dtype),
        coop: common::coop_mode(),
        ..Default::default()
    };
    Encoder::load_on(gpu, dir.to_str().unwrap(), &opts).expect("load fixture model")
}

fn inputs(name: &str) -> Vec<Vec<u32>> {
    let (_, exp) = fixture(name);
    exp["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            common::model_dir::uints(s)
                .into_iter()
                .map(|v| v as u32)
                .collect()
        })
        .collect()
}

fn pieces_of<'a>(splits: &'a [SplitReport], name: &str) -> Option<&'a [usize]> {
    splits
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.pieces.as_slice())
}

const TABLE: &str = "model.embeddings.tok_embeddings.weight";

/// mlm_v4 (vocabulary 512, hidden 32) at a 30 KiB binding: the table (and so the tied
/// decoder) in pieces of 240, 240 and 32 rows in f32, 480 and 32 in f16; hidden states,
/// every position's top 5 and the classifier's logits equal the model in one piece.
#[test]
fn a_fixture_in_pieces_matches_the_fixture_whole() {
    let low = low_gpu();
    assert_eq!(low.caps().max_storage_binding, LOW);
    for (dtype, want_pieces) in [
        (DType::F32, vec![240, 240, 32]),
        (DType::F16, vec![480, 32]),
    ] {
        if dtype == DType::F16 && !common::require(common::Cap::F16, "f16 weights in pieces") {
            continue;
        }
        let split = load_on(low.clone(), "mlm_v4", dtype);
        let whole = load_on(common::gpu(), "mlm_v4", dtype);
        let splits = split.weight_splits();
        assert_eq!(
            pieces_of(&splits, TABLE),
            Some(&want_pieces[..]),
            "{splits:?}"
        );
        let seqs = inputs("mlm_v4");
        let (a, b) = (
            split.hidden_states(&seqs).unwrap(),
            whole.hidden_states(&seqs).unwrap(),
        );
        assert_eq!(a.len(), b.len());
        for (s, (x, y)) in a.iter().zip(&b).enumerate() {
            let want: Vec<f64> = y.concat().iter().map(|&v| v as f64).collect();
            common::assert_close(
                &format!("{dtype:?} seq {s}"),
                &x.concat(),
                &want,
                1e-5,
                1e-5,
            );
        }
        let positions: Vec<Vec<usize>> = seqs.iter().map(|s| (0..s.len()).collect()).collect();
        // A 15-row logit buffer fits the low binding, so the split model runs the head in
        // runs of 15 rows (the subgroup kernel) where the whole one runs 64 (the tiled
        // kernel): the f32 sums differ in order, and an f16 logit of 16 to 32 may round to
        // the next f16, 2^-6 away: probabilities within 4% (f32: 1e-5).
        let prob_rtol = match dtype {
            DType::F32 => 1e-5,
            DType::F16 => 0.04,
        };
        let (ta, tb) = (
            split.mlm_topk(&seqs, &positions, 5).unwrap(),
            whole.mlm_topk(&seqs, &positions, 5).unwrap(),
        );
        for (s, (x, y)) in ta.iter().zip(&tb).enumerate() {
            for ((pa, ca), (pb, cb)) in x.iter().zip(y) {
                assert_eq!(pa, pb);
                let ids = |c: &[(u32, f32)]| c.iter().map(|p| p.0).collect::<Vec<_>>();
                assert_eq!(ids(ca), ids(cb), "{dtype:?} seq {s} position {pa}");
                let probs: Vec<f64> = cb.iter().map(|p| p.1 as f64).collect();
                let got: Vec<f32> = ca.iter().map(|p| p.1).collect();
                let what = format!("{dtype:?} seq {s} position {pa}: top-5 probabilities");
                common::assert_close(&what, &got, &probs, 1e-6, prob_rtol);
            }
        }
    }
    let split = load_on(low, "tokcls", DType::F32);
    let whole = load_on(common::gpu(), "tokcls", DType::F32);
    assert!(pieces_of(&split.weight_splits(), TABLE).is_some_and(|p| p.len() > 1));
    let seqs = inputs("tokcls");
    let (a, b) = (
        split.token_classify_ids(&seqs).unwrap(),
        whole.token_classify_ids(&seqs).unwrap(),
    );
    for (x, y) in a.iter().zip(&b) {
        let want: Vec<f64> = y.concat().iter().map(|&v| v as f64).collect();
        common::assert_close("token logits", &x.concat(), &want, 1e-5, 1e-5);
    }
}

/// The limit only lowers the adapter's own; a value below the least accepted, or one that
/// is not a size, is an option error.
#[test]
fn the_binding_limit_only_lowers() {
    let own = Gpu::new(&GpuOptions::default()).unwrap();
    let own_limit = own.caps().max_storage_binding;
    let higher = Gpu::new(&GpuOptions {
        max_binding: Some(u64::MAX),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(higher.caps().max_storage_binding, own_limit);
    let odd = Gpu::new(&GpuOptions {
        max_binding: Some(10_003),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(odd.caps().max_storage_binding, 10_000);
    let e = Gpu::new(&GpuOptions {
        max_binding: Some(100),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("4096"), "{e}");
    use wgbert::runtime::parse_size;
    assert_eq!(parse_size("30KiB").unwrap(), 30 << 10);
    assert_eq!(parse_size(" 128 MiB ").unwrap(), 128 << 20);
    assert_eq!(parse_size("1g").unwrap(), 1 << 30);
    assert_eq!(parse_size("4096").unwrap(), 4096);
    for bad in [
        "",
        "12 parsecs",
        "-1",
        "1.5MiB",
        "99999999999999999999",
        "99999999999GiB",
    ] {
        assert!(parse_size(bad).is_err(), "'{bad}' parsed");
    }
}

/// A random model at an 8 KiB binding (4 KiB in f16: the same rows) where every matrix but
/// the small projections is held in pieces: Wqkv (64 + 32 rows; the RoPE pass follows the pieces), the gated Wi
/// (pieces of 32, 32 and 16 features, each with its input and gate rows), mlp.Wo and the
/// table (64 + 36 rows, and so the tied decoder): hidden states and MLM top-5 equal the
/// same weights whole.
#[test]
fn every_layer_weight_in_pieces_matches_the_whole_model() {
    let cfg = common::random_config(&common::TinyModel {
        vocab: 100,
        hidden: 32,
        intermediate: 80,
        layers: 3,
        heads: 2,
        global_every: 2,
        window: 8,
    });
    let seqs: Vec<Vec<u32>> = vec![
        (0..16).map(|i| (i * 7 % 100) as u32).collect(),
        vec![99, 3, 64],
    ];
    for dtype in common::dtypes() {
        let low = Gpu::new(&GpuOptions {
            max_binding: Some(8192 / (4 / dtype.size())),
            ..Default::default()
        })
        .unwrap();
        let split = Encoder::random(low, cfg.clone(), Some(dtype), Some(16)).unwrap();
        let whole = Encoder::random(common::gpu(), cfg.clone(), Some(dtype), Some(16)).unwrap();
        let splits = split.weight_splits();
        let rows = |name: &str| pieces_of(&splits, name).map(<[usize]>::to_vec);
        assert_eq!(
            rows("model.layers.1.attn.Wqkv.weight"),
            Some(vec![64, 32]),
            "{splits:?}"
        );
        assert_eq!(
            rows("model.layers.2.mlp.Wi.weight"),
            Some(vec![64, 64, 32]),
            "{splits:?}"
        );
        assert_eq!(
            rows("model.layers.0.mlp.Wo.weight"),
            Some(vec![25, 7]),
            "{splits:?}"
        );
        assert_eq!(rows(TABLE), Some(vec![64, 36]), "{splits:?}");
        let (a, b) = (
            split.hidden_states(&seqs).unwrap(),
            whole.hidden_states(&seqs).unwrap(),
        );
        let (atol, rtol) = match dtype {
            DType::F32 => (1e-5, 1e-5),
            DType::F16 => (4e-3, 4e-3),
        };
        for (s, (x, y)) in a.iter().zip(&b).enumerate() {
            let want: Vec<f64> = y.concat().iter().map(|&v| v as f64).collect();
            common::assert_close(
                &format!("{dtype:?} seq {s}"),
                &x.concat(),
                &want,
                atol,
                rtol,
            );
        }
        let positions = vec![vec![0, 5, 15], vec![1]];
        let (ta, tb) = (
            split.mlm_topk(&seqs, &positions, 5).unwrap(),
            whole.mlm_topk(&seqs, &positions, 5).unwrap(),
        );
        for (x, y) in ta.iter().zip(&tb) {
            for ((pa, ca), (pb, cb)) in x.iter().zip(y) {
                assert_eq!(pa, pb);
                let got: Vec<f32> = ca.iter().map(|p| p.1).collect();
                let want: Vec<f64> = cb.iter().map(|p| p.1 as f64).collect();
                let what = format!("{dtype:?} position {pa}: top-5 probabilities");
                common::assert_close(
                    &what,
                    &got,
                    &want,
                    1e-6,
                    if dtype == DType::F32 { 1e-5 } else { 0.04 },
                );
            }
        }
    }
}

/// `--max-binding` on the command line: `info --model` lists each split tensor with the
/// rows of its pieces; a size below the least accepted or not a size exits non-zero.
#[test]
fn the_cli_option_splits_and_info_shows_it() {
    let (dir, _) = fixture("mlm_v4");
    let out = model_dir::wgbert(&dir)
        .args(["--dtype", "f32", "--max-binding", "30KiB", "info", "--json"])
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let model = json
        .as_array()
        .and_then(|a| a.iter().find(|a| a.get("model").is_some()))
        .map(|a| a["model"].clone())
        .expect("a model entry");
    assert_eq!(model["max_storage_binding"], LOW);
    let split = model["split"].as_array().unwrap();
    let table = split
        .iter()
        .find(|s| s["name"] == TABLE)
        .expect("the table split");
    assert_eq!(table["pieces"], serde_json::json!([240, 240, 32]));
    let text = model_dir::wgbert(&dir)
        .args(["--dtype", "f32", "--max-binding", "30KiB", "info"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&text.get_output().stdout).to_string();
    assert!(
        stdout.contains(&format!(
            "{TABLE}: 65536 bytes in 3 pieces of 240, 240, 32 rows"
        )),
        "{stdout}"
    );
    for bad in ["12", "lots"] {
        let out = model_dir::wgbert(&dir)
            .args(["--max-binding", bad, "info"])
            .assert()
            .failure();
        let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(
            err.contains("binding") || err.contains("size"),
            "{bad}: {err}"
        );
    }
}

/// Expected pieces of a `[rows, cols]` table on this device: whole rows up to its binding.
fn expected_pieces(gpu: &Gpu, rows: usize, row_bytes: u64) -> Vec<usize> {
    let limit = gpu
        .caps()
        .max_storage_binding
        .min(gpu.caps().max_buffer_size);
    let per = (limit / row_bytes) as usize;
    if rows as u64 * row_bytes <= limit {
        return vec![rows];
    }
    (0..rows).step_by(per).map(|f| per.min(rows - f)).collect()
}

/// Loads random weights of `size` in `dtype` on the test adapter's own binding, checks the
/// table's pieces, and runs five tokens (ids in the first, a middle and the last piece)
/// through the encoder and the MLM head at two positions.
fn real_shape(size: &str, dtype: DType) {
    let gpu = Gpu::new(&GpuOptions::default()).unwrap();
    let cfg = ModelConfig::random(size).unwrap();
    let (vocab, h) = (cfg.vocab_size, cfg.hidden_size);
    let enc = Encoder::random(gpu.clone(), cfg, Some(dtype), Some(512)).unwrap();
    let want = expected_pieces(&gpu, vocab, h as u64 * dtype.size());
    let splits = enc.weight_splits();
    let got = pieces_of(&splits, TABLE)
        .map(<[usize]>::to_vec)
        .unwrap_or(vec![vocab]);
    assert_eq!(got, want, "{size} {dtype:?}: {splits:?}");
    eprintln!("{size} {dtype:?}: table in pieces of {got:?} rows");
    let last = vocab as u32 - 1;
    let seq = vec![1, want[0] as u32, last / 2, last, 2];
    let hs = enc.hidden_states(std::slice::from_ref(&seq)).unwrap();
    assert_eq!(hs[0].len(), seq.len());
    assert!(
        hs[0].iter().flatten().all(|v| v.is_finite()),
        "{size} {dtype:?}"
    );
    let top = enc.mlm_topk(&[seq], &[vec![1, 3]], 5).unwrap();
    for (_, cands) in &top[0] {
        assert_eq!(cands.len(), 5);
        assert!(
            cands
                .iter()
                .all(|c| (c.0 as usize) < vocab && c.1.is_finite())
        );
        assert!(cands.windows(2).all(|w| w[0].1 >= w[1].1), "{cands:?}");
    }
}

/// On lavapipe (128 MiB): the table in two pieces.
#[test]
fn modernbert_base_f32_loads_and_runs() {
    real_shape("base", DType::F32);
}

/// On lavapipe: the table in two pieces (32768 and 17600 rows).
#[test]
fn modernbert_large_f32_loads_and_runs() {
    real_shape("large", DType::F32);
}

/// A 256,000-token vocabulary at hidden 768: three pieces in f16 on lavapipe, six in f32.
#[test]
fn a_256k_vocabulary_loads_and_runs_in_f16_and_f32() {
    if common::require(common::Cap::F16, "a 256k vocabulary in f16") {
        real_shape("mmbert-base", DType::F16);
    }
    real_shape("mmbert-base", DType::F32);
}
