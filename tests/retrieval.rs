//! Late chunking, quantized embeddings and multi-vector token pooling against the references
//! `scripts/make_retrieval_fixtures.py` wrote: transformers' hidden states pooled over the same
//! spans (tests/fixtures/late_chunking), sentence-transformers' `quantize_embeddings`
//! (tests/fixtures/quantize) and a `MultiVectorEncoder` with `HierarchicalTokenPooling`
//! (tests/fixtures/mve_pooled). f32 vectors within 1e-4; quantized values exact where the
//! quantizer is given sentence-transformers' own floats, within one bucket end to end.

mod common;

use common::model_dir::{expected, fails, floats, succeeds, wgbert};
use common::require::Cap;
use common::{ints, load, quantized_ints};
use serde_json::Value;
use wgbert::encoder::{Chunking, Encoder, LateOptions, Prompt};
use wgbert::ops::DType;
use wgbert::sentence::quantize::{Precision, RangeStats, Ranges, quantize};

fn chunking(v: &Value) -> Chunking {
    if let Some(spans) = v.get("spans") {
        let pairs = spans.as_array().unwrap().iter().map(|p| {
            let p = floats(p);
            (p[0] as usize, p[1] as usize)
        });
        Chunking::Spans(pairs.collect())
    } else if let Some(sep) = v.get("separator") {
        Chunking::Separator(sep.as_str().unwrap().into())
    } else {
        Chunking::Tokens(v["tokens"].as_u64().unwrap() as usize)
    }
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, y)| x as f64 * y).sum();
    let na = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-12)
}

/// Every case of the late-chunking fixture: spans, separators, token budgets, a prompt, and
/// a document over the model's 64 tokens in windows (default overlap and 8).
#[test]
fn late_chunks_equal_pooled_transformers_states() {
    let (_, exp) = expected("late_chunking");
    let model = common::fixtures_dir().join(exp["model"].as_str().unwrap());
    let mut dtypes = vec![DType::F32];
    if common::require(Cap::F16, "late chunking in f16 (cosine >= 0.999)") {
        dtypes.push(DType::F16);
    }
    for dtype in dtypes {
        let enc = load(&model, dtype);
        for (c, case) in exp["cases"].as_array().unwrap().iter().enumerate() {
            let doc = exp["documents"][case["doc"].as_u64().unwrap() as usize]
                .as_str()
                .unwrap();
            let opts = LateOptions {
                prompt: match case["prompt_name"].as_str() {
                    Some(n) => Prompt::Name(n.into()),
                    None => Prompt::ModelDefault,
                },
                overlap: case["overlap"].as_u64().map(|o| o as usize),
                ..Default::default()
            };
            let got = enc
                .embed_late(&[(doc, chunking(&case["chunking"]))], &opts)
                .unwrap();
            let what = format!("case {c} {dtype:?}");
            assert_eq!(got[0].n_tokens as u64, case["n_tokens"], "{what}");
            assert_eq!(got[0].windows as u64, case["windows"], "{what}");
            let want = case["chunks"].as_array().unwrap();
            assert_eq!(got[0].chunks.len(), want.len(), "{what}: chunks");
            for (g, w) in got[0].chunks.iter().zip(want) {
                let span = floats(&w["span"]);
                assert_eq!(g.span, (span[0] as usize, span[1] as usize), "{what}");
                assert_eq!(g.n_tokens as u64, w["n_tokens"], "{what} {:?}", g.span);
                let wv = floats(&w["embedding"]);
                if dtype == DType::F32 {
                    common::assert_close(&what, &g.embedding, &wv, 1e-4, 0.0);
                } else {
                    let cos = cosine(&g.embedding, &wv);
                    assert!(cos >= 0.999, "{what} {:?}: cosine {cos}", g.span);
                }
            }
        }
    }
}

/// Documents late-chunked together give what each gives alone; bad chunks and models are
/// refused with errors that name them.
#[test]
fn late_chunking_is_per_document_and_refuses_bad_input() {
    let (_, exp) = expected("late_chunking");
    let model = common::fixtures_dir().join("st_mean_dense");
    let enc = load(&model, DType::F32);
    let docs: Vec<&str> = exp["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    fn each(d: &str) -> (&str, Chunking) {
        (d, Chunking::Tokens(5))
    }
    let opts = LateOptions::default();
    let together = enc
        .embed_late(&docs.iter().map(|d| each(d)).collect::<Vec<_>>(), &opts)
        .unwrap();
    for (d, t) in docs.iter().zip(&together) {
        let alone = enc.embed_late(&[each(d)], &opts).unwrap();
        assert_eq!(alone[0].chunks.len(), t.chunks.len());
        for (a, b) in alone[0].chunks.iter().zip(&t.chunks) {
            let want: Vec<f64> = a.embedding.iter().map(|&x| x as f64).collect();
            common::assert_close("together vs alone", &b.embedding, &want, 1e-5, 0.0);
        }
    }
    let bad = [
        ("a", Chunking::Spans(vec![(0, 1)])),
        ("fish", Chunking::Spans(vec![(2, 9)])),
    ];
    let e = enc.embed_late(&bad, &opts).unwrap_err().to_string();
    assert!(e.contains("input 1") && e.contains("[2, 9)"), "{e}");
    let colbert = load(&common::fixtures_dir().join("mve_native"), DType::F32);
    let e = colbert.late_spec(&opts).unwrap_err().to_string();
    assert!(e.contains("late-chunk") && e.contains("colbert"), "{e}");
}

/// ModernBERT's byte-level BPE tokenizer: places are characters, not bytes, and a token
/// that carries the prompt's last space joins the document's first chunk.
#[test]
fn token_places_are_characters_with_the_real_tokenizer() {
    if !common::require(Cap::Tokenizer, "late chunking's token places") {
        return;
    }
    let path = std::env::var_os("WGBERT_TOKENIZER").expect("WGBERT_TOKENIZER");
    let tok = wgbert::text::tokenizer::TextTokenizer::from_file(path).unwrap();
    let text = "café 🤖 robot";
    let p = tok.encode_places(&format!("query: {text}"), 0).unwrap();
    let word = |w: &str| {
        let id = p
            .ids
            .iter()
            .position(|&i| tok.id_to_token(i).as_deref() == Some(w));
        p.chars[id.unwrap_or_else(|| panic!("{w} in {:?}", p.ids))]
    };
    // "query: " is 7 characters; " robot" starts at the space before it: 7 + 6.
    assert_eq!(word("Ġrobot"), (13, 19));
    assert_eq!(
        word("ĠcafÃ©"),
        (6, 11),
        "the prompt's space and the first word"
    );
}

/// `wgbert embed --late-chunking`: spans from JSONL, a separator for lines without, fields
/// carried, the vectors of the library; bad lines named.
#[test]
fn late_chunking_cli() {
    let (_, exp) = expected("late_chunking");
    let model = common::fixtures_dir().join("st_mean_dense");
    let case = &exp["cases"][0];
    let doc = exp["documents"][0].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs.jsonl");
    let line0 = serde_json::json!({"text": doc, "chunks": case["chunking"]["spans"], "id": "x"});
    let line1 = serde_json::json!({"text": exp["documents"][1]});
    std::fs::write(&input, format!("{line0}\n{line1}\n")).unwrap();
    let input = input.to_str().unwrap();
    let args = [
        "--dtype",
        "f32",
        "embed",
        "--late-chunking",
        "--input",
        input,
        "--chunk-separator",
        ",",
    ];
    let lines = succeeds(wgbert(&model).args(args));
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], "x");
    assert_eq!(lines[0]["index"], 0);
    assert_eq!(lines[0]["n_tokens"], case["n_tokens"]);
    for (g, w) in lines[0]["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .zip(case["chunks"].as_array().unwrap())
    {
        assert_eq!(g["span"], w["span"]);
        let got: Vec<f32> = floats(&g["embedding"]).iter().map(|&x| x as f32).collect();
        common::assert_close("cli chunk", &got, &floats(&w["embedding"]), 1e-4, 0.0);
    }
    let sep_case = &exp["cases"][2];
    assert_eq!(
        lines[1]["chunks"].as_array().unwrap().len(),
        sep_case["chunks"].as_array().unwrap().len()
    );
    // A line without chunks and no default; a span past the end.
    fails(
        &model,
        &["embed", "--late-chunking", "--input", input],
        &["input 1", "no \"chunks\""],
    );
    std::fs::write(
        dir.path().join("bad.jsonl"),
        "{\"text\": \"fish\", \"chunks\": [[0, 9]]}\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.jsonl");
    fails(
        &model,
        &["embed", "--late-chunking", "--input", bad.to_str().unwrap()],
        &["input 0", "[0, 9)"],
    );
    fails(
        &model,
        &[
            "embed",
            "--late-chunking",
            "--format",
            "npy",
            "--output",
            "x.npy",
            "fish",
        ],
        &["JSONL"],
    );
}

/// The quantizer on sentence-transformers' own float32 embeddings gives its exact values.
#[test]
fn quantize_equals_sentence_transformers() {
    let (dir, exp) = expected("quantize");
    let emb: Vec<Vec<f32>> = exp["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| floats(r).iter().map(|&x| x as f32).collect())
        .collect();
    for case in exp["cases"].as_array().unwrap() {
        let precision = Precision::from_name(case["precision"].as_str().unwrap()).unwrap();
        let ranges = match case["ranges"].as_str() {
            Some(f) => Some(Ranges::read_npy(&dir.join(f)).unwrap()),
            None if precision.uses_ranges() => {
                let mut s = RangeStats::default();
                emb.iter().for_each(|v| s.observe(v).unwrap());
                Some(s.finish(precision).unwrap())
            }
            None => None,
        };
        for (i, (v, want)) in emb
            .iter()
            .zip(case["values"].as_array().unwrap())
            .enumerate()
        {
            let q = quantize(v, precision, ranges.as_ref()).unwrap();
            assert_eq!(quantized_ints(&q), ints(want), "{case:?} text {i}");
        }
    }
}

/// `wgbert embed --precision`: JSONL integers within one bucket of sentence-transformers
/// (the floats differ by ~1e-7), sign bits equal; npy and safetensors as int8 / uint8;
/// computed ranges saved.
#[test]
fn quantized_outputs_from_the_cli() {
    let (dir, exp) = expected("quantize");
    let model = common::fixtures_dir().join("st_mean_dense");
    let texts: Vec<&str> = exp["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let out = tempfile::tempdir().unwrap();
    let saved = out.path().join("saved.npy");
    let ranges = dir.join("ranges.npy");
    for case in exp["cases"].as_array().unwrap() {
        let p = case["precision"].as_str().unwrap();
        let mut cmd = wgbert(&model);
        cmd.args(["--dtype", "f32", "embed", "--precision", p]);
        match case["ranges"].as_str() {
            Some(_) => cmd.arg("--ranges").arg(&ranges),
            None if p.ends_with("int8") => cmd.arg("--save-ranges").arg(&saved),
            None => &mut cmd,
        };
        let lines = succeeds(cmd.args(&texts));
        for (i, (line, want)) in lines
            .iter()
            .zip(case["values"].as_array().unwrap())
            .enumerate()
        {
            let (got, want) = (ints(&line["embedding"]), ints(want));
            let close = got.iter().zip(&want).all(|(g, w)| (g - w).abs() <= 1);
            assert!(
                close && got.len() == want.len(),
                "{p} text {i}: {got:?} vs {want:?}"
            );
        }
        if case["ranges"].is_null() && p.ends_with("int8") {
            let r = Ranges::read_npy(&saved).unwrap();
            let want = &exp["computed_ranges"];
            common::assert_close("saved min", &r.min, &floats(&want[0]), 1e-5, 0.0);
            common::assert_close("saved max", &r.max, &floats(&want[1]), 1e-5, 0.0);
        }
    }
    for (format, file) in [("npy", "q.npy"), ("safetensors", "q.safetensors")] {
        let path = out.path().join(file);
        let mut cmd = wgbert(&model);
        cmd.args([
            "--dtype",
            "f32",
            "embed",
            "--precision",
            "binary",
            "--format",
            format,
            "--output",
        ]);
        succeeds(cmd.arg(&path).args(&texts));
        let data = std::fs::read(&path).unwrap();
        if format == "npy" {
            let head = String::from_utf8_lossy(&data[..256]).into_owned();
            assert!(head.contains("'|i1'") && head.contains("(6, 2)"), "{head}");
        } else {
            let st = safetensors::SafeTensors::deserialize(&data).unwrap();
            let t = st.tensor("embeddings").unwrap();
            assert_eq!(
                (t.dtype(), t.shape()),
                (safetensors::Dtype::I8, &[6usize, 2][..])
            );
            let want: Vec<u8> = exp["cases"][2]["values"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| ints(r).into_iter().map(|x| x as i8 as u8))
                .collect();
            assert_eq!(t.data(), &want[..]);
        }
    }
    fails(
        &model,
        &["embed", "--precision", "int8", "fish"],
        &["from 1 embedding"],
    );
    fails(
        &model,
        &[
            "embed",
            "--precision",
            "binary",
            "--ranges",
            ranges.to_str().unwrap(),
            "fish",
        ],
        &["--ranges"],
    );
    fails(
        &model,
        &["embed", "--precision", "int8", "--pooling", "none", "fish"],
        &["--precision"],
    );
    let splade = common::fixtures_dir().join("splade_max");
    fails(
        &splade,
        &["embed", "--precision", "binary", "fish"],
        &["sparse", "--precision"],
    );
}

fn check_multi(what: &str, got: &[wgbert::encoder::Embedding], want: &Value) {
    let want = want.as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let w = w.as_array().unwrap();
        assert_eq!(g.vectors.len(), w.len(), "{what} text {i}: vectors");
        for (j, (gv, wv)) in g.vectors.iter().zip(w).enumerate() {
            common::assert_close(
                &format!("{what} text {i} vector {j}"),
                gv,
                &floats(wv),
                1e-4,
                0.0,
            );
        }
    }
}

/// `HierarchicalTokenPooling` as saved by sentence-transformers 6, and the outputs of four
/// other settings (their configs written into copies of the fixture).
#[test]
fn token_pooling_matches_multi_vector_encoder() {
    let (dir, exp) = expected("mve_pooled");
    let strs = |k: &str| -> Vec<String> {
        exp[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect()
    };
    let (queries, docs) = (strs("queries"), strs("documents"));
    let q: Vec<&str> = queries.iter().map(String::as_str).collect();
    let d: Vec<&str> = docs.iter().map(String::as_str).collect();
    let check = |enc: &Encoder, what: &str, want: &Value| {
        check_multi(
            &format!("{what} queries"),
            &enc.embed_multi(&q, true).unwrap(),
            &want["query_embeddings"],
        );
        check_multi(
            &format!("{what} documents"),
            &enc.embed_multi(&d, false).unwrap(),
            &want["document_embeddings"],
        );
    };
    let enc = load(&dir, DType::F32);
    assert!(enc.sentence_config().token_pooling.is_some());
    check(&enc, "pool_factor 2", &exp);
    for variant in exp["variants"].as_array().unwrap() {
        let copy = tempfile::tempdir().unwrap();
        common::model_dir::copy_tree(&dir, copy.path());
        let cfg = copy.path().join("4_HierarchicalTokenPooling/config.json");
        std::fs::write(&cfg, variant["config"].to_string()).unwrap();
        let enc = load(copy.path(), DType::F32);
        check(&enc, &variant["config"].to_string(), variant);
    }
}
