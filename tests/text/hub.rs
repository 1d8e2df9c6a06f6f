//! Model sources: `owner/name[@revision]` and directories parsed, and resolved from
//! directories and from a cache laid out as hf-hub and huggingface_hub write it, offline.

use std::path::{Path, PathBuf};

use anyhow::Result;
use wgbert::Error;
use wgbert::hub::{HubOptions, ModelSource, resolve};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn hub_msg(e: Error) -> String {
    match e {
        Error::Hub { message, .. } => message,
        other => panic!("expected Error::Hub, got {other:?}"),
    }
}

fn offline(cache: &Path) -> HubOptions {
    HubOptions {
        offline: true,
        cache_dir: Some(cache.into()),
        ..Default::default()
    }
}

#[test]
fn parse_sources() -> Result<()> {
    let hub = |repo: &str, rev: Option<&str>| ModelSource::Hub {
        repo: repo.into(),
        revision: rev.map(Into::into),
    };
    assert_eq!(
        ModelSource::parse("answerdotai/ModernBERT-base")?,
        hub("answerdotai/ModernBERT-base", None)
    );
    assert_eq!(ModelSource::parse("a/b@v1.0")?, hub("a/b", Some("v1.0")));
    assert_eq!(
        ModelSource::parse("a/b@refs/pr/1")?,
        hub("a/b", Some("refs/pr/1"))
    );
    assert_eq!(ModelSource::parse("a/b@main")?.to_string(), "a/b@main");
    for s in [
        "./nope-wgbert",
        "/nope/wgbert",
        "~/nope-wgbert",
        "a/b/c",
        "a\\b",
    ] {
        let m = hub_msg(ModelSource::parse(s).unwrap_err());
        assert!(m.contains("directory not found"), "{s}: {m}");
    }
    for s in ["", " ", "bare", "a/", "/b", "a b/c", "a/b@", "a/.."] {
        assert!(ModelSource::parse(s).is_err(), "{s:?} parsed");
    }
    let dir = tempfile::tempdir()?;
    let s = dir.path().to_str().unwrap();
    assert_eq!(ModelSource::parse(s)?, ModelSource::Dir(dir.path().into()));
    let file = dir.path().join("config.json");
    write(&file, "{}");
    let m = hub_msg(ModelSource::parse(file.to_str().unwrap()).unwrap_err());
    assert!(m.contains("is a file"), "{m}");
    Ok(())
}

#[test]
fn resolve_directories() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("m");
    write(&dir.join("config.json"), "{}");
    write(&dir.join("model.safetensors"), "");
    let opts = HubOptions::default();
    let files = resolve(&ModelSource::Dir(dir.clone()), &opts)?;
    assert_eq!(files.dir.as_deref(), Some(dir.as_path()));
    assert_eq!(files.config, dir.join("config.json"));
    assert_eq!(files.tokenizer, None, "tokenizer.json is optional");
    assert_eq!(files.weights, [dir.join("model.safetensors")]);
    assert!(!files.is_sharded());

    write(&dir.join("tokenizer.json"), "{}");
    std::fs::remove_file(dir.join("model.safetensors"))?;
    let index = r#"{"weight_map": {"a": "s-2.safetensors", "b": "s-1.safetensors", "c": "s-2.safetensors"}}"#;
    write(&dir.join("model.safetensors.index.json"), index);
    write(&dir.join("s-1.safetensors"), "");
    let m = hub_msg(resolve(&ModelSource::Dir(dir.clone()), &opts).unwrap_err());
    assert!(m.contains("s-2.safetensors"), "missing shard named: {m}");
    write(&dir.join("s-2.safetensors"), "");
    let files = resolve(&ModelSource::Dir(dir.clone()), &opts)?;
    assert_eq!(files.tokenizer, Some(dir.join("tokenizer.json")));
    assert!(files.is_sharded());
    let shards: Vec<PathBuf> = ["s-1", "s-2"]
        .iter()
        .map(|s| dir.join(format!("{s}.safetensors")))
        .collect();
    assert_eq!(files.safetensors(), shards.as_slice());
    assert_eq!(files.weights[0], dir.join("model.safetensors.index.json"));

    write(
        &dir.join("model.safetensors.index.json"),
        r#"{"weight_map": {"a": "../x.safetensors"}}"#,
    );
    let e = resolve(&ModelSource::Dir(dir.clone()), &opts).unwrap_err();
    assert!(matches!(e, Error::Weights { .. }), "{e}");

    let missing = tmp.path().join("absent");
    let m = hub_msg(resolve(&ModelSource::Dir(missing), &opts).unwrap_err());
    assert!(m.contains("directory not found"), "{m}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty)?;
    let e = resolve(&ModelSource::Dir(empty.clone()), &opts).unwrap_err();
    let shown = e.to_string();
    assert!(
        shown.contains("config.json") && shown.contains(&empty.display().to_string()),
        "{shown}"
    );
    std::fs::remove_file(dir.join("model.safetensors.index.json"))?;
    let m = hub_msg(resolve(&ModelSource::Dir(dir), &opts).unwrap_err());
    assert!(m.contains("model.safetensors"), "{m}");
    Ok(())
}

/// A cache laid out as hf-hub and huggingface_hub write it.
fn fake_cache(root: &Path, repo: &str, commit: &str, files: &[&str], ref_text: &str) -> PathBuf {
    let base = root.join(format!("models--{}", repo.replace('/', "--")));
    write(&base.join("refs").join("main"), ref_text);
    let snapshot = base.join("snapshots").join(commit);
    for (i, f) in files.iter().enumerate() {
        let blob = base.join("blobs").join(format!("blob{i}"));
        write(&blob, "{}");
        std::fs::create_dir_all(&snapshot).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&blob, snapshot.join(f)).unwrap();
        #[cfg(not(unix))]
        std::fs::copy(&blob, snapshot.join(f)).unwrap();
    }
    snapshot
}

#[test]
fn resolve_from_fake_cache() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let all = ["config.json", "tokenizer.json", "model.safetensors"];
    let snap = fake_cache(tmp.path(), "owner/name", commit, &all, commit);
    let source = ModelSource::parse("owner/name")?;
    let files = resolve(&source, &offline(tmp.path()))?;
    assert_eq!(files.dir, None);
    assert_eq!(files.config, snap.join("config.json"));
    assert_eq!(files.tokenizer, Some(snap.join("tokenizer.json")));
    assert_eq!(files.weights, [snap.join("model.safetensors")]);
    assert_eq!(std::fs::read_to_string(&files.config)?, "{}");

    // Online with everything cached: served from the cache, no network.
    let online = HubOptions {
        offline: false,
        ..offline(tmp.path())
    };
    assert_eq!(resolve(&source, &online)?, files);

    // A pinned commit needs no ref; a ref with a trailing newline still resolves.
    let pinned = ModelSource::parse(&format!("owner/name@{commit}"))?;
    assert_eq!(resolve(&pinned, &offline(tmp.path()))?.config, files.config);
    let snap2 = fake_cache(
        tmp.path(),
        "owner/other",
        commit,
        &all,
        &format!("{commit}\n"),
    );
    let other = resolve(&ModelSource::parse("owner/other")?, &offline(tmp.path()))?;
    assert_eq!(other.config, snap2.join("config.json"));
    Ok(())
}

#[test]
fn offline_misses_say_so() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let commit = "fedcba9876543210fedcba9876543210fedcba98";
    fake_cache(
        tmp.path(),
        "owner/partial",
        commit,
        &["config.json"],
        commit,
    );
    let cases = [
        ("owner/absent", "owner/absent/config.json"),
        ("owner/partial@v2", "owner/partial/config.json"),
        ("owner/partial", "owner/partial/model.safetensors"),
    ];
    for (name, file) in cases {
        let e = resolve(&ModelSource::parse(name)?, &offline(tmp.path())).unwrap_err();
        let shown = e.to_string();
        assert!(shown.contains(name), "{shown}");
        let m = hub_msg(e);
        assert!(m.contains(file) && m.contains("is not in the cache"), "{m}");
        assert!(m.contains("run once online or pass a directory"), "{m}");
    }
    Ok(())
}
