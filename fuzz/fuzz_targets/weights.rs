//! The safetensors loader: `Checkpoint::open_file` on arbitrary bytes (or on a header built
//! from structured input, to get past the parser), then `validate` against a small valid
//! config and `read_as` / `read_f32` on every tensor; also `Checkpoint::open` on a sharded
//! directory whose index is arbitrary. Every bad input must be an `Err`, never a panic.
#![no_main]

mod tiny_config;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use wgbert::model::config::ModelConfig;
use wgbert::model::weights::{Checkpoint, Storage, WeightDType};

/// One scratch directory per fuzzing process, overwritten on every run.
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

/// A tiny valid config (vocab 4, hidden 2, 1 or 2 layers) with fuzz-chosen flags.
fn config(flags: u8) -> ModelConfig {
    tiny_config::tiny_config(flags).expect("the fuzz config is valid")
}

/// Everything a loaded checkpoint offers, on every tensor.
fn exercise(ckpt: &Checkpoint, cfg: &ModelConfig) {
    let _ = ckpt.validate(cfg);
    let _ = ckpt.detect_heads(cfg);
    let _ = format!("{ckpt:?}");
    assert_eq!(ckpt.names().len(), ckpt.len());
    let mut out = Vec::new();
    for name in ckpt.names() {
        assert!(ckpt.contains(name));
        assert!(ckpt.file_of(name).is_some());
        let shape = ckpt
            .shape(name)
            .expect("listed tensor has a shape")
            .to_vec();
        // The loader accepted the shape, so its element count must not overflow.
        let numel = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .expect("accepted shape overflows usize");
        let dtype = ckpt.dtype(name);
        for storage in [Storage::F32, Storage::F16] {
            match ckpt.read_as(name, storage, &mut out) {
                Ok(got) => {
                    assert_eq!(got, shape, "{name}");
                    assert!(dtype.is_ok(), "{name}: read an unsupported dtype");
                    assert_eq!(out.len(), numel * storage.size_bytes(), "{name}");
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
        if let Ok((values, got)) = ckpt.read_f32(name) {
            assert_eq!(got, shape);
            assert_eq!(values.len(), numel);
        }
    }
    assert!(
        ckpt.read_as("no.such.tensor", Storage::F32, &mut out)
            .is_err()
    );
}

/// Names the loader cares about (canonical, bare and odd spellings).
const NAMES: &[&str] = &[
    "model.embeddings.tok_embeddings.weight",
    "embeddings.tok_embeddings.weight",
    "model.embeddings.norm.weight",
    "model.embeddings.norm.bias",
    "model.layers.0.attn.Wqkv.weight",
    "layers.0.attn.Wqkv.weight",
    "model.layers.0.attn.Wqkv.bias",
    "model.layers.0.attn.Wo.weight",
    "model.layers.0.mlp_norm.weight",
    "model.layers.0.mlp.Wi.weight",
    "model.layers.0.mlp.Wo.weight",
    "model.layers.1.attn_norm.weight",
    "model.final_norm.weight",
    "final_norm.weight",
    "head.dense.weight",
    "head.norm.weight",
    "decoder.weight",
    "decoder.bias",
    "classifier.weight",
    "classifier.bias",
    "__metadata__",
    "",
];

const DTYPES: &[&str] = &[
    "F32", "F16", "BF16", "F64", "I8", "U8", "BOOL", "I64", "F8_E4M3", "F4", "F6_E2M3", "C64",
    "bogus",
];

#[derive(Debug, Arbitrary)]
struct TensorSpec {
    name: u8,
    custom_name: Option<String>,
    dtype: u8,
    shape: Vec<u8>,
    /// `None`: offsets that match dtype x shape and follow the previous tensor.
    offsets: Option<(u32, u32)>,
}

#[derive(Debug, Arbitrary)]
struct Structured {
    tensors: Vec<TensorSpec>,
    metadata: Option<Vec<(String, String)>>,
    /// Bytes appended after (or cut from) the data the header describes.
    tail: i8,
    data: Vec<u8>,
}

/// File names an index may point at (only plain names are ever accepted by the loader).
const SHARD_NAMES: &[&str] = &[
    "a.safetensors",
    "b.safetensors",
    "missing.safetensors",
    "model.safetensors.index.json",
    "../a.safetensors",
    "sub/a.safetensors",
    "..",
    ".",
    "",
];

#[derive(Debug, Arbitrary)]
struct Sharded {
    raw_index: Option<String>,
    weight_map: Vec<(u8, u8)>,
    a: Structured,
    b: Structured,
}

/// A safetensors file from structured input: a well-formed header whose content may still lie.
fn build(s: &Structured) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for t in s.tensors.iter().take(24) {
        let name = match &t.custom_name {
            Some(n) if t.name % 4 == 0 => n.clone(),
            _ => NAMES[usize::from(t.name) % NAMES.len()].to_owned(),
        };
        let dtype = DTYPES[usize::from(t.dtype) % DTYPES.len()];
        let shape: Vec<u64> = t.shape.iter().take(4).map(|&d| u64::from(d % 9)).collect();
        let size = match dtype {
            "F64" | "I64" | "C64" => 8,
            "F32" => 4,
            "F16" | "BF16" => 2,
            _ => 1,
        };
        let (start, end) = match t.offsets {
            Some((a, b)) => (u64::from(a), u64::from(b)),
            None => (offset, offset + size * shape.iter().product::<u64>()),
        };
        offset = end;
        header.insert(
            name,
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, end]}),
        );
    }
    if let Some(meta) = &s.metadata {
        let meta: serde_json::Map<_, _> = meta
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        header.insert("__metadata__".into(), serde_json::Value::Object(meta));
    }
    let header = serde_json::to_vec(&header).expect("json");
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&header);
    let data_len = (offset as usize).min(1 << 16);
    let mut data: Vec<u8> = s.data.iter().copied().cycle().take(data_len).collect();
    data.resize(data_len, 0);
    if s.tail >= 0 {
        data.extend(std::iter::repeat_n(0xAB, s.tail as usize % 8));
    } else {
        data.truncate(
            data.len()
                .saturating_sub(s.tail.unsigned_abs() as usize % 8),
        );
    }
    file.extend_from_slice(&data);
    file
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write scratch file");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some((&flags, rest)) = rest.split_first() else {
        return;
    };
    let cfg = config(flags);
    let dir = scratch();
    match mode % 3 {
        // Raw bytes as a safetensors file.
        0 => {
            let path = dir.join("raw.safetensors");
            write(&path, rest);
            if let Ok(ckpt) = Checkpoint::open_file(&path) {
                exercise(&ckpt, &cfg);
            }
        }
        // A structurally valid header with fuzzed content.
        1 => {
            let Ok(s) = Structured::arbitrary_take_rest(Unstructured::new(rest)) else {
                return;
            };
            let path = dir.join("built.safetensors");
            write(&path, &build(&s));
            if let Ok(ckpt) = Checkpoint::open_file(&path) {
                exercise(&ckpt, &cfg);
            }
        }
        // A sharded directory: an index (arbitrary text, or a weight map over a few file
        // names) and two shards built as in mode 1.
        _ => {
            let Ok(s) = Sharded::arbitrary_take_rest(Unstructured::new(rest)) else {
                return;
            };
            let shard_dir = dir.join("sharded");
            let _ = std::fs::remove_dir_all(&shard_dir);
            std::fs::create_dir_all(&shard_dir).expect("mkdir");
            let index = match &s.raw_index {
                Some(text) => text.clone(),
                None => {
                    let map: serde_json::Map<_, _> = s
                        .weight_map
                        .iter()
                        .map(|&(n, f)| {
                            let name = NAMES[usize::from(n) % NAMES.len()].to_owned();
                            let file = SHARD_NAMES[usize::from(f) % SHARD_NAMES.len()];
                            (name, serde_json::Value::String(file.into()))
                        })
                        .collect();
                    serde_json::json!({"metadata": {}, "weight_map": map}).to_string()
                }
            };
            write(
                &shard_dir.join("model.safetensors.index.json"),
                index.as_bytes(),
            );
            for (name, shard) in [("a.safetensors", &s.a), ("b.safetensors", &s.b)] {
                let path: PathBuf = shard_dir.join(name);
                write(&path, &build(shard));
            }
            if let Ok(ckpt) = Checkpoint::open(&shard_dir) {
                exercise(&ckpt, &cfg);
            }
        }
    }
    let _ = WeightDType::F32.name();
});
