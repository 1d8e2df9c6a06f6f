//! ModernBERT end to end against HF transformers: tiny random checkpoints and their expected
//! outputs, written by `scripts/make_fixtures.py` (transformers, sdpa, float32) into
//! `tests/fixtures/`. f32: last_hidden_state within 1e-4 on every token, MLM top-5 ids and
//! probabilities, classification logits within 1e-4. f16: cosine >= 0.999 per token. Long
//! inputs (`long`: 1984 tokens in six sequences of up to 1337, packed into one call; heads of
//! 64, windows of 128, global every third layer) on a sample of tokens that covers both sides
//! of position 1024 and the window's edges. Every comparison first asserts the numbers of
//! sequences, tokens and features. Packing: a sequence gives the same output alone and packed
//! with others.

mod common;

use common::model_dir::{expected as fixture, floats, uints};
use serde_json::Value;
use wgbert::encoder::{Encoder, LoadOptions};
use wgbert::ops::DType;

/// Logits of the reference closer than this are a tie: their ids may swap ranks. The
/// reference itself is within 2e-5 of the float64 NumPy model (make_fixtures.py).
const TIE: f64 = 1e-4;
/// A top-5 probability against exp(logit - logsumexp) of the reference, relative: an error d
/// in a logit or in the log-sum-exp is a relative error d in the probability, and wgbert's f32
/// logits are within a few 1e-5 of the reference's (lavapipe's worst: 2.7e-5).
const PROB_RTOL: f64 = 1e-4;

fn load(dir: &std::path::Path, dtype: DType) -> Encoder {
    let opts = LoadOptions {
        dtype: Some(dtype),
        coop: common::coop_mode(),
        ..Default::default()
    };
    Encoder::load_on(common::gpu(), dir.to_str().unwrap(), &opts).expect("load fixture model")
}

fn inputs(exp: &Value) -> Vec<Vec<u32>> {
    exp["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| uints(s).into_iter().map(|v| v as u32).collect())
        .collect()
}

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().unwrap().iter().map(floats).collect()
}

/// The reference's hidden rows of each sequence, as (position, row): every token, or the
/// sample that `positions` lists. Asserts the counts first: one output per input, one row per
/// listed position (every token where none are listed), positions inside the sequence.
fn expected_rows(name: &str, exp: &Value, seqs: &[Vec<u32>]) -> Vec<Vec<(usize, Vec<f64>)>> {
    let outs = exp["outputs"].as_array().unwrap();
    assert_eq!(
        outs.len(),
        seqs.len(),
        "{name}: one expected output per input"
    );
    outs.iter()
        .zip(seqs)
        .enumerate()
        .map(|(s, (out, seq))| {
            let rows = matrix(&out["last_hidden_state"]);
            let positions: Vec<usize> = match out.get("positions") {
                Some(p) => uints(p).into_iter().map(|p| p as usize).collect(),
                None => (0..seq.len()).collect(),
            };
            assert_eq!(rows.len(), positions.len(), "{name} seq {s}: expected rows");
            assert!(positions.iter().all(|&p| p < seq.len()), "{name} seq {s}");
            positions.into_iter().zip(rows).collect()
        })
        .collect()
}

/// wgbert's hidden states of `seqs`, in one call; asserts one output per sequence, one row
/// per token and `hidden` features per row.
fn hidden_states(name: &str, enc: &Encoder, seqs: &[Vec<u32>]) -> Vec<Vec<Vec<f32>>> {
    let got = enc.hidden_states(seqs).unwrap();
    let hidden = enc.config().hidden_size;
    assert_eq!(got.len(), seqs.len(), "{name}: sequence count");
    for (s, (g, seq)) in got.iter().zip(seqs).enumerate() {
        assert_eq!(g.len(), seq.len(), "{name} seq {s}: token count");
        for (t, row) in g.iter().enumerate() {
            assert_eq!(row.len(), hidden, "{name} seq {s} token {t}: width");
        }
    }
    got
}

fn check_hidden_f32(name: &str) {
    let (dir, exp) = fixture(name);
    let enc = load(&dir, DType::F32);
    // A CPU adapter runs the DIRECT tiled matmul; a GPU, or lavapipe with
    // WGBERT_CPU_AS_GPU=1 (how CI runs this suite at GPU subgroup sizes), the staged one.
    let plan = enc.describe_plan(enc.capacity().min(512)).unwrap();
    let tiled = |l: &&str| l.contains("matmul/main[");
    let staged = plan.lines().filter(tiled).any(|l| !l.contains("DIRECT=1"));
    assert_eq!(
        plan.contains("DIRECT=1"),
        common::gpu().caps().cpu,
        "{plan}"
    );
    assert_eq!(staged, !common::gpu().caps().cpu, "{plan}");
    let seqs = inputs(&exp);
    let want = expected_rows(name, &exp, &seqs);
    let got = hidden_states(name, &enc, &seqs);
    let mut worst = (0.0f64, 0, 0, 0);
    for (s, rows) in want.iter().enumerate() {
        for (t, w) in rows {
            let g = &got[s][*t];
            assert_eq!(g.len(), w.len(), "{name} seq {s} token {t}: expected width");
            for (c, (a, b)) in g.iter().zip(w).enumerate() {
                let e = (*a as f64 - b).abs();
                if e > worst.0 || !a.is_finite() {
                    worst = (if a.is_finite() { e } else { f64::INFINITY }, s, *t, c);
                }
            }
        }
    }
    eprintln!("{name} f32: max abs error {:.2e}", worst.0);
    assert!(
        worst.0 <= 1e-4,
        "{name}: max abs error {:.3e} at seq {} token {} feature {}",
        worst.0,
        worst.1,
        worst.2,
        worst.3
    );
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * y).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn check_hidden_f16(name: &str) {
    if !common::require(common::Cap::F16, &format!("{name} f16 parity")) {
        return;
    }
    let (dir, exp) = fixture(name);
    let enc = load(&dir, DType::F16);
    // scripts/test_coop.sh runs this with WGBERT_COOP=1: the tensor-core kernels must be in
    // the plan (at run time the subgroup matmul still takes runs of at most 32 rows).
    if common::coop_mode() == wgbert::ops::coop::Mode::Required {
        let plan = enc.describe_plan(enc.capacity().min(512)).unwrap();
        assert!(plan.contains("matmul_coop/"), "{plan}");
        assert!(plan.contains("attention_coop/"), "{plan}");
    }
    let seqs = inputs(&exp);
    let want = expected_rows(name, &exp, &seqs);
    let got = hidden_states(name, &enc, &seqs);
    let mut least = 1.0f64;
    for (s, rows) in want.iter().enumerate() {
        for (t, w) in rows {
            let g = &got[s][*t];
            assert_eq!(
                g.len(),
                w.len(),
                "{name} f16 seq {s} token {t}: expected width"
            );
            let cos = cosine(g, w);
            assert!(
                cos >= 0.999,
                "{name} f16: cosine {cos:.6} at seq {s} token {t}"
            );
            least = least.min(cos);
        }
    }
    eprintln!("{name} f16: least cosine {least:.6}");
}

#[test]
fn hidden_states_f32_match_transformers() {
    for name in [
        "mlm_v4",
        "mlm_v5_bf16",
        "mlm_sharded",
        "encoder_noprefix",
        "cls_mean",
        "tokcls",
    ] {
        check_hidden_f32(name);
    }
}

#[test]
fn hidden_states_f16_are_close_to_transformers() {
    for name in ["mlm_v4", "mlm_v5_bf16", "cls_mean"] {
        check_hidden_f16(name);
    }
}

/// 1984 tokens in six sequences (1337 down to 1), one call: global RoPE past position 1024,
/// windowed layers at the window's edges and at sequence ends, against transformers.
#[test]
fn long_inputs_match_transformers_f32() {
    let (_, exp) = fixture("long");
    let seqs = inputs(&exp);
    let total: usize = seqs.iter().map(Vec::len).sum();
    assert!((1500..=2500).contains(&total), "long: {total} tokens");
    let sampled: Vec<usize> = expected_rows("long", &exp, &seqs)
        .iter()
        .flatten()
        .map(|r| r.0)
        .collect();
    assert!(
        sampled.iter().filter(|&&p| p > 1024).count() >= 10,
        "long: too few tokens past position 1024 in {sampled:?}"
    );
    check_hidden_f32("long");
}

#[test]
fn long_inputs_are_close_to_transformers_f16() {
    check_hidden_f16("long");
}

/// The reference's top 6 of one position: ids, logits, and the log-sum-exp over the vocabulary.
#[derive(Debug)]
struct Top6 {
    ids: Vec<u64>,
    logits: Vec<f64>,
    lse: f64,
}

/// wgbert's top 5 `got` (id, probability) at one position against the reference: rank r
/// holds the reference's id at rank r, or, where the reference's logits tie (within `TIE`),
/// an id of the top 6 whose logit ties rank r's (so a 5th id is judged against the 6th), each
/// id once; each probability is exp(logit - lse) of the reference within `PROB_RTOL`.
/// Returns the largest relative probability error, or what is wrong.
fn check_top5(got: &[(u32, f32)], want: &Top6) -> Result<f64, String> {
    if got.len() != 5 || want.ids.len() != 6 || want.logits.len() != 6 {
        return Err(format!("{} candidates, reference {want:?}", got.len()));
    }
    let mut worst = 0.0f64;
    for (r, &(id, p)) in got.iter().enumerate() {
        let id = id as u64;
        let tie = |j: usize| j == r || (want.logits[j] - want.logits[r]).abs() < TIE;
        let Some(j) = (0..6).find(|&j| want.ids[j] == id && tie(j)) else {
            return Err(format!(
                "rank {r} is id {id}; the reference's top 6 are {want:?}"
            ));
        };
        if got[..r].iter().any(|c| c.0 as u64 == id) {
            return Err(format!("id {id} twice in {got:?}"));
        }
        let p_ref = (want.logits[j] - want.lse).exp();
        let err = (p as f64 - p_ref).abs() / p_ref;
        if err.is_nan() || err > PROB_RTOL {
            return Err(format!(
                "rank {r} (id {id}) probability {p}, reference {p_ref} (relative error {err:.2e})"
            ));
        }
        worst = worst.max(err);
    }
    Ok(worst)
}

#[test]
fn mlm_top5_matches_transformers() {
    let mut worst = 0.0f64;
    for name in ["mlm_v4", "mlm_v5_bf16", "mlm_sharded"] {
        let (dir, exp) = fixture(name);
        let enc = load(&dir, DType::F32);
        let seqs = inputs(&exp);
        let positions: Vec<Vec<usize>> = seqs.iter().map(|s| (0..s.len()).collect()).collect();
        let got = enc.mlm_topk(&seqs, &positions, 5).unwrap();
        let outs = exp["outputs"].as_array().unwrap();
        assert_eq!(got.len(), seqs.len(), "{name}: sequence count");
        assert_eq!(
            outs.len(),
            seqs.len(),
            "{name}: one expected output per input"
        );
        for (s, out) in outs.iter().enumerate() {
            let ids = out["mlm_top6"].as_array().unwrap();
            let logits = matrix(&out["mlm_top6_logits"]);
            let lse = floats(&out["mlm_logsumexp"]);
            let n = seqs[s].len();
            assert_eq!(got[s].len(), n, "{name} seq {s}: position count");
            assert_eq!(
                (ids.len(), logits.len(), lse.len()),
                (n, n, n),
                "{name} seq {s}"
            );
            for (p, (pos, cands)) in got[s].iter().enumerate() {
                assert_eq!(*pos, p, "{name} seq {s}: positions in order");
                let want = Top6 {
                    ids: uints(&ids[p]),
                    logits: logits[p].clone(),
                    lse: lse[p],
                };
                let err = check_top5(cands, &want)
                    .unwrap_or_else(|e| panic!("{name} seq {s} pos {p}: {e}"));
                worst = worst.max(err);
            }
        }
    }
    eprintln!("top-5 probabilities: worst relative error {worst:.2e}");
}

/// The top-5 check itself: a wrong first id, a wrong 5th id (the 6th's where they do not
/// tie), a swap of ranks that do not tie, a missing candidate and a wrong probability fail; a
/// swap of tied ranks passes.
#[test]
fn the_top5_check_fails_wrong_ids_and_probabilities() {
    let want = Top6 {
        ids: vec![10, 11, 12, 13, 14, 15],
        logits: vec![5.0, 4.0, 3.0, 2.0, 1.0, 0.0],
        lse: 6.0,
    };
    let prob = |logit: f64, lse: f64| (logit - lse).exp() as f32;
    let right: Vec<(u32, f32)> = (0..5)
        .map(|r| (10 + r as u32, prob(want.logits[r], 6.0)))
        .collect();
    check_top5(&right, &want).unwrap();
    type Candidates = Vec<(u32, f32)>;
    let mutated = |f: &dyn Fn(&mut Candidates)| {
        let mut got = right.clone();
        f(&mut got);
        check_top5(&got, &want)
    };
    assert!(
        mutated(&|g| g[0].0 = 99).is_err(),
        "a wrong top-1 id passed"
    );
    assert!(
        mutated(&|g| g[4].0 = 15).is_err(),
        "the 6th id in 5th place passed"
    );
    assert!(
        mutated(&|g| g.swap(0, 1)).is_err(),
        "a swap of ranks 1 and 2 passed"
    );
    assert!(
        mutated(&|g| g[2].1 *= 1.01).is_err(),
        "a probability 1% off passed"
    );
    assert!(
        mutated(&|g| g.truncate(4)).is_err(),
        "four candidates passed"
    );
    // Ranks 5 and 6 tied: either id may be 5th, with its own probability.
    let tied = Top6 {
        logits: vec![5.0, 4.0, 3.0, 2.0, 1.0, 1.0 - 1e-5],
        ..want
    };
    let mut fifth = right.clone();
    fifth[4] = (15, prob(tied.logits[5], tied.lse));
    check_top5(&fifth, &tied).unwrap();
}

#[test]
fn classification_logits_match_transformers() {
    let (dir, exp) = fixture("cls_mean");
    let enc = load(&dir, DType::F32);
    let seqs = inputs(&exp);
    let got = enc.classify_ids(&seqs).unwrap();
    let outs = exp["outputs"].as_array().unwrap();
    assert_eq!(got.len(), seqs.len(), "cls_mean: sequence count");
    assert_eq!(
        outs.len(),
        seqs.len(),
        "cls_mean: one expected output per input"
    );
    for (s, out) in outs.iter().enumerate() {
        let want = floats(&out["logits"]);
        assert_eq!(got[s].len(), 3, "cls_mean seq {s}: label count");
        common::assert_close(&format!("cls_mean seq {s}"), &got[s], &want, 1e-4, 0.0);
    }
    let (dir, exp) = fixture("tokcls");
    let enc = load(&dir, DType::F32);
    let seqs = inputs(&exp);
    let got = enc.token_classify_ids(&seqs).unwrap();
    let outs = exp["outputs"].as_array().unwrap();
    assert_eq!(got.len(), seqs.len(), "tokcls: sequence count");
    assert_eq!(
        outs.len(),
        seqs.len(),
        "tokcls: one expected output per input"
    );
    for (s, out) in outs.iter().enumerate() {
        let want = matrix(&out["logits"]);
        assert_eq!(got[s].len(), seqs[s].len(), "tokcls seq {s}: token count");
        assert_eq!(want.len(), seqs[s].len(), "tokcls seq {s}: expected tokens");
        for (t, (g, w)) in got[s].iter().zip(&want).enumerate() {
            assert_eq!(g.len(), 2, "tokcls seq {s} token {t}: label count");
            common::assert_close(&format!("tokcls seq {s} token {t}"), g, w, 1e-4, 0.0);
        }
    }
}

#[test]
fn a_sequence_gives_the_same_output_alone_and_packed() {
    let (dir, exp) = fixture("mlm_v4");
    let enc = load(&dir, DType::F32);
    let seqs = inputs(&exp);
    let packed = hidden_states("mlm_v4 packed", &enc, &seqs);
    for (s, seq) in seqs.iter().enumerate() {
        let alone = hidden_states("mlm_v4 alone", &enc, std::slice::from_ref(seq));
        let want: Vec<f64> = alone[0].concat().iter().map(|&x| x as f64).collect();
        common::assert_close(
            &format!("seq {s} packed vs alone"),
            &packed[s].concat(),
            &want,
            1e-5,
            1e-5,
        );
    }
}

#[test]
fn eight_threads_get_the_same_results_as_one() {
    let (dir, exp) = fixture("mlm_v4");
    let enc = std::sync::Arc::new(load(&dir, DType::F32));
    let seqs = inputs(&exp);
    let want = enc.hidden_states(&seqs).unwrap();
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let enc = enc.clone();
            let seqs = seqs.clone();
            std::thread::spawn(move || {
                // Each thread asks for a different subset, in a different order.
                let order: Vec<usize> = (0..seqs.len()).map(|i| (i + t) % seqs.len()).collect();
                let mine: Vec<Vec<u32>> = order.iter().map(|&i| seqs[i].clone()).collect();
                (order, enc.hidden_states(&mine).unwrap())
            })
        })
        .collect();
    for h in handles {
        let (order, got) = h.join().expect("thread");
        for (k, &i) in order.iter().enumerate() {
            assert_eq!(got[k], want[i], "sequence {i} differs under concurrency");
        }
    }
}
