//! The `wgbert` binary on a fixture model (a tiny random ModernBERT saved by transformers) with
//! a word-level tokenizer written by the test over the fixture's 512-token vocabulary.

mod common;

use assert_cmd::Command;
use common::model_dir::{json_lines, model_dir, wgbert};
use serde_json::Value;

#[test]
fn fill_mask_json_lists_candidates_per_mask() {
    let dir = model_dir("mlm_v4");
    let out = wgbert(dir.path())
        .args([
            "--dtype",
            "f32",
            "fill-mask",
            "--json",
            "--top-k",
            "3",
            "w7 w8 [MASK] w9",
            "[MASK] w10 [MASK]",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["text"], "w7 w8 [MASK] w9");
    let masks = lines[0]["masks"].as_array().unwrap();
    assert_eq!(masks.len(), 1);
    assert_eq!(
        masks[0]["position"], 3,
        "[CLS] w7 w8 [MASK]: the mask is token 3"
    );
    let cands = masks[0]["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), 3);
    let scores: Vec<f64> = cands.iter().map(|c| c["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(cands[0]["sequence"].as_str().unwrap().starts_with("w7 w8 "));
    assert_eq!(lines[1]["masks"].as_array().unwrap().len(), 2);
}

#[test]
fn fill_mask_without_mask_fails_with_a_message() {
    let dir = model_dir("mlm_v4");
    wgbert(dir.path())
        .args(["fill-mask", "w7 w8"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("no [MASK]"));
}

#[test]
fn embed_jsonl_from_arguments_stdin_and_files() {
    let dir = model_dir("encoder_noprefix");
    let out = wgbert(dir.path())
        .args(["embed", "--normalize", "w5 w6", "w7"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["index"], 0);
    assert_eq!(lines[1]["n_tokens"], 3);
    let v: Vec<f64> = lines[0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(v.len(), 32);
    let norm: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");

    // stdin, one text per line; --pooling none gives every token.
    let out = wgbert(dir.path())
        .args(["embed", "--pooling", "none"])
        .write_stdin("w5 w6\nw9\n")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0]["embedding"].as_array().unwrap().len(),
        4,
        "[CLS] w5 w6 [SEP]"
    );

    // JSONL input carries other fields; npy output.
    let input = dir.path().join("docs.jsonl");
    std::fs::write(
        &input,
        "{\"text\": \"w5 w6\", \"id\": \"a\"}\n{\"text\": \"w8\", \"id\": \"b\"}\n",
    )
    .unwrap();
    let out = wgbert(dir.path())
        .args(["embed", "--input"])
        .arg(&input)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let lines = json_lines(&out);
    assert_eq!(lines[1]["id"], "b");
    let npy = dir.path().join("e.npy");
    wgbert(dir.path())
        .args(["embed", "--format", "npy", "--output"])
        .arg(&npy)
        .arg("--input")
        .arg(&input)
        .assert()
        .success();
    let bytes = std::fs::read(&npy).unwrap();
    assert!(String::from_utf8_lossy(&bytes[..256]).contains("(2, 32)"));
    assert_eq!(bytes.len(), 256 + 2 * 32 * 4);
}

#[test]
fn classify_json_gives_label_score_logits() {
    let dir = model_dir("cls_mean");
    let out = wgbert(dir.path())
        .args(["--dtype", "f32", "classify", "--json", "w5 w6 w7", "w9"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["logits"].as_array().unwrap().len(), 3);
    assert!(lines[0]["label"].is_string());
    let p = lines[0]["score"].as_f64().unwrap();
    assert!(p > 0.33 && p <= 1.0);
}

#[test]
fn classify_without_a_classifier_is_an_error() {
    let dir = model_dir("mlm_v4");
    wgbert(dir.path())
        .args(["classify", "w5"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("classif"));
}

#[test]
fn bad_model_directory_and_options_fail_cleanly() {
    let mut c = Command::cargo_bin("wgbert").unwrap();
    c.args(["--model", "./no/such/dir", "embed", "x"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("no/such/dir"));
    let mut c = Command::cargo_bin("wgbert").unwrap();
    c.args(["embed", "--no-such-option"]).assert().failure();
    let dir = model_dir("encoder_noprefix");
    wgbert(dir.path())
        .args(["embed", "--output", "/nonexistent-dir/out.jsonl", "w5"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("nonexistent-dir"));
}

#[test]
fn info_json_lists_adapters() {
    let out = Command::cargo_bin("wgbert")
        .unwrap()
        .args(["info", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert!(!v.as_array().unwrap().is_empty());
    assert!(
        v[0]["capabilities"]["max_storage_binding"]
            .as_u64()
            .unwrap()
            > 0
    );
}
