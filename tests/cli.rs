//! The `wgbert` binary on a fixture model (a tiny random ModernBERT saved by transformers) with
//! a word-level tokenizer written by the test over the fixture's 512-token vocabulary.

mod common;

use assert_cmd::Command;
use common::model_dir::{fails_with, floats, model_dir, quiet_on_closed_stdout, succeeds, wgbert};
use serde_json::Value;

#[test]
fn fill_mask_json_lists_candidates_per_mask() {
    let dir = model_dir("mlm_v4");
    let lines = succeeds(wgbert(dir.path()).args([
        "--dtype",
        "f32",
        "fill-mask",
        "--json",
        "--top-k",
        "3",
        "w7 w8 [MASK] w9",
        "[MASK] w10 [MASK]",
    ]));
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
    fails_with(
        wgbert(dir.path()).args(["fill-mask", "w7 w8"]),
        1,
        &["no [MASK]"],
    );
}

#[test]
fn embed_jsonl_from_arguments_stdin_and_files() {
    let dir = model_dir("encoder_noprefix");
    let lines = succeeds(wgbert(dir.path()).args(["embed", "--normalize", "w5 w6", "w7"]));
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["index"], 0);
    assert_eq!(lines[1]["n_tokens"], 3);
    let v = floats(&lines[0]["embedding"]);
    assert_eq!(v.len(), 32);
    let norm: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");

    // stdin, one text per line; --pooling none gives every token.
    let lines = succeeds(
        wgbert(dir.path())
            .args(["embed", "--pooling", "none"])
            .write_stdin("w5 w6\nw9\n"),
    );
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
    let lines = succeeds(wgbert(dir.path()).args(["embed", "--input"]).arg(&input));
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
    let lines = succeeds(
        wgbert(dir.path()).args(["--dtype", "f32", "classify", "--json", "w5 w6 w7", "w9"]),
    );
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["logits"].as_array().unwrap().len(), 3);
    assert!(lines[0]["label"].is_string());
    let p = lines[0]["score"].as_f64().unwrap();
    assert!(p > 0.33 && p <= 1.0);
}

#[test]
fn classify_without_a_classifier_is_an_error() {
    let dir = model_dir("mlm_v4");
    fails_with(wgbert(dir.path()).args(["classify", "w5"]), 1, &["classif"]);
}

#[test]
fn bad_model_directory_and_options_fail_cleanly() {
    let mut c = Command::cargo_bin("wgbert").unwrap();
    fails_with(
        c.args(["--model", "./no/such/dir", "embed", "x"]),
        1,
        &["no/such/dir"],
    );
    let mut c = Command::cargo_bin("wgbert").unwrap();
    c.args(["embed", "--no-such-option"]).assert().failure();
    let dir = model_dir("encoder_noprefix");
    fails_with(
        wgbert(dir.path()).args(["embed", "--output", "/nonexistent-dir/out.jsonl", "w5"]),
        1,
        &["nonexistent-dir"],
    );
}

#[test]
fn info_json_lists_adapters() {
    let out = Command::cargo_bin("wgbert")
        .unwrap()
        .args(["info", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!v.as_array().unwrap().is_empty());
    assert!(
        v[0]["capabilities"]["max_storage_binding"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let dir = model_dir("mlm_v4");
    let workloads = dir.path().join("workloads.json");
    std::fs::write(&workloads, r#"{"tiny": [5, 3]}"#).unwrap();
    let texts: Vec<String> = (0..200)
        .map(|i| format!("w{} [MASK] w7", 5 + i % 400))
        .collect();
    let model = ["--model", dir.path().to_str().unwrap(), "--quiet"];
    let bench = [
        "bench",
        "--iters",
        "1",
        "--workloads",
        workloads.to_str().unwrap(),
    ];
    let runs: [Vec<&str>; 5] = [
        vec!["info", "--json"],
        vec!["info"],
        [&model[..], &["fill-mask", "--json"]].concat(),
        [&model[..], &["embed"]].concat(),
        [&model[..], &bench[..]].concat(),
    ];
    for args in runs {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wgbert"));
        cmd.args(&args).env("HF_HUB_OFFLINE", "1");
        if args.contains(&"fill-mask") || args.contains(&"embed") {
            cmd.args(&texts);
        }
        quiet_on_closed_stdout(&mut cmd);
    }
}

#[test]
fn info_is_quiet_on_a_machine_without_a_display() {
    // Backends as configured (Vulkan in CI), then all of them (GL through EGL too).
    for backend in [std::env::var("WGPU_BACKEND").ok(), None] {
        let mut cmd = Command::cargo_bin("wgbert").unwrap();
        cmd.env_remove("XDG_RUNTIME_DIR")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("DISPLAY")
            .env_remove("WGPU_BACKEND")
            .env("WGBERT_CACHE", tempfile::tempdir().unwrap().path())
            .arg("info");
        if let Some(b) = &backend {
            cmd.env("WGPU_BACKEND", b);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("XDG_RUNTIME_DIR") && !stderr.contains("error"),
            "backend {backend:?}: {stderr}"
        );
    }
}

#[test]
fn kernels_compile_creates_every_build_one_at_a_time() {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("wgbert")
        .unwrap()
        .env("WGBERT_CACHE", cache.path())
        .args(["kernels", "--compile", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let builds: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    // Each name on stderr just before its pipeline, in the JSON's order.
    let named: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("kernel ")?.split_once(": ").map(|(_, n)| n))
        .collect();
    let names: Vec<&str> = builds.iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(named, names);
    assert!(builds.iter().all(|b| b["ok"] == true), "{stderr}");
    let families: std::collections::BTreeSet<&str> = builds
        .iter()
        .map(|b| b["family"].as_str().unwrap())
        .collect();
    for f in [
        "matmul_tiled",
        "attention",
        "layernorm",
        "embedding",
        "pooling",
        "rope",
        "gather",
        "convert",
        "topk",
        "splade",
    ] {
        assert!(families.contains(f), "{f} missing from {families:?}");
    }
    // A tuned family's first run takes its default tile only: one per precision (and head
    // size), never a candidate that would be tuned first.
    let defaults = |family: &str| -> std::collections::BTreeSet<String> {
        let of = builds
            .iter()
            .filter(|b| b["family"] == family && b["default"] == true);
        of.map(|b| b["config"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        defaults("matmul_tiled").len(),
        1,
        "{:?}",
        defaults("matmul_tiled")
    );
    let attention: Vec<&Value> = builds
        .iter()
        .filter(|b| b["family"] == "attention" && b["default"] == true)
        .collect();
    let d64 = attention
        .iter()
        .filter(|b| b["name"].as_str().unwrap().contains("HEAD_DIM=64"));
    assert_eq!(d64.count(), 2, "one per precision");
    assert!(
        builds.iter().any(|b| b["default"] == false),
        "candidates are listed too"
    );
    // Nothing ran and nothing was written.
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
}
