//! ModernBERT end to end against HF transformers: tiny random checkpoints and their expected
//! outputs, written by `scripts/make_fixtures.py` (transformers, sdpa, float32) into
//! `tests/fixtures/`. f32: last_hidden_state within 1e-4 on every token, MLM top-5 ids,
//! classification logits within 1e-4. f16: cosine >= 0.999 per token. Packing: a sequence
//! gives the same output alone and packed with others.

mod common;

use common::model_dir::expected as fixture;
use serde_json::Value;
use wgbert::encoder::{Encoder, LoadOptions};
use wgbert::ops::DType;

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
        .map(|s| {
            s.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn check_hidden_f32(name: &str) {
    let (dir, exp) = fixture(name);
    let enc = load(&dir, DType::F32);
    let seqs = inputs(&exp);
    let got = enc.hidden_states(&seqs).unwrap();
    let mut worst = (0.0f64, 0, 0, 0);
    for (s, out) in exp["outputs"].as_array().unwrap().iter().enumerate() {
        let want = matrix(&out["last_hidden_state"]);
        assert_eq!(got[s].len(), want.len(), "{name} seq {s}: token count");
        for (t, (g, w)) in got[s].iter().zip(&want).enumerate() {
            for (c, (a, b)) in g.iter().zip(w).enumerate() {
                let e = (*a as f64 - b).abs();
                if e > worst.0 || !a.is_finite() {
                    worst = (if a.is_finite() { e } else { f64::INFINITY }, s, t, c);
                }
            }
        }
    }
    assert!(
        worst.0 <= 1e-4,
        "{name}: max abs error {:.3e} at seq {} token {} feature {}",
        worst.0,
        worst.1,
        worst.2,
        worst.3
    );
}

fn check_hidden_f16(name: &str) {
    let gpu = common::gpu();
    if !gpu.caps().f16 {
        eprintln!("adapter has no f16: skipping {name} f16 parity");
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
    let got = enc.hidden_states(&inputs(&exp)).unwrap();
    for (s, out) in exp["outputs"].as_array().unwrap().iter().enumerate() {
        for (t, (g, w)) in got[s]
            .iter()
            .zip(matrix(&out["last_hidden_state"]))
            .enumerate()
        {
            let dot: f64 = g.iter().zip(&w).map(|(a, b)| *a as f64 * b).sum();
            let na: f64 = g.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
            let nb: f64 = w.iter().map(|b| b * b).sum::<f64>().sqrt();
            let cos = dot / (na * nb);
            assert!(
                cos >= 0.999,
                "{name} f16: cosine {cos:.6} at seq {s} token {t}"
            );
        }
    }
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

#[test]
fn mlm_top5_matches_transformers() {
    for name in ["mlm_v4", "mlm_v5_bf16", "mlm_sharded"] {
        let (dir, exp) = fixture(name);
        let enc = load(&dir, DType::F32);
        let seqs = inputs(&exp);
        let positions: Vec<Vec<usize>> = seqs.iter().map(|s| (0..s.len()).collect()).collect();
        let got = enc.mlm_topk(&seqs, &positions, 5).unwrap();
        for (s, out) in exp["outputs"].as_array().unwrap().iter().enumerate() {
            let want_ids = out["mlm_top5"].as_array().unwrap();
            let want_logits = matrix(&out["mlm_top5_logits"]);
            for (p, (pos, cands)) in got[s].iter().enumerate() {
                assert_eq!(*pos, p);
                let ids: Vec<u64> = cands.iter().map(|c| c.0 as u64).collect();
                let want: Vec<u64> = want_ids[p]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect();
                // Ranks may swap only where the reference's own logits are within 1e-4.
                for r in 0..5 {
                    if ids[r] != want[r] {
                        let gap = (want_logits[p][r] - want_logits[p][r.min(3) + 1])
                            .abs()
                            .min((want_logits[p][r] - want_logits[p][r.max(1) - 1]).abs());
                        assert!(
                            gap < 1e-4,
                            "{name} seq {s} pos {p}: top-5 {ids:?}, expected {want:?}"
                        );
                    }
                }
                let total: f32 = cands.iter().map(|c| c.1).sum();
                assert!(
                    total > 0.0 && total <= 1.0001,
                    "{name}: probabilities {cands:?}"
                );
            }
        }
    }
}

#[test]
fn classification_logits_match_transformers() {
    let (dir, exp) = fixture("cls_mean");
    let enc = load(&dir, DType::F32);
    let got = enc.classify_ids(&inputs(&exp)).unwrap();
    for (s, out) in exp["outputs"].as_array().unwrap().iter().enumerate() {
        let want: Vec<f64> = out["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        common::assert_close(&format!("cls_mean seq {s}"), &got[s], &want, 1e-4, 0.0);
    }
    let (dir, exp) = fixture("tokcls");
    let enc = load(&dir, DType::F32);
    let got = enc.token_classify_ids(&inputs(&exp)).unwrap();
    for (s, out) in exp["outputs"].as_array().unwrap().iter().enumerate() {
        let want: Vec<f64> = matrix(&out["logits"]).concat();
        let flat: Vec<f32> = got[s].concat();
        common::assert_close(&format!("tokcls seq {s}"), &flat, &want, 1e-4, 0.0);
    }
}

#[test]
fn a_sequence_gives_the_same_output_alone_and_packed() {
    let (dir, exp) = fixture("mlm_v4");
    let enc = load(&dir, DType::F32);
    let seqs = inputs(&exp);
    let packed = enc.hidden_states(&seqs).unwrap();
    for (s, seq) in seqs.iter().enumerate() {
        let alone = enc.hidden_states(std::slice::from_ref(seq)).unwrap();
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
