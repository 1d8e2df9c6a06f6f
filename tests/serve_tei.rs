//! `wgbert serve` speaks TEI's surface as TEI defines it: the root URL (`GET /` is health,
//! `POST /` the model's task), `/similarity`, `/decode`, `truncation_direction`,
//! auto-truncation by default, `/info`'s fields, CORS, the timing headers and the OpenAPI
//! document. Answers are checked against the named routes and the CLI on the same inputs.

mod common;
mod serve_util;

use common::model_dir::model_dir;
use serde_json::{Value, json};
use serve_util::{Server, assert_json_close, cli_lines, floats, reranker_dir};

const TOL: f64 = 1e-5;

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn the_root_url_serves_an_embedder_like_tei() {
    let dir = model_dir("encoder_noprefix");
    let s = Server::start(dir.path(), &["--dtype", "f32"], &[]);
    let (status, body) = s.get("/");
    assert_eq!((status, body.as_str()), (200, ""), "GET / is health");
    assert_eq!(s.get("/ping").0, 200);

    // POST / embeds as /embed does, with TEI's timing headers.
    let texts = ["w5 w6 w7", "w8"];
    let (status, headers, root) = s.post_with_headers("/", &json!({ "inputs": texts }));
    assert_eq!(status, 200, "{root}");
    let embed = s.ok("/embed", &json!({ "inputs": texts }));
    assert_json_close(&root, &embed, TOL, "POST / = /embed");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
    };
    for h in [
        "x-compute-time",
        "x-tokenization-time",
        "x-queue-time",
        "x-inference-time",
        "x-total-time",
    ] {
        header(h).parse::<u64>().expect("milliseconds");
    }
    assert_eq!(
        header("x-compute-tokens"),
        "8",
        "[CLS] w5 w6 w7 [SEP] + [CLS] w8 [SEP]"
    );
    assert_eq!(header("x-compute-characters"), "10");
    let invocations = s.ok("/invocations", &json!({ "inputs": texts }));
    assert_json_close(&invocations, &embed, TOL, "/invocations = /embed");

    // huggingface_hub's sentence_similarity body, at the root and at /similarity: cosine of
    // the source with each sentence, from /embed's vectors.
    let body = json!({ "inputs": { "source_sentence": "w5 w6", "sentences": ["w5 w7", "w9 w10 w11", "w5 w6"] } });
    let sim = s.ok("/", &body);
    assert_json_close(
        &sim,
        &s.ok("/similarity", &body),
        TOL,
        "POST / = /similarity",
    );
    let vecs = s.ok(
        "/embed",
        &json!({ "inputs": ["w5 w6", "w5 w7", "w9 w10 w11", "w5 w6"], "normalize": false }),
    );
    let v: Vec<Vec<f64>> = vecs.as_array().unwrap().iter().map(floats).collect();
    let want: Vec<f64> = (1..4).map(|i| cosine(&v[0], &v[i])).collect();
    assert_json_close(&sim, &json!(want), 1e-5, "cosine scores");
    assert!((want[2] - 1.0).abs() < 1e-6);
    let m = s.fails(
        "/similarity",
        &json!({ "inputs": { "source_sentence": "w5", "sentences": [] } }),
        400,
    );
    assert!(m.contains("sentences"), "{m}");

    // /decode, one sequence or a batch; special tokens skipped unless asked.
    assert_eq!(
        s.ok("/decode", &json!({ "ids": [1, 5, 6, 2] })),
        json!(["w5 w6"])
    );
    let both = s.ok(
        "/decode",
        &json!({ "ids": [[1, 7, 2], [8]], "skip_special_tokens": false }),
    );
    assert_eq!(both, json!(["[CLS] w7 [SEP]", "w8"]));
    let m = s.fails("/decode", &json!({ "ids": [1, 900] }), 422);
    assert!(m.contains("vocabulary"), "{m}");
    s.fails(
        "/decode",
        &json!({ "ids": [[]] , "skip_special_tokens": "no" }),
        422,
    );

    // /info: TEI's fields and spelling.
    let (_, info) = s.get("/info");
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["model_dtype"], "float32");
    assert_eq!(
        info["model_type"],
        json!({ "embedding": { "pooling": "mean" } })
    );
    assert_eq!(info["auto_truncate"], true);
    assert_eq!(info["payload_limit"], 2_000_000);
    for k in [
        "model_id",
        "served_model_name",
        "max_input_length",
        "max_batch_tokens",
        "max_concurrent_requests",
        "max_client_batch_size",
        "tokenization_workers",
        "version",
    ] {
        assert!(!info[k].is_null(), "/info lacks {k}: {info}");
    }
    assert!(s.terminate().success());
}

#[test]
fn truncation_follows_the_request_and_the_server_flag() {
    let dir = model_dir("encoder_noprefix");
    // The fixture's limit is 512 tokens: 600 words are cut to 510 between [CLS] and [SEP].
    let words: Vec<String> = (0..600)
        .map(|i| format!("w{}", 5 + (i * 7) % 500))
        .collect();
    let long = words.join(" ");
    let head = words[..510].join(" ");
    let tail = words[90..].join(" ");
    let s = Server::start(dir.path(), &["--dtype", "f32"], &[]);
    let right = s.ok("/embed", &json!({ "inputs": long }));
    let left = s.ok(
        "/embed",
        &json!({ "inputs": long, "truncation_direction": "Left" }),
    );
    assert_json_close(
        &right,
        &s.ok("/embed", &json!({ "inputs": head })),
        TOL,
        "Right keeps the start",
    );
    assert_json_close(
        &left,
        &s.ok("/embed", &json!({ "inputs": tail })),
        TOL,
        "Left keeps the end",
    );
    let lower = s.ok(
        "/embed",
        &json!({ "inputs": long, "truncation_direction": "left" }),
    );
    assert_json_close(&lower, &left, TOL, "left");
    let m = s.fails(
        "/embed",
        &json!({ "inputs": long, "truncation_direction": "Sideways" }),
        422,
    );
    assert!(m.contains("Sideways"), "{m}");
    s.fails(
        "/embed_all",
        &json!({ "inputs": "w5", "truncation_direction": "Up" }),
        422,
    );
    let all = s.ok(
        "/embed_all",
        &json!({ "inputs": long, "truncation_direction": "Left" }),
    );
    assert_eq!(all[0].as_array().unwrap().len(), 512);
    let sim = json!({ "inputs": { "source_sentence": long, "sentences": [tail] },
                      "parameters": { "truncation_direction": "Left" } });
    let score = floats(&s.ok("/similarity", &sim))[0];
    assert!(
        (score - 1.0).abs() < 1e-5,
        "the cut source is the tail: {score}"
    );
    let m = s.fails("/embed", &json!({ "inputs": long, "truncate": false }), 422);
    assert!(m.contains("602 tokens"), "{m}");
    assert!(s.terminate().success());

    // --auto-truncate false: over-long inputs are refused unless a request truncates.
    let s = Server::start(
        dir.path(),
        &["--dtype", "f32"],
        &["--auto-truncate", "false"],
    );
    s.fails("/embed", &json!({ "inputs": long }), 422);
    let cut = s.ok(
        "/embed",
        &json!({ "inputs": long, "truncate": true, "truncation_direction": "Left" }),
    );
    assert_json_close(&cut, &left, TOL, "truncate: true");
    let (_, info) = s.get("/info");
    assert!(info.contains("\"auto_truncate\":false"), "{info}");
    assert!(s.terminate().success());

    // The reranker cuts its pairs from the side asked; the scores differ.
    let dir = reranker_dir();
    let s = Server::start(dir.path(), &["--dtype", "f32"], &[]);
    let body = |side: &str| json!({ "query": "w5 w6", "texts": [long.clone()], "raw_scores": true, "truncation_direction": side });
    let r = floats(&s.ok("/rerank", &body("Right"))[0]["score"]);
    let l = floats(&s.ok("/rerank", &body("Left"))[0]["score"]);
    assert!(
        (r[0] - l[0]).abs() > 1e-6,
        "Left and Right score alike: {r:?} {l:?}"
    );
    assert!(s.terminate().success());
}

#[test]
fn the_root_url_serves_classifiers_rerankers_and_fill_mask() {
    // A classifier: TEI's answer, or the Inference API's when the body has `parameters`.
    let dir = model_dir("cls_mean");
    let s = Server::start(dir.path(), &["--dtype", "f32"], &[]);
    let text = "w5 w6 w7";
    let tei = s.ok("/", &json!({ "inputs": text }));
    assert_eq!(tei, s.ok("/predict", &json!({ "inputs": text })));
    let want = &cli_lines(dir.path(), &["--dtype", "f32", "classify", "--json", text])[0];
    let hub = s.ok("/", &json!({ "inputs": text, "parameters": {} }));
    let labels = hub[0].as_array().unwrap();
    assert_eq!(labels.len(), 3, "{hub}");
    assert_eq!(labels[0]["label"], want["label"]);
    assert_json_close(&labels[0]["score"], &want["score"], TOL, "softmax");
    let top1 = s.ok(
        "/",
        &json!({ "inputs": text, "parameters": { "top_k": 1 } }),
    );
    assert_eq!(top1[0].as_array().unwrap().len(), 1);
    let raw = s.ok(
        "/",
        &json!({ "inputs": text, "parameters": { "function_to_apply": "none" } }),
    );
    let best = floats(&want["logits"]).into_iter().fold(f64::MIN, f64::max);
    assert_json_close(&raw[0][0]["score"], &json!(best), TOL, "raw logits");
    s.fails(
        "/",
        &json!({ "inputs": text, "parameters": { "function_to_apply": "tanh" } }),
        422,
    );
    let (_, info) = s.get("/info");
    let info: Value = serde_json::from_str(&info).unwrap();
    let classes = &info["model_type"]["classifier"];
    assert_eq!(classes["id2label"].as_object().unwrap().len(), 3, "{info}");
    let first = classes["id2label"]["0"].as_str().unwrap();
    assert_eq!(classes["label2id"][first], 0);
    assert!(s.terminate().success());

    // A one-label cross-encoder reranks at the root.
    let dir = reranker_dir();
    let s = Server::start(dir.path(), &["--dtype", "f32"], &[]);
    let body = json!({ "query": "w5 w6", "texts": ["w6 w7", "w8", "w9"] });
    assert_json_close(
        &s.ok("/", &body),
        &s.ok("/rerank", &body),
        TOL,
        "POST / = /rerank",
    );
    let (_, info) = s.get("/info");
    assert!(info.contains("\"reranker\""), "{info}");
    assert!(s.terminate().success());

    // A masked language model fills masks in the transformers pipeline's format, with
    // huggingface_hub's parameters.top_k; the candidates equal /fill-mask's.
    let dir = model_dir("mlm_v4");
    let s = Server::start(dir.path(), &["--dtype", "f32"], &[]);
    let one = s.ok(
        "/",
        &json!({ "inputs": "w5 [MASK] w7", "parameters": { "top_k": 3 } }),
    );
    let ours = s.ok(
        "/fill-mask",
        &json!({ "inputs": "w5 [MASK] w7", "parameters": { "top_k": 3 } }),
    );
    let cands = ours[0]["masks"][0]["candidates"].as_array().unwrap();
    assert_eq!(one.as_array().unwrap().len(), 3, "{one}");
    for (p, c) in one.as_array().unwrap().iter().zip(cands) {
        assert_eq!(p["token"], c["token_id"]);
        assert_eq!(p["token_str"], c["token"]);
        assert_eq!(p["sequence"], c["sequence"]);
        assert_json_close(&p["score"], &c["score"], TOL, "score");
    }
    let cli = cli_lines(
        dir.path(),
        &[
            "--dtype",
            "f32",
            "fill-mask",
            "--json",
            "--top-k",
            "3",
            "w5 [MASK] w7",
        ],
    );
    assert_json_close(&ours, &json!(cli), TOL, "/fill-mask = the CLI");
    let default_k = s.ok("/", &json!({ "inputs": "w5 [MASK] w7" }));
    assert_eq!(default_k.as_array().unwrap().len(), 5);
    // Two masks: one list per mask; a batch: one entry per text.
    let two = s.ok(
        "/",
        &json!({ "inputs": "[MASK] w6 [MASK]", "parameters": { "top_k": 2 } }),
    );
    assert_eq!(two.as_array().unwrap().len(), 2);
    assert_eq!(two[0].as_array().unwrap().len(), 2);
    assert!(two[0][0]["token_str"].is_string(), "{two}");
    let batch = s.ok(
        "/",
        &json!({ "inputs": ["w5 [MASK]", "[MASK] w6 [MASK]"], "parameters": { "top_k": 2 } }),
    );
    assert!(batch[0][0]["score"].is_number(), "{batch}");
    assert!(batch[1][0][0]["score"].is_number(), "{batch}");
    let m = s.fails(
        "/",
        &json!({ "inputs": "w5 [MASK]", "parameters": { "top_k": 65 } }),
        422,
    );
    assert!(m.contains("top_k"), "{m}");
    let m = s.fails(
        "/",
        &json!({ "inputs": "w5 [MASK]", "parameters": { "targets": ["w6"] } }),
        422,
    );
    assert!(m.contains("targets"), "{m}");
    let many = vec!["[MASK]"; 65].join(" ");
    let m = s.fails("/fill-mask", &json!({ "inputs": many }), 422);
    assert!(m.contains("65 [MASK]"), "{m}");
    assert!(s.terminate().success());
}

#[test]
fn cors_and_the_openapi_document_cover_every_route() {
    let dir = model_dir("mlm_v4");
    let s = Server::start(
        dir.path(),
        &[],
        &["--cors-allow-origin", "http://app.example"],
    );
    // A browser's preflight, as curl sends it (ureq sends no OPTIONS with custom headers).
    let out = std::process::Command::new("curl")
        .args(["-s", "-i", "-X", "OPTIONS", &format!("{}/embed", s.base)])
        .args([
            "-H",
            "Origin: http://app.example",
            "-H",
            "Access-Control-Request-Method: POST",
        ])
        .output()
        .expect("curl runs");
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("access-control-allow-origin: http://app.example"),
        "{head}"
    );

    let (status, doc) = s.get("/api-doc/openapi.json");
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    // The document lists exactly the routes the router is built from (the unit test
    // `routes::tests::the_openapi_document_lists_the_routers_routes`); here every documented
    // operation must be served by the running server, and nothing else.
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(s.get("/not-a-route").0, 404);
    assert_eq!(s.request("PUT", "/embed", Some("{}")).0, 405);
    // Every documented operation is served: no 404 or 405.
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let body = (method == "post").then_some("{}");
            let (status, text) = s.request(&method.to_uppercase(), path, body);
            assert!(
                status != 404 && status != 405,
                "{method} {path}: {status} {text}"
            );
        }
    }
    assert!(s.terminate().success());
}
