//! One way in: the library's `Encoder::input_tokens` (prompt, truncation, pairs, token ids)
//! against sentence-transformers, and the server on the same path.
//!
//! `st_mean_noprompt/truncation.json` (scripts/make_st_fixtures.py truncation) holds prompted
//! long texts cut to 12 tokens by sentence-transformers from either side. Cut from the right,
//! wgbert's tokens and vectors are sentence-transformers' own. Cut from the left,
//! sentence-transformers cuts the prompt away and its pooling (which leaves the prompt out)
//! then skips real text; wgbert keeps the prompt whole and cuts only the text, and its
//! vectors equal sentence-transformers' for the prompt and the text's end that fit.

mod common;
mod serve_util;

use std::path::Path;

use common::model_dir::{fixture, floats};
use serde_json::{Value, json};
use wgbert::encoder::{EmbedOptions, Encoder, Input, LoadOptions, ModelTask, Prompt, Truncation};
use wgbert::ops::DType;
use wgbert::text::TruncationSide;

/// `st_mean_noprompt` with its Transformer's `max_seq_length` set to the fixture's.
fn cut_model() -> (tempfile::TempDir, Value) {
    let (src, _) = common::model_dir::expected("st_mean_noprompt");
    let want: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("truncation.json")).unwrap())
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&src, dir.path());
    let cfg = dir.path().join("sentence_bert_config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    v["max_seq_length"] = want["max_seq_length"].clone();
    std::fs::write(&cfg, v.to_string()).unwrap();
    (dir, want)
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

fn load(dir: &Path) -> Encoder {
    let opts = LoadOptions {
        dtype: Some(DType::F32),
        ..Default::default()
    };
    Encoder::load_on(common::gpu(), dir.to_str().unwrap(), &opts).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    floats(v).into_iter().map(|x| x as u32).collect()
}

#[test]
fn prompts_under_truncation_keep_the_prompt_whole() {
    let (dir, want) = cut_model();
    let enc = load(dir.path());
    assert_eq!(enc.max_input_tokens(), 12);
    let texts: Vec<String> = want["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    for case in want["cases"].as_array().unwrap() {
        let side = match case["side"].as_str().unwrap() {
            "left" => TruncationSide::Left,
            _ => TruncationSide::Right,
        };
        let prompt = case["prompt_name"]
            .as_str()
            .map_or(Prompt::ModelDefault, |n| Prompt::Name(n.to_string()));
        let opts = EmbedOptions {
            prompt,
            ..Default::default()
        };
        let spec = enc.embed_spec(&opts).unwrap();
        let what = format!("{case:?}", case = (&case["side"], &case["prompt_name"]));
        let seqs: Vec<Vec<u32>> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let input = Input::Text(t.clone());
                enc.input_tokens(&input, spec.prompt(), Truncation::Cut(side), i)
                    .unwrap()
            })
            .collect();
        let got: Vec<Vec<f32>> = enc
            .embed_ids_with(&seqs, &spec)
            .unwrap()
            .into_iter()
            .map(|e| e.vectors[0].clone())
            .collect();
        let st_ids: Vec<Vec<u32>> = case["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(ids)
            .collect();
        let st: Vec<Vec<f64>> = case["embeddings"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect();
        if side == TruncationSide::Right {
            assert_eq!(seqs, st_ids, "{what}: sentence-transformers' tokens");
            for (g, w) in got.iter().zip(&st) {
                common::assert_close(&what, g, w, 1e-4, 0.0);
            }
            continue;
        }
        // Left: the prompt's tokens stay, the text's end follows; sentence-transformers
        // lost the prompt.
        for (s, st_s) in seqs.iter().zip(&st_ids) {
            assert_eq!(s.len(), 12, "{what}");
            assert_eq!(
                &s[1..3],
                &[spec_prompt_id(&enc, &spec), 76],
                "{what}: {s:?}"
            );
            assert_eq!(s[3..], st_s[st_s.len() - 9..], "{what}: the text's end");
        }
        let kept: Vec<Vec<f64>> = case["kept_embeddings"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect();
        for ((g, k), w) in got.iter().zip(&kept).zip(&st) {
            common::assert_close(&what, g, k, 1e-4, 0.0);
            let apart = g
                .iter()
                .zip(w)
                .map(|(a, b)| (*a as f64 - b).abs())
                .fold(0.0, f64::max);
            assert!(
                apart > 1e-3,
                "{what}: equal to sentence-transformers' own left cut"
            );
        }
    }
    // The server cuts through the same path: its left cut is the library's.
    let s = serve_util::Server::start(dir.path(), &["--dtype", "f32"], &[]);
    let case = &want["cases"][2];
    let body = json!({ "inputs": texts, "normalize": false, "truncation_direction": "Left" });
    let got = s.ok("/embed", &body);
    serve_util::assert_json_close(&got, &case["kept_embeddings"], 1e-4, "/embed Left");
    assert!(s.terminate().success());
}

/// The id of the prompt's first word (`search_query` or `search_document`).
fn spec_prompt_id(enc: &Encoder, spec: &wgbert::encoder::EmbedSpec) -> u32 {
    let word = spec.prompt().unwrap().split_whitespace().next().unwrap();
    enc.tokenizer().unwrap().token_to_id(word).unwrap()
}

#[test]
fn pairs_ids_and_the_models_task() {
    let dir = common::model_dir::model_dir("cls_mean");
    let enc = load(dir.path());
    assert_eq!(enc.task(), ModelTask::Classifier);
    let pair = enc.classify_pairs(&[("w5 w6", "w7")]).unwrap();
    let text = enc.classify(&["w5 w6 w7"]).unwrap();
    let ids = enc
        .input_tokens(
            &Input::Pair("w5 w6".into(), "w7".into()),
            None,
            Truncation::Model,
            0,
        )
        .unwrap();
    assert_eq!(ids, [1, 5, 6, 2, 7, 2]);
    let via_ids = enc.classify_ids(&[ids]).unwrap();
    common::assert_close(
        "pair logits",
        &pair[0].logits,
        &floats(&json!(via_ids[0])),
        1e-6,
        0.0,
    );
    assert!(
        (pair[0].logits[0] - text[0].logits[0]).abs() > 1e-6,
        "a pair is not its texts joined"
    );
    // Token ids are the whole sequence as given; over the limit cut or refused.
    let long: Vec<u32> = (0..600).map(|i| 5 + i % 400).collect();
    let as_ids = Input::Ids(long.clone());
    let right = enc.input_tokens(&as_ids, None, Truncation::Cut(TruncationSide::Right), 0);
    assert_eq!(right.unwrap(), long[..512]);
    let left = enc.input_tokens(&as_ids, None, Truncation::Cut(TruncationSide::Left), 0);
    assert_eq!(left.unwrap(), long[88..]);
    let refused = enc
        .input_tokens(&as_ids, None, Truncation::Refuse, 3)
        .unwrap_err();
    assert!(refused.to_string().contains("input 3"), "{refused}");
    let bad = enc.input_tokens(&Input::Ids(vec![1, 900]), None, Truncation::Model, 0);
    assert!(bad.unwrap_err().to_string().contains("vocabulary"));
    // A prompt with ids: decoded, then the prompt before the text (as TEI does).
    let prompted = enc
        .input_tokens(
            &Input::Ids(vec![1, 7, 2]),
            Some("w5 "),
            Truncation::Model,
            0,
        )
        .unwrap();
    assert_eq!(prompted, [1, 5, 7, 2]);
    // What each fixture model serves, as every front end is told.
    for (name, task) in [
        ("mlm_v4", ModelTask::FillMask),
        ("encoder_noprefix", ModelTask::Encoder),
        ("tokcls", ModelTask::TokenClassifier),
    ] {
        let d = common::model_dir::model_dir(name);
        assert_eq!(load(d.path()).task(), task, "{name}");
    }
    for (name, task) in [
        ("st_mean_dense", ModelTask::Embedder),
        ("cross_encoder", ModelTask::CrossEncoder),
        ("splade_max", ModelTask::Sparse),
    ] {
        assert_eq!(load(&fixture(name)).task(), task, "{name}");
    }
}
