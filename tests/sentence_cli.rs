//! `wgbert embed` and `wgbert rerank` on the sentence-transformers / PyLate fixtures
//! (tests/fixtures/{st_*,cross_encoder,colbert*}, written by scripts/make_st_fixtures.py).

mod common;

use common::model_dir::{expected as fixture, floats, json_lines, uints, wgbert};
use predicates::prelude::PredicateBooleanExt;
use serde_json::Value;

fn run_ok(dir: &std::path::Path, args: &[&str]) -> Vec<Value> {
    let out = wgbert(dir)
        .arg("--dtype")
        .arg("f32")
        .args(args)
        .assert()
        .success();
    json_lines(&out.get_output().stdout)
}

/// The strings of a JSON array.
fn strs(v: &Value) -> Vec<&str> {
    let list = v.as_array().expect("a JSON array");
    list.iter().map(|d| d.as_str().expect("a string")).collect()
}

/// `wgbert rerank --json FLAGS... --query QUERY DOCS...`: one line per document shown.
fn rerank_json(dir: &std::path::Path, flags: &[&str], query: &str, docs: &[&str]) -> Vec<Value> {
    let mut args = vec!["rerank", "--json"];
    args.extend(flags);
    args.extend(["--query", query]);
    args.extend(docs);
    run_ok(dir, &args)
}

#[test]
fn embed_follows_the_model_and_its_prompts() {
    let (dir, exp) = fixture("st_mean_dense");
    let text = exp["texts"][1].as_str().unwrap();
    let cases = exp["cases"].as_array().unwrap();
    for (args, case) in [
        (vec![], 0),
        (vec!["--prompt-name", "query"], 1),
        (vec!["--prompt", "rerank : "], 3),
    ] {
        let mut all = vec!["embed"];
        all.extend(args.iter().copied());
        all.push(text);
        let lines = run_ok(&dir, &all);
        assert_eq!(lines.len(), 1, "embed {args:?}: one line per text");
        let got: Vec<f32> = floats(&lines[0]["embedding"])
            .iter()
            .map(|&x| x as f32)
            .collect();
        let want = floats(&cases[case]["embeddings"][1]);
        common::assert_close(&format!("embed {args:?}"), &got, &want, 1e-4, 0.0);
    }
    let lines = run_ok(
        &dir,
        &[
            "embed",
            "--prompt-name",
            "query",
            "--dimensions",
            "8",
            "fish",
        ],
    );
    assert_eq!(lines[0]["embedding"].as_array().unwrap().len(), 8);
    assert_eq!(lines[0]["n_tokens"], 5, "the prompt's tokens count");
    let got: Vec<f32> = floats(&lines[0]["embedding"])
        .iter()
        .map(|&x| x as f32)
        .collect();
    common::assert_close(
        "truncate_dim",
        &got,
        &floats(&cases[4]["embeddings"][5]),
        1e-4,
        0.0,
    );
    // --pooling overrides the model: the encoder's own width, no Dense.
    let lines = run_ok(&dir, &["embed", "--pooling", "cls", "fish"]);
    assert_eq!(lines[0]["embedding"].as_array().unwrap().len(), 32);
}

#[test]
fn embed_refuses_what_the_model_lacks() {
    let (dir, _) = fixture("st_mean_dense");
    wgbert(&dir)
        .args(["embed", "--prompt-name", "passage", "fish"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("no prompt named 'passage'"));
    wgbert(&dir)
        .args(["embed", "--multi-vector", "query", "fish"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("not a ColBERT model"));
    let (dir, _) = fixture("cross_encoder");
    wgbert(&dir)
        .args(["embed", "fish"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("use rerank"));
}

#[test]
fn rerank_with_a_cross_encoder_sorts_by_score() {
    let (dir, exp) = fixture("cross_encoder");
    let docs = strs(&exp["documents"]);
    let query = exp["query"].as_str().unwrap();
    let lines = rerank_json(&dir, &[], query, &docs);
    let order: Vec<u64> = lines.iter().map(|l| l["index"].as_u64().unwrap()).collect();
    let want = uints(&exp["rank"]);
    assert_eq!(order, want);
    let scores = floats(&exp["scores"]);
    for l in &lines {
        let i = l["index"].as_u64().unwrap() as usize;
        assert_eq!(l["text"], docs[i]);
        assert!((l["score"].as_f64().unwrap() - scores[i]).abs() <= 1e-4);
    }
    let lines = rerank_json(&dir, &["--raw-scores", "--top-n", "2"], query, &docs);
    assert_eq!(lines.len(), 2);
    let raw = floats(&exp["raw_scores"]);
    let i = lines[0]["index"].as_u64().unwrap() as usize;
    assert!((lines[0]["score"].as_f64().unwrap() - raw[i]).abs() <= 1e-4);
}

#[test]
fn colbert_multi_vector_and_maxsim_rerank() {
    colbert_cli("colbert");
    colbert_cli("colbert_masked");
    // sentence-transformers' own layout goes the same way.
    colbert_cli("mve_native");
}

fn colbert_cli(name: &str) {
    let (dir, exp) = fixture(name);
    let q = exp["queries"][0].as_str().unwrap();
    let lines = run_ok(&dir, &["embed", "--multi-vector", "query", q]);
    let vectors = lines[0]["embedding"].as_array().unwrap();
    assert_eq!(vectors.len(), 12, "expanded to query_length");
    assert_eq!(lines[0]["n_tokens"], 12);
    let want = &exp["query_embeddings"][0];
    assert_eq!(
        want.as_array().unwrap().len(),
        12,
        "{name}: expected query vectors"
    );
    for (t, v) in vectors.iter().enumerate() {
        let got: Vec<f32> = floats(v).iter().map(|&x| x as f32).collect();
        common::assert_close(
            &format!("{name} token {t}"),
            &got,
            &floats(&want[t]),
            1e-4,
            0.0,
        );
    }
    let d = exp["documents"][0].as_str().unwrap();
    let lines = run_ok(&dir, &["embed", "--multi-vector", "document", d]);
    let n = exp["document_embeddings"][0].as_array().unwrap().len();
    assert_eq!(
        lines[0]["embedding"].as_array().unwrap().len(),
        n,
        "skiplist applied"
    );
    let lines = rerank_json(&dir, &[], q, &strs(&exp["documents"]));
    let scores = floats(&exp["rerank"]["scores"]);
    let best = (0..scores.len())
        .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
        .unwrap();
    assert_eq!(lines[0]["index"].as_u64().unwrap() as usize, best);
}

#[test]
fn a_broken_layout_exits_1_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let src = common::fixtures_dir().join("st_cls_oldkeys");
    for entry in std::fs::read_dir(&src).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    // 1_Pooling is not copied: its folder is missing.
    wgbert(dir.path())
        .args(["embed", "fish"])
        .assert()
        .code(1)
        .stderr(
            predicates::str::contains("1_Pooling").and(predicates::str::contains("missing folder")),
        );
}
