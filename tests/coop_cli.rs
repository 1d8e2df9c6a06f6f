//! `WGBERT_COOP` through the `wgbert` binary: `1` is a clear error (exit 1, naming
//! cooperative matrices and why) on an adapter without them, such as Debian 12's lavapipe,
//! and picks the tensor-core kernels where they are (Mesa 26's lavapipe,
//! scripts/test_coop.sh); `info --json` reports the f16 kernels of each adapter; a value
//! other than 0 or 1 is refused.

mod common;

use common::model_dir::{model_dir, wgbert};
use serde_json::Value;

fn has_coop() -> bool {
    wgbert::ops::matmul::coop::supported(common::gpu().caps()).is_ok()
        && wgbert::ops::attention::coop::supported(common::gpu().caps()).is_ok()
}

#[test]
fn required_coop_fails_clearly_or_runs() {
    if !common::require(common::Cap::F16, "`WGBERT_COOP=1 wgbert --dtype f16`") {
        return;
    }
    let dir = model_dir("encoder_noprefix");
    let run = wgbert(dir.path())
        .env("WGBERT_COOP", "1")
        .args(["--dtype", "f16", "--dump-plan", "embed", "w5 w6"])
        .assert();
    if has_coop() {
        let out = run.success().get_output().clone();
        let plan = String::from_utf8_lossy(&out.stderr);
        assert!(plan.contains("matmul_coop/"), "{plan}");
        assert!(plan.contains("attention_coop/"), "{plan}");
    } else {
        let out = run.code(1).get_output().clone();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("WGBERT_COOP=1"), "{err}");
        assert!(err.contains("cooperative matrices"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn bad_coop_setting_is_refused() {
    let dir = model_dir("encoder_noprefix");
    let out = wgbert(dir.path())
        .env("WGBERT_COOP", "yes")
        .args(["embed", "w5"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WGBERT_COOP=yes"), "{err}");
}

#[test]
fn info_json_names_the_f16_kernels() {
    let dir = model_dir("encoder_noprefix");
    for (setting, coop) in [("0", false), ("", has_coop())] {
        let out = wgbert(dir.path())
            .env("WGBERT_COOP", setting)
            .args(["info", "--json"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let adapters: Value = serde_json::from_slice(&out).unwrap();
        let name = common::gpu().info().name.clone();
        let a = adapters
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} not in {adapters}"));
        let k = &a["f16_kernels"];
        let (m, at) = (
            k["matmul"].as_str().unwrap(),
            k["attention"].as_str().unwrap(),
        );
        assert_eq!(m.contains("coop"), coop, "WGBERT_COOP={setting}: {a}");
        assert_eq!(at.contains("coop"), coop, "WGBERT_COOP={setting}: {a}");
        assert_eq!(a.get("coop_reason").is_none(), coop, "{a}");
        if setting == "0" {
            assert!(
                a["coop_reason"].as_str().unwrap().contains("WGBERT_COOP=0"),
                "{a}"
            );
        }
    }
}

/// The `timings: {json}` line `--timings` prints on stderr.
fn timings_line(stderr: &[u8]) -> Value {
    let err = String::from_utf8_lossy(stderr);
    let line = err
        .lines()
        .find_map(|l| l.strip_prefix("timings: "))
        .unwrap_or_else(|| panic!("no timings line: {err}"));
    serde_json::from_str(line).unwrap()
}

/// Warm starts: a second process with the same `WGBERT_CACHE` runs no self-check (the first
/// cached the verdicts, where the adapter has cooperative matrices to check) and loads the
/// compiled pipelines the first wrote (where the backend has a pipeline cache, as Vulkan
/// does); `info` reports that state; a corrupt pipeline cache is ignored.
#[test]
fn a_warm_start_runs_no_self_check_and_loads_the_compiled_pipelines() {
    let dir = model_dir("encoder_noprefix");
    let cache = tempfile::tempdir().unwrap();
    let f16 = common::gpu().caps().f16;
    let dtype = if f16 { "f16" } else { "f32" };
    let run = || {
        let out = wgbert(dir.path())
            .env("WGBERT_CACHE", cache.path())
            .args(["--dtype", dtype, "--timings", "embed", "w5 w6"])
            .assert()
            .success()
            .get_output()
            .clone();
        timings_line(&out.stderr)
    };
    let cold = run();
    let warm = run();
    let count = |v: &Value, k: &str| v["counters"][k].as_u64().unwrap();
    let checked = f16 && has_coop() && common::coop_mode() != wgbert::ops::coop::Mode::Off;
    if checked {
        assert!(count(&cold, "self_checks_run") >= 2, "{cold}");
    } else {
        assert_eq!(count(&cold, "self_checks_run"), 0, "{cold}");
    }
    assert_eq!(count(&warm, "self_checks_run"), 0, "{warm}");
    assert!(count(&cold, "pipelines_created") > 0, "{cold}");
    if checked {
        // The self-checks' kernels are not built again.
        let (c, w) = (
            count(&cold, "pipelines_created"),
            count(&warm, "pipelines_created"),
        );
        assert!(w < c, "cold {cold}, warm {warm}");
    }
    for t in [&cold, &warm] {
        for k in ["load_s", "self_check_s", "compile_s", "run_s", "total_s"] {
            assert!(t[k].as_f64().unwrap() >= 0.0, "{k}: {t}");
        }
    }
    let info = || {
        let out = wgbert(dir.path())
            .env("WGBERT_CACHE", cache.path())
            .args(["info", "--json"])
            .assert()
            .success()
            .get_output()
            .clone();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["cache"].clone()
    };
    let state = info();
    assert_eq!(state["verdicts_cached"], checked, "{state}");
    assert_eq!(count(&state, "self_checks_run"), 0, "{state}");
    let checks = "the warm start's pipeline cache";
    if !common::require(common::Cap::PipelineCache, checks) {
        return;
    }
    let path = cold["pipeline_cache"]
        .as_str()
        .unwrap_or_else(|| panic!("the device has a pipeline cache and no file: {cold}"));
    let written = std::fs::metadata(path).unwrap().len();
    assert!(written > 0, "{path}");
    eprintln!("pipeline cache: {written} bytes");
    assert_eq!(count(&cold, "pipeline_cache_loaded"), 0, "{cold}");
    assert!(count(&warm, "pipeline_cache_loaded") > 0, "{warm}");
    assert_eq!(state["pipeline_cache"]["path"], path, "{state}");
    assert!(
        state["pipeline_cache"]["bytes"].as_u64().unwrap() > 0,
        "{state}"
    );
    // A corrupt (or another driver's) file is ignored, and replaced by a good one.
    std::fs::write(path, b"not a pipeline cache").unwrap();
    let again = run();
    assert_eq!(count(&again, "pipeline_cache_loaded"), 0, "{again}");
    assert_eq!(count(&again, "self_checks_run"), 0, "{again}");
    // Replaced by this run's (valid) cache.
    let now = std::fs::read(path).unwrap();
    assert!(!now.is_empty() && now != b"not a pipeline cache", "{path}");
}

/// A cached failing verdict stands for the self-check: `WGBERT_COOP=1` fails clearly (exit
/// 1, naming the cached verdict), and the automatic choice keeps the portable kernel, where
/// the adapter has cooperative matrices (Mesa 26's lavapipe in scripts/test_coop.sh).
#[test]
fn a_cached_failing_verdict_is_honoured() {
    let checks = "a cached failing verdict";
    if !common::require(common::Cap::F16, checks) || !common::require(common::Cap::Coop, checks) {
        return;
    }
    use wgbert::ops::tune::{ATTENTION_COOP, Cache, DeviceKey, MATMUL_COOP};
    let dir = model_dir("encoder_noprefix");
    let cache = tempfile::tempdir().unwrap();
    let failed = Err("planted failure".to_string());
    let dev = DeviceKey::of(&common::gpu());
    Cache::in_dir(cache.path())
        .put_verdict(&dev, MATMUL_COOP, &failed)
        .unwrap();
    let out = wgbert(dir.path())
        .env("WGBERT_CACHE", cache.path())
        .env("WGBERT_COOP", "1")
        .args(["--dtype", "f16", "embed", "w5 w6"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WGBERT_COOP=1"), "{err}");
    assert!(
        err.contains("planted failure") && err.contains("cached verdict"),
        "{err}"
    );
    // The attention kernel had no verdict: that run checked it, and cached the pass.
    let cached = Cache::in_dir(cache.path()).verdict(&dev, ATTENTION_COOP);
    assert_eq!(cached, Some(Ok(())));
    let out = wgbert(dir.path())
        .env("WGBERT_CACHE", cache.path())
        .env_remove("WGBERT_COOP")
        .args([
            "--dtype",
            "f16",
            "--dump-plan",
            "--timings",
            "embed",
            "w5 w6",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("matmul_coop/"), "{err}");
    assert!(err.contains("attention_coop/"), "{err}");
    // Both verdicts cached: nothing checked again.
    assert_eq!(timings_line(&out.stderr)["counters"]["self_checks_run"], 0);
}
