//! `wgbert serve` over real HTTP on the fixture models: every route, its answers against the
//! CLI's on the same texts, every error status; in `lifecycle`, load shedding and graceful
//! shutdown.

mod common;
#[path = "serve/lifecycle.rs"]
mod lifecycle;
mod serve_util;

use common::model_dir::model_dir;
use serde_json::{Value, json};
use serve_util::{Server, assert_json_close, cli_lines, floats, reranker_dir};

const TOL: f64 = 1e-5;

#[test]
fn routes_answer_like_the_cli() {
    let dir = model_dir("mlm_v4");
    let s = Server::start(dir.path(), &["--dtype", "f32"], &[]);
    assert_eq!(s.get("/health").0, 200);
    let (status, info) = s.get("/info");
    assert_eq!(status, 200);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["model_dtype"], "float32");
    assert_eq!(info["max_input_length"], 512);
    assert_eq!(
        info["model_type"],
        json!({"embedding": {"pooling": "mean"}})
    );
    assert!(
        info["task"]
            .as_str()
            .unwrap()
            .contains("masked language model")
    );

    let texts = ["w5 w6", "w7 w8 w9 w10"];
    // /embed = `wgbert embed --normalize` (mean pooling).
    let got = s.ok("/embed", &json!({ "inputs": texts }));
    let want = cli_lines(
        dir.path(),
        &["--dtype", "f32", "embed", "--normalize", texts[0], texts[1]],
    );
    for (i, w) in want.iter().enumerate() {
        assert_json_close(&got[i], &w["embedding"], TOL, &format!("/embed {i}"));
    }
    let one = s.ok("/embed", &json!({ "inputs": texts[1] }));
    assert_json_close(&one[0], &got[1], TOL, "a single text");
    // Token ids as TEI takes them, alone or beside texts ([CLS] w5 w6 [SEP] is "w5 w6").
    let ids = s.ok("/embed", &json!({ "inputs": [1, 5, 6, 2] }));
    assert_json_close(&ids[0], &got[0], TOL, "/embed ids");
    let mixed = json!({ "inputs": [json!([1, 5, 6, 2]), json!(texts[1])] });
    assert_json_close(&s.ok("/embed", &mixed), &got, TOL, "/embed ids and a text");
    let raw = s.ok("/embed", &json!({ "inputs": texts[0], "normalize": false }));
    let norm: f64 = floats(&raw[0]).iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!(
        (norm - 1.0).abs() > 1e-3,
        "normalize: false keeps the norm ({norm})"
    );

    // /embed_all = `wgbert embed --pooling none`.
    let got = s.ok("/embed_all", &json!({ "inputs": texts }));
    let want = cli_lines(
        dir.path(),
        &[
            "--dtype",
            "f32",
            "embed",
            "--pooling",
            "none",
            texts[0],
            texts[1],
        ],
    );
    for (i, w) in want.iter().enumerate() {
        assert_json_close(&got[i], &w["embedding"], TOL, &format!("/embed_all {i}"));
    }
    let ids = json!({ "inputs": [[1, 5, 6, 2], [1, 7, 8, 9, 10, 2]] });
    assert_json_close(&s.ok("/embed_all", &ids), &got, TOL, "/embed_all ids");

    // /fill-mask = `wgbert fill-mask --json`.
    let masked = ["w7 w8 [MASK] w9", "[MASK] w10 [MASK]"];
    let got = s.ok("/fill-mask", &json!({ "inputs": masked, "top_k": 3 }));
    let args = ["--dtype", "f32", "fill-mask", "--json", "--top-k", "3"];
    let want = cli_lines(dir.path(), &[&args[..], &masked].concat());
    assert_json_close(&got, &json!(want), TOL, "/fill-mask");

    // OpenAI: the same vectors as /embed, in floats or base64; usage counts tokens.
    let v = s.ok("/v1/embeddings", &json!({ "input": texts, "model": "m" }));
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "m");
    assert_eq!(v["usage"]["prompt_tokens"], 4 + 6);
    let tei = s.ok("/embed", &json!({ "inputs": texts }));
    for i in 0..2 {
        assert_eq!(v["data"][i]["index"], i);
        assert_json_close(&v["data"][i]["embedding"], &tei[i], TOL, "openai");
    }
    let b = s.ok(
        "/embeddings",
        &json!({ "input": texts[0], "model": "m", "encoding_format": "base64" }),
    );
    let bytes = base64_decode(b["data"][0]["embedding"].as_str().unwrap());
    let from_b64: Vec<f64> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
        .collect();
    assert_json_close(&json!(from_b64), &tei[0], TOL, "base64");
    // Token ids as given: [CLS] w5 w6 [SEP] is the text "w5 w6".
    let ids = s.ok(
        "/v1/embeddings",
        &json!({ "input": [1, 5, 6, 2], "model": "m" }),
    );
    assert_json_close(&ids["data"][0]["embedding"], &tei[0], TOL, "token ids");
    let short = s.ok(
        "/v1/embeddings",
        &json!({ "input": texts[0], "model": "m", "dimensions": 8 }),
    );
    let d = floats(&short["data"][0]["embedding"]);
    assert_eq!(d.len(), 8);
    assert!((d.iter().map(|x| x * x).sum::<f64>().sqrt() - 1.0).abs() < 1e-4);

    // /tokenize.
    let t = s.ok("/tokenize", &json!({ "inputs": "w5 w6" }));
    let toks = t[0].as_array().unwrap();
    let ids: Vec<u64> = toks.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1, 5, 6, 2]);
    assert_eq!(toks[0]["special"], true);
    assert_eq!(
        toks[2],
        json!({"id": 6, "text": "w6", "special": false, "start": 3, "stop": 5})
    );
    let bare = s.ok(
        "/tokenize",
        &json!({ "inputs": ["w5"], "add_special_tokens": false }),
    );
    assert_eq!(bare[0].as_array().unwrap().len(), 1);

    let (status, metrics) = s.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("wgbert_requests_total{route=\"/embed\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("wgbert_gpu_seconds_count"), "{metrics}");
    assert!(s.terminate().success());
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

#[test]
fn every_error_status_and_the_server_stays_up() {
    let dir = model_dir("mlm_v4");
    let mut s = Server::start_with_env(
        dir.path(),
        &[],
        &["--max-client-batch-size", "4", "--api-key", "secret"],
        &[("WGBERT_TEST_FAULTS", "fail:77")],
    );
    // 401 without the key, except on /health; both dialects.
    let (status, body) = s.post_raw("/embed", r#"{"inputs": "w5"}"#);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"error_type\":\"Unauthorized\""), "{body}");
    let (status, body) = s.post_raw("/v1/embeddings", r#"{"input": "w5", "model": "m"}"#);
    assert_eq!(status, 401);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["type"], "authentication_error", "{body}");
    assert_eq!(s.get("/health").0, 200);
    s.key = Some("secret".into());

    // 400: malformed JSON (axum's `Json` answers so in TEI); 422: wrong types; 415: a body
    // that does not say it is JSON. OpenAI's body on OpenAI routes.
    let (status, body) = s.post_raw("/embed", "{not json");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"error_type\":\"Validation\""), "{body}");
    let (status, body) =
        s.request_with("POST", "/embed", Some("{\"inputs\": \"w5\"}"), "text/plain");
    assert_eq!(status, 415, "{body}");
    s.fails("/embed", &json!({ "inputs": 5 }), 422);
    s.fails(
        "/fill-mask",
        &json!({ "inputs": "[MASK]", "top_k": "many" }),
        422,
    );
    let (status, v) = s.post(
        "/v1/embeddings",
        &json!({ "input": [1, "a"], "model": "m" }),
    );
    assert_eq!(status, 422);
    assert!(
        v["error"]["message"].is_string() && v["error"]["code"] == "validation",
        "{v}"
    );
    // 400: empty inputs; 422: bad values (TEI's Validation); 424: a route the model has no
    // head for (TEI's Backend).
    s.fails("/embed", &json!({ "inputs": [] }), 400);
    s.fails("/embed", &json!({ "inputs": "" }), 400);
    let (status, v) = s.post("/v1/embeddings", &json!({ "input": [], "model": "m" }));
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("empty")),
        "{v}"
    );
    let (status, v) = s.post(
        "/v1/embeddings",
        &json!({ "input": [1, 900, 2], "model": "m" }),
    );
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("vocabulary"),
        "{v}"
    );
    let m = s.fails(
        "/embed",
        &json!({ "inputs": "w5", "prompt_name": "query" }),
        422,
    );
    assert!(m.contains("prompt"), "{m}");
    let m = s.fails("/embed", &json!({ "inputs": "w5", "dimensions": 0 }), 422);
    assert!(m.contains("dimensions"), "{m}");
    let m = s.fails("/fill-mask", &json!({ "inputs": "w5 w6" }), 422);
    assert!(m.contains("[MASK]"), "{m}");
    let m = s.fails("/rerank", &json!({ "query": "w5", "texts": ["w6"] }), 424);
    assert!(m.contains("masked language model"), "{m}");
    let m = s.fails("/predict", &json!({ "inputs": "w5" }), 424);
    assert!(m.contains("masked language model"), "{m}");
    // 422: too long when truncation is turned off, too many inputs (TEI's code; its
    // OpenAPI text says 413 for the batch size). Truncation is on by default
    // (--auto-truncate), as in TEI.
    let long = vec!["w9"; 600].join(" ");
    let m = s.fails("/embed", &json!({ "inputs": long, "truncate": false }), 422);
    assert!(m.contains("602 tokens"), "{m}");
    let cut = s.ok("/embed", &json!({ "inputs": long }));
    assert_eq!(cut[0].as_array().unwrap().len(), 32);
    let m = s.fails("/embed", &json!({ "inputs": vec!["w5"; 5] }), 422);
    assert!(m.contains("maximum allowed batch size 4"), "{m}");
    // 424: a device failure answers its own request; the server stays up.
    let m = s.fails("/embed", &json!({ "inputs": "w5 w77" }), 424);
    assert!(m.contains("injected device fault"), "{m}");
    assert_eq!(s.get("/health").0, 200);
    s.ok("/embed", &json!({ "inputs": "w5 w76" }));
    // Unknown routes are 404.
    assert_eq!(s.get("/nowhere").0, 404);
    assert!(s.terminate().success());
}

#[test]
fn classifier_and_reranker_routes() {
    let dir = model_dir("cls_mean");
    let s = Server::start(dir.path(), &["--dtype", "f32"], &[]);
    let texts = ["w5 w6 w7", "w9"];
    // A batch of texts is a list of one-text lists: `["a", "b"]` is one pair (TEI).
    let got = s.ok("/predict", &json!({ "inputs": [[texts[0]], [texts[1]]] }));
    let want = cli_lines(
        dir.path(),
        &["--dtype", "f32", "classify", "--json", texts[0], texts[1]],
    );
    for (i, w) in want.iter().enumerate() {
        let preds = got[i].as_array().unwrap();
        assert_eq!(preds.len(), 3);
        assert_eq!(preds[0]["label"], w["label"], "the best label first");
        assert_json_close(&preds[0]["score"], &w["score"], TOL, "softmax score");
        let sum: f64 = preds.iter().map(|p| p["score"].as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-4);
    }
    let single = s.ok(
        "/predict",
        &json!({ "inputs": texts[1], "raw_scores": true }),
    );
    let logits = floats(&want[1]["logits"]);
    let best = logits.iter().cloned().fold(f64::MIN, f64::max);
    assert_json_close(&single[0]["score"], &json!(best), TOL, "raw logit");
    // (text, text) pairs, as TEI reads them: `["a", "b"]` one pair (one list of labels),
    // `[["a", "b"], ["c"]]` a batch; equal to `wgbert classify --pair`.
    let pair = s.ok("/predict", &json!({ "inputs": ["w5 w6", "w7 w8 w9"] }));
    let pair_cli = cli_lines(
        dir.path(),
        &[
            "--dtype", "f32", "classify", "--json", "--pair", "w5 w6", "w7 w8 w9",
        ],
    );
    assert_eq!(pair[0]["label"], pair_cli[0]["label"], "{pair}");
    assert_json_close(&pair[0]["score"], &pair_cli[0]["score"], TOL, "pair score");
    let batch = s.ok(
        "/predict",
        &json!({ "inputs": [["w5 w6", "w7 w8 w9"], [texts[1]]] }),
    );
    assert_json_close(&batch[0], &pair, TOL, "a pair in a batch");
    assert_json_close(&batch[1], &got[1], TOL, "a text in a batch");
    let as_text = s.ok("/predict", &json!({ "inputs": "w5 w6 w7 w8 w9" }));
    assert!(
        (floats(&as_text[0]["score"])[0] - floats(&pair[0]["score"])[0]).abs() > 1e-6,
        "a pair is not its texts joined: {as_text} {pair}"
    );
    s.fails("/predict", &json!({ "inputs": ["a", "b", "c"] }), 422);
    let m = s.fails("/rerank", &json!({ "query": "w5", "texts": ["w6"] }), 424);
    assert!(m.contains("sequence classifier (3 labels)"), "{m}");
    let m = s.fails("/fill-mask", &json!({ "inputs": "[MASK]" }), 424);
    assert!(m.contains("sequence classifier"), "{m}");
    drop(s);

    let dir = reranker_dir();
    let s = Server::start(dir.path(), &["--dtype", "f32"], &[]);
    let docs = ["w6 w7", "w8", "w9 w10 w11", "w12"];
    let ranked = s.ok(
        "/rerank",
        &json!({ "query": "w5 w6", "texts": docs, "return_text": true }),
    );
    let raw = s.ok(
        "/rerank",
        &json!({ "query": "w5 w6", "texts": docs, "raw_scores": true }),
    );
    let ranked = ranked.as_array().unwrap();
    assert_eq!(ranked.len(), 4);
    let scores: Vec<f64> = ranked
        .iter()
        .map(|r| r["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    for r in ranked {
        let i = r["index"].as_u64().unwrap() as usize;
        assert_eq!(r["text"], docs[i]);
        let logit = raw
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["index"] == i)
            .unwrap()["score"]
            .as_f64()
            .unwrap();
        let p = 1.0 / (1.0 + (-logit).exp());
        assert!(
            (p - r["score"].as_f64().unwrap()).abs() < 1e-5,
            "sigmoid of the raw score"
        );
        assert!(raw[0].get("text").is_none());
    }
    // One document alone scores as it did among the others.
    let alone = s.ok("/rerank", &json!({ "query": "w5 w6", "texts": [docs[2]] }));
    let among = ranked.iter().find(|r| r["index"] == 2).unwrap();
    assert_json_close(
        &alone[0]["score"],
        &among["score"],
        TOL,
        "independent of company",
    );
    assert!(s.terminate().success());
}

/// A sentence-transformers model served as it ships: its Pooling, Dense and Normalize modules
/// and its prompts, as `SentenceTransformer.encode` computed them (the fixture's expected.json).
#[test]
fn embed_follows_a_sentence_transformers_model() {
    let dir = common::fixtures_dir().join("st_mean_dense");
    let exp: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let texts = exp["texts"].clone();
    let s = Server::start(&dir, &["--dtype", "f32"], &[]);
    let (_, info) = s.get("/info");
    assert!(info.contains("\"pooling\":\"model\""), "{info}");
    let cases = exp["cases"].as_array().unwrap();
    for (prompt_name, case) in [(None, 0), (Some("query"), 1)] {
        let mut body = json!({ "inputs": texts, "normalize": false });
        if let Some(p) = prompt_name {
            body["prompt_name"] = json!(p);
        }
        let got = s.ok("/embed", &body);
        assert_json_close(
            &got,
            &cases[case]["embeddings"],
            1e-4,
            &format!("/embed prompt_name {prompt_name:?}"),
        );
    }
    let m = s.fails(
        "/embed",
        &json!({ "inputs": "a", "prompt_name": "no_such_prompt" }),
        422,
    );
    assert!(m.contains("no_such_prompt"), "{m}");
    let v = s.ok(
        "/v1/embeddings",
        &json!({ "input": texts[0].clone(), "model": "m" }),
    );
    assert_json_close(
        &v["data"][0]["embedding"],
        &cases[0]["embeddings"][0],
        1e-4,
        "/v1/embeddings",
    );
}
