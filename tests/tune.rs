//! Autotuning (`ops::tune`): the disk cache round-trips and is invalidated by another driver,
//! every candidate (tiled matmul, tensor-core matmul where the adapter has cooperative
//! matrices, portable attention) passes its on-device check, timing
//! works where timestamps exist, a tuned tile is what the op records, and
//! `wgbert tune` / `wgbert info` work end to end (small shapes, a private cache directory).
//! The choice logic itself (never a failing candidate, the default without timestamps) is
//! tested in `src/ops/tune.rs`.

mod common;

use std::collections::BTreeMap;

use common::Cap;
use common::model_dir::fails_with;
use serde_json::Value;
use wgbert::ops::DType;
use wgbert::ops::attention::{self, Tiles};
use wgbert::ops::choice::Choices;
use wgbert::ops::matmul::{coop, tiled};
use wgbert::ops::tune::{
    self, ATTENTION, ATTENTION_COOP, Cache, DeviceKey, Entry, MATMUL_COOP, MATMUL_TILED, RowClass,
};

/// The static choice `wgbert tune` reports for a family at ModernBERT's head size.
fn default_name(op: &str) -> String {
    let gpu = common::gpu();
    let caps = gpu.caps();
    match op {
        MATMUL_TILED => tiled::DEFAULT.name(),
        MATMUL_COOP => coop::default_for(coop::supported(caps).unwrap(), caps).name(),
        _ => Tiles::default_for(64, caps).name(),
    }
}

/// Whether `name` is a configuration of family `op`.
fn known(op: &str, name: &str) -> bool {
    match op {
        MATMUL_TILED => tiled::Config::parse(name).is_some(),
        MATMUL_COOP => coop::Config::parse(name).is_some(),
        ATTENTION_COOP => attention::coop::CANDIDATES.iter().any(|t| t.name() == name),
        ATTENTION => {
            attention::CANDIDATES.iter().any(|t| t.name() == name) || name == default_name(op)
        }
        _ => false,
    }
}

fn device(driver: &str) -> DeviceKey {
    DeviceKey {
        adapter: "Some GPU".into(),
        backend: "Vulkan".into(),
        driver: "vendor".into(),
        driver_info: driver.into(),
    }
}

fn entry(config: &str) -> Entry {
    let mut timings = BTreeMap::new();
    timings.insert(config.to_string(), Some(1e-3));
    timings.insert("32x32".to_string(), None);
    Entry {
        config: config.into(),
        timings,
    }
}

#[test]
fn the_cache_round_trips_and_a_new_driver_invalidates_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::in_dir(&dir.path().join("nested"));
    let (old, new) = (device("1.0"), device("1.1"));
    let (mid, large) = (RowClass::Mid.name(), RowClass::Large.name());
    assert_eq!(cache.get(&old, MATMUL_TILED, mid, DType::F16), None);
    cache
        .put(&old, MATMUL_TILED, mid, DType::F16, entry("64x128"))
        .unwrap();
    cache
        .put(&old, MATMUL_TILED, large, DType::F16, entry("128x64"))
        .unwrap();
    let got = cache.get(&old, MATMUL_TILED, mid, DType::F16);
    assert_eq!(got, Some(entry("64x128")));
    assert_eq!(cache.get(&old, MATMUL_TILED, mid, DType::F32), None);
    // Another driver version: nothing cached for it.
    assert_eq!(cache.get(&new, MATMUL_TILED, mid, DType::F16), None);
    // Tuning under the new driver replaces the old driver's entry for that slot only.
    cache
        .put(&new, MATMUL_TILED, mid, DType::F16, entry("32x64"))
        .unwrap();
    assert_eq!(cache.get(&old, MATMUL_TILED, mid, DType::F16), None);
    assert!(cache.get(&old, MATMUL_TILED, large, DType::F16).is_some());
    let text = std::fs::read_to_string(cache.path().unwrap()).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["entries"].as_object().unwrap().len(), 2, "{text}");
    // A corrupt file is ignored (and replaced on the next write), never an error.
    std::fs::write(cache.path().unwrap(), "{not json").unwrap();
    assert_eq!(cache.get(&new, MATMUL_TILED, mid, DType::F16), None);
    cache
        .put(&new, MATMUL_TILED, mid, DType::F16, entry("64x64"))
        .unwrap();
    assert_eq!(
        cache.get(&new, MATMUL_TILED, mid, DType::F16),
        Some(entry("64x64"))
    );
    // Self-check verdicts live in the same file, under the same key.
    assert_eq!(cache.verdict(&new, MATMUL_COOP), None);
    assert!(!cache.has_verdicts(&new));
    cache.put_verdict(&new, MATMUL_COOP, &Ok(())).unwrap();
    let failed = Err("out[1, 2] = 7, reference 1".to_string());
    cache.put_verdict(&new, ATTENTION_COOP, &failed).unwrap();
    assert_eq!(cache.verdict(&new, MATMUL_COOP), Some(Ok(())));
    assert_eq!(cache.verdict(&new, ATTENTION_COOP), Some(failed));
    assert!(cache.has_verdicts(&new));
    // The tiles survive, and another driver checks again.
    assert!(cache.get(&new, MATMUL_TILED, mid, DType::F16).is_some());
    assert_eq!(cache.verdict(&old, MATMUL_COOP), None);
    cache.put_verdict(&old, MATMUL_COOP, &Ok(())).unwrap();
    assert_eq!(
        cache.verdict(&new, MATMUL_COOP),
        None,
        "replaced by the old driver's"
    );
}

#[test]
fn every_candidate_passes_its_check_and_times_where_timestamps_exist() {
    let gpu = common::gpu();
    for dtype in common::dtypes() {
        for config in tiled::fitting(gpu.caps()) {
            tune::check_tiled(&gpu, dtype, config).unwrap();
            if common::require(Cap::Timestamps, "timing a tiled matmul candidate") {
                let s = tune::time_tiled(&gpu, dtype, config, (40, 48, 72)).unwrap();
                assert!(s > 0.0 && s.is_finite(), "{} took {s} s", config.name());
            }
        }
    }
}

/// Every tensor-core configuration the adapter fits passes its check and is timed, where
/// the adapter has cooperative matrices (Mesa 26 lavapipe in scripts/test_coop.sh, GPUs).
#[test]
fn every_coop_candidate_passes_its_check_and_times_where_timestamps_exist() {
    let gpu = common::gpu();
    if !common::require(
        Cap::Coop,
        "checking and timing the tensor-core matmul candidates",
    ) {
        return;
    }
    let shape = coop::supported(gpu.caps()).unwrap();
    let configs = coop::fitting(shape, gpu.caps());
    assert!(configs.len() >= 5, "{configs:?}");
    for config in configs {
        tune::check_coop(&gpu, config).unwrap();
        if common::require(Cap::Timestamps, "timing a tensor-core matmul candidate") {
            let s = tune::time_coop(&gpu, config, (40, 48, 72)).unwrap();
            assert!(s > 0.0 && s.is_finite(), "{} took {s} s", config.name());
        }
    }
}

/// Every tensor-core attention tile that fits passes its check and is timed, at every head
/// size, where the adapter has cooperative matrices.
#[test]
fn every_coop_attention_candidate_passes_its_check_and_times_where_timestamps_exist() {
    let gpu = common::gpu();
    if !common::require(
        Cap::Coop,
        "checking and timing the tensor-core attention tiles",
    ) {
        return;
    }
    let storage = gpu.caps().max_workgroup_storage;
    for head_dim in attention::coop::HEAD_DIMS {
        for tiles in attention::coop::fitting(head_dim, storage) {
            tune::check_coop_attention(&gpu, head_dim, tiles).unwrap();
        }
    }
    if common::require(Cap::Timestamps, "timing the tensor-core attention tiles") {
        for tiles in attention::coop::fitting(16, storage) {
            let shape = attention::coop::supported(gpu.caps()).unwrap();
            let k = attention::coop::kernel(shape, 16, tiles, storage).unwrap();
            let s = tune::time_attention_kernel(&gpu, DType::F16, 16, k, true).unwrap();
            assert!(s > 0.0 && s.is_finite(), "{} took {s} s", tiles.name());
        }
    }
}

/// Row classes with different tensor-core configurations get a step each, chosen by the
/// run's rows, with the reference's results either way.
#[test]
fn each_row_class_runs_its_own_coop_configuration() {
    if !common::require(Cap::Coop, "per-row-class tensor-core matmul configurations") {
        return;
    }
    let small = coop::Config {
        wm: 1,
        wn: 1,
        acc: 32,
    };
    let big = coop::Config {
        wm: 2,
        wn: 4,
        acc: 32,
    };
    let mut choices = Choices::default();
    choices.set_coop_matmul(RowClass::Mid, small);
    choices.set_coop_matmul(RowClass::Large, big);
    assert_eq!(choices.coop_matmul(RowClass::Large), Some(big));
    row_classes_split(
        &choices,
        DType::F16,
        wgbert::ops::matmul::MatmulVariant::Coop,
        &["WARPS_M=1,WARPS_N=1", "WARPS_M=2,WARPS_N=4"],
        2e-3,
    );
}

#[test]
fn every_attention_candidate_passes_its_check_and_times_where_timestamps_exist() {
    let gpu = common::gpu();
    let mut checked = 0;
    for dtype in common::dtypes() {
        for head_dim in [16, 64] {
            for tiles in attention::fitting(head_dim, gpu.caps()) {
                tune::check_attention(&gpu, dtype, head_dim, tiles).unwrap();
                checked += 1;
                if dtype == DType::F32
                    && common::require(Cap::Timestamps, "timing an attention candidate")
                {
                    let s = tune::time_attention(&gpu, dtype, head_dim, tiles, true).unwrap();
                    assert!(s > 0.0 && s.is_finite(), "{} took {s} s", tiles.name());
                }
            }
        }
    }
    assert!(checked > 0, "no attention candidate fits the adapter");
}

/// A tuned (here pinned) attention tile is the one `attention::record` builds, and its
/// results are the reference's.
#[test]
fn attention_records_the_tuned_tile() {
    use wgbert::ops::attention::{AttentionArgs, PackedCase};
    use wgbert::runtime::{PlanBuilder, RunSizes};
    let gpu = common::gpu();
    let tiles = Tiles { br: 32, bc: 16 };
    assert_ne!(tiles, Tiles::default_for(32, gpu.caps()));
    let mut choices = Choices::default();
    choices.set_attention(32, DType::F32, tiles);
    let mut b = PlanBuilder::new(gpu.clone());
    let args = AttentionArgs {
        qkv: b.input("qkv", 100 * 3 * 64 * 4),
        cu_seqlens: b.input("cu_seqlens", 3 * 4),
        key_lens: None,
        out: b.output("out", 100 * 64 * 4),
        n_heads: 2,
        head_dim: 32,
        window: None,
        dtype: DType::F32,
        variant: None,
    };
    attention::record(&mut b, &choices, "attention", &args).unwrap();
    let listing = b.build().unwrap().describe();
    assert!(listing.contains("BR=32,BC=16"), "{listing}");
    // The default choices record the default tiles on the same device.
    let mut b = PlanBuilder::new(gpu.clone());
    let other = AttentionArgs {
        qkv: b.input("qkv", 100 * 3 * 64 * 4),
        cu_seqlens: b.input("cu_seqlens", 3 * 4),
        out: b.output("out", 100 * 64 * 4),
        ..args
    };
    attention::record(&mut b, &Choices::default(), "attention", &other).unwrap();
    let listing = b.build().unwrap().describe();
    assert!(!listing.contains("BR=32,BC=16"), "{listing}");
    let case = PackedCase {
        lens: &[45, 55],
        key_lens: None,
        n_heads: 2,
        head_dim: 32,
        window: Some(8),
        dtype: DType::F32,
    };
    let qkv = common::rand_vec(100 * 3 * 64, 5, 2.0);
    let got = attention::run_packed(&gpu, &choices, &case, &qkv, None, None).unwrap();
    let (_, cu) = RunSizes::packed(case.lens);
    let want = attention::reference_keys(&qkv, &cu, None, 2, 32, Some(8));
    common::assert_close("pinned tile", &got, &want, 1e-5, 1e-5);
}

/// Row classes with different tiles get a step each, chosen by the run's rows; the results
/// stay those of the reference either way.
#[test]
fn each_row_class_runs_its_own_tile() {
    let small = tiled::Config { rm: 2, rn: 2 };
    let big = tiled::Config { rm: 8, rn: 4 };
    let mut choices = Choices::default();
    choices.set_tiled(RowClass::Mid, DType::F32, small);
    choices.set_tiled(RowClass::Large, DType::F32, big);
    row_classes_split(
        &choices,
        DType::F32,
        wgbert::ops::matmul::MatmulVariant::Tiled,
        &["RM=2,RN=2", "RM=8,RN=4"],
        1e-5,
    );
}

/// Records `variant` for up to 600 rows (so both row classes), asserts that the plan names
/// each of `defines` (one build per class), and checks runs of 40 and 600 rows against the
/// reference within `tol`.
fn row_classes_split(
    choices: &Choices,
    dtype: DType,
    variant: wgbert::ops::matmul::MatmulVariant,
    defines: &[&str],
    tol: f64,
) {
    use wgbert::ops::Rows;
    use wgbert::ops::matmul::{self, Epilogue, MatmulArgs};
    use wgbert::runtime::{PlanBuilder, RunSizes};
    let gpu = common::gpu();
    let (cap, k, n) = (600usize, 24usize, 40usize);
    let es = dtype.size() as usize;
    let x = common::stored(dtype, &common::rand_vec(cap * k, 1, 1.0));
    let w = common::stored(dtype, &common::rand_vec(n * k, 2, 0.5));
    let mut b = PlanBuilder::new(gpu.clone());
    let xt = b.input("x", (cap * k * es) as u64);
    let wbuf = gpu.upload("w", &dtype.encode(&w)).unwrap();
    let wt = b.external("w", &wbuf);
    let yt = b.output("y", (cap * n * es) as u64);
    let args = MatmulArgs {
        x: xt,
        w: wt,
        bias: None,
        residual: None,
        y: yt,
        rows: Rows::Tokens,
        k: k as u32,
        n: n as u32,
        dtype,
        epilogue: Epilogue::None,
        variant: Some(variant),
    };
    matmul::record(&mut b, choices, "m", &args).unwrap();
    let mut plan = b.build().unwrap();
    let listing = plan.describe();
    for d in defines {
        assert!(listing.contains(d), "{d}: {listing}");
    }
    plan.write(xt, &dtype.encode(&x)).unwrap();
    for t in [40usize, 600] {
        plan.run(&RunSizes {
            rows: t as u32,
            ..Default::default()
        })
        .unwrap();
        let got = dtype.decode(&plan.read(yt, 0, (t * n * es) as u64).unwrap());
        let want = matmul::reference(&x[..t * k], &w, None, None, t, k, n, Epilogue::None);
        common::assert_close(&format!("T={t}"), &got, &want, tol, tol);
    }
}

fn wgbert_env(cache: &std::path::Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("wgbert").unwrap();
    cmd.env("WGBERT_CACHE", cache)
        .env("WGBERT_BENCH_SMALL", "1")
        .env_remove("WGBERT_AUTOTUNE");
    cmd
}

#[test]
fn tune_then_info_show_the_cached_choice() {
    let dir = tempfile::tempdir().unwrap();
    let out = wgbert_env(dir.path())
        .args(["--dtype", "f32", "--quiet", "tune", "--json"])
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let choices = v["choices"].as_array().unwrap();
    // Each row class of the tiled matmul, and attention at head size 64.
    assert_eq!(choices.len(), RowClass::ALL.len() + 1, "{v}");
    assert_eq!(choices.last().unwrap()["op"], ATTENTION, "{v}");
    let timestamps = v["timestamps"].as_bool().unwrap();
    for c in choices {
        let op = c["op"].as_str().unwrap();
        let name = c["config"].as_str().unwrap();
        assert!(known(op, name), "{c}");
        if timestamps {
            assert_eq!(c["source"], "tuned", "{c}");
            // The winner is the fastest of the candidates that were timed.
            let t = c["timings"].as_object().unwrap();
            let best = t
                .iter()
                .filter_map(|(k, v)| v.as_f64().map(|s| (k, s)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            assert_eq!(best.0, name, "{c}");
        } else {
            assert_eq!(name, default_name(op), "{c}");
        }
    }
    if !timestamps && !common::require(Cap::Timestamps, "the tuned choice cached for `wgbert info`")
    {
        return;
    }
    assert!(dir.path().join("tune.json").is_file());
    let out = wgbert_env(dir.path())
        .args(["info", "--json"])
        .assert()
        .success();
    let adapters: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let tiles = adapters[0]["tiles"].as_array().unwrap();
    let f32_tiles: Vec<&Value> = tiles.iter().filter(|t| t["dtype"] == "f32").collect();
    assert_eq!(f32_tiles.len(), choices.len(), "{tiles:?}");
    for (t, c) in f32_tiles.iter().zip(choices) {
        assert_eq!(t["source"], "cache", "{t}");
        assert_eq!(t["config"], c["config"]);
    }
}

/// On an adapter with cooperative matrices, `wgbert tune` in f16 also tunes the tensor-core
/// matmul per row class and the tensor-core attention at head size 64, each naming one of
/// its configurations.
#[test]
fn tune_covers_the_tensor_core_matmul_where_it_runs() {
    if !common::require(Cap::Coop, "`wgbert tune` of the tensor-core kernels") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = wgbert_env(dir.path())
        .args(["--dtype", "f16", "--quiet", "tune", "--json"])
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let of = |op: &str| -> Vec<Value> {
        let all = v["choices"].as_array().unwrap();
        all.iter().filter(|c| c["op"] == op).cloned().collect()
    };
    let (matmuls, attentions) = (of(MATMUL_COOP), of(ATTENTION_COOP));
    assert_eq!(matmuls.len(), RowClass::ALL.len(), "{v}");
    assert_eq!(attentions.len(), 1, "{v}");
    for (c, least) in matmuls.iter().map(|c| (c, 5)).chain([(&attentions[0], 2)]) {
        let op = c["op"].as_str().unwrap();
        assert!(known(op, c["config"].as_str().unwrap()), "{c}");
        let timed = c["timings"].as_object().unwrap();
        assert!(
            timed.len() >= least,
            "every fitting configuration is listed: {c}"
        );
    }
}

#[test]
fn autotune_off_keeps_the_defaults_and_bad_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = wgbert_env(dir.path())
        .env("WGBERT_AUTOTUNE", "0")
        .args(["--dtype", "f32", "tune", "--json"])
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    for c in v["choices"].as_array().unwrap() {
        assert_eq!(c["config"], default_name(c["op"].as_str().unwrap()), "{c}");
        assert!(c["source"].as_str().unwrap().contains("WGBERT_AUTOTUNE=0"));
    }
    assert!(!dir.path().join("tune.json").exists());
    fails_with(
        wgbert_env(dir.path())
            .env("WGBERT_AUTOTUNE", "yes")
            .args(["tune"]),
        1,
        &["WGBERT_AUTOTUNE must be 0 or 1"],
    );
}
