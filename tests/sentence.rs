//! Retrieval layouts against the libraries that define them: tiny random ModernBERTs saved by
//! sentence-transformers (bi-encoders, a cross-encoder) and PyLate (ColBERT), with the
//! outputs those libraries computed, written by `scripts/make_st_fixtures.py`. f32 results
//! within 1e-4; rankings equal wherever the reference scores differ by more than 1e-4. Broken
//! layouts fail at load with an error that names the problem.

mod common;

use std::path::Path;

use common::model_dir::{expected, floats, uints};
use serde_json::Value;
use wgbert::encoder::{EmbedOptions, Encoder, LoadOptions, Prompt, RerankOptions};
use wgbert::ops::DType;
use wgbert::sentence::ModelKind;

fn load(dir: &Path) -> wgbert::Result<Encoder> {
    let opts = LoadOptions {
        dtype: Some(DType::F32),
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

fn check_vectors(what: &str, got: &[Vec<f32>], want: &Value) {
    let want = want.as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: vector count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        common::assert_close(&format!("{what} vector {i}"), g, &floats(w), 1e-4, 0.0);
    }
}

/// Scores within 1e-4 and the order the reference's scores give (ties within 1e-4 may swap).
fn check_ranking(what: &str, ranked: &[wgbert::encoder::Ranked], want: &[f64]) {
    assert_eq!(ranked.len(), want.len(), "{what}: ranked count");
    let mut seen: Vec<usize> = ranked.iter().map(|r| r.index).collect();
    seen.sort_unstable();
    assert!(
        seen.iter().copied().eq(0..want.len()),
        "{what}: documents {seen:?}"
    );
    for r in ranked {
        let w = want[r.index];
        assert!(
            (r.score as f64 - w).abs() <= 1e-4,
            "{what}: doc {} score {} want {w}",
            r.index,
            r.score
        );
    }
    for pair in ranked.windows(2) {
        let (a, b) = (want[pair[0].index], want[pair[1].index]);
        assert!(
            a >= b - 1e-4,
            "{what}: doc {} ranked above doc {} ({a} < {b})",
            pair[0].index,
            pair[1].index
        );
    }
}

#[test]
fn bi_encoders_match_sentence_transformers() {
    for name in ["st_mean_dense", "st_cls_oldkeys", "st_mean_noprompt"] {
        let (dir, exp) = expected(name);
        let enc = load(&dir).unwrap();
        assert_eq!(enc.sentence_config().kind(), ModelKind::Embedder, "{name}");
        let texts = strings(&exp["texts"]);
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        for (c, case) in exp["cases"].as_array().unwrap().iter().enumerate() {
            let prompt = match (case["prompt_name"].as_str(), case["prompt"].as_str()) {
                (Some(n), _) => Prompt::Name(n.into()),
                (None, Some(t)) => Prompt::Text(t.into()),
                (None, None) => Prompt::ModelDefault,
            };
            let opts = EmbedOptions {
                prompt,
                dimensions: case["truncate_dim"].as_u64().map(|d| d as usize),
                normalize: case["normalize_embeddings"].as_bool().unwrap_or(false),
                pooling: None,
            };
            let got: Vec<Vec<f32>> = enc
                .embed_with(&refs, &opts)
                .unwrap()
                .into_iter()
                .map(|e| {
                    assert_eq!(e.vectors.len(), 1, "{name} case {c}: one vector per text");
                    e.vectors.into_iter().next().unwrap()
                })
                .collect();
            check_vectors(
                &format!(
                    "{name} case {c} (prompt_name {}, prompt {}, truncate_dim {})",
                    case["prompt_name"], case["prompt"], case["truncate_dim"]
                ),
                &got,
                &case["embeddings"],
            );
        }
        let rr = &exp["rerank"];
        let docs = strings(&rr["documents"]);
        let doc_refs: Vec<&str> = docs.iter().map(String::as_str).collect();
        let ranked = enc
            .rerank(
                rr["query"].as_str().unwrap(),
                &doc_refs,
                &RerankOptions::default(),
            )
            .unwrap();
        check_ranking(&format!("{name} rerank"), &ranked, &floats(&rr["scores"]));
    }
}

#[test]
fn prompts_change_the_vectors_and_n_tokens_counts_them() {
    let (dir, _) = expected("st_mean_dense");
    let enc = load(&dir).unwrap();
    let with = |prompt: Prompt| {
        let opts = EmbedOptions {
            prompt,
            ..Default::default()
        };
        enc.embed_with(&["fish"], &opts).unwrap().remove(0)
    };
    let plain = with(Prompt::ModelDefault);
    let query = with(Prompt::Name("query".into()));
    assert_eq!(plain.n_tokens, 3);
    assert_eq!(query.n_tokens, 5, "[CLS] search_query : fish [SEP]");
    assert_ne!(plain.vectors, query.vectors);
    let sc = enc.sentence_config();
    assert_eq!(sc.prompt("document").unwrap(), "search_document : ");
    assert_eq!(sc.output_dim(32), 16);
    assert!(sc.normalize);
}

#[test]
fn cross_encoder_matches_cross_encoder_predict() {
    let (dir, exp) = expected("cross_encoder");
    let enc = load(&dir).unwrap();
    assert_eq!(enc.sentence_config().kind(), ModelKind::CrossEncoder);
    let docs = strings(&exp["documents"]);
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let query = exp["query"].as_str().unwrap();
    let ranked = enc.rerank(query, &refs, &RerankOptions::default()).unwrap();
    check_ranking("cross-encoder", &ranked, &floats(&exp["scores"]));
    let order: Vec<u64> = ranked.iter().map(|r| r.index as u64).collect();
    let want = uints(&exp["rank"]);
    assert_eq!(order, want, "CrossEncoder.rank order");
    let raw = RerankOptions {
        raw_scores: true,
        top_n: Some(2),
    };
    let top = enc.rerank(query, &refs, &raw).unwrap();
    assert_eq!(top.len(), 2);
    let raw_want = floats(&exp["raw_scores"]);
    for r in &top {
        assert!(
            (r.score as f64 - raw_want[r.index]).abs() <= 1e-4,
            "raw score of doc {}",
            r.index
        );
    }
    let e = enc
        .embed_with(&["fish"], &EmbedOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("cross-encoder"), "{e}");
}

#[test]
fn colbert_matches_pylate() {
    colbert_case("colbert");
}

/// `attend_to_expansion_tokens: false`: the [MASK] expansion attends to the query's tokens,
/// nothing attends to it (key-limited attention).
#[test]
fn colbert_with_unattended_expansion_matches_pylate() {
    colbert_case("colbert_masked");
}

/// sentence-transformers' own multi-vector layout (MultiVectorEncoder): prompts as text,
/// the Transformer's document_length and query expansion (fixed, not attended), Dense
/// without bias, MultiVectorMask's skiplist, Normalize. Besides the vectors within 1e-4:
/// each vector's cosine with the reference >= 0.9999.
#[test]
fn native_multi_vector_layout_matches_multi_vector_encoder() {
    let name = "mve_native";
    colbert_case(name);
    let (dir, exp) = expected(name);
    let enc = load(&dir).unwrap();
    let cb = enc.sentence_config().colbert.clone().unwrap();
    assert_eq!(
        cb.layout,
        wgbert::sentence::MultiVectorLayout::SentenceTransformers
    );
    assert_eq!(cb.document_length, Some(10));
    assert_eq!(cb.query_length, None, "absent: no query length");
    let e = cb.expansion.clone().unwrap();
    assert!(e.fixed && !e.attend && e.token.is_none() && e.length == 12);
    assert!(cb.skip_documents && !cb.skip_queries && cb.keep_only_token_ids.is_none());
    assert_eq!(exp["similarity_fn_name"], "maxsim");
    let texts = strings(&exp["documents"]);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = enc.embed_multi(&refs, false).unwrap();
    for (i, (g, w)) in got
        .iter()
        .zip(exp["document_embeddings"].as_array().unwrap())
        .enumerate()
    {
        for (j, (gv, wv)) in g.vectors.iter().zip(w.as_array().unwrap()).enumerate() {
            let wv = floats(wv);
            let dot: f64 = gv.iter().zip(&wv).map(|(&a, b)| a as f64 * b).sum();
            let n = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
            let gn: Vec<f64> = gv.iter().map(|&x| x as f64).collect();
            let cos = dot / (n(&gn) * n(&wv));
            assert!(cos >= 0.9999, "document {i} vector {j}: cosine {cos}");
        }
    }
}

/// What the native layout's MultiVectorMask and query expansion settings do, on copies of the
/// fixture: queries skiplisted too, only some ids kept in documents, the "min" strategy.
#[test]
fn native_multi_vector_settings_are_followed() {
    let (_, exp) = expected("mve_native");
    let docs = strings(&exp["documents"]);
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let base = load(&common::fixtures_dir().join("mve_native")).unwrap();
    let tok = base.tokenizer().unwrap();
    let the = tok.token_to_id("the").unwrap();
    let capital = tok.token_to_id("capital").unwrap();
    let query = "what is the capital of france ?";

    let dir = copy_fixture("mve_native");
    edit_json(&dir.path().join("2_MultiVectorMask/config.json"), |v| {
        v["skiplist_tasks"] = serde_json::json!(["query", "document"]);
        v["keep_only_token_ids"] = serde_json::json!([capital]);
    });
    let enc = load(dir.path()).unwrap();
    let q_ids = enc.multi_tokens(&[query], true, 0).unwrap();
    assert!(q_ids[0].contains(&the));
    let q = enc.embed_multi(&[query], true).unwrap();
    let q_base = base.embed_multi(&[query], true).unwrap();
    let n_the = q_ids[0].iter().filter(|&&i| i == the).count();
    assert_eq!(
        q[0].vectors.len() + n_the,
        q_base[0].vectors.len(),
        "queries skip 'the'"
    );
    let d = enc.embed_multi(&refs, false).unwrap();
    let d_ids = enc.multi_tokens(&refs, false, 0).unwrap();
    for (v, ids) in d.iter().zip(&d_ids) {
        let n = ids.iter().filter(|&&i| i == capital).count();
        assert_eq!(v.vectors.len(), n, "documents keep only 'capital'");
    }

    // "min": short queries are filled up to the length, long ones are not cut to it.
    let dir = copy_fixture("mve_native");
    edit_json(&dir.path().join("sentence_bert_config.json"), |v| {
        v["query_expansion"]["strategy"] = "min".into();
        v["query_expansion"]["length"] = 7.into();
    });
    let enc = load(dir.path()).unwrap();
    let ids = enc.multi_tokens(&["fish", query], true, 0).unwrap();
    let mask = tok.mask_id().unwrap();
    // [CLS] query : fish [SEP] [MASK] [MASK]
    assert_eq!(ids[0].len(), 7, "{:?}", ids[0]);
    assert_eq!(&ids[0][5..], &[mask, mask]);
    assert_eq!(ids[1].len(), 11, "not cut: {:?}", ids[1]);
    assert!(!ids[1].contains(&mask), "{:?}", ids[1]);

    // Token pooling modules other than HierarchicalTokenPooling are refused, by name.
    let dir = copy_fixture("mve_native");
    edit_json(&dir.path().join("modules.json"), |v| {
        v.as_array_mut().unwrap().push(serde_json::json!({
            "idx": 4, "name": "4", "path": "4_Pool",
            "type": "my_package.KMeansTokenPooling"
        }));
    });
    let e = load_error(dir.path());
    assert!(e.contains("KMeansTokenPooling"), "{e}");
    edit_json(&dir.path().join("modules.json"), |v| {
        v[4]["type"] =
            "sentence_transformers.multi_vector_encoder.modules.token_pooling.LambdaTokenPooling"
                .into();
    });
    let e = load_error(dir.path());
    assert!(
        e.contains("LambdaTokenPooling") && e.contains("token pooling"),
        "{e}"
    );
    // A bad expansion is refused at load, naming the key.
    let dir = copy_fixture("mve_native");
    edit_json(&dir.path().join("sentence_bert_config.json"), |v| {
        v["query_expansion"]["strategy"] = "all".into();
    });
    let e = load_error(dir.path());
    assert!(
        e.contains("query_expansion") && e.contains("strategy"),
        "{e}"
    );
}

fn colbert_case(name: &str) {
    let (dir, exp) = expected(name);
    let enc = load(&dir).unwrap();
    assert_eq!(enc.sentence_config().kind(), ModelKind::Colbert);
    for (key, emb_key, query) in [
        ("queries", "query_embeddings", true),
        ("documents", "document_embeddings", false),
    ] {
        let texts = strings(&exp[key]);
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let got = enc.embed_multi(&refs, query).unwrap();
        let want = exp[emb_key].as_array().unwrap();
        assert_eq!(got.len(), texts.len(), "{name} {key}: embedding count");
        assert_eq!(want.len(), texts.len(), "{name} {key}: expected embeddings");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            check_vectors(&format!("{name} {key} {i}"), &g.vectors, w);
        }
    }
    let docs = strings(&exp["documents"]);
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let query = exp["rerank"]["query"].as_str().unwrap();
    let ranked = enc.rerank(query, &refs, &RerankOptions::default()).unwrap();
    check_ranking(
        &format!("{name} MaxSim"),
        &ranked,
        &floats(&exp["rerank"]["scores"]),
    );
}

/// A copy of a fixture (folders included) to break.
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let p = entry.unwrap().path();
            let dest = to.join(p.file_name().unwrap());
            if p.is_dir() {
                copy(&p, &dest);
            } else {
                std::fs::copy(&p, &dest).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&common::fixtures_dir().join(name), dir.path());
    dir
}

fn edit_json(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

fn load_error(dir: &Path) -> String {
    match load(dir) {
        Ok(_) => panic!("a broken layout loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn broken_layouts_fail_with_clear_errors() {
    let d = copy_fixture("st_mean_dense");
    std::fs::remove_dir_all(d.path().join("2_Dense")).unwrap();
    let e = load_error(d.path());
    assert!(e.contains("2_Dense") && e.contains("missing folder"), "{e}");

    let d = copy_fixture("st_mean_dense");
    edit_json(&d.path().join("2_Dense/config.json"), |v| {
        v["out_features"] = 12.into()
    });
    let e = load_error(d.path());
    assert!(
        e.contains("linear.weight has shape [16, 32]") && e.contains("[12, 32]"),
        "{e}"
    );

    let d = copy_fixture("st_mean_dense");
    edit_json(&d.path().join("2_Dense/config.json"), |v| {
        v["activation_function"] = "torch.nn.modules.activation.GELU".into()
    });
    let e = load_error(d.path());
    assert!(
        e.contains("unsupported activation_function 'torch.nn.modules.activation.GELU'"),
        "{e}"
    );

    let d = copy_fixture("st_mean_dense");
    edit_json(&d.path().join("modules.json"), |v| {
        v[1]["type"] = "sentence_transformers.models.WeightedLayerPooling".into()
    });
    let e = load_error(d.path());
    assert!(
        e.contains("unsupported module type 'WeightedLayerPooling'"),
        "{e}"
    );

    let d = copy_fixture("st_mean_dense");
    edit_json(&d.path().join("modules.json"), |v| {
        v[2]["type"] = "my_package.Projection".into()
    });
    let e = load_error(d.path());
    assert!(
        e.contains("unknown module type 'my_package.Projection'"),
        "{e}"
    );

    let d = copy_fixture("st_mean_dense");
    let dense = d.path().join("2_Dense");
    std::fs::rename(
        dense.join("model.safetensors"),
        dense.join("pytorch_model.bin"),
    )
    .unwrap();
    let e = load_error(d.path());
    assert!(e.contains("only pytorch_model.bin"), "{e}");

    let (dir, _) = expected("st_mean_dense");
    let enc = load(&dir).unwrap();
    let opts = EmbedOptions {
        prompt: Prompt::Name("passage".into()),
        ..Default::default()
    };
    let e = enc.embed_with(&["fish"], &opts).unwrap_err().to_string();
    assert!(
        e.contains("no prompt named 'passage'") && e.contains("document, query"),
        "{e}"
    );
}
