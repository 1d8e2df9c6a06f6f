//! Loading without a GPU: every fixture's config and checkpoint (tests/fixtures, written by
//! scripts/make_fixtures.py), and config.json parsing of both dialects and of broken files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use wgbert::Error;
use wgbert::model::config::{Activation, LayerKind, ModelConfig, Pooling};
use wgbert::model::weights::{Checkpoint, Heads, Storage, WeightDType, expected_tensors};

const FIXTURES: [&str; 6] = [
    "mlm_v4",
    "mlm_v5_bf16",
    "cls_mean",
    "tokcls",
    "mlm_sharded",
    "encoder_noprefix",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn expected_json(name: &str) -> Result<Value> {
    let path = fixture(name).join("expected.json");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    serde_json::from_str(&text).with_context(|| path.display().to_string())
}

fn load(name: &str) -> Result<(ModelConfig, Checkpoint, Heads)> {
    let dir = fixture(name);
    let cfg = ModelConfig::from_file(dir.join("config.json"))?;
    let ckpt = Checkpoint::open(&dir)?;
    let heads = ckpt.validate(&cfg)?;
    Ok((cfg, ckpt, heads))
}

#[test]
fn every_fixture_loads_validates_and_has_its_heads() -> Result<()> {
    for name in FIXTURES {
        let (cfg, ckpt, heads) = load(name).with_context(|| format!("fixture {name}"))?;
        let expected = expected_json(name)?;
        let want = Heads {
            mlm: expected["heads"]["mlm"].as_bool().context("heads.mlm")?,
            classifier: expected["heads"]["classifier"].as_u64().map(|n| n as usize),
        };
        ensure!(
            heads == want,
            "{name}: heads {heads:?}, expected.json says {want:?}"
        );
        ensure!(
            cfg.vocab_size == 512 && cfg.max_position_embeddings == 512,
            "{name}: sizes"
        );
        let special = [cfg.pad_token_id, cfg.cls_token_id, cfg.sep_token_id];
        ensure!(
            special == [Some(0), Some(1), Some(2)],
            "{name}: special ids {special:?}"
        );
        ensure!(
            ckpt.len() == expected_tensors(&cfg, heads).len(),
            "{name}: unexpected tensors"
        );

        let inputs = expected["inputs"].as_array().context("inputs")?;
        let outputs = expected["outputs"].as_array().context("outputs")?;
        ensure!(
            inputs.len() == outputs.len() && !inputs.is_empty(),
            "{name}: inputs/outputs"
        );
        let longest = inputs
            .iter()
            .filter_map(Value::as_array)
            .map(Vec::len)
            .max()
            .unwrap_or(0);
        ensure!(
            longest > cfg.local_attention + 1,
            "{name}: no input exceeds the window"
        );
        for (ids, out) in inputs.iter().zip(outputs) {
            let ids = ids.as_array().context("input ids")?;
            ensure!(
                ids.iter().all(|id| id.as_u64().is_some_and(|id| id < 512)),
                "{name}: ids"
            );
            let rows = out["last_hidden_state"]
                .as_array()
                .context("last_hidden_state")?;
            ensure!(rows.len() == ids.len(), "{name}: one hidden row per token");
            let width = rows[0].as_array().map(Vec::len);
            ensure!(
                width == Some(cfg.hidden_size),
                "{name}: hidden width {width:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn every_fixture_tensor_reads_as_f32_and_f16() -> Result<()> {
    let mut out = Vec::new();
    for name in FIXTURES {
        let (cfg, ckpt, heads) = load(name)?;
        for (tensor, shape) in expected_tensors(&cfg, heads) {
            for storage in [Storage::F32, Storage::F16] {
                let got = ckpt.read_as(&tensor, storage, &mut out)?;
                ensure!(got == shape, "{name}/{tensor}: shape {got:?} vs {shape:?}");
                let n: usize = shape.iter().product();
                ensure!(
                    out.len() == n * storage.size_bytes(),
                    "{name}/{tensor}: byte count"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn fixture_configs_resolve_as_written() -> Result<()> {
    use LayerKind::{Global as G, Local as L};
    let (v4, _, _) = load("mlm_v4")?;
    assert_eq!(
        (v4.hidden_size, v4.num_attention_heads, v4.head_dim),
        (32, 2, 16)
    );
    assert_eq!(v4.layers, vec![G, L, L, G]);
    assert_eq!((v4.rope_theta(0), v4.rope_theta(1)), (160_000.0, 10_000.0));
    assert_eq!(v4.norm_eps, 1e-5, "layer_norm_eps (1e-12) must be ignored");
    assert_eq!((v4.local_attention, v4.window_half()), (8, 4));

    let (v5, ckpt, _) = load("mlm_v5_bf16")?;
    assert_eq!(v5.layers, vec![G, L, G]);
    assert_eq!((v5.rope_theta(0), v5.rope_theta(1)), (80_000.0, 5_000.0));
    assert_eq!(v5.hidden_activation, Activation::GeluTanh);
    assert_eq!(v5.classifier_activation, Activation::GeluErf);
    assert!(v5.attention_bias && v5.mlp_bias && v5.norm_bias && v5.classifier_bias);
    assert_eq!(
        ckpt.dtype("model.layers.0.attn.Wqkv.weight")?,
        WeightDType::BF16
    );

    let (cls, _, _) = load("cls_mean")?;
    assert_eq!(cls.classifier_pooling, Pooling::Mean);
    assert_eq!(cls.id2label, vec!["negative", "neutral", "positive"]);
    assert_eq!(
        cls.architectures,
        vec!["ModernBertForSequenceClassification"]
    );

    let (tok, _, _) = load("tokcls")?;
    assert_eq!(tok.id2label, vec!["O", "ENT"]);
    assert_eq!(tok.architectures, vec!["ModernBertForTokenClassification"]);

    let (_, sharded, _) = load("mlm_sharded")?;
    assert!(sharded.files().len() > 1, "expected several shards");

    let (_, bare, heads) = load("encoder_noprefix")?;
    assert_eq!(heads, Heads::NONE);
    let raw = bare
        .file_of("model.final_norm.weight")
        .context("final_norm")?;
    assert!(raw.ends_with("model.safetensors"));
    Ok(())
}

const V4: &str = r#"{
  "architectures": ["ModernBertForMaskedLM"], "model_type": "modernbert",
  "vocab_size": 50368, "hidden_size": 768, "intermediate_size": 1152,
  "num_hidden_layers": 22, "num_attention_heads": 12, "max_position_embeddings": 8192,
  "global_attn_every_n_layers": 3, "global_rope_theta": 160000.0, "local_rope_theta": 10000.0,
  "local_attention": 128, "norm_eps": 1e-05, "layer_norm_eps": 1e-12, "norm_bias": false,
  "hidden_activation": "gelu", "classifier_pooling": "mean", "classifier_activation": "gelu",
  "pad_token_id": 50283, "cls_token_id": 50281, "sep_token_id": 50282, "bos_token_id": 50281,
  "eos_token_id": 50282, "decoder_bias": true, "some_future_key": {"x": [1, 2]}
}"#;

#[test]
fn parses_the_released_4x_dialect() -> Result<()> {
    let cfg = ModelConfig::from_json_str(V4, "v4/config.json")?;
    let base = ModelConfig::random("base")?;
    assert_eq!(cfg.layers, base.layers);
    assert_eq!(
        (cfg.head_dim, cfg.window_half(), cfg.norm_eps),
        (64, 64, 1e-5)
    );
    assert_eq!(
        (cfg.rope_theta(0), cfg.rope_theta(1), cfg.rope_theta(21)),
        (160e3, 1e4, 160e3)
    );
    assert_eq!(cfg.classifier_pooling, Pooling::Mean);
    assert_eq!((cfg.mask_token_id, cfg.unk_token_id), (None, None));
    assert!(cfg.id2label.is_empty());
    Ok(())
}

#[test]
fn parses_the_5x_dialect() -> Result<()> {
    let json = r#"{"vocab_size": 100, "hidden_size": 64, "intermediate_size": 96,
        "num_hidden_layers": 3, "num_attention_heads": 4, "global_attn_every_n_layers": 3,
        "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
        "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 5e4},
                            "sliding_attention": {"rope_type": "default", "rope_theta": 7e3}},
        "global_rope_theta": 1.0e9, "hidden_activation": "silu", "mask_token_id": 7,
        "id2label": {"1": "b", "0": "a"}, "pad_token_id": null}"#;
    let cfg = ModelConfig::from_json_str(json, "v5/config.json")?;
    assert_eq!(
        cfg.layers,
        vec![LayerKind::Local, LayerKind::Global, LayerKind::Local]
    );
    assert_eq!((cfg.rope_theta(0), cfg.rope_theta(1)), (7e3, 5e4));
    assert_eq!(
        (cfg.hidden_activation, cfg.classifier_activation),
        (Activation::Silu, Activation::GeluErf)
    );
    assert_eq!(
        (
            cfg.classifier_pooling,
            cfg.local_attention,
            cfg.max_position_embeddings
        ),
        (Pooling::Cls, 128, 8192)
    );
    assert!(
        !cfg.attention_bias
            && !cfg.mlp_bias
            && !cfg.norm_bias
            && !cfg.classifier_bias
            && cfg.decoder_bias
    );
    assert_eq!(
        (cfg.id2label.clone(), cfg.num_labels()),
        (vec!["a".to_owned(), "b".to_owned()], 2)
    );
    assert_eq!((cfg.pad_token_id, cfg.mask_token_id), (None, Some(7)));
    Ok(())
}

#[test]
fn random_configs_have_the_real_shapes() -> Result<()> {
    let large = ModelConfig::random("large")?;
    assert_eq!(
        (
            large.hidden_size,
            large.num_hidden_layers,
            large.num_attention_heads
        ),
        (1024, 28, 16)
    );
    assert_eq!(
        large
            .layers
            .iter()
            .filter(|k| **k == LayerKind::Global)
            .count(),
        10
    );
    assert!(matches!(ModelConfig::random("xl"), Err(Error::Option(_))));
    Ok(())
}

/// `V4` with `key` replaced by `value` (a JSON literal) or removed (`None`).
fn v4_with(key: &str, value: Option<&str>) -> String {
    let mut obj: serde_json::Map<String, Value> = serde_json::from_str(V4).expect("V4 parses");
    match value {
        Some(v) => obj.insert(key.to_owned(), serde_json::from_str(v).expect("literal")),
        None => obj.remove(key),
    };
    Value::Object(obj).to_string()
}

fn config_error(json: &str) -> String {
    match ModelConfig::from_json_str(json, "bad/config.json") {
        Err(Error::Config { path, message }) => {
            assert_eq!(path, Path::new("bad/config.json"));
            message
        }
        other => panic!("expected Error::Config, got {other:?}"),
    }
}

#[test]
fn bad_configs_fail_with_a_message_naming_the_problem() {
    let cases: Vec<(String, &[&str])> = vec![
        ("{not json".into(), &["not valid JSON"]),
        ("[1, 2]".into(), &["JSON object"]),
        (v4_with("hidden_size", None), &["missing", "hidden_size"]),
        (
            v4_with("num_attention_heads", None),
            &["missing", "num_attention_heads"],
        ),
        (
            v4_with("num_attention_heads", Some("7")),
            &["not divisible", "768", "7"],
        ),
        (
            v4_with("num_attention_heads", Some("0")),
            &["num_attention_heads", "0"],
        ),
        (
            v4_with("num_hidden_layers", Some("0")),
            &["num_hidden_layers", "0"],
        ),
        (
            v4_with("vocab_size", Some("20000000")),
            &["vocab_size", "20000000"],
        ),
        (
            v4_with("hidden_size", Some("131072")),
            &["hidden_size", "131072"],
        ),
        (
            v4_with("hidden_size", Some("\"768\"")),
            &["hidden_size", "integer"],
        ),
        (
            v4_with("hidden_size", Some("-768")),
            &["hidden_size", "integer"],
        ),
        (
            v4_with("num_attention_heads", Some("256")),
            &["head_dim", "odd"],
        ),
        (
            v4_with("norm_bias", Some("\"no\"")),
            &["norm_bias", "true or false"],
        ),
        (
            v4_with("hidden_activation", Some("\"mish\"")),
            &["hidden_activation", "mish"],
        ),
        (
            v4_with("classifier_pooling", Some("\"max\"")),
            &["classifier_pooling", "max"],
        ),
        (
            v4_with("model_type", Some("\"bert\"")),
            &["model_type", "bert"],
        ),
        (
            v4_with("global_attn_every_n_layers", Some("0")),
            &["global_attn_every_n_layers"],
        ),
        (v4_with("norm_eps", Some("0")), &["norm_eps"]),
        (
            v4_with("cls_token_id", Some("60000")),
            &["cls_token_id", "60000"],
        ),
        (
            v4_with("layer_types", Some(r#"["full_attention"]"#)),
            &["layer_types", "1", "22"],
        ),
        (
            v4_with("num_hidden_layers", Some("2")).replace(
                r#""local_attention""#,
                r#""layer_types":["full_attention","moe"],"local_attention""#,
            ),
            &["layer_types[1]", "moe"],
        ),
        (
            v4_with(
                "rope_parameters",
                Some(r#"{"full_attention": {"rope_type": "ntk-aware"}}"#),
            ),
            &["rope_parameters.full_attention.rope_type", "ntk-aware"],
        ),
        (
            v4_with(
                "rope_parameters",
                Some(r#"{"full_attention": {"rope_type": "yarn"}}"#),
            ),
            &["original_max_position_embeddings", "yarn"],
        ),
        (
            v4_with("id2label", Some(r#"{"0": "a", "2": "c"}"#)),
            &["id2label", "2"],
        ),
    ];
    for (json, needles) in cases {
        let message = config_error(&json);
        for needle in needles {
            assert!(
                message.contains(needle),
                "message {message:?} lacks {needle:?}"
            );
        }
    }
}

#[test]
fn a_missing_config_file_is_an_io_error_naming_the_path() {
    let path = fixture("no_such_fixture").join("config.json");
    match ModelConfig::from_file(&path) {
        Err(Error::Io { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected Error::Io, got {other:?}"),
    }
}
