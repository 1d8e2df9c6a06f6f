//! What the browser package relies on, checked natively on lavapipe: a model whose files come
//! as bytes (`Encoder::load_fetched`, a browser's fetches) gives the results and the errors of
//! the same model read from its directory; and a device created at WebGPU's default limits
//! (128 MiB per storage binding, 16 KiB of workgroup storage, 256 invocations per workgroup,
//! what a browser's adapter may grant) and without optional features (no f16, no subgroups:
//! SwiftShader in Chromium) chooses kernels that fit and still matches transformers.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use wgbert::encoder::{EmbedOptions, Encoder, LoadOptions};
use wgbert::ops::DType;
use wgbert::runtime::Gpu;

/// Loads `dir` through `load_fetched`, its files read by a getter (as a browser fetches them).
fn load_fetched(gpu: Arc<Gpu>, dir: &Path, opts: &LoadOptions) -> wgbert::Result<Encoder> {
    let get = async |file: &str| Ok(std::fs::read(dir.join(file)).ok());
    pollster::block_on(Encoder::load_fetched(gpu, "site/model", get, opts))
}

fn f32_opts() -> LoadOptions {
    LoadOptions {
        dtype: Some(DType::F32),
        coop: common::coop_mode(),
        ..Default::default()
    }
}

fn fixture_inputs(name: &str) -> (PathBuf, Value, Vec<Vec<u32>>) {
    let dir = common::fixtures_dir().join(name);
    let text = std::fs::read_to_string(dir.join("expected.json")).unwrap();
    let exp: Value = serde_json::from_str(&text).unwrap();
    let seqs = exp["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let ids = s.as_array().unwrap();
            ids.iter().map(|v| v.as_u64().unwrap() as u32).collect()
        })
        .collect();
    (dir, exp, seqs)
}

#[test]
fn a_fetched_model_gives_its_directory_s_results() {
    let gpu = common::gpu();
    let opts = f32_opts();
    // sentence-transformers layout: modules, Pooling, Dense (its own safetensors), Normalize.
    let dir = common::fixtures_dir().join("st_mean_dense");
    let from_dir = Encoder::load_on(gpu.clone(), dir.to_str().unwrap(), &opts).unwrap();
    let fetched = load_fetched(gpu.clone(), &dir, &opts).unwrap();
    assert_eq!(fetched.sentence_config().dense.len(), 1);
    let texts = ["paris is the capital of france", "fish"];
    let e = EmbedOptions::default();
    let want = from_dir.embed_with(&texts, &e).unwrap();
    let got = pollster::block_on(fetched.embed_with_async(&texts, &e)).unwrap();
    assert_eq!(got, want);
    // A sharded checkpoint: the index, then each shard.
    let (dir, _, seqs) = fixture_inputs("mlm_sharded");
    let from_dir = Encoder::load_on(gpu.clone(), dir.to_str().unwrap(), &opts).unwrap();
    let fetched = load_fetched(gpu, &dir, &opts).unwrap();
    assert_eq!(
        fetched.hidden_states(&seqs).unwrap(),
        from_dir.hidden_states(&seqs).unwrap()
    );
}

/// A copy of a fixture directory with one file replaced.
fn broken_copy(name: &str, file: &str, bytes: &[u8]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(common::fixtures_dir().join(name)).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(tmp.path().join(file), bytes).unwrap();
    tmp
}

#[test]
fn a_fetched_model_fails_as_its_directory_does() {
    let gpu = common::gpu();
    let opts = f32_opts();
    let cases: [(&str, &str, &[u8], &str); 3] = [
        ("mlm_v4", "config.json", b"{ not json", "not valid JSON"),
        ("mlm_v4", "model.safetensors", b"abc", "model.safetensors"),
        ("cross_encoder", "tokenizer.json", b"{}", "tokenizer"),
    ];
    for (name, file, bytes, says) in cases {
        let tmp = broken_copy(name, file, bytes);
        let dir_err = Encoder::load_on(gpu.clone(), tmp.path().to_str().unwrap(), &opts)
            .err()
            .unwrap()
            .to_string();
        let fetched_err = load_fetched(gpu.clone(), tmp.path(), &opts)
            .err()
            .unwrap()
            .to_string();
        assert!(dir_err.contains(says), "{name}/{file}: {dir_err}");
        let root = tmp.path().to_str().unwrap();
        assert_eq!(
            fetched_err.replace("site/model", root),
            dir_err,
            "{name}/{file}: the same error, naming the file under the model's name"
        );
    }
    let missing = load_fetched(gpu, Path::new("tests/fixtures/none"), &opts)
        .err()
        .unwrap()
        .to_string();
    assert!(
        missing.contains("site/model") && missing.contains("config.json"),
        "{missing}"
    );
}

/// A device on the test adapter with WebGPU's default limits and the given features only.
fn webgpu_default_device(features: wgpu::Features) -> Arc<Gpu> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = wgpu::Backends::VULKAN;
    let instance = wgpu::Instance::new(desc);
    let adapter = pollster::block_on(instance.request_adapter(&Default::default())).unwrap();
    let limits = wgpu::Limits::default();
    assert_eq!(limits.max_storage_buffer_binding_size, 128 << 20);
    assert_eq!(limits.max_compute_workgroup_storage_size, 16 << 10);
    assert_eq!(limits.max_compute_invocations_per_workgroup, 256);
    let device_desc = wgpu::DeviceDescriptor {
        label: Some("webgpu defaults"),
        required_features: features & adapter.features(),
        required_limits: limits,
        ..Default::default()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&device_desc)).unwrap();
    Gpu::from_wgpu(device, queue, Some(&adapter))
}

/// Max abs error (f32) or min cosine (f16) of every token's state against transformers'.
fn against_transformers(enc: &Encoder, name: &str) -> f64 {
    let (_, exp, seqs) = fixture_inputs(name);
    let got = enc.hidden_states(&seqs).unwrap();
    let mut worst = if enc.dtype() == DType::F32 {
        0.0
    } else {
        1.0f64
    };
    for (s, out) in exp["outputs"].as_array().unwrap().iter().enumerate() {
        for (t, row) in out["last_hidden_state"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let want: Vec<f64> = row
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let g = &got[s][t];
            if enc.dtype() == DType::F32 {
                let e = g.iter().zip(&want).map(|(a, b)| (*a as f64 - b).abs());
                worst = worst.max(e.fold(0.0, f64::max));
            } else {
                let dot: f64 = g.iter().zip(&want).map(|(a, b)| *a as f64 * b).sum();
                let n = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
                let cos =
                    dot / (n(&mut g.iter().map(|&x| x as f64)) * n(&mut want.iter().copied()));
                worst = worst.min(cos);
            }
        }
    }
    worst
}

/// The masked LM fixture on `gpu`, in the precision a load picks (f16 where the device has
/// it, as a browser's load does).
fn load_mlm_at_its_precision(gpu: Arc<Gpu>) -> Encoder {
    let dir = common::fixtures_dir().join("mlm_v4");
    let opts = LoadOptions {
        coop: common::coop_mode(),
        ..Default::default()
    };
    Encoder::load_on(gpu, dir.to_str().unwrap(), &opts).unwrap()
}

#[test]
fn webgpu_default_limits_choose_kernels_that_fit() {
    // Chromium's SwiftShader: no f16, no subgroups; the f32 path.
    let gpu = webgpu_default_device(wgpu::Features::empty());
    assert!(!gpu.caps().f16 && !gpu.caps().subgroups);
    assert_eq!(gpu.caps().max_invocations, 256);
    let enc = load_mlm_at_its_precision(gpu);
    assert_eq!(enc.dtype(), DType::F32, "no f16 means the f32 path");
    let err = against_transformers(&enc, "mlm_v4");
    assert!(
        err <= 1e-4,
        "f32 at WebGPU's default limits: max abs error {err:.3e}"
    );
    // The long fixture: windowed attention over 1337 tokens, in several capacity buckets.
    let dir = common::fixtures_dir().join("long");
    let gpu = webgpu_default_device(wgpu::Features::empty());
    let enc = Encoder::load_on(gpu, dir.to_str().unwrap(), &f32_opts()).unwrap();
    let (_, exp, seqs) = fixture_inputs("long");
    let got = enc.hidden_states(&seqs).unwrap();
    for (s, out) in exp["outputs"].as_array().unwrap().iter().enumerate() {
        let positions = out["positions"].as_array().unwrap();
        for (p, row) in positions
            .iter()
            .zip(out["last_hidden_state"].as_array().unwrap())
        {
            let want: Vec<f64> = row
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let t = p.as_u64().unwrap() as usize;
            common::assert_close(
                &format!("long seq {s} token {t}"),
                &got[s][t],
                &want,
                1e-4,
                0.0,
            );
        }
    }
}

#[test]
fn webgpu_default_limits_with_f16_stay_close() {
    // Firefox's lavapipe: shader-f16 at the default limits.
    if !common::require(common::Cap::F16, "f16 at WebGPU's default limits") {
        return;
    }
    let gpu = webgpu_default_device(wgpu::Features::SHADER_F16);
    let enc = load_mlm_at_its_precision(gpu);
    assert_eq!(enc.dtype(), DType::F16, "f16 where the device has it");
    let cos = against_transformers(&enc, "mlm_v4");
    assert!(
        cos >= 0.999,
        "f16 at WebGPU's default limits: min cosine {cos}"
    );
}
