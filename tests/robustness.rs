//! Robustness: a catalogue of bad inputs, each checked for the exit code (CLI) or the error
//! variant (library) and for a message that names the problem; plus streaming 100k texts with
//! bounded memory, and an `Encoder` that keeps working after a failed batch.
//!
//! Exit codes: 0 success, 1 any error the program reports (`error: ...` on stderr), 2 a
//! command line clap rejects. A panic would exit 101, so every failure case asserts code 1 or
//! 2 exactly.
//!
//! Catalogue (case -> expected -> test):
//!
//! | case | expected | test |
//! |---|---|---|
//! | model directory missing | 1, names the path, "not found" | `model_source_errors` |
//! | model path is a file | 1, "is a file" | `model_source_errors` |
//! | directory without config.json | 1, "no config.json" | `model_source_errors` |
//! | config.json unreadable (a directory of that name) | 1, names config.json ("no config.json in this directory") | `model_source_errors` |
//! | no safetensors in the directory | 1, "model.safetensors" | `model_source_errors` |
//! | config.json not JSON | 1, "not valid JSON" | `config_errors` |
//! | config.json lacks `hidden_size` | 1, names `hidden_size` | `config_errors` |
//! | hidden not divisible by heads | 1, "not divisible" | `config_errors` |
//! | zero layers | 1, "`num_hidden_layers` is 0" | `config_errors` |
//! | huge vocab (1e12) | 1, "implausibly large" | `config_errors` |
//! | vocab that disagrees with the weights | 1, names the embedding tensor | `config_errors` |
//! | safetensors truncated | 1, "truncated" | `weights_errors` |
//! | header length field garbage | 1, "header length" | `weights_errors` |
//! | header not JSON | 1, "not valid safetensors JSON" | `weights_errors` |
//! | missing tensor | 1, "missing tensor 'final_norm.weight'" | `weights_errors` |
//! | wrong shape | 1, names tensor and shapes | `weights_errors` |
//! | unsupported dtype (I32) | 1, "only F32, F16 and BF16" | `weights_errors` |
//! | offsets past the end | 1, "file is truncated: the header describes N bytes but the file has M" | `weights_errors` |
//! | tokenizer.json missing | 1, "no tokenizer.json", "--tokenizer" | `tokenizer_errors` |
//! | tokenizer.json broken | 1, names the file, "cannot load" | `tokenizer_errors` |
//! | `--tokenizer` file missing | 1, names the file, "not found" | `tokenizer_errors` |
//! | tokenizer ids beyond the model's vocabulary | 1, "outside the model's vocabulary", right input index | `tokenizer_ids_outside_the_model_vocab_name_the_text` |
//! | empty / whitespace-only text | embed: 0, `[CLS] [SEP]` (2 tokens); classify: 0; fill-mask: 1, "no [MASK]" | `empty_and_whitespace_texts` |
//! | invalid UTF-8 in an input file / stdin | 1, "line N is not valid UTF-8" | `invalid_utf8_input_names_the_line` |
//! | bad JSONL lines | 1, names the line and the problem | `bad_jsonl_lines_name_the_line` |
//! | control characters | 0, valid JSON out, text round-trips | `control_characters_are_plain_text` |
//! | 100k characters | over 512 tokens: 1, names the limit and `--truncate`; with `--truncate`: 0, 512 tokens; one 100k-char word: 0 | `hundred_thousand_characters` |
//! | a sequence longer than the batch capacity (`--max-tokens`) | 1, names the capacity | `sequence_longer_than_the_batch_capacity_names_the_limit` |
//! | fill-mask without [MASK] | 1, "input 1: ... no [MASK]" | `task_head_errors` |
//! | classify without a classifier / fill-mask without an MLM head | 1, "cannot classify" / "cannot fill masks" | `task_head_errors` |
//! | unknown option / subcommand / bad value | 2, names the option / value | `command_line_errors` |
//! | out-of-range option values (`--top-k 0`, `--chunk 0`, `--max-tokens 0`, args + `--input`) | 1, names the option | `command_line_errors` |
//! | input file missing | 1, names the file | `command_line_errors` |
//! | output file not writable (no dir, a directory, /dev/full) | 1, names the file or "writing the output" | `unwritable_outputs` |
//! | 100k texts streamed (JSONL in, JSONL file out) | 0, 100k lines in order, peak RSS growth over an 8192-text run < 24 MiB | `hundred_thousand_texts_stream_with_bounded_memory` |
//! | failed batch, then the next one | typed error, then identical results | `encoder_recovers_after_failed_batches` |

mod common;

use std::io::Read;
use std::path::Path;

use assert_cmd::Command;
use serde_json::{Value, json};
use wgbert::Error;
use wgbert::encoder::{EmbedPooling, Encoder, LoadOptions};
use wgbert::ops::DType;

use common::model_dir::{
    fails, fails_with, floats, json_lines, model_dir, succeeds, wgbert, write_tokenizer,
};

// ---------------------------------------------------------------------------------------------
// Helpers (model directories: tests/common/model_dir.rs).

fn bare_wgbert() -> Command {
    let mut c = Command::cargo_bin("wgbert").unwrap();
    c.arg("--quiet").env("HF_HUB_OFFLINE", "1");
    c
}

/// `embed` on a model directory, expecting exit 1 and `wanted` in stderr.
fn embed_fails(dir: &Path, wanted: &[&str]) -> String {
    fails_with(wgbert(dir).args(["embed", "w5 w6"]), 1, wanted)
}

type ConfigEdit = Box<dyn Fn(&mut serde_json::Map<String, Value>)>;

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let path = dir.join("config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(v.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// A safetensors file split into its JSON header and its data section.
fn read_safetensors(path: &Path) -> (serde_json::Map<String, Value>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let Value::Object(map) = header else {
        panic!("header is not an object")
    };
    (map, bytes[8 + n..].to_vec())
}

/// Writes a header (as given, offsets untouched) and a data section.
fn write_safetensors(path: &Path, header: &serde_json::Map<String, Value>, data: &[u8]) {
    let mut h = serde_json::to_vec(header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    std::fs::write(path, out).unwrap();
}

/// Rewrites a checkpoint tensor by tensor: `f` may drop (None) or change (dtype, shape, bytes)
/// each tensor; offsets are recomputed so the file stays well-formed safetensors.
type Tensor = (String, Vec<usize>, Vec<u8>);
fn rebuild_safetensors(path: &Path, mut f: impl FnMut(&str, Tensor) -> Option<Tensor>) {
    let (header, data) = read_safetensors(path);
    let mut names: Vec<&String> = header.keys().filter(|k| *k != "__metadata__").collect();
    names.sort_by_key(|n| header[*n]["data_offsets"][0].as_u64().unwrap());
    let mut out_header = serde_json::Map::new();
    let mut out_data = Vec::new();
    for name in names {
        let info = &header[name];
        let dtype = info["dtype"].as_str().unwrap().to_string();
        let shape: Vec<usize> = info["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let start = info["data_offsets"][0].as_u64().unwrap() as usize;
        let end = info["data_offsets"][1].as_u64().unwrap() as usize;
        let Some((dtype, shape, bytes)) = f(name, (dtype, shape, data[start..end].to_vec())) else {
            continue;
        };
        let s = out_data.len();
        out_data.extend_from_slice(&bytes);
        out_header.insert(
            name.clone(),
            json!({"dtype": dtype, "shape": shape, "data_offsets": [s, out_data.len()]}),
        );
    }
    write_safetensors(path, &out_header, &out_data);
}

fn load_opts(max_batch_tokens: Option<usize>) -> LoadOptions {
    LoadOptions {
        dtype: Some(DType::F32),
        max_batch_tokens,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Model directory, config.json, weights, tokenizer.

#[test]
fn model_source_errors() {
    // Missing directory.
    fails_with(
        bare_wgbert().args(["--model", "./no/such/dir", "embed", "w5"]),
        1,
        &["no/such/dir", "not found"],
    );
    // A file where a directory is expected.
    let dir = model_dir("encoder_noprefix");
    let config = dir.path().join("config.json");
    fails_with(
        bare_wgbert()
            .arg("--model")
            .arg(&config)
            .args(["embed", "w5"]),
        1,
        &["config.json", "is a file"],
    );
    // Unreadable config.json: a directory of that name (the tests may run as root, where
    // permission bits do not make a file unreadable).
    let dir = model_dir("encoder_noprefix");
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    std::fs::create_dir(dir.path().join("config.json")).unwrap();
    let msg = embed_fails(dir.path(), &["config.json"]);
    assert!(
        msg.contains("Is a directory") || msg.contains("no config.json"),
        "{msg}"
    );
    // A directory that is not a model directory.
    let empty = tempfile::tempdir().unwrap();
    embed_fails(empty.path(), &["no config.json"]);
    // No weights.
    let dir = model_dir("encoder_noprefix");
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    embed_fails(dir.path(), &["model.safetensors"]);
}

#[test]
fn config_errors() {
    let dir = model_dir("encoder_noprefix");
    std::fs::write(dir.path().join("config.json"), "{ \"hidden_size\": 32,").unwrap();
    embed_fails(dir.path(), &["config.json", "not valid JSON"]);

    let cases: Vec<(&str, ConfigEdit, &[&str])> = vec![
        (
            "lacks hidden_size",
            Box::new(|c| {
                c.remove("hidden_size");
            }),
            &["config.json", "hidden_size"],
        ),
        (
            "hidden not divisible by heads",
            Box::new(|c| {
                c.insert("num_attention_heads".into(), json!(3));
            }),
            &["not divisible", "num_attention_heads"],
        ),
        (
            "zero layers",
            Box::new(|c| {
                c.insert("num_hidden_layers".into(), json!(0));
                c.insert("layer_types".into(), json!([]));
            }),
            &["`num_hidden_layers` is 0"],
        ),
        (
            "huge vocab",
            Box::new(|c| {
                c.insert("vocab_size".into(), json!(1_000_000_000_000u64));
            }),
            &["vocab_size", "implausibly large"],
        ),
        (
            "vocab that disagrees with the weights",
            Box::new(|c| {
                c.insert("vocab_size".into(), json!(1024));
            }),
            &["tok_embeddings", "512", "1024"],
        ),
    ];
    for (what, edit, wanted) in cases {
        let dir = model_dir("encoder_noprefix");
        edit_config(dir.path(), edit);
        let msg = embed_fails(dir.path(), wanted);
        println!("{what}: {msg}");
    }
}

#[test]
fn weights_errors() {
    let st = |dir: &tempfile::TempDir| dir.path().join("model.safetensors");

    // Truncated to half its length.
    let dir = model_dir("encoder_noprefix");
    let bytes = std::fs::read(st(&dir)).unwrap();
    std::fs::write(st(&dir), &bytes[..bytes.len() / 2]).unwrap();
    embed_fails(dir.path(), &["model.safetensors", "truncated"]);

    // Too short to hold even the header length.
    std::fs::write(st(&dir), [1u8, 2, 3]).unwrap();
    embed_fails(dir.path(), &["model.safetensors", "too short"]);

    // A header length field of garbage.
    let dir = model_dir("encoder_noprefix");
    let mut bytes = std::fs::read(st(&dir)).unwrap();
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(st(&dir), &bytes).unwrap();
    embed_fails(dir.path(), &["model.safetensors", "header length"]);

    // A header that is not JSON.
    let dir = model_dir("encoder_noprefix");
    let mut bytes = std::fs::read(st(&dir)).unwrap();
    bytes[8] = b'#';
    std::fs::write(st(&dir), &bytes).unwrap();
    embed_fails(
        dir.path(),
        &["model.safetensors", "not valid safetensors JSON"],
    );

    // A missing tensor (the file stays well-formed).
    let dir = model_dir("encoder_noprefix");
    rebuild_safetensors(&st(&dir), |name, t| {
        (name != "final_norm.weight").then_some(t)
    });
    embed_fails(dir.path(), &["missing tensor", "final_norm.weight"]);

    // A wrong shape: final_norm.weight [32] stored as [31].
    let dir = model_dir("encoder_noprefix");
    rebuild_safetensors(&st(&dir), |name, (dt, shape, bytes)| {
        Some(if name == "final_norm.weight" {
            (dt, vec![31], bytes[..31 * 4].to_vec())
        } else {
            (dt, shape, bytes)
        })
    });
    embed_fails(dir.path(), &["final_norm.weight", "31", "32"]);

    // An unsupported dtype: the same bytes declared I32.
    let dir = model_dir("encoder_noprefix");
    rebuild_safetensors(&st(&dir), |name, (dt, shape, bytes)| {
        let dt = if name == "final_norm.weight" {
            "I32".into()
        } else {
            dt
        };
        Some((dt, shape, bytes))
    });
    embed_fails(
        dir.path(),
        &["final_norm.weight", "I32", "only F32, F16 and BF16"],
    );

    // Offsets past the end of the file: the last tensor claims bytes the file does not have.
    let dir = model_dir("encoder_noprefix");
    let (mut header, data) = read_safetensors(&st(&dir));
    let last = header
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .max_by_key(|(_, v)| v["data_offsets"][1].as_u64().unwrap())
        .map(|(k, _)| k.clone())
        .unwrap();
    let info = header.get_mut(&last).unwrap();
    let start = info["data_offsets"][0].as_u64().unwrap();
    let end = info["data_offsets"][1].as_u64().unwrap();
    let extra = 4 * 1024;
    info["data_offsets"] = json!([start, end + extra]);
    info["shape"] = json!([(end + extra - start) / 4]);
    write_safetensors(&st(&dir), &header, &data);
    let msg = embed_fails(dir.path(), &["model.safetensors"]);
    assert!(
        msg.contains("truncated") || msg.contains("past the end"),
        "{msg}"
    );
}

#[test]
fn tokenizer_errors() {
    let dir = model_dir("encoder_noprefix");
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    embed_fails(dir.path(), &["no tokenizer.json", "--tokenizer"]);

    let dir = model_dir("encoder_noprefix");
    std::fs::write(dir.path().join("tokenizer.json"), "{\"model\": 3").unwrap();
    embed_fails(dir.path(), &["tokenizer", "tokenizer.json", "cannot load"]);

    let dir = model_dir("encoder_noprefix");
    fails(
        dir.path(),
        &["--tokenizer", "/no/such/tokenizer.json", "embed", "w5"],
        &["/no/such/tokenizer.json", "not found"],
    );
}

#[test]
fn tokenizer_ids_outside_the_model_vocab_name_the_text() {
    // A tokenizer with 600 entries on a 512-token model: w550 has id 550, which the model has
    // no embedding for. The error must name the id, the vocabulary and the text that holds it
    // (here the fourth text, in the second chunk of two, behind a text in the same batch).
    let dir = model_dir("encoder_noprefix");
    write_tokenizer(&dir.path().join("tokenizer.json"), 600);
    fails(
        dir.path(),
        &["embed", "--chunk", "2", "w5", "w6", "w7", "w550"],
        &["input 3", "token id 550", "vocabulary of 512"],
    );
    let mlm = model_dir("mlm_v4");
    write_tokenizer(&mlm.path().join("tokenizer.json"), 600);
    fails(
        mlm.path(),
        &["fill-mask", "w5 [MASK]", "[MASK] w550"],
        &["input 1", "token id 550"],
    );
}

// ---------------------------------------------------------------------------------------------
// Texts.

#[test]
fn empty_and_whitespace_texts() {
    // The choice: an empty or whitespace-only text is a valid input whose tokens are just
    // [CLS] [SEP] (what HF tokenizers + transformers give for ""), so embed returns that
    // sequence's embedding (n_tokens 2) rather than failing a whole job on one blank line.
    // Tasks that need content fail: fill-mask names the text without [MASK].
    let dir = model_dir("encoder_noprefix");
    let lines = succeeds(wgbert(dir.path()).args(["embed", "--normalize", "", "   ", "\t", "w5"]));
    assert_eq!(lines.len(), 4);
    for l in &lines[..3] {
        assert_eq!(l["n_tokens"], 2, "{l}");
        let v = floats(&l["embedding"]);
        assert!(v.iter().all(|x| x.is_finite()), "{v:?}");
        assert_eq!(
            v,
            floats(&lines[0]["embedding"]),
            "all blanks are [CLS] [SEP]"
        );
    }
    assert_eq!(lines[3]["n_tokens"], 3);

    // Blank lines of a plain-text input file are texts too (one per line), so outputs stay
    // aligned with input lines.
    let input = dir.path().join("texts.txt");
    std::fs::write(&input, "w5\n\n  \nw6\n").unwrap();
    let lines = succeeds(wgbert(dir.path()).args(["embed", "--input"]).arg(&input));
    let n: Vec<i64> = lines
        .iter()
        .map(|l| l["n_tokens"].as_i64().unwrap())
        .collect();
    assert_eq!(n, [3, 2, 2, 3]);

    let cls = model_dir("cls_mean");
    let lines = succeeds(wgbert(cls.path()).args(["classify", "--json", "", "  "]));
    assert_eq!(lines.len(), 2);
    assert!(lines[0]["score"].as_f64().unwrap().is_finite());

    let mlm = model_dir("mlm_v4");
    fails(
        mlm.path(),
        &["fill-mask", "w5 [MASK]", "   "],
        &["input 1", "no [MASK]"],
    );
}

#[test]
fn invalid_utf8_input_names_the_line() {
    let dir = model_dir("encoder_noprefix");
    for name in ["texts.txt", "texts.jsonl"] {
        let input = dir.path().join(name);
        let mut bytes = b"{\"text\": \"w5\"}\n{\"text\": \"w6 ".to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        bytes.extend_from_slice(b"\"}\n");
        std::fs::write(&input, &bytes).unwrap();
        fails_with(
            wgbert(dir.path()).args(["embed", "--input"]).arg(&input),
            1,
            &[name, "line 2 is not valid UTF-8"],
        );
    }
    let mut stdin = b"w5\nw6\n".to_vec();
    stdin.extend_from_slice(&[0xc3, 0x28, b'\n']);
    fails_with(
        wgbert(dir.path()).args(["embed"]).write_stdin(stdin),
        1,
        &["<stdin>", "line 3 is not valid UTF-8"],
    );
    let mlm = model_dir("mlm_v4");
    let input = dir.path().join("bad.txt");
    std::fs::write(&input, [b'[', 0x80, b']']).unwrap();
    fails_with(
        wgbert(mlm.path())
            .args(["fill-mask", "--input"])
            .arg(&input),
        1,
        &["bad.txt", "line 1 is not valid UTF-8"],
    );
}

#[test]
fn bad_jsonl_lines_name_the_line() {
    let dir = model_dir("encoder_noprefix");
    let cases: [(&str, &str); 4] = [
        (
            "{\"text\": \"w5\"}\nnot json\n",
            "line 2 is not a JSON object",
        ),
        ("[1, 2]\n", "line 1 is not a JSON object"),
        (
            "{\"text\": \"w5\"}\n\n{\"id\": 3}\n",
            "line 3 has no \"text\" field",
        ),
        ("{\"text\": 5}\n", "line 1: \"text\" is not a string"),
    ];
    for (content, wanted) in cases {
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, content).unwrap();
        fails_with(
            wgbert(dir.path()).args(["embed", "--input"]).arg(&input),
            1,
            &["in.jsonl", wanted],
        );
    }
}

#[test]
fn control_characters_are_plain_text() {
    // BEL, ESC, DEL, a C1 control, a BOM and a lone CR inside texts are characters like any
    // other: no panic, valid JSON out, the text echoed back exactly. NUL cannot be passed in
    // an argument (the OS refuses it), so it comes through JSONL and stdin.
    let weird = "w5\u{7}w6\u{1b}[31m w7\u{7f}\u{85}\u{feff}\rw8";
    let dir = model_dir("encoder_noprefix");
    let lines = succeeds(wgbert(dir.path()).args(["embed", weird, "w5"]));
    assert_eq!(lines.len(), 2);
    let n = lines[0]["n_tokens"].as_u64().unwrap();
    assert!(n > 4, "the words around the controls are tokens: {n}");
    assert!(floats(&lines[0]["embedding"]).iter().all(|x| x.is_finite()));

    // JSONL with escaped controls, NUL included; extra fields are carried over intact.
    let with_nul = format!("{weird}\u{0}w9");
    let input = dir.path().join("c.jsonl");
    let obj = json!({"text": with_nul, "note": "\u{0}\u{1f}"});
    std::fs::write(&input, format!("{obj}\n")).unwrap();
    let lines = succeeds(wgbert(dir.path()).args(["embed", "--input"]).arg(&input));
    assert_eq!(lines[0]["note"], "\u{0}\u{1f}");
    let n_nul = lines[0]["n_tokens"].as_u64().unwrap();
    assert!(n_nul > n, "{n_nul} vs {n}");
    // The same text on stdin (a lone CR stays inside the line; only the line end is cut).
    let lines = succeeds(
        wgbert(dir.path())
            .args(["embed"])
            .write_stdin(format!("{with_nul}\r\n")),
    );
    assert_eq!(lines[0]["n_tokens"].as_u64().unwrap(), n_nul);

    let mlm = model_dir("mlm_v4");
    let text = format!("{weird} [MASK]");
    let lines = succeeds(wgbert(mlm.path()).args(["fill-mask", "--json", &text]));
    assert_eq!(lines[0]["text"], text.as_str());
    assert_eq!(lines[0]["masks"].as_array().unwrap().len(), 1);
}

#[test]
fn hundred_thousand_characters() {
    let dir = model_dir("encoder_noprefix");
    // 100k characters of words: ~33k tokens, over the fixture's 512-position limit.
    let words: String = (0..40_000)
        .map(|i| format!("w{} ", 5 + i % 500))
        .collect::<String>()
        .chars()
        .take(100_000)
        .collect();
    assert_eq!(words.chars().count(), 100_000);
    fails(
        dir.path(),
        &["embed", "w5", &words],
        &["input 1", "over the model's limit of 512", "--truncate"],
    );
    // The same from a file (one line), so argument length limits play no part.
    let input = dir.path().join("long.txt");
    std::fs::write(&input, format!("w5\n{words}\n")).unwrap();
    fails_with(
        wgbert(dir.path()).args(["embed", "--input"]).arg(&input),
        1,
        &["input 1", "over the model's limit of 512"],
    );
    let lines = succeeds(
        wgbert(dir.path())
            .args(["--truncate", "embed", "--input"])
            .arg(&input),
    );
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["n_tokens"], 512, "cut to the limit, [SEP] kept");
    assert!(floats(&lines[1]["embedding"]).iter().all(|x| x.is_finite()));

    // One 100k-character word is one [UNK] token.
    let word = "x".repeat(100_000);
    let lines = succeeds(wgbert(dir.path()).args(["embed", &word]));
    assert_eq!(lines[0]["n_tokens"], 3);

    // fill-mask and classify refuse the long text the same way.
    let mlm = model_dir("mlm_v4");
    let masked = format!("[MASK] {words}");
    fails(
        mlm.path(),
        &["fill-mask", &masked],
        &["input 0", "limit of 512", "--truncate"],
    );
    let cls = model_dir("cls_mean");
    fails(
        cls.path(),
        &["classify", &words],
        &["input 0", "limit of 512"],
    );
}

#[test]
fn sequence_longer_than_the_batch_capacity_names_the_limit() {
    // --max-tokens 16: a 20-token text cannot fit any batch.
    let dir = model_dir("encoder_noprefix");
    let text = (5..23)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    fails(
        dir.path(),
        &["--max-tokens", "16", "embed", "w5", &text],
        &["input 1", "20 tokens", "capacity of 16"],
    );
    let mlm = model_dir("mlm_v4");
    let masked = format!("[MASK] {text}");
    fails(
        mlm.path(),
        &["--max-tokens", "16", "fill-mask", &masked],
        &["input 0", "capacity of 16"],
    );
    // At the capacity it fits.
    let fits = (5..19)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let lines = succeeds(wgbert(dir.path()).args(["--max-tokens", "16", "embed", &fits]));
    assert_eq!(lines[0]["n_tokens"], 16);
}

// ---------------------------------------------------------------------------------------------
// Tasks, command line, outputs.

#[test]
fn task_head_errors() {
    let mlm = model_dir("mlm_v4");
    fails(
        mlm.path(),
        &["fill-mask", "w5 [MASK]", "w7 w8"],
        &["input 1", "no [MASK]"],
    );
    for name in ["mlm_v4", "encoder_noprefix"] {
        let dir = model_dir(name);
        fails(
            dir.path(),
            &["classify", "w5"],
            &["cannot classify", "classifier"],
        );
    }
    let enc = model_dir("encoder_noprefix");
    fails(
        enc.path(),
        &["fill-mask", "w5 [MASK]"],
        &["cannot fill masks", "MLM head"],
    );
}

#[test]
fn command_line_errors() {
    // clap: exit 2, the offending word named.
    fails_with(
        bare_wgbert().args(["embed", "--no-such-option", "w5"]),
        2,
        &["--no-such-option"],
    );
    fails_with(
        bare_wgbert().args(["no-such-command"]),
        2,
        &["no-such-command"],
    );
    fails_with(
        bare_wgbert().args(["--dtype", "f64", "embed", "w5"]),
        2,
        &["f64", "--dtype"],
    );
    fails_with(
        bare_wgbert().args(["embed", "--pooling", "max", "w5"]),
        2,
        &["max", "--pooling"],
    );
    fails_with(
        bare_wgbert().args(["--max-tokens", "many", "embed", "w5"]),
        2,
        &["many", "--max-tokens"],
    );
    fails_with(&mut bare_wgbert(), 2, &["Usage"]);

    // Values clap accepts but the program refuses: exit 1, the option named.
    let dir = model_dir("mlm_v4");
    fails(
        dir.path(),
        &["fill-mask", "--top-k", "0", "[MASK]"],
        &["--top-k", "0"],
    );
    fails(
        dir.path(),
        &["fill-mask", "--top-k", "65", "[MASK]"],
        &["--top-k", "65"],
    );
    fails(dir.path(), &["embed", "--chunk", "0", "w5"], &["--chunk"]);
    fails(
        dir.path(),
        &["--max-tokens", "0", "embed", "w5"],
        &["--max-tokens"],
    );
    fails(
        dir.path(),
        &["embed", "--format", "npy", "w5"],
        &["--output"],
    );
    fails_with(
        wgbert(dir.path()).args([
            "embed",
            "--pooling",
            "none",
            "--format",
            "npy",
            "--output",
            "x.npy",
            "w5",
        ]),
        1,
        &["--pooling none", "jsonl"],
    );
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "w5\n").unwrap();
    fails_with(
        wgbert(dir.path())
            .args(["embed", "w5", "--input"])
            .arg(&input),
        1,
        &["either as arguments or with --input"],
    );
    fails(
        dir.path(),
        &["embed", "--input", "/no/such/input.txt"],
        &["/no/such/input.txt"],
    );
}

#[test]
fn unwritable_outputs() {
    let dir = model_dir("encoder_noprefix");
    for format in ["jsonl", "npy", "safetensors"] {
        fails_with(
            wgbert(dir.path()).args([
                "embed",
                "--format",
                format,
                "--output",
                "/nonexistent-dir/out.bin",
                "w5",
            ]),
            1,
            &["cannot write output file", "/nonexistent-dir/out.bin"],
        );
        // The output path is a directory.
        fails_with(
            wgbert(dir.path())
                .args(["embed", "--format", format, "--output"])
                .arg(dir.path())
                .arg("w5"),
            1,
            &["cannot write output file"],
        );
    }
    // A device that refuses every write: the error surfaces, it is not lost in a buffer.
    if Path::new("/dev/full").exists() {
        for format in ["jsonl", "npy"] {
            fails_with(
                wgbert(dir.path()).args([
                    "embed",
                    "--format",
                    format,
                    "--output",
                    "/dev/full",
                    "w5",
                ]),
                1,
                &["No space left on device"],
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming.

/// Peak resident set (VmHWM, KiB) of a running process, from /proc.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Embeds `n` tiny JSONL texts (each with a 200-byte extra field) through the CLI into an
/// output file; returns (output lines, peak RSS in KiB as last seen in /proc).
fn stream_job(dir: &Path, n: usize) -> (Vec<Value>, u64) {
    let input = dir.join(format!("in-{n}.jsonl"));
    let output = dir.join(format!("out-{n}.jsonl"));
    let pad = "p".repeat(200);
    let mut text = String::with_capacity(n * 240);
    for i in 0..n {
        text.push_str(&format!(
            "{{\"text\": \"w{}\", \"i\": {i}, \"pad\": \"{pad}\"}}\n",
            5 + i % 507
        ));
    }
    std::fs::write(&input, text).unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("wgbert"))
        .arg("--model")
        .arg(dir)
        .args(["--quiet", "embed", "--pooling", "cls", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .env("HF_HUB_OFFLINE", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // VmHWM only grows, so the last value read before the process exits is its peak up to
    // that moment (polled every 10 ms; the job runs for seconds).
    let mut peak = 0;
    let status = loop {
        if let Some(hwm) = vm_hwm_kib(child.id()) {
            peak = peak.max(hwm);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    let out = std::fs::read(&output).unwrap();
    (json_lines(&out), peak)
}

#[test]
#[cfg(target_os = "linux")]
fn hundred_thousand_texts_stream_with_bounded_memory() {
    // How memory is bounded, honestly: the absolute RSS of a process running lavapipe says
    // little (driver, shader JIT, mapped weights, GPU buffers in host memory), so the test runs
    // the same job on 8192 texts (two chunks of 4096, the same GPU batches) and on
    // 100k texts, and compares peak RSS (VmHWM). Each text carries a 200-byte extra field that
    // is copied to its output line; a CLI that read all inputs, or held all results or output
    // lines, before writing grows by over 100 MiB here (measured by hand: `--chunk 100000`
    // peaks at 232 MiB against 113 MiB when streaming). Streaming keeps the growth to noise;
    // the bound allows 24 MiB for allocator and driver variance.
    let dir = model_dir("encoder_noprefix");
    let t = std::time::Instant::now();
    let (small, small_peak) = stream_job(dir.path(), 8192);
    assert_eq!(small.len(), 8192);
    let (lines, peak) = stream_job(dir.path(), 100_000);
    println!(
        "peak RSS: 8192 texts {} MiB, 100k texts {} MiB ({:.1?} for both runs)",
        small_peak >> 10,
        peak >> 10,
        t.elapsed()
    );
    assert_eq!(lines.len(), 100_000, "one output line per input line");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["index"], i, "output in input order");
        assert_eq!(l["i"], i, "extra fields carried over to their own line");
        assert_eq!(l["n_tokens"], 3);
    }
    // Text i is text i + 507: the same embedding wherever it sits in the stream (other batch,
    // other chunk, other run).
    for i in [0, 4000, 8000, 50_000] {
        assert_eq!(
            lines[i]["embedding"],
            lines[i + 507 * 40]["embedding"],
            "{i}"
        );
    }
    assert_eq!(lines[8191]["embedding"], small[8191]["embedding"]);
    assert!(small_peak > 0 && peak > 0, "VmHWM could not be read");
    let growth_mib = peak.saturating_sub(small_peak) as f64 / 1024.0;
    assert!(
        growth_mib < 24.0,
        "peak RSS grew by {growth_mib:.1} MiB from 8192 to 100k texts: outputs are being held"
    );
}

// ---------------------------------------------------------------------------------------------
// Library: the Encoder after failures.

#[test]
fn encoder_recovers_after_failed_batches() {
    let dir = model_dir("encoder_noprefix");
    let source = dir.path().to_str().unwrap();
    // A 16-token capacity so that several batches run per call.
    let enc = Encoder::load_on(common::gpu(), source, &load_opts(Some(16))).unwrap();
    let good: Vec<Vec<u32>> = vec![vec![1, 5, 6, 2], vec![1, 7, 8, 9, 10, 2], vec![1, 2]];
    let want = enc.embed_ids(&good, EmbedPooling::Mean, false).unwrap();
    let want_texts = enc
        .embed(&["w5 w6", "", "w9"], EmbedPooling::Cls, true)
        .unwrap();

    let check = |what: &str| {
        let got = enc.embed_ids(&good, EmbedPooling::Mean, false).unwrap();
        assert_eq!(got, want, "after {what}: same results as before");
        let got = enc
            .embed(&["w5 w6", "", "w9"], EmbedPooling::Cls, true)
            .unwrap();
        assert_eq!(got, want_texts, "after {what}: same results as before");
    };

    // An id outside the vocabulary, in a later batch than the first (the first batch has run
    // on the GPU when the error comes): names the id, the vocabulary and its own sequence.
    let mut bad = good.clone();
    bad.extend([vec![1; 12], vec![1, 5, 9999, 2]]);
    match enc.embed_ids(&bad, EmbedPooling::Mean, false) {
        Err(Error::Input { index, message }) => {
            assert_eq!(index, 4, "{message}");
            assert!(
                message.contains("9999") && message.contains("512"),
                "{message}"
            );
        }
        other => panic!("expected Error::Input, got {other:?}"),
    }
    check("an id outside the vocabulary");

    // The bad id shares its batch with good sequences: still names its own sequence.
    let bad = vec![vec![1, 5, 2], vec![1, 6, 2], vec![1, 700, 2]];
    match enc.embed_ids(&bad, EmbedPooling::Cls, false) {
        Err(Error::Input { index, message }) => assert_eq!(index, 2, "{message}"),
        other => panic!("expected Error::Input, got {other:?}"),
    }
    check("a bad id inside a batch");

    // A single sequence longer than the batch capacity: names the capacity.
    let long: Vec<u32> = std::iter::once(1)
        .chain(5..25)
        .chain(std::iter::once(2))
        .collect();
    match enc.embed_ids(&[good[0].clone(), long], EmbedPooling::Mean, false) {
        Err(Error::Input { index, message }) => {
            assert_eq!(index, 1);
            assert!(
                message.contains("22 tokens") && message.contains("capacity of 16"),
                "{message}"
            );
        }
        other => panic!("expected Error::Input, got {other:?}"),
    }
    check("a sequence over the capacity");

    // A text over the model's 512-token limit (the tokenizer refuses it): names the limit.
    let words = vec!["w5"; 600].join(" ");
    match enc.embed(&["w6", &words], EmbedPooling::Mean, false) {
        Err(Error::Input { index, message }) => {
            assert_eq!(index, 1);
            assert!(message.contains("limit of 512"), "{message}");
        }
        other => panic!("expected Error::Input, got {other:?}"),
    }
    check("a text over the model's limit");

    // An empty token sequence, a missing head, a bad top-k.
    assert!(matches!(
        enc.embed_ids(&[vec![1, 2], vec![]], EmbedPooling::Cls, false),
        Err(Error::Input { index: 1, .. })
    ));
    assert!(matches!(
        enc.fill_mask(&["w5 [MASK]"], 3),
        Err(Error::MissingHead { .. })
    ));
    assert!(matches!(
        enc.classify(&["w5"]),
        Err(Error::MissingHead { .. })
    ));
    check("an empty sequence and missing heads");

    // The same on a model with an MLM head: a failed fill-mask, then a good one.
    let mlm_dir = model_dir("mlm_v4");
    let mlm = Encoder::load_on(
        common::gpu(),
        mlm_dir.path().to_str().unwrap(),
        &load_opts(Some(16)),
    )
    .unwrap();
    let texts = ["w5 [MASK] w7", "[MASK] w9 [MASK]"];
    let want = mlm.fill_mask(&texts, 4).unwrap();
    assert!(matches!(
        mlm.fill_mask(&["w5 [MASK]", "w6"], 4),
        Err(Error::Input { index: 1, .. })
    ));
    assert!(matches!(
        mlm.mlm_topk(&[vec![1, 3, 2]], &[vec![3]], 4),
        Err(Error::Input { index: 0, .. })
    ));
    assert!(matches!(
        mlm.fill_mask_ids(&[vec![1, 3, 2], vec![1, 3, 600, 2]], 3, 4),
        Err(Error::Input { index: 1, .. })
    ));
    assert_eq!(mlm.fill_mask(&texts, 4).unwrap(), want);
}
