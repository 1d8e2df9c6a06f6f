//! Regression tests for the `cargo fuzz` targets in `fuzz/` (see README.md, "Fuzzing"), run by
//! a plain `cargo test` without cargo-fuzz: the seed corpora stay valid, every input committed
//! under `tests/fuzz_regressions/` and every inline edge case below is refused with an `Err`
//! (never a panic), and the packer keeps its invariants on awkward limits.
//!
//! Layout of `tests/fuzz_regressions/`: `config/*` are config.json texts; `weights/*` are raw
//! safetensors files (the `weights` target's mode-0 input without its two leading bytes).

#[path = "../fuzz/fuzz_targets/tiny_config.rs"]
mod tiny_config;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use wgbert::Error;
use wgbert::model::config::ModelConfig;
use wgbert::model::weights::{Checkpoint, Heads, Storage};
use wgbert::text::pack::{Packer, pack};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Files of a directory, sorted; none when it does not exist.
fn files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        let path = entry?.path();
        if path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The small config the `weights` target validates against (same flag bits).
fn fuzz_config(flags: u8) -> Result<ModelConfig> {
    Ok(tiny_config::tiny_config(flags)?)
}

/// What the `weights` target does with a file: open, validate, read every tensor both ways.
fn replay_weights(bytes: &[u8], cfg: &ModelConfig) -> Result<Option<Heads>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("model.safetensors");
    std::fs::write(&path, bytes)?;
    let ckpt = match Checkpoint::open_file(&path) {
        Ok(c) => c,
        Err(e) => {
            ensure!(matches!(e, Error::Weights { .. }), "unexpected error {e:?}");
            return Ok(None);
        }
    };
    let heads = ckpt.validate(cfg).ok();
    let mut out = Vec::new();
    for name in ckpt.names() {
        let shape = ckpt
            .shape(name)
            .context("listed tensor has a shape")?
            .to_vec();
        let numel = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .context("accepted shape overflows")?;
        for storage in [Storage::F32, Storage::F16] {
            if let Ok(got) = ckpt.read_as(name, storage, &mut out) {
                ensure!(got == shape, "{name}: shape");
                ensure!(out.len() == numel * storage.size_bytes(), "{name}: length");
            }
        }
    }
    Ok(heads)
}

/// A safetensors file from a header object and data bytes.
fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn config_seeds_parse() -> Result<()> {
    let seeds = files(&root().join("fuzz/seeds/config"))?;
    ensure!(!seeds.is_empty(), "no config seeds");
    for path in seeds {
        ModelConfig::from_file(&path).with_context(|| path.display().to_string())?;
    }
    Ok(())
}

#[test]
fn weights_seeds_validate() -> Result<()> {
    let seeds = files(&root().join("fuzz/seeds/weights"))?;
    ensure!(!seeds.is_empty(), "no weights seeds");
    for path in seeds {
        let bytes = std::fs::read(&path)?;
        ensure!(
            bytes.len() > 2 && bytes[0] == 0,
            "{}: mode 0",
            path.display()
        );
        let cfg = fuzz_config(bytes[1])?;
        let heads = replay_weights(&bytes[2..], &cfg)?;
        ensure!(
            heads.is_some(),
            "{}: seed does not validate",
            path.display()
        );
    }
    Ok(())
}

#[test]
fn committed_config_inputs_are_errors_or_valid() -> Result<()> {
    for path in files(&root().join("tests/fuzz_regressions/config"))? {
        let text = String::from_utf8_lossy(&std::fs::read(&path)?).into_owned();
        if let Ok(cfg) = ModelConfig::from_json_str(&text, &path) {
            ensure!(
                cfg.layers.len() == cfg.num_hidden_layers,
                "{}",
                path.display()
            );
        }
    }
    Ok(())
}

#[test]
fn committed_weights_inputs_do_not_panic() -> Result<()> {
    for path in files(&root().join("tests/fuzz_regressions/weights"))? {
        let bytes = std::fs::read(&path)?;
        for flags in [0u8, 0b0011_0000, 0b0110_0100] {
            replay_weights(&bytes, &fuzz_config(flags)?)
                .with_context(|| path.display().to_string())?;
        }
    }
    Ok(())
}

#[test]
fn config_edge_cases_are_errors() {
    let base = r#""vocab_size": 8, "hidden_size": 4, "intermediate_size": 4,
                  "num_attention_heads": 2"#;
    let bad = [
        String::new(),
        "[]".into(),
        "\u{feff}{}".into(),
        "{".into(),
        "[".repeat(10_000),
        format!(r#"{{{base}, "num_hidden_layers": 18446744073709551615}}"#),
        format!(r#"{{{base}, "num_hidden_layers": 1e300}}"#),
        format!(r#"{{{base}, "num_hidden_layers": -1}}"#),
        format!(r#"{{{base}, "num_hidden_layers": 2000000}}"#),
        format!(r#"{{{base}, "num_hidden_layers": 1, "global_attn_every_n_layers": 0}}"#),
        format!(r#"{{{base}, "num_hidden_layers": 1, "norm_eps": 1e300}}"#),
        format!(r#"{{{base}, "num_hidden_layers": 1, "rope_parameters": []}}"#),
        format!(
            r#"{{{base}, "num_hidden_layers": 1,
                "rope_parameters": {{"full_attention": 3}}}}"#
        ),
        format!(r#"{{{base}, "num_hidden_layers": 1, "id2label": {{"1": "a"}}}}"#),
        format!(r#"{{{base}, "num_hidden_layers": 1, "id2label": {{"0": "a", " 0": "b"}}}}"#),
        format!(r#"{{{base}, "num_hidden_layers": 1, "id2label": {{"-1": "a"}}}}"#),
        format!(r#"{{{base}, "num_hidden_layers": 1, "num_labels": 1e15}}"#),
        format!(r#"{{{base}, "num_hidden_layers": 1, "pad_token_id": 4294967296}}"#),
        format!(r#"{{{base}, "num_hidden_layers": 1, "layer_types": ["x"]}}"#),
        format!(r#"{{{base}, "num_hidden_layers": 1, "architectures": [1]}}"#),
    ];
    for text in bad {
        let shown: String = text.chars().take(80).collect();
        match ModelConfig::from_json_str(&text, "edge.json") {
            Err(Error::Config { .. }) => {}
            other => panic!("{shown}: expected Error::Config, got {other:?}"),
        }
    }
}

#[test]
fn weights_edge_cases_are_errors() -> Result<()> {
    let cfg = fuzz_config(0b0011_0000)?;
    let f32x2 = [0u8; 8];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty file", Vec::new()),
        ("short file", vec![1, 2, 3]),
        ("header length u64::MAX", u64::MAX.to_le_bytes().to_vec()),
        ("header length past the end", {
            let mut b = 100u64.to_le_bytes().to_vec();
            b.extend_from_slice(b"{}");
            b
        }),
        ("header not json", safetensors("{]", &[])),
        ("header with a NUL", safetensors("\u{0}", &[0xff])),
        (
            "data past the end",
            safetensors(
                r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                &f32x2,
            ),
        ),
        (
            "offsets overflow",
            safetensors(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551615,8]}}"#,
                &f32x2,
            ),
        ),
        (
            "shape overflows",
            safetensors(
                r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,8]}}"#,
                &f32x2,
            ),
        ),
        (
            "same tensor with and without the prefix",
            safetensors(
                r#"{"final_norm.weight":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},
                    "model.final_norm.weight":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                &f32x2,
            ),
        ),
        (
            "unsupported dtype",
            safetensors(
                r#"{"model.final_norm.weight":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}"#,
                &f32x2,
            ),
        ),
        (
            "classifier without rows",
            safetensors(
                r#"{"classifier.weight":{"dtype":"F32","shape":[0,2],"data_offsets":[0,0]},
                    "x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                &f32x2,
            ),
        ),
        (
            "f32 beyond the f16 range",
            safetensors(
                r#"{"model.final_norm.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                &[0, 0, 0x80, 0x7f, 0xff, 0xff, 0x7f, 0x7f],
            ),
        ),
    ];
    for (what, bytes) in cases {
        let heads = replay_weights(&bytes, &cfg).context(what)?;
        ensure!(heads.is_none(), "{what}: validated");
    }
    Ok(())
}

#[test]
fn pack_edge_limits() -> Result<()> {
    let seqs = vec![vec![1u32, 2, 3], vec![4], vec![5, 6]];
    for (capacity, max_seqs) in [(0, 1), (1, 0), (usize::MAX, 1), (1 << 32, 4)] {
        ensure!(
            matches!(pack(&seqs, capacity, max_seqs), Err(Error::Option(_))),
            "limits {capacity}, {max_seqs} accepted"
        );
    }
    // The largest capacity allowed, and max_seqs far beyond any batch.
    let batches = pack(&seqs, u32::MAX as usize, usize::MAX)?;
    ensure!(batches.len() == 1 && batches[0].cu_seqlens == [0, 3, 4, 6]);
    // One token per batch.
    let ones: Vec<Vec<u32>> = (0..5).map(|i| vec![i]).collect();
    let batches = pack(&ones, 1, 1)?;
    ensure!(batches.len() == 5);
    for (i, b) in batches.iter().enumerate() {
        ensure!(b.indices == [i] && b.positions == [0] && b.cu_seqlens == [0, 1]);
    }
    // Errors between and around batches, an empty source, a source of errors only.
    let source = vec![
        Err(Error::Input {
            index: 0,
            message: "x".into(),
        }),
        Ok((1, vec![])),
        Ok((2, vec![7u32; 4])),
        Ok((3, vec![7u32; 5])),
    ];
    let out: Vec<_> = Packer::new(source, 4, 2)?.collect();
    ensure!(out.len() == 4, "{out:?}");
    ensure!(out[0].is_err() && out[1].is_err() && out[3].is_err());
    ensure!(matches!(&out[2], Ok(b) if b.indices == [2]));
    let empty: Vec<Result<(usize, Vec<u32>), Error>> = Vec::new();
    ensure!(Packer::new(empty, 4, 2)?.next().is_none());
    Ok(())
}
