//! Real client libraries against `wgbert serve`, unchanged, as users point them at a TEI
//! server: huggingface_hub's `InferenceClient` at the root URL (`feature_extraction`,
//! `sentence_similarity`, `text_classification`, `fill_mask`) and `openai`. Each answer must
//! equal the server's own named routes (which tests/serve.rs checks against the CLI).
//! The clients run in Python (tests/clients/tei_clients.py) from the interpreter that
//! `WGBERT_CLIENTS_PYTHON` names (`.ci/run` makes a venv from tests/clients/requirements.txt).

mod common;
mod serve_util;

use std::path::PathBuf;
use std::process::Command;

use common::model_dir::model_dir;
use serde_json::{Value, json};
use serve_util::{Server, assert_json_close};

const TOL: f64 = 1e-5;

/// The clients' answers for `kind`, or `None` (skipped, counted) without an interpreter.
fn clients(s: &Server, kind: &str) -> Option<Value> {
    if !common::require(
        common::Cap::Clients,
        "huggingface_hub and openai against the server",
    ) {
        return None;
    }
    let python = PathBuf::from(std::env::var_os("WGBERT_CLIENTS_PYTHON")?);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/tei_clients.py");
    let out = Command::new(&python)
        .arg(&script)
        .args([s.base.as_str(), kind])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "{kind} clients failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("the clients print JSON"))
}

#[test]
fn huggingface_hub_and_openai_get_what_the_routes_give() {
    let dir = model_dir("encoder_noprefix");
    let s = Server::start(dir.path(), &["--dtype", "f32"], &[]);
    let Some(got) = clients(&s, "embedder") else {
        return;
    };
    let embed = s.ok("/embed", &json!({ "inputs": ["w5 w6 w7"] }));
    assert_json_close(
        &got["feature_extraction"],
        &embed,
        TOL,
        "feature_extraction",
    );
    let sim = s.ok(
        "/similarity",
        &json!({ "inputs": { "source_sentence": "w5 w6", "sentences": ["w5 w7", "w9 w10 w11"] } }),
    );
    assert_json_close(
        &got["sentence_similarity"],
        &sim,
        TOL,
        "sentence_similarity",
    );
    let both = s.ok("/embed", &json!({ "inputs": ["w5 w6 w7", "w8"] }));
    assert_json_close(&got["openai"], &both, TOL, "openai embeddings");
    assert!(s.terminate().success());

    let dir = model_dir("cls_mean");
    let s = Server::start(dir.path(), &["--dtype", "f32"], &[]);
    let got = clients(&s, "classifier").expect("the interpreter was found above");
    let predict = s.ok("/predict", &json!({ "inputs": "w5 w6 w7" }));
    assert_eq!(predict.as_array().unwrap().len(), 3);
    assert_json_close(
        &got["text_classification"],
        &predict,
        TOL,
        "text_classification",
    );
    assert_json_close(
        &got["text_classification_top1"],
        &json!([predict[0]]),
        TOL,
        "text_classification top_k=1",
    );
    assert!(s.terminate().success());

    let dir = model_dir("mlm_v4");
    let s = Server::start(dir.path(), &["--dtype", "f32"], &[]);
    let got = clients(&s, "mlm").expect("the interpreter was found above");
    for (key, k) in [("fill_mask", 5), ("fill_mask_top3", 3)] {
        let ours = s.ok(
            "/fill-mask",
            &json!({ "inputs": "w5 [MASK] w7", "top_k": k }),
        );
        let want: Vec<Value> = ours[0]["masks"][0]["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                json!({ "score": c["score"], "token": c["token_id"], "token_str": c["token"],
                        "sequence": c["sequence"] })
            })
            .collect();
        assert_eq!(want.len(), k);
        assert_json_close(&got[key], &json!(want), TOL, key);
    }
    assert!(s.terminate().success());
}
