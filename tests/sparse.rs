//! Sparse (SPLADE) encoders against sentence-transformers' `SparseEncoder`: tiny random
//! ModernBERT MLMs saved by sentence-transformers (`scripts/make_st_fixtures.py sparse`),
//! max/relu in today's layout and sum/log1p_relu in the 5.x layout, with the sparse vectors
//! and similarities that library computed.
//!
//! Checks: the non-zero index sets equal; values within 1e-4 (f32) and within 1e-2 of the
//! vector's largest value (f16, where the adapter has it: the fixture keeps every logit at
//! least 0.05 from zero, past f16's error of a few thousandths on logits of a few units, so
//! the index sets stay equal; the worst seen is 0.6%); `rerank` scores equal
//! `model.similarity` within 1e-4 relative (f32) and 1e-2 (f16). The pooling kernel itself is checked against its f64 reference over
//! awkward shapes, sequences spanning runs included, and the whole ModernBERT vocabulary.

mod common;

use std::path::Path;

use common::model_dir::{expected, floats, uints};
use common::{Cap, assert_close, rand_vec};
use serde_json::Value;
use wgbert::encoder::{Encoder, LoadOptions, Prompt, RerankOptions, SparseOptions, SparseVector};
use wgbert::ops::splade::{self, FIRST, SpladeActivation, SpladeArgs, SpladeMode};
use wgbert::ops::{DType, Rows};
use wgbert::runtime::{PlanBuilder, RunSizes};
use wgbert::sentence::{ModelKind, Similarity};

fn load(dir: &Path, dtype: DType) -> wgbert::Result<Encoder> {
    let opts = LoadOptions {
        dtype: Some(dtype),
        ..Default::default()
    };
    Encoder::load_on(common::gpu(), dir.to_str().unwrap(), &opts)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn check_sparse(what: &str, got: &SparseVector, want: &Value, dtype: DType) {
    let wi: Vec<u32> = uints(&want["indices"]).iter().map(|&i| i as u32).collect();
    assert_eq!(got.indices, wi, "{what}: non-zero indices");
    let want = floats(&want["values"]);
    // f16: relative to the vector (its largest value): a term's weight log1p(x) near the
    // fixture's 0.05 margin moves by the logit's f16 error, a few thousandths, however small.
    let (atol, rtol) = match dtype {
        DType::F32 => (1e-4, 0.0),
        _ => (1e-2 * want.iter().fold(0.0f64, |m, v| m.max(v.abs())), 0.0),
    };
    assert_close(what, &got.values, &want, atol, rtol);
}

const FIXTURES: [(&str, SpladeMode, SpladeActivation); 2] = [
    ("splade_max", SpladeMode::Max, SpladeActivation::Relu),
    ("splade_sum", SpladeMode::Sum, SpladeActivation::Log1pRelu),
];

fn fixture_case(name: &str, dtype: DType) {
    let (dir, exp) = expected(name);
    let enc = load(&dir, dtype).unwrap();
    let sc = enc.sentence_config();
    assert_eq!(sc.kind(), ModelKind::Sparse, "{name}");
    let texts = strings(&exp["texts"]);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for (c, case) in exp["cases"].as_array().unwrap().iter().enumerate() {
        let opts = SparseOptions {
            prompt: case["prompt_name"]
                .as_str()
                .map_or(Prompt::ModelDefault, |n| Prompt::Name(n.into())),
            top_k: case["max_active_dims"].as_u64().map(|k| k as usize),
        };
        let got = enc.embed_sparse(&refs, &opts).unwrap();
        let want = case["vectors"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{name} case {c}: vector count");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let what = format!(
                "{name} {dtype:?} case {c} (prompt_name {}, max_active_dims {}) text {i}",
                case["prompt_name"], case["max_active_dims"]
            );
            check_sparse(&what, g, w, dtype);
            assert!(g.n_tokens >= 2, "{what}: n_tokens {}", g.n_tokens);
        }
    }
    let rr = &exp["rerank"];
    let docs = strings(&rr["documents"]);
    let doc_refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let query = rr["query"].as_str().unwrap();
    let ranked = enc
        .rerank(query, &doc_refs, &RerankOptions::default())
        .unwrap();
    let want = floats(&rr["scores"]);
    assert_eq!(ranked.len(), want.len());
    let tol = if dtype == DType::F32 { 1e-4 } else { 1e-2 };
    for r in &ranked {
        let w = want[r.index];
        assert!(
            (r.score as f64 - w).abs() <= tol * (1.0 + w.abs()),
            "{name} {dtype:?} rerank doc {}: {} want {w}",
            r.index,
            r.score
        );
    }
    for pair in ranked.windows(2) {
        assert!(pair[0].score >= pair[1].score, "{name}: ranked best first");
    }
    // The ranking's scores are the model's similarity of the two vectors.
    assert_eq!(exp["similarity_fn_name"], "dot");
    let q = enc
        .embed_sparse(
            &[query],
            &SparseOptions {
                prompt: Prompt::Name("query".into()),
                top_k: None,
            },
        )
        .unwrap();
    let d = enc
        .embed_sparse(
            &doc_refs,
            &SparseOptions {
                prompt: Prompt::Name("document".into()),
                top_k: None,
            },
        )
        .unwrap();
    for r in &ranked {
        let s = q[0].similarity(Similarity::Dot, &d[r.index]).unwrap();
        assert_eq!(s, r.score, "{name}: rerank is the dot product");
    }
}

#[test]
fn splade_models_match_sparse_encoder_f32() {
    for (name, mode, act) in FIXTURES {
        let (dir, _) = expected(name);
        let enc = load(&dir, DType::F32).unwrap();
        let sparse = enc.sentence_config().sparse.unwrap();
        assert_eq!((sparse.mode, sparse.activation), (mode, act), "{name}");
        fixture_case(name, DType::F32);
    }
}

#[test]
fn splade_models_match_sparse_encoder_f16() {
    if !common::require(Cap::F16, "the f16 SPLADE checks") {
        return;
    }
    for (name, _, _) in FIXTURES {
        fixture_case(name, DType::F16);
    }
}

#[test]
fn batches_of_many_texts_give_each_text_its_own_vector() {
    // More texts than one read-back holds, and a long text whose rows take several runs,
    // in one batch: each text's vector is what it gets alone.
    let (dir, exp) = expected("splade_max");
    // The model's limit (tokenizer_config.json's model_max_length, 64) raised to its 512
    // positions, for the long text.
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&dir, tmp.path());
    edit_json(&tmp.path().join("tokenizer_config.json"), |v| {
        v["model_max_length"] = 512.into();
    });
    let enc = load(tmp.path(), DType::F32).unwrap();
    let texts = strings(&exp["texts"]);
    let long = vec!["rust code runs on the gpu , fast !"; 30].join(" ");
    let mut many: Vec<&str> = Vec::new();
    for i in 0..75 {
        many.push(texts[i % texts.len()].as_str());
        if i == 40 {
            many.push(long.as_str());
        }
    }
    let opts = SparseOptions::default();
    let together = enc.embed_sparse(&many, &opts).unwrap();
    assert!(together.iter().any(|v| v.n_tokens > 200), "the long text");
    for (i, text) in many.iter().enumerate() {
        let alone = enc.embed_sparse(&[text], &opts).unwrap();
        assert_eq!(together[i].indices, alone[0].indices, "text {i}");
        let want: Vec<f64> = alone[0].values.iter().map(|&v| v as f64).collect();
        assert_close(&format!("text {i}"), &together[i].values, &want, 1e-5, 1e-5);
    }
}

#[test]
fn top_k_terms_keep_the_largest_values() {
    let (dir, exp) = expected("splade_sum");
    let enc = load(&dir, DType::F32).unwrap();
    let texts = strings(&exp["texts"]);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let all = enc.embed_sparse(&refs, &SparseOptions::default()).unwrap();
    for k in [1, 3, 1000] {
        let opts = SparseOptions {
            prompt: Prompt::ModelDefault,
            top_k: Some(k),
        };
        let top = enc.embed_sparse(&refs, &opts).unwrap();
        for (a, t) in all.iter().zip(&top) {
            let mut vals = a.values.clone();
            vals.sort_by(|x, y| y.total_cmp(x));
            vals.truncate(k);
            let mut got = t.values.clone();
            got.sort_by(|x, y| y.total_cmp(x));
            assert_eq!(got, vals, "top {k}");
            assert!(t.indices.windows(2).all(|w| w[0] < w[1]), "ascending");
        }
    }
    let e = enc
        .embed_sparse(
            &refs,
            &SparseOptions {
                prompt: Prompt::ModelDefault,
                top_k: Some(0),
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("at least 1"), "{e}");
    // Terms decode to the tokenizer's tokens.
    let terms = enc.sparse_terms(&all[1]).unwrap();
    assert_eq!(terms.len(), all[1].indices.len());
    let tok = enc.tokenizer().unwrap();
    for (id, t) in all[1].indices.iter().zip(&terms) {
        assert_eq!(tok.token_to_id(t), Some(*id));
    }
}

#[test]
fn other_kinds_refuse_sparse_and_sparse_refuses_dense() {
    let (dir, _) = expected("st_mean_dense");
    let enc = load(&dir, DType::F32).unwrap();
    let e = enc
        .embed_sparse(&["a"], &SparseOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("embedder") && e.contains("sparse"), "{e}");
    let (dir, _) = expected("splade_max");
    let enc = load(&dir, DType::F32).unwrap();
    let e = enc
        .embed_with(&["a"], &Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("sparse"), "{e}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

fn edit_json(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn broken_sparse_layouts_fail_with_clear_errors() {
    let (src, _) = expected("splade_max");
    type Edit = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "unknown pooling strategy",
            Box::new(|d: &Path| {
                edit_json(&d.join("1_SpladePooling/config.json"), |v| {
                    v["pooling_strategy"] = "mean".into()
                })
            }),
            "pooling_strategy",
        ),
        (
            "unknown activation",
            Box::new(|d: &Path| {
                edit_json(&d.join("1_SpladePooling/config.json"), |v| {
                    v["activation_function"] = "gelu".into()
                })
            }),
            "activation_function",
        ),
        (
            "dimension not the vocabulary",
            Box::new(|d: &Path| {
                edit_json(&d.join("1_SpladePooling/config.json"), |v| {
                    v["embedding_dimension"] = 7.into()
                })
            }),
            "vocab_size",
        ),
        (
            "no MLM transformer",
            Box::new(|d: &Path| {
                edit_json(&d.join("sentence_bert_config.json"), |v| {
                    v.as_object_mut().unwrap().remove("transformer_task");
                })
            }),
            "masked-LM transformer",
        ),
    ];
    for (what, edit, wanted) in cases {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&src, tmp.path());
        edit(tmp.path());
        let e = match load(tmp.path(), DType::F32) {
            Ok(_) => panic!("{what}: loaded"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(wanted), "{what}: {e}");
    }
}

/// Runs the pooling kernel over `lens` sequences of `vocab` logits, `chunk` rows a run, the
/// output `slots` rows wide; returns the pooled rows.
fn run_splade(
    logits: &[f32],
    lens: &[u32],
    vocab: usize,
    chunk: usize,
    mode: SpladeMode,
    activation: SpladeActivation,
) -> Vec<f32> {
    let gpu = common::gpu();
    let mut b = PlanBuilder::new(gpu.clone());
    let lt = b.input("logits", (chunk * vocab) as u64 * 4);
    let st = b.input("slots", chunk as u64 * 4);
    let out = b.output("out", (lens.len() * vocab) as u64 * 4);
    let args = SpladeArgs {
        logits: lt,
        slots: st,
        out,
        rows: Rows::Selected,
        vocab: vocab as u32,
        mode,
        activation,
    };
    splade::record(&mut b, "splade", &args).unwrap();
    let mut plan = b.build().unwrap();
    let mut words = Vec::new();
    for (s, &n) in lens.iter().enumerate() {
        for t in 0..n {
            words.push(s as u32 | if t == 0 { FIRST } else { 0 });
        }
    }
    for (c, w) in words.chunks(chunk).enumerate() {
        let rows = &logits[c * chunk * vocab..(c * chunk + w.len()) * vocab];
        plan.write(lt, bytemuck::cast_slice(rows)).unwrap();
        plan.write(st, bytemuck::cast_slice(w)).unwrap();
        plan.run(&RunSizes {
            selected: w.len() as u32,
            ..Default::default()
        })
        .unwrap();
    }
    let bytes = plan.read(out, 0, (lens.len() * vocab) as u64 * 4).unwrap();
    DType::F32.decode(&bytes)
}

#[test]
fn splade_kernel_matches_its_reference() {
    // Vocabularies past and short of a workgroup, one-row sequences, sequences that span
    // two and three runs, runs of one row.
    for (lens, vocab, chunk) in [
        (vec![1u32], 1usize, 1usize),
        (vec![3, 1, 5], 7, 4),
        (vec![2, 9, 1, 1, 4], 300, 3),
        (vec![17, 2, 40], 257, 16),
        (vec![5, 5], 513, 1),
    ] {
        let rows: u32 = lens.iter().sum();
        let logits = rand_vec(rows as usize * vocab, vocab as u64 + chunk as u64, 3.0);
        let (cu, _) = common::packed(&lens);
        for mode in [SpladeMode::Max, SpladeMode::Sum] {
            for act in [SpladeActivation::Relu, SpladeActivation::Log1pRelu] {
                let got = run_splade(&logits, &lens, vocab, chunk, mode, act);
                let want = splade::reference(&logits, &cu, vocab, mode, act);
                let what = format!("lens {lens:?} vocab {vocab} chunk {chunk} {mode:?} {act:?}");
                assert_close(&what, &got, &want, 1e-6, 1e-5);
                if vocab > 100 {
                    // Columns with no positive logit pool to exact zeros, others not.
                    assert!(got.contains(&0.0), "{what}: no zeros");
                    assert!(got.iter().any(|&v| v > 0.0), "{what}: no positives");
                }
            }
        }
    }
}

#[test]
fn splade_kernel_over_the_modernbert_vocabulary() {
    let (lens, vocab) = (vec![3u32, 6], 50368usize);
    let rows: u32 = lens.iter().sum();
    let logits = rand_vec(rows as usize * vocab, 5, 4.0);
    let (cu, _) = common::packed(&lens);
    let got = run_splade(
        &logits,
        &lens,
        vocab,
        4,
        SpladeMode::Max,
        SpladeActivation::Relu,
    );
    let want = splade::reference(&logits, &cu, vocab, SpladeMode::Max, SpladeActivation::Relu);
    assert_close("vocab 50368", &got, &want, 1e-6, 1e-5);
}
