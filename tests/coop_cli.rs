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
