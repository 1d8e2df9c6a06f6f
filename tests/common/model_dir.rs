//! Model directories for CLI tests: a fixture checkpoint (tests/fixtures) copied into a
//! temporary directory, with a word-level tokenizer over the fixture vocabulary, and the
//! `wgbert` binary pointed at it, and the two ways a command is checked: its output on
//! success, or its message on failure.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{Value, json};

pub fn fixture(name: &str) -> PathBuf {
    super::fixtures_dir().join(name)
}

/// A fixture directory and its `expected.json` (what the reference library computed).
pub fn expected(name: &str) -> (PathBuf, Value) {
    let dir = fixture(name);
    let path = dir.join("expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (dir, value)
}

/// A WordLevel tokenizer: [PAD]=0 [CLS]=1 [SEP]=2 [MASK]=3 [UNK]=4, then w5..w{vocab-1}.
pub fn write_tokenizer(path: &Path, vocab_size: usize) {
    let specials = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"];
    let mut vocab = serde_json::Map::new();
    for (i, t) in specials.iter().enumerate() {
        vocab.insert(t.to_string(), json!(i));
    }
    for i in 5..vocab_size {
        vocab.insert(format!("w{i}"), json!(i));
    }
    let added: Vec<Value> = specials
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    let tok = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [1], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [2], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::write(path, serde_json::to_string(&tok).unwrap()).unwrap();
}

/// Copies a directory tree (a fixture with module folders) so that a test may edit it.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// A model directory: the fixture's files (copied, so they may be corrupted) plus the test
/// tokenizer over the fixtures' 512-token vocabulary.
pub fn model_dir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    write_tokenizer(&dir.path().join("tokenizer.json"), 512);
    dir
}

pub fn wgbert(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("wgbert").unwrap();
    c.arg("--model")
        .arg(dir)
        .arg("--quiet")
        .env("HF_HUB_OFFLINE", "1");
    c
}

pub fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8(out.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// A command that must succeed; its stdout as JSON lines.
pub fn succeeds(cmd: &mut Command) -> Vec<Value> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "exit status {:?}, stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    json_lines(&out.stdout)
}

/// A command that must fail with exit status `code` and every one of `wanted` in its stderr
/// (returned for further checks).
pub fn fails_with(cmd: &mut Command, code: i32, wanted: &[&str]) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status {:?}, stderr:\n{stderr}",
        out.status
    );
    for w in wanted {
        assert!(stderr.contains(w), "stderr lacks {w:?}:\n{stderr}");
    }
    stderr
}

/// `wgbert ARGS` on the model in `dir` must fail with exit status 1 and every one of
/// `wanted` in its stderr (returned).
pub fn fails(dir: &Path, args: &[&str], wanted: &[&str]) -> String {
    fails_with(wgbert(dir).args(args), 1, wanted)
}

/// The unsigned integers of a JSON array.
pub fn uints(v: &Value) -> Vec<u64> {
    let list = v.as_array().expect("a JSON array");
    list.iter()
        .map(|x| x.as_u64().expect("an unsigned integer"))
        .collect()
}

/// The numbers of a JSON array.
pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

/// Runs `cmd` with its stdout read by nobody (a closed pipe, like `| head` that has quit):
/// it must end quietly, with status 0 or killed by SIGPIPE, and nothing on stderr.
pub fn quiet_on_closed_stdout(cmd: &mut std::process::Command) {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    #[cfg(unix)]
    let by_sigpipe = {
        use std::os::unix::process::ExitStatusExt;
        out.status.signal() == Some(13)
    };
    #[cfg(not(unix))]
    let by_sigpipe = false;
    assert!(
        out.status.success() || by_sigpipe,
        "{cmd:?}: {:?}, stderr: {stderr}",
        out.status
    );
    // Drivers may log on stderr (GL without XDG_RUNTIME_DIR); wgbert itself says nothing.
    for noise in ["panicked", "Broken pipe", "failed printing", "error: "] {
        let ours = stderr
            .lines()
            .any(|l| l.contains(noise) && !l.contains("XDG_RUNTIME_DIR"));
        assert!(!ours, "{cmd:?} printed: {stderr}");
    }
}
