//! `wgbert bench --json` reports each workload's peak device bytes, per token of capacity,
//! and what one activation arena per capacity bucket would have held instead of the shared
//! one: equal for a workload of one bucket, more for one of two.

mod common;

use common::model_dir::{model_dir, wgbert};
use serde_json::Value;

#[test]
fn bench_reports_peak_device_bytes_and_the_arena_per_bucket_comparison() {
    let dir = model_dir("encoder_noprefix");
    let workloads = dir.path().join("workloads.json");
    // With batches of at most 1024 tokens: `one` fits one batch (the 512-token bucket),
    // `two` packs into a batch of 1000 tokens and one of 300 (buckets of 1024 and 512).
    std::fs::write(&workloads, r#"{"one": [300, 100], "two": [500, 500, 300]}"#).unwrap();
    let out = wgbert(dir.path())
        .args([
            "--max-tokens",
            "1024",
            "bench",
            "--dry-run",
            "--json",
            "--workloads",
        ])
        .arg(&workloads)
        .assert()
        .success()
        .get_output()
        .clone();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let weights = v["weight_bytes"].as_u64().unwrap();
    let field = |w: &str, k: &str| {
        v[w][k]
            .as_u64()
            .unwrap_or_else(|| panic!("{w}.{k} missing: {v}"))
    };
    for w in ["one", "two"] {
        let peak = field(w, "peak_device_bytes");
        assert!(peak > weights, "{w}: {v}");
        assert!(field(w, "bytes_per_token") > 0, "{w}: {v}");
        assert!(
            field(w, "peak_device_bytes_arena_per_bucket") >= peak,
            "{w}: {v}"
        );
    }
    assert_eq!(field("one", "batches"), 1, "{v}");
    assert_eq!(
        field("one", "peak_device_bytes_arena_per_bucket"),
        field("one", "peak_device_bytes"),
        "one bucket: the same arena either way: {v}"
    );
    assert_eq!(field("two", "batches"), 2, "{v}");
    assert!(
        field("two", "peak_device_bytes_arena_per_bucket") > field("two", "peak_device_bytes"),
        "two buckets: an arena each holds more than the shared one: {v}"
    );
    assert_eq!(v["skipped"], serde_json::json!([]), "{v}");
}
