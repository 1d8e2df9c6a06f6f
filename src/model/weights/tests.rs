//! Unit tests of the checkpoint reader on small synthetic safetensors files.

use std::path::Path;

use half::bf16;
use safetensors::Dtype;
use safetensors::tensor::TensorView;

use super::*;
use crate::model::config::ModelConfig;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// One tensor to write: name, dtype, shape, raw little-endian bytes.
type Raw = (String, Dtype, Vec<usize>, Vec<u8>);

fn tiny(extra: &str) -> ModelConfig {
    let json = format!(
        r#"{{"vocab_size": 16, "hidden_size": 8, "intermediate_size": 6, "num_hidden_layers": 2,
            "num_attention_heads": 2, "local_attention": 4 {extra}}}"#
    );
    ModelConfig::from_json_str(&json, "tiny/config.json").expect("tiny config")
}

/// Deterministic F32 bytes for `n` elements.
fn f32_bytes(n: usize, seed: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| (((i * 7 + seed * 13) % 23) as f32 * 0.125 - 1.0).to_le_bytes())
        .collect()
}

/// All tensors `cfg` requires with `heads`, as F32.
fn full(cfg: &ModelConfig, heads: Heads) -> Vec<Raw> {
    expected_tensors(cfg, heads)
        .into_iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let n = shape.iter().product();
            (name, Dtype::F32, shape, f32_bytes(n, i))
        })
        .collect()
}

fn write(path: &Path, tensors: &[Raw]) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            let view = TensorView::new(*dtype, shape.clone(), data).expect("consistent view");
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).expect("write safetensors");
}

fn write_single(dir: &Path, tensors: &[Raw]) {
    write(&dir.join(SINGLE_FILE), tensors);
}

fn weights_message<T: std::fmt::Debug>(result: Result<T>) -> String {
    match result {
        Err(Error::Weights { message, .. }) => message,
        other => panic!("expected Error::Weights, got {other:?}"),
    }
}

#[test]
fn validates_a_complete_mlm_checkpoint() -> TestResult {
    let cfg = tiny("");
    let dir = tempfile::tempdir()?;
    write_single(dir.path(), &full(&cfg, Heads::MLM));
    let ckpt = Checkpoint::open(dir.path())?;
    assert_eq!(ckpt.validate(&cfg)?, Heads::MLM);
    assert_eq!(ckpt.len(), expected_tensors(&cfg, Heads::MLM).len());
    assert!(!ckpt.contains("model.layers.0.attn_norm.weight"));
    assert!(!ckpt.contains("decoder.weight"));
    Ok(())
}

#[test]
fn accepts_names_with_and_without_model_prefix() -> TestResult {
    let cfg = tiny("");
    let dir = tempfile::tempdir()?;
    let mut tensors = full(&cfg, Heads::NONE);
    for t in &mut tensors {
        t.0 = t.0.trim_start_matches("model.").to_owned();
    }
    write_single(dir.path(), &tensors);
    let ckpt = Checkpoint::open(dir.path())?;
    assert_eq!(ckpt.validate(&cfg)?, Heads::NONE);
    assert!(
        ckpt.names()
            .contains(&"model.embeddings.tok_embeddings.weight")
    );
    assert!(ckpt.contains("embeddings.tok_embeddings.weight"));
    assert_eq!(ckpt.shape("final_norm.weight"), Some(&[8usize][..]));
    Ok(())
}

#[test]
fn rejects_a_tensor_stored_under_both_spellings() -> TestResult {
    let cfg = tiny("");
    let dir = tempfile::tempdir()?;
    let mut tensors = full(&cfg, Heads::NONE);
    tensors.push((
        "final_norm.weight".into(),
        Dtype::F32,
        vec![8],
        f32_bytes(8, 0),
    ));
    write_single(dir.path(), &tensors);
    let message = weights_message(Checkpoint::open(dir.path()));
    assert!(
        message.contains("model.final_norm.weight") && message.contains("twice"),
        "{message}"
    );
    Ok(())
}

#[test]
fn names_a_missing_tensor() -> TestResult {
    let cfg = tiny("");
    let dir = tempfile::tempdir()?;
    let mut tensors = full(&cfg, Heads::MLM);
    tensors.retain(|t| t.0 != "model.layers.1.mlp_norm.weight");
    write_single(dir.path(), &tensors);
    let message = weights_message(Checkpoint::open(dir.path())?.validate(&cfg));
    assert!(
        message.contains("missing tensor 'model.layers.1.mlp_norm.weight'"),
        "{message}"
    );
    Ok(())
}

#[test]
fn names_a_tensor_with_the_wrong_shape() -> TestResult {
    let cfg = tiny("");
    let dir = tempfile::tempdir()?;
    let mut tensors = full(&cfg, Heads::MLM);
    let wqkv = tensors
        .iter_mut()
        .find(|t| t.0 == "model.layers.1.attn.Wqkv.weight");
    let wqkv = wqkv.ok_or("no Wqkv")?;
    wqkv.2 = vec![24, 7];
    wqkv.3 = f32_bytes(24 * 7, 1);
    write_single(dir.path(), &tensors);
    let message = weights_message(Checkpoint::open(dir.path())?.validate(&cfg));
    assert!(
        message.contains("'model.layers.1.attn.Wqkv.weight' has shape [24, 7]"),
        "{message}"
    );
    assert!(message.contains("[24, 8]"), "{message}");
    Ok(())
}

#[test]
fn names_a_tensor_with_an_unsupported_dtype() -> TestResult {
    let cfg = tiny("");
    let dir = tempfile::tempdir()?;
    let mut tensors = full(&cfg, Heads::NONE);
    let norm = tensors
        .iter_mut()
        .find(|t| t.0 == "model.final_norm.weight")
        .ok_or("no norm")?;
    norm.1 = Dtype::I64;
    norm.3 = vec![0u8; 8 * 8];
    write_single(dir.path(), &tensors);
    let ckpt = Checkpoint::open(dir.path())?;
    let message = weights_message(ckpt.validate(&cfg));
    assert!(
        message.contains("'model.final_norm.weight'") && message.contains("I64"),
        "{message}"
    );
    let mut out = Vec::new();
    assert!(
        ckpt.read_as("model.final_norm.weight", Storage::F32, &mut out)
            .is_err()
    );
    Ok(())
}

#[test]
fn reports_truncated_and_garbage_files() -> TestResult {
    let cfg = tiny("");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(SINGLE_FILE);
    write(&path, &full(&cfg, Heads::NONE));
    let bytes = std::fs::read(&path)?;

    std::fs::write(&path, &bytes[..bytes.len() - 10])?;
    let message = weights_message(Checkpoint::open(dir.path()));
    assert!(message.contains("truncated"), "{message}");

    std::fs::write(&path, &bytes[..100])?;
    let message = weights_message(Checkpoint::open(dir.path()));
    assert!(message.contains("truncated"), "{message}");

    let mut garbage = 20u64.to_le_bytes().to_vec();
    garbage.extend_from_slice(b"this is not JSON at ");
    std::fs::write(&path, &garbage)?;
    let message = weights_message(Checkpoint::open(dir.path()));
    assert!(message.contains("header"), "{message}");

    std::fs::write(&path, b"abc")?;
    let message = weights_message(Checkpoint::open(dir.path()));
    assert!(message.contains("too short"), "{message}");

    std::fs::write(&path, b"")?;
    assert!(Checkpoint::open(dir.path()).is_err());
    Ok(())
}

#[test]
fn reports_a_directory_without_weights() -> TestResult {
    let dir = tempfile::tempdir()?;
    let message = weights_message(Checkpoint::open(dir.path()));
    assert!(
        message.contains(SINGLE_FILE) && message.contains(INDEX_FILE),
        "{message}"
    );
    Ok(())
}

fn write_index(dir: &Path, entries: &[(&str, &str)]) -> std::io::Result<()> {
    let map: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(n, f)| (n.to_string(), serde_json::json!(f)))
        .collect();
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": map});
    std::fs::write(dir.join(INDEX_FILE), index.to_string())
}

#[test]
fn opens_a_sharded_checkpoint() -> TestResult {
    let cfg = tiny("");
    let dir = tempfile::tempdir()?;
    let tensors = full(&cfg, Heads::MLM);
    let (first, second) = tensors.split_at(tensors.len() / 2);
    write(&dir.path().join("model-00001-of-00002.safetensors"), first);
    write(&dir.path().join("model-00002-of-00002.safetensors"), second);
    let mut entries: Vec<(&str, &str)> = first
        .iter()
        .map(|t| (t.0.as_str(), "model-00001-of-00002.safetensors"))
        .collect();
    entries.extend(
        second
            .iter()
            .map(|t| (t.0.as_str(), "model-00002-of-00002.safetensors")),
    );
    write_index(dir.path(), &entries)?;

    let ckpt = Checkpoint::open(dir.path())?;
    assert_eq!(ckpt.files().len(), 2);
    assert_eq!(ckpt.validate(&cfg)?, Heads::MLM);
    let (values, shape) = ckpt.read_f32(&second[0].0)?;
    assert_eq!(shape, second[0].2);
    assert_eq!(values.len() * 4, second[0].3.len());

    // An index that lies about where a tensor is.
    entries[0].1 = "model-00002-of-00002.safetensors";
    write_index(dir.path(), &entries)?;
    let message = weights_message(Checkpoint::open(dir.path()));
    assert!(message.contains(entries[0].0), "{message}");

    // A shard that does not exist, and one outside the directory.
    for bad in ["model-00003-of-00002.safetensors", "../model.safetensors"] {
        entries[0].1 = bad;
        write_index(dir.path(), &entries)?;
        let message = weights_message(Checkpoint::open(dir.path()));
        assert!(message.contains(bad), "{message}");
    }
    Ok(())
}

fn single_tensor(dir: &Path, dtype: Dtype, data: Vec<u8>, n: usize) -> Result<Checkpoint> {
    write_single(dir, &[("t".into(), dtype, vec![n], data)]);
    Checkpoint::open(dir)
}

#[test]
fn bf16_to_f32_is_exact() -> TestResult {
    let bits: Vec<u16> = vec![
        0x3f80, 0xc020, 0x4049, 0x0001, 0x7f7f, 0xff80, 0x8000, 0x3a83,
    ];
    let data: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    let dir = tempfile::tempdir()?;
    let ckpt = single_tensor(dir.path(), Dtype::BF16, data, bits.len())?;
    assert_eq!(ckpt.dtype("t")?, WeightDType::BF16);
    let (values, shape) = ckpt.read_f32("t")?;
    assert_eq!(shape, vec![bits.len()]);
    for (v, b) in values.iter().zip(&bits) {
        assert_eq!(v.to_bits(), u32::from(*b) << 16, "bf16 {b:#06x}");
        assert_eq!(*v, bf16::from_bits(*b).to_f32());
    }
    Ok(())
}

#[test]
fn f16_overflow_names_the_tensor() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ckpt = single_tensor(dir.path(), Dtype::F32, 70000f32.to_le_bytes().to_vec(), 1)?;
    let mut out = Vec::new();
    let message = weights_message(ckpt.read_as("t", Storage::F16, &mut out));
    assert!(
        message.contains("'t'") && message.contains("f16 range"),
        "{message}"
    );
    Ok(())
}

#[test]
fn detects_classifier_and_checks_labels() -> TestResult {
    let cfg = tiny("");
    let dir = tempfile::tempdir()?;
    write_single(dir.path(), &full(&cfg, Heads::classifier(3)));
    let ckpt = Checkpoint::open(dir.path())?;
    assert_eq!(ckpt.validate(&cfg)?, Heads::classifier(3));

    let two_labels = tiny(r#", "id2label": {"0": "a", "1": "b"}"#);
    let message = weights_message(ckpt.validate(&two_labels));
    assert!(
        message.contains("classifier.weight") && message.contains("id2label"),
        "{message}"
    );

    let mut tensors = full(&cfg, Heads::classifier(3));
    tensors.retain(|t| t.0 != "head.dense.weight");
    let dir = tempfile::tempdir()?;
    write_single(dir.path(), &tensors);
    let message = weights_message(Checkpoint::open(dir.path())?.validate(&cfg));
    assert!(message.contains("'head.dense.weight'"), "{message}");
    Ok(())
}

#[test]
fn mlm_head_needs_decoder_bias_when_configured() -> TestResult {
    let cfg = tiny("");
    let mut tensors = full(&cfg, Heads::MLM);
    tensors.retain(|t| t.0 != "decoder.bias");
    let dir = tempfile::tempdir()?;
    write_single(dir.path(), &tensors);
    let ckpt = Checkpoint::open(dir.path())?;
    assert_eq!(ckpt.validate(&cfg)?, Heads::NONE);
    assert_eq!(
        ckpt.validate(&tiny(r#", "decoder_bias": false"#))?,
        Heads::MLM
    );
    Ok(())
}

#[test]
fn bias_flags_add_their_tensors() {
    let cfg = tiny(
        r#", "attention_bias": true, "mlp_bias": true, "norm_bias": true,
           "classifier_bias": true, "decoder_bias": false, "tie_word_embeddings": false"#,
    );
    let names: Vec<String> = expected_tensors(&cfg, Heads::MLM)
        .into_iter()
        .map(|t| t.0)
        .collect();
    for name in [
        "model.embeddings.norm.bias",
        "model.layers.0.attn.Wqkv.bias",
        "model.layers.1.attn_norm.bias",
        "model.layers.1.mlp.Wi.bias",
        "model.layers.1.mlp.Wo.bias",
        "model.final_norm.bias",
        "head.dense.bias",
        "head.norm.bias",
        "decoder.weight",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
    assert!(
        !names
            .iter()
            .any(|n| n == "decoder.bias" || n == "model.layers.0.attn_norm.bias")
    );
}

#[test]
fn real_shapes_have_the_published_parameter_counts() -> TestResult {
    let base = ModelConfig::random("base")?;
    assert_eq!(expected_tensors(&base, Heads::MLM).len(), 137);
    assert_eq!(param_count(&base, Heads::MLM), 149_655_232);
    let large = ModelConfig::random("large")?;
    assert_eq!(expected_tensors(&large, Heads::MLM).len(), 173);
    assert_eq!(param_count(&large, Heads::MLM), 395_881_664);
    Ok(())
}
