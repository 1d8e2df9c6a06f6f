//! The app as a person would use it, under a real X server (Xvfb via `xvfb-run`, else the
//! `DISPLAY` at hand): a script opens the fixture folder, waits for indexing, types a query,
//! waits for the results, takes a screenshot and exits. The test checks the exit code, the
//! PNG (the window's size, not blank), and that the ranking is the cosine ranking that
//! `wgbert embed` vectors of the same chunks give (f32, within 1e-5); then the Fill mask tab
//! against `wgbert fill-mask`. The largest frame gap while indexing is printed: a figure, not
//! a timed assertion.
//!
//! Needs the `wgbert` binary (`cargo build --bin wgbert`; `WGBERT_BIN` names another) and a
//! Vulkan driver (lavapipe). `scripts/test_desktop.sh` runs it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const SIZE: [u32; 2] = [1000, 700];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn wgbert_bin() -> PathBuf {
    let bin = std::env::var_os("WGBERT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/debug/wgbert"));
    assert!(
        bin.is_file(),
        "{} is missing: build it first (cargo build --bin wgbert) or set WGBERT_BIN",
        bin.display()
    );
    bin
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("desktop-search-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the app in `dir` with `args` under Xvfb (or the display at hand).
fn run_app(dir: &Path, args: &[&str]) -> Output {
    let app = env!("CARGO_BIN_EXE_desktop-search");
    let have_xvfb = Command::new("sh")
        .args(["-c", "command -v xvfb-run"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut cmd = if have_xvfb {
        let mut c = Command::new("xvfb-run");
        c.args(["-a", "-s", "-screen 0 1280x800x24", app]);
        c
    } else {
        assert!(
            std::env::var_os("DISPLAY").is_some(),
            "this test needs an X server: install xvfb (xvfb-run) or set DISPLAY"
        );
        Command::new(app)
    };
    cmd.args(args).current_dir(dir);
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        cmd.env("XDG_RUNTIME_DIR", dir);
    }
    // The window's device is lavapipe's, as every test's, unless told otherwise.
    if std::env::var_os("WGPU_BACKEND").is_none() {
        cmd.env("WGPU_BACKEND", "vulkan");
    }
    let out = cmd.output().expect("run desktop-search");
    eprintln!(
        "--- desktop-search stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// `wgbert embed` vectors (f32, normalized) of `texts`, each with `prompt` before it.
fn embed(model: &Path, texts: &[String], prompt: Option<&str>, dir: &Path) -> Vec<Vec<f32>> {
    let input = dir.join("texts.jsonl");
    let lines: Vec<String> = texts
        .iter()
        .map(|t| serde_json::json!({ "text": t }).to_string())
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let mut cmd = Command::new(wgbert_bin());
    cmd.arg("--model")
        .arg(model)
        .args(["--dtype", "f32", "--truncate", "-q", "embed", "--normalize"])
        .arg("--input")
        .arg(&input);
    if let Some(p) = prompt {
        cmd.args(["--prompt", p]);
    }
    if std::env::var_os("WGPU_BACKEND").is_none() {
        cmd.env("WGPU_BACKEND", "vulkan");
    }
    let out = cmd.output().expect("run wgbert embed");
    assert!(
        out.status.success(),
        "wgbert embed failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vectors: Vec<Vec<f32>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["embedding"]
                .as_array()
                .expect("an embedding")
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    assert_eq!(vectors.len(), texts.len());
    vectors
}

#[test]
fn a_scripted_search_ranks_files_as_wgbert_embed_does_and_saves_a_screenshot() {
    // The app runs in a scratch folder that holds the fixture folder (plus a binary file the
    // index must skip with a note) and the fixture model, named as the window shows them.
    let work = scratch("search");
    let docs = work.join("docs");
    copy_dir(&root().join("tests/fixtures/desktop_docs"), &docs);
    std::fs::write(docs.join("logo.bin"), [0x89, b'P', b'N', b'G', 0, 0, 1, 2]).unwrap();
    let model = work.join("st_mean_dense");
    copy_dir(&root().join("tests/fixtures/st_mean_dense"), &model);
    // An MLM fixture with the same word-level tokenizer, for the Fill mask tab.
    let mlm = work.join("mlm");
    copy_dir(&root().join("tests/fixtures/mlm_v4"), &mlm);
    std::fs::copy(model.join("tokenizer.json"), mlm.join("tokenizer.json")).unwrap();
    let shot = work.join("shot.png");
    let query = "the capital of france";
    let masked = "the cat [MASK] in the tree .";
    std::fs::write(
        work.join("search.script"),
        format!(
            "folder docs\nwait indexed\nquery {query}\nwait results\nscreenshot shot.png\n\
             tab fill-mask\nmask {masked}\nwait masks\nexit\n"
        ),
    )
    .unwrap();
    let size = format!("{}x{}", SIZE[0], SIZE[1]);
    let out = run_app(
        &work,
        &[
            "--model",
            "st_mean_dense",
            "--mlm-model",
            "mlm",
            "--dtype",
            "f32",
            "--size",
            &size,
            "--script",
            "search.script",
            "--script-timeout",
            "300",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}\n{stdout}", out.status);
    let report: Value = serde_json::from_str(&stdout).expect("a JSON report on stdout");

    // The screenshot: the window's size, and not one colour.
    let image = image::open(&shot)
        .unwrap_or_else(|e| panic!("{}: {e}", shot.display()))
        .to_rgba8();
    let ppp = report["pixels_per_point"].as_f64().unwrap();
    let want = [
        (f64::from(SIZE[0]) * ppp).round() as u32,
        (f64::from(SIZE[1]) * ppp).round() as u32,
    ];
    assert_eq!([image.width(), image.height()], want, "the PNG's size");
    assert_eq!(
        report["window"],
        serde_json::json!([want[0], want[1]]),
        "the window's reported size"
    );
    assert_eq!(
        report["screenshot"]["size"],
        serde_json::json!([want[0], want[1]])
    );
    let mut colours: HashMap<[u8; 4], usize> = HashMap::new();
    for p in image.pixels() {
        *colours.entry(p.0).or_default() += 1;
    }
    let most = colours.values().max().copied().unwrap_or(0);
    assert!(
        colours.len() > 8 && most < (image.width() * image.height()) as usize * 98 / 100,
        "the screenshot looks blank: {} colours, the commonest covers {most} pixels",
        colours.len()
    );

    // What was indexed: every text file, the binary one skipped with a note.
    let index = &report["index"];
    assert_eq!(index["dtype"], "f32");
    let skipped: Vec<&str> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["binary file skipped: logo.bin"]);
    let chunks = index["chunks"].as_array().unwrap();
    let files: Vec<&str> = chunks.iter().map(|c| c["file"].as_str().unwrap()).collect();
    for f in [
        "animals.txt",
        "colors.txt",
        "paris.md",
        "search.rs",
        "notes/long.txt",
    ] {
        assert!(files.contains(&f), "{f} not indexed: {files:?}");
    }
    assert!(
        files.iter().filter(|f| **f == "notes/long.txt").count() >= 3,
        "the long file is several chunks"
    );

    // The ranking from `wgbert embed` vectors of the same chunks and the same query.
    let texts: Vec<String> = chunks
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect();
    let doc_vecs = embed(&model, &texts, index["document_prompt"].as_str(), &work);
    let q = embed(
        &model,
        &[query.to_string()],
        index["query_prompt"].as_str(),
        &work,
    )
    .remove(0);
    let mut best: Vec<(String, f32, usize)> = Vec::new();
    for (i, (f, v)) in files.iter().zip(&doc_vecs).enumerate() {
        let s: f32 = v.iter().zip(&q).map(|(a, b)| a * b).sum();
        match best.iter_mut().find(|b| b.0 == *f) {
            Some(b) if s > b.1 => *b = (f.to_string(), s, i),
            Some(_) => {}
            None => best.push((f.to_string(), s, i)),
        }
    }
    best.sort_by(|a, b| b.1.total_cmp(&a.1));
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), best.len(), "every indexed file is ranked");
    for (rank, (r, want)) in results.iter().zip(&best).enumerate() {
        let (file, score) = (
            r["file"].as_str().unwrap(),
            r["score"].as_f64().unwrap() as f32,
        );
        let near_tie = best
            .iter()
            .any(|b| b.0 != want.0 && (b.1 - want.1).abs() <= 1e-5);
        if !near_tie {
            assert_eq!(
                file,
                want.0,
                "rank {}: {results:?}\nwant {best:?}",
                rank + 1
            );
        }
        let reference = best.iter().find(|b| b.0 == file).unwrap().1;
        assert!(
            (score - reference).abs() <= 1e-5,
            "{file}: the app's {score} against wgbert embed's {reference}"
        );
    }
    let worst = results
        .iter()
        .map(|r| {
            let f = r["file"].as_str().unwrap();
            let reference = best.iter().find(|b| b.0 == f).unwrap().1;
            (r["score"].as_f64().unwrap() as f32 - reference).abs()
        })
        .fold(0.0f32, f32::max);
    eprintln!("scores against wgbert embed's: largest difference {worst:e}");
    assert!(
        results
            .windows(2)
            .all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64()),
        "best first"
    );
    // The best file is the reference's best, near tie or not.
    assert_eq!(results[0]["file"], best[0].0);

    // The Fill mask tab: the candidates `wgbert fill-mask` gives.
    let out = Command::new(wgbert_bin())
        .arg("--model")
        .arg(&mlm)
        .args([
            "--dtype",
            "f32",
            "-q",
            "fill-mask",
            "--json",
            "--top-k",
            "5",
            masked,
        ])
        .env(
            "WGPU_BACKEND",
            std::env::var("WGPU_BACKEND").unwrap_or("vulkan".into()),
        )
        .output()
        .expect("run wgbert fill-mask");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (got, want) = (&report["masks"], &want["masks"]);
    assert_eq!(got.as_array().map(Vec::len), Some(1), "{got}");
    assert_eq!(got[0]["position"], want[0]["position"]);
    let (gc, wc) = (
        got[0]["candidates"].as_array().unwrap(),
        want[0]["candidates"].as_array().unwrap(),
    );
    assert_eq!(gc.len(), 5);
    assert_eq!(gc.len(), wc.len());
    for (g, w) in gc.iter().zip(wc) {
        assert_eq!(g["token"], w["token"], "{got}\n{want}");
        let (a, b) = (g["score"].as_f64().unwrap(), w["score"].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-5, "{got}\n{want}");
    }

    let frames = &report["frames"];
    let gap = frames["max_gap_ms_while_indexing"]
        .as_f64()
        .expect("the largest frame gap while indexing");
    eprintln!(
        "largest frame gap while indexing: {gap:.1} ms over {} frames, indexing {:.2} s, on {}",
        frames["frames_while_indexing"], frames["indexing_seconds"], report["device"]["adapter"]
    );
    if let Some(keep) = std::env::var_os("DESKTOP_SEARCH_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn errors_show_in_the_window_and_fail_the_script() {
    let work = scratch("errors");
    let script = work.join("index.script");
    // A model directory without a tokenizer.
    let docs = root().join("tests/fixtures/desktop_docs");
    std::fs::write(
        &script,
        format!("folder {}\nwait indexed\nexit\n", docs.display()),
    )
    .unwrap();
    let no_tokenizer = root().join("tests/fixtures/mlm_v4");
    let out = run_app(
        &work,
        &[
            "--model",
            no_tokenizer.to_str().unwrap(),
            "--script",
            script.to_str().unwrap(),
            "--script-timeout",
            "300",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "a failed script exits 1");
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report on stdout");
    let err = report["index_error"].as_str().expect("the error shown");
    assert!(err.contains("tokenizer"), "{err}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("script failed"));

    // A folder of binary files only.
    let bin = work.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("a.dat"), [0u8, 1, 2, 3]).unwrap();
    std::fs::write(
        &script,
        format!("folder {}\nwait indexed\nexit\n", bin.display()),
    )
    .unwrap();
    let model = root().join("tests/fixtures/st_mean_dense");
    let out = run_app(
        &work,
        &[
            "--model",
            model.to_str().unwrap(),
            "--script",
            script.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let err = report["index_error"].as_str().unwrap();
    assert!(err.contains("holds no text files"), "{err}");
    let _ = std::fs::remove_dir_all(&work);
}
