//! `/embed`'s extension fields: `late_chunking` and `precision` (with `ranges`). Answers equal
//! the library's for the same inputs (`Encoder::embed_late`, `quantize`) and the references
//! of tests/fixtures/late_chunking and tests/fixtures/quantize; a TEI client that sends none
//! of them gets the same bytes as before; bad values are 422s; the server's bounds hold.

mod common;
mod serve_util;

use common::model_dir::expected;
use common::{ints, quantized_ints};
use serde_json::{Value, json};
use serve_util::{Server, floats};
use wgbert::encoder::{Chunking, EmbedOptions, LateOptions, Prompt};
use wgbert::ops::DType;
use wgbert::sentence::quantize::{Precision, RangeStats, Ranges, quantize};

fn close(at: &str, got: &Value, want: &[f32], tol: f64) {
    let got = floats(got);
    assert_eq!(got.len(), want.len(), "{at}: lengths");
    for (i, (g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g - w as f64).abs() <= tol, "{at}[{i}]: {g} vs {w}");
    }
}

/// Every case of the late-chunking fixture through `/embed`: spans given per input, a
/// separator and a token budget for the request, a prompt, a document over the model's 64
/// tokens in windows (overlap 8); equal to `embed_late` and to transformers' pooled states.
#[test]
fn late_chunks_equal_the_library() {
    let (_, exp) = expected("late_chunking");
    let model = common::fixtures_dir().join(exp["model"].as_str().unwrap());
    let enc = common::load(&model, DType::F32);
    let s = Server::start(&model, &["--dtype", "f32"], &[]);
    let docs = exp["documents"].as_array().unwrap();
    for (c, case) in exp["cases"].as_array().unwrap().iter().enumerate() {
        let doc = docs[case["doc"].as_u64().unwrap() as usize]
            .as_str()
            .unwrap();
        let ch = &case["chunking"];
        let mut late = json!({});
        let (input, chunking) = if let Some(spans) = ch.get("spans") {
            let pairs = spans.as_array().unwrap().iter().map(|p| {
                let p = floats(p);
                (p[0] as usize, p[1] as usize)
            });
            (
                json!({"text": doc, "chunks": spans}),
                Chunking::Spans(pairs.collect()),
            )
        } else if let Some(sep) = ch.get("separator") {
            late["chunk_separator"] = sep.clone();
            (
                json!(doc),
                Chunking::Separator(sep.as_str().unwrap().into()),
            )
        } else {
            late["chunk_tokens"] = ch["tokens"].clone();
            let n = ch["tokens"].as_u64().unwrap() as usize;
            (json!(doc), Chunking::Tokens(n))
        };
        let overlap = case["overlap"].as_u64().map(|o| o as usize);
        if let Some(o) = overlap {
            late["overlap"] = json!(o);
        }
        let mut body = json!({"inputs": [input], "late_chunking": late, "normalize": false});
        let prompt = case["prompt_name"].as_str();
        if let Some(p) = prompt {
            body["prompt_name"] = json!(p);
        }
        let got = s.ok("/embed", &body);
        let opts = LateOptions {
            prompt: prompt.map_or(Prompt::ModelDefault, |p| Prompt::Name(p.into())),
            overlap,
            ..Default::default()
        };
        let want = enc.embed_late(&[(doc, chunking)], &opts).unwrap();
        let got = &got.as_array().expect("one object per input")[0];
        assert_eq!(got["index"], 0);
        assert_eq!(got["n_tokens"], case["n_tokens"], "case {c}");
        assert_eq!(got["windows"], case["windows"], "case {c}");
        assert_eq!(got["windows"], json!(want[0].windows), "case {c}");
        let chunks = got["chunks"].as_array().unwrap();
        let refs = case["chunks"].as_array().unwrap();
        assert_eq!(chunks.len(), want[0].chunks.len(), "case {c}");
        assert_eq!(chunks.len(), refs.len(), "case {c}");
        for (k, ((g, w), r)) in chunks.iter().zip(&want[0].chunks).zip(refs).enumerate() {
            let at = format!("case {c} chunk {k}");
            assert_eq!(g["span"], json!([w.span.0, w.span.1]), "{at}");
            assert_eq!(g["span"], r["span"], "{at}");
            assert_eq!(g["n_tokens"], json!(w.n_tokens), "{at}");
            close(&at, &g["embedding"], &w.embedding, 1e-5);
            let r: Vec<f32> = floats(&r["embedding"]).iter().map(|&x| x as f32).collect();
            close(&format!("{at} (transformers)"), &g["embedding"], &r, 1e-4);
        }
    }
    // Two documents in one request, normalized and cut (`dimensions`), then quantized with
    // ranges computed over all of their chunks.
    let body = json!({
        "inputs": [{"text": docs[0], "chunks": [[0, 29], [30, 62]]}, docs[1]],
        "late_chunking": {"chunk_separator": ","},
        "dimensions": 8,
    });
    let got = s.ok("/embed", &body);
    let opts = LateOptions {
        dimensions: Some(8),
        normalize: true,
        ..Default::default()
    };
    let pair = [
        (
            docs[0].as_str().unwrap(),
            Chunking::Spans(vec![(0, 29), (30, 62)]),
        ),
        (docs[1].as_str().unwrap(), Chunking::Separator(",".into())),
    ];
    let want = enc.embed_late(&pair, &opts).unwrap();
    let mut all = Vec::new();
    for (d, w) in got.as_array().unwrap().iter().zip(&want) {
        for (g, w) in d["chunks"].as_array().unwrap().iter().zip(&w.chunks) {
            close("two documents", &g["embedding"], &w.embedding, 1e-5);
            all.push(w.embedding.clone());
        }
    }
    assert_eq!(all.len(), 4);
    let mut body = body;
    body["precision"] = json!("uint8");
    let got = s.ok("/embed", &body);
    let mut stats = RangeStats::default();
    all.iter().for_each(|v| stats.observe(v).unwrap());
    let ranges = stats.finish(Precision::Uint8).unwrap();
    let got: Vec<Vec<i64>> = got
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["chunks"].as_array().unwrap().iter())
        .map(|c| ints(&c["embedding"]))
        .collect();
    for (g, w) in got.iter().zip(&all) {
        let q = quantize(w, Precision::Uint8, Some(&ranges)).unwrap();
        let q = quantized_ints(&q);
        assert!(
            g.iter().zip(&q).all(|(a, b)| (a - b).abs() <= 1) && g.len() == q.len(),
            "{g:?} vs {q:?}"
        );
    }
    assert!(s.terminate().success());
}

/// `precision` on `/embed`: sentence-transformers' values (within one bucket: the floats
/// differ by ~1e-7), the library's quantizer on the library's vectors, ranges given inline
/// or computed over the request; and a plain TEI request answered byte for byte as before.
#[test]
fn quantized_embeddings_equal_sentence_transformers() {
    let (dir, exp) = expected("quantize");
    let model = common::fixtures_dir().join(exp["model"].as_str().unwrap());
    let texts: Vec<&str> = exp["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let s = Server::start(&model, &["--dtype", "f32"], &[]);
    let file = Ranges::read_npy(&dir.join("ranges.npy")).unwrap();
    let enc = common::load(&model, DType::F32);
    let opts = EmbedOptions::default();
    let vectors: Vec<Vec<f32>> = enc
        .embed_with(&texts, &opts)
        .unwrap()
        .into_iter()
        .map(|e| e.vectors.into_iter().next().unwrap())
        .collect();
    for case in exp["cases"].as_array().unwrap() {
        let p = case["precision"].as_str().unwrap();
        let mut body = json!({"inputs": texts, "precision": p, "normalize": false});
        let ranges = match case["ranges"].as_str() {
            Some(_) => {
                body["ranges"] = json!([file.min, file.max]);
                Some(file.clone())
            }
            None if p.ends_with("int8") => {
                let mut st = RangeStats::default();
                vectors.iter().for_each(|v| st.observe(v).unwrap());
                Some(st.finish(Precision::Uint8).unwrap())
            }
            None => None,
        };
        let got = s.ok("/embed", &body);
        let precision = Precision::from_name(p).unwrap();
        let rows = got.as_array().unwrap();
        assert_eq!(rows.len(), texts.len());
        for (i, ((g, st), v)) in rows
            .iter()
            .zip(case["values"].as_array().unwrap())
            .zip(&vectors)
            .enumerate()
        {
            let (g, st) = (ints(g), ints(st));
            let lib = quantized_ints(&quantize(v, precision, ranges.as_ref()).unwrap());
            assert_eq!(g, lib, "{p} text {i}: the library's quantizer");
            let near = g.iter().zip(&st).all(|(a, b)| (a - b).abs() <= 1);
            assert!(near && g.len() == st.len(), "{p} text {i}: {g:?} vs {st:?}");
        }
    }
    // A TEI client's request: the bytes of the library's vectors, serialized as before.
    let plain = json!({"inputs": texts});
    let (status, raw) = s.post_raw("/embed", &plain.to_string());
    assert_eq!(status, 200, "{raw}");
    let opts = EmbedOptions {
        normalize: true,
        ..Default::default()
    };
    let lib: Vec<Vec<f32>> = enc
        .embed_with(&texts, &opts)
        .unwrap()
        .into_iter()
        .map(|e| e.vectors.into_iter().next().unwrap())
        .collect();
    assert_eq!(raw, serde_json::to_string(&lib).unwrap());
    let mut f32_body = plain.clone();
    f32_body["precision"] = json!("float32");
    assert_eq!(s.post_raw("/embed", &f32_body.to_string()), (200, raw));
    assert!(s.terminate().success());
}

/// Bad extension values are 422s naming the mistake; bounds (inputs, tokens over every
/// window, the answer's size) hold for late chunking as for every route.
#[test]
fn bad_extension_fields_are_refused_and_bounds_hold() {
    let model = common::fixtures_dir().join("st_mean_dense");
    let s = Server::start(
        &model,
        &["--dtype", "f32"],
        &[
            "--max-client-batch-size",
            "2",
            "--max-request-tokens",
            "100",
            "--max-response-bytes",
            "4000",
        ],
    );
    let doc = "the cat sat on the mat, and the dog ran.";
    let refused = [
        (
            json!({"inputs": "fish", "precision": "int4"}),
            "unknown precision 'int4'",
        ),
        (
            json!({"inputs": ["a", "b"], "precision": "int8", "ranges": [[0.0, 1.0]]}),
            "2 x",
        ),
        (
            json!({"inputs": ["a", "b"], "precision": "binary", "ranges": [[0.0], [1.0]]}),
            "not binary",
        ),
        (
            json!({"inputs": "a", "ranges": [[0.0], [1.0]]}),
            "\"ranges\" are for",
        ),
        (
            json!({"inputs": "fish", "precision": "int8"}),
            "needs at least two (this request has 1)",
        ),
        (
            json!({"inputs": [{"text": doc, "chunks": [[0, 3]]}]}),
            "late_chunking",
        ),
        (
            json!({"inputs": [{"text": doc, "chunks": [[0, 99]]}], "late_chunking": {}}),
            "[0, 99)",
        ),
        (
            json!({"inputs": [{"text": doc, "chunks": [[5, 2]]}], "late_chunking": {}}),
            "[5, 2)",
        ),
        (
            json!({"inputs": [{"text": doc, "chunks": [[0]]}], "late_chunking": {}}),
            "bad request body",
        ),
        (
            json!({"inputs": [{"text": doc, "chunks": []}], "late_chunking": {}}),
            "is empty",
        ),
        (
            json!({"inputs": [{"text": doc, "spans": [[0, 3]]}], "late_chunking": {}}),
            "unknown field",
        ),
        (
            json!({"inputs": [doc], "late_chunking": {}}),
            "input 0 has no \"chunks\"",
        ),
        (
            json!({"inputs": [[5, 6, 7]], "late_chunking": {"chunk_tokens": 2}}),
            "token ids",
        ),
        (
            json!({"inputs": [doc], "late_chunking": {"chunk_tokens": 0}}),
            "at least 1",
        ),
        (
            json!({"inputs": [doc], "late_chunking": {"chunk_separator": ",", "chunk_tokens": 2}}),
            "not both",
        ),
        (
            json!({"inputs": [doc], "late_chunking": {"chunk_size": 2}}),
            "unknown field",
        ),
        (
            json!({"inputs": [doc, doc, doc], "late_chunking": {"chunk_separator": ","}}),
            "maximum allowed batch size 2",
        ),
    ];
    for (body, says) in &refused {
        let m = s.fails("/embed", body, 422);
        assert!(m.contains(says), "{body}: {m}");
    }
    // Other routes do not take documents.
    let m = s.fails("/embed_all", &json!({"inputs": [{"text": doc}]}), 422);
    assert!(m.contains("only /embed"), "{m}");
    // 100 tokens in all, windows included: one 64-token window fits, two do not.
    let long = "w ".repeat(120);
    let body = json!({"inputs": [long], "late_chunking": {"chunk_tokens": 16}, "dimensions": 4});
    let m = s.fails("/embed", &body, 413);
    assert!(
        m.contains("windows") && m.contains("--max-request-tokens 100"),
        "{m}"
    );
    let short = "w ".repeat(40);
    let body = json!({"inputs": [short], "late_chunking": {"chunk_tokens": 16}, "dimensions": 4});
    assert_eq!(s.ok("/embed", &body)[0]["windows"], 1);
    // Many spans: refused on their count before any tokenizing.
    let spans: Vec<[usize; 2]> = (0..200).map(|_| [0, 3]).collect();
    let body = json!({"inputs": [{"text": doc, "chunks": spans}], "late_chunking": {}});
    let m = s.fails("/embed", &body, 413);
    assert!(m.contains("--max-response-bytes 4000"), "{m}");
    assert!(s.terminate().success());
    // Models that cannot: a sparse encoder quantizes nothing and late-chunks nothing.
    let splade = common::fixtures_dir().join("splade_max");
    let s = Server::start(&splade, &["--dtype", "f32"], &[]);
    let m = s.fails(
        "/embed",
        &json!({"inputs": "fish", "precision": "binary"}),
        422,
    );
    assert!(m.contains("sparse"), "{m}");
    let body = json!({"inputs": "fish", "late_chunking": {"chunk_tokens": 1}});
    let m = s.fails("/embed", &body, 422);
    assert!(m.contains("late_chunking") && m.contains("sparse"), "{m}");
    assert!(s.terminate().success());
}
