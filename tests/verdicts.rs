//! What the tuning cache keeps about a device, and how it is cleared: a self-check that read
//! back only zeros (a device whose submissions do nothing) is inconclusive, so it is neither
//! cached nor used; a conclusive verdict is cached per adapter and driver version; `wgbert
//! tune --reset` forgets one adapter's entries; `wgbert info` names the tuning file.

mod common;

use std::sync::Arc;

use wgbert::Error;
use wgbert::ops::coop::Shape;
use wgbert::ops::tune::{Cache, DeviceKey, Entry, verify};
use wgbert::runtime::Gpu;

/// A shape any adapter "supports" for these checks: the rule under test is the cache's, not
/// the kernels'.
fn any_shape(_: &wgbert::runtime::Capabilities) -> Result<Shape, String> {
    Ok(Shape {
        m: 8,
        n: 8,
        k: 8,
        subgroup: 8,
    })
}

fn tune_file(dir: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("tune.json")).unwrap_or_else(|_| "{}".into());
    serde_json::from_str(&text).unwrap()
}

#[test]
fn an_inconclusive_self_check_is_neither_cached_nor_used() {
    let gpu = common::gpu();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::in_dir(dir.path());
    let zeros = |_: &Arc<Gpu>, _| Err(Error::Inconclusive("read back only zeros".into()));
    let (shape, verdict) = verify(&gpu, &cache, "verdicts_test_zeros", any_shape, zeros);
    let why = shape.expect_err("an inconclusive check never lets the kernel run");
    assert!(
        why.contains("inconclusive") && why.contains("not cached"),
        "{why}"
    );
    assert!(
        matches!(verdict, Some(Err(_))),
        "kept for this device: {verdict:?}"
    );
    let dev = DeviceKey::of(&gpu);
    assert_eq!(cache.verdict(&dev, "verdicts_test_zeros"), None);
    assert!(!cache.has_verdicts(&dev), "{}", tune_file(dir.path()));
    // A second process (a fresh cache reader) checks again: nothing was written.
    assert!(!dir.path().join("tune.json").exists());

    // A conclusive failure is cached, and a pass too, under this adapter and driver.
    let wrong = |_: &Arc<Gpu>, _| Err(Error::Unsupported("y[0, 0] = 1, reference 2".into()));
    let (shape, _) = verify(&gpu, &cache, "verdicts_test_wrong", any_shape, wrong);
    assert!(shape.unwrap_err().contains("reference 2"));
    let cached = cache.verdict(&dev, "verdicts_test_wrong");
    assert!(
        matches!(&cached, Some(Err(w)) if w.contains("reference 2")),
        "{cached:?}"
    );
    let (shape, _) = verify(&gpu, &cache, "verdicts_test_pass", any_shape, |_, _| Ok(()));
    assert!(shape.is_ok());
    assert_eq!(cache.verdict(&dev, "verdicts_test_pass"), Some(Ok(())));
    // Another driver version reads none of them.
    let newer = DeviceKey {
        driver_info: format!("{} (newer)", dev.driver_info),
        ..dev.clone()
    };
    assert_eq!(cache.verdict(&newer, "verdicts_test_wrong"), None);
}

#[test]
fn tune_reset_forgets_one_adapter_and_info_names_the_file() {
    let gpu = common::gpu();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::in_dir(dir.path());
    let dev = DeviceKey::of(&gpu);
    let other = DeviceKey {
        adapter: "Some Other GPU".into(),
        ..dev.clone()
    };
    let entry = Entry {
        config: "64x64".into(),
        timings: Default::default(),
    };
    let f32 = wgbert::ops::DType::F32;
    for d in [&dev, &other] {
        cache
            .put(d, "matmul_tiled", "rows<=512", f32, entry.clone())
            .unwrap();
        cache
            .put_verdict(d, "matmul_coop", &Err("wrong".into()))
            .unwrap();
    }
    let older = DeviceKey {
        driver_info: "an older driver".into(),
        ..dev.clone()
    };
    cache
        .put_verdict(&older, "attention_coop", &Ok(()))
        .unwrap();

    let info = assert_cmd::Command::cargo_bin("wgbert")
        .unwrap()
        .env("WGBERT_CACHE", dir.path())
        .arg("info")
        .output()
        .unwrap();
    assert!(info.status.success());
    let text = String::from_utf8_lossy(&info.stdout);
    let file = dir.path().join("tune.json");
    assert!(
        text.contains(&format!("tuning file:         {}", file.display())),
        "{text}"
    );

    let out = assert_cmd::Command::cargo_bin("wgbert")
        .unwrap()
        .env("WGBERT_CACHE", dir.path())
        .args(["tune", "--reset", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // This adapter's tile and verdict, and the older driver's verdict; nothing else.
    assert_eq!(report["removed"], 3, "{report}");
    assert_eq!(cache.verdict(&dev, "matmul_coop"), None);
    assert!(cache.get(&dev, "matmul_tiled", "rows<=512", f32).is_none());
    assert!(
        cache
            .get(&other, "matmul_tiled", "rows<=512", f32)
            .is_some()
    );
    assert!(cache.verdict(&other, "matmul_coop").is_some());
}
