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

/// What grpcio got from `wgbert serve --grpc-port` for `kind` (tests/clients/grpc_client.py),
/// or `None` (skipped, counted) without the client libraries.
fn grpc_clients(s: &Server, kind: &str, key: Option<&str>) -> Option<Value> {
    let python = serve_util::clients_python("grpcio against the gRPC services")?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = s.grpc.clone().expect("the server's gRPC address");
    let mut cmd = Command::new(&python);
    cmd.arg(root.join("tests/clients/grpc_client.py")).args([
        target.as_str(),
        root.join("proto").to_str().unwrap(),
        kind,
    ]);
    if let Some(k) = key {
        cmd.arg(k);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "{kind} gRPC client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("the client prints JSON"))
}

/// TEI's gRPC services answer as the HTTP routes do: grpcio with stubs compiled from
/// proto/tei.proto, on an embedder (with an API key), a classifier (texts and pairs), a
/// reranker and a sparse encoder, unary and streaming calls; errors as TEI's statuses.
#[test]
fn grpcio_gets_what_the_http_routes_give() {
    let grpc = ["--grpc-port", "0"];
    let dir = model_dir("encoder_noprefix");
    let mut s = Server::start(
        dir.path(),
        &["--dtype", "f32"],
        &[&grpc[..], &["--api-key", "k"]].concat(),
    );
    let Some(got) = grpc_clients(&s, "embedder", Some("k")) else {
        return;
    };
    s.key = Some("k".into());
    assert_eq!(got["info"]["model_type"], "MODEL_TYPE_EMBEDDING", "{got}");
    assert_eq!(got["info"]["max_client_batch_size"], 32);
    assert_eq!(got["no_key"]["code"], "UNAUTHENTICATED", "{got}");
    let http = s.ok("/embed", &json!({ "inputs": "w5 w6 w7", "truncate": true }));
    assert_json_close(&got["embed"], &http[0], TOL, "Embed");
    assert_eq!(got["embed_tokens"], 5);
    let http = s.ok(
        "/embed",
        &json!({ "inputs": "w5 w6", "normalize": false, "dimensions": 8 }),
    );
    assert_json_close(
        &got["embed_raw8"],
        &http[0],
        TOL,
        "Embed, raw, 8 dimensions",
    );
    let http = s.ok("/embed", &json!({ "inputs": ["w5", "w6 w7", "w8 w9 w10"] }));
    assert_json_close(&got["embed_stream"], &http, TOL, "EmbedStream");
    let http = s.ok("/embed_all", &json!({ "inputs": "w5 w6" }));
    assert_json_close(&got["embed_all"], &http[0], TOL, "EmbedAll");
    assert_eq!(got["empty"]["code"], "INVALID_ARGUMENT", "{got}");
    let http = s.ok("/tokenize", &json!({ "inputs": "w5 w6" }));
    assert_eq!(got["tokenize"], http[0], "Tokenize");
    assert_eq!(got["decode"], "w5 w6");
    assert_eq!(
        got["predict_wrong_task"]["code"], "FAILED_PRECONDITION",
        "{got}"
    );
    assert!(s.terminate().success());

    let dir = model_dir("cls_mean");
    let s = Server::start(dir.path(), &["--dtype", "f32"], &grpc);
    let got = grpc_clients(&s, "classifier", None).expect("found above");
    assert_eq!(got["info"]["model_type"], "MODEL_TYPE_CLASSIFIER", "{got}");
    let http = s.ok("/predict", &json!({ "inputs": "w5 w6 w7" }));
    assert_json_close(&got["predict"], &http, TOL, "Predict");
    let http = s.ok("/predict", &json!({ "inputs": ["w5 w6", "w7 w8"] }));
    assert_json_close(&got["predict_pair"], &http, TOL, "PredictPair");
    let http = s.ok(
        "/predict",
        &json!({ "inputs": "w5 w6 w7", "raw_scores": true }),
    );
    assert_json_close(&got["predict_raw"], &http, TOL, "Predict raw");
    let http = s.ok(
        "/predict",
        &json!({ "inputs": [["w5", "w6"], ["w7", "w8 w9"]] }),
    );
    assert_json_close(&got["predict_stream"], &http, TOL, "PredictPairStream");
    assert_eq!(got["bad_pair"]["code"], "INVALID_ARGUMENT", "{got}");
    assert!(s.terminate().success());

    let dir = serve_util::reranker_dir();
    let s = Server::start(dir.path(), &["--dtype", "f32"], &grpc);
    let got = grpc_clients(&s, "reranker", None).expect("found above");
    assert_eq!(got["info"]["model_type"], "MODEL_TYPE_RERANKER", "{got}");
    let http = s.ok(
        "/rerank",
        &json!({ "query": "w5 w6", "texts": ["w6 w7", "w8", "w9"], "return_text": true }),
    );
    assert_json_close(&got["rerank"], &http, TOL, "Rerank");
    assert_json_close(&got["rerank_stream"], &http, TOL, "RerankStream");
    assert!(s.terminate().success());

    let dir = common::fixtures_dir().join("splade_max");
    let s = Server::start(&dir, &["--dtype", "f32"], &grpc);
    let got = grpc_clients(&s, "sparse", None).expect("found above");
    let http = s.ok("/embed_sparse", &json!({ "inputs": "w5 w6 w7" }));
    assert_json_close(&got["embed_sparse"], &http[0], TOL, "EmbedSparse");
    assert!(s.terminate().success());
}
