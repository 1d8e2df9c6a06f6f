//! Text handling and model sources: the tokenizer wrapper on the real ModernBERT tokenizer
//! (when `WGBERT_TOKENIZER` points at its tokenizer.json; the unit tests in src/text cover a
//! tiny tokenizer), packing properties, and hub resolution from directories and a fake cache.

mod common;

use std::path::{Path, PathBuf};

use anyhow::Result;
use proptest::prelude::*;
use wgbert::Error;
use wgbert::hub::{HubOptions, ModelSource, resolve};
use wgbert::text::{PackedBatch, Splice, TextTokenizer, TruncationSide, pack};

// ---------------------------------------------------------------- tokenizer, real

fn input_err(e: Error) -> (usize, String) {
    match e {
        Error::Input { index, message } => (index, message),
        other => panic!("expected Error::Input, got {other:?}"),
    }
}

/// ModernBERT's tokenizer, where `WGBERT_TOKENIZER` names it (else `checks` are a skip).
fn real(checks: &str) -> Option<TextTokenizer> {
    if !common::require(common::Cap::Tokenizer, checks) {
        return None;
    }
    let path = std::env::var_os("WGBERT_TOKENIZER")?;
    Some(TextTokenizer::from_file(path).expect("WGBERT_TOKENIZER loads"))
}

#[test]
fn real_tokenizer_known_ids() -> Result<()> {
    let Some(tok) = real("ModernBERT's known ids, offsets and pairs") else {
        return Ok(());
    };
    let cases: [(&str, &[u32]); 4] = [
        ("Hello World!", &[50281, 12092, 3645, 2, 50282]),
        (
            "The capital of France is [MASK].",
            &[50281, 510, 5347, 273, 6181, 310, 50284, 15, 50282],
        ),
        ("hello     world", &[50281, 25521, 50273, 10186, 50282]),
        ("🤖 robot", &[50281, 14931, 99, 233, 15688, 50282]),
    ];
    for (text, ids) in cases {
        assert_eq!(tok.encode(text, 0)?.ids, ids, "{text:?}");
    }
    assert_eq!(tok.vocab_size(), 50368);
    assert_eq!(
        (tok.cls_id()?, tok.sep_id()?, tok.mask_id()?),
        (50281, 50282, 50284)
    );
    assert!(tok.pad_id().is_ok());
    let hello = tok.encode("Hello World!", 0)?;
    assert_eq!(hello.offsets, [(0, 0), (0, 5), (5, 11), (11, 12), (0, 0)]);
    assert_eq!(tok.decode(&hello.ids)?, "Hello World!");
    assert_eq!(tok.encode("", 0)?.ids, [50281, 50282]);
    let pair = tok.encode_pair("Hello World!", "Hello World!", 0)?;
    assert_eq!(
        pair.ids,
        [50281, 12092, 3645, 2, 50282, 12092, 3645, 2, 50282]
    );
    Ok(())
}

#[test]
fn real_tokenizer_limit() -> Result<()> {
    let Some(tok) = real("ModernBERT's tokenizer at its length limit") else {
        return Ok(());
    };
    let long = "word ".repeat(9000);
    let strict = tok.with_limit(Some(8192), false)?;
    let (index, message) = input_err(strict.encode(&long, 4).unwrap_err());
    assert_eq!(index, 4);
    assert!(
        message.contains("over the model's limit of 8192"),
        "{message}"
    );
    let cut = strict.with_limit(Some(8192), true)?;
    let e = cut.encode(&long, 0)?;
    assert_eq!(e.ids.len(), 8192);
    assert_eq!((e.ids[0], e.ids[8191]), (50281, 50282));
    Ok(())
}

/// Long texts read a part at a time keep the whole text's tokens, from either side and with
/// a prompt, on ModernBERT's byte-level tokenizer (spaces, punctuation, emoji, accents).
#[test]
fn real_tokenizer_reads_long_texts_in_parts() -> Result<()> {
    let Some(tok) = real("ModernBERT's tokenizer on long texts read in parts") else {
        return Ok(());
    };
    let whole = TextTokenizer::from_file(std::env::var_os("WGBERT_TOKENIZER").unwrap())?;
    let tok = tok.with_limit(Some(64), true)?;
    let pieces = [
        "The café's 🤖 robot",
        "ran,",
        "  quickly",
        "to Paris!",
        "naïve",
        "x\ty",
    ];
    let long: String = (0..4000)
        .map(|i| pieces[i % pieces.len()])
        .collect::<Vec<_>>()
        .join(" ");
    let all = whole
        .encode_prompted(Some("search_query: "), &long, None, 0)?
        .ids;
    let content = &all[1..all.len() - 1];
    let right = tok.encode_prompted(
        Some("search_query: "),
        &long,
        Some(TruncationSide::Right),
        0,
    )?;
    assert_eq!(right.ids[1..63], content[..62], "right");
    let bare = whole.encode_prompted(None, &long, None, 0)?.ids;
    let left = tok.encode_prompted(None, &long, Some(TruncationSide::Left), 0)?;
    assert_eq!(
        left.ids[1..63],
        bare[bare.len() - 63..bare.len() - 1],
        "left"
    );
    let prompted =
        tok.encode_prompted(Some("search_query: "), &long, Some(TruncationSide::Left), 0)?;
    // The prompt's own tokens (as it tokenizes alone), then the text's end.
    let own = whole.encode_prompted(None, "search_query: ", None, 0)?.ids;
    let prompt_tokens = own.len() - 2;
    assert_eq!(
        prompted.ids[1..1 + prompt_tokens],
        own[1..own.len() - 1],
        "the prompt"
    );
    let kept = 62 - prompt_tokens;
    assert_eq!(
        prompted.ids[1 + prompt_tokens..63],
        bare[bare.len() - 1 - kept..bare.len() - 1],
        "the text's end"
    );
    Ok(())
}

/// Fill-mask's filled-in sequences, spliced from the text decoded once, equal the
/// tokenizer's decoding of every filled sequence, for thousands of candidates (partial
/// characters and special tokens among them).
#[test]
fn real_tokenizer_fill_mask_sequences_splice_exactly() -> Result<()> {
    let Some(tok) = real("fill-mask sequences on ModernBERT's tokenizer") else {
        return Ok(());
    };
    let text = "The café's 🤖 said [MASK] to Paris,[MASK] and then  [MASK]!";
    let seq = tok.encode(text, 0)?.ids;
    let mask = tok.mask_id()?;
    let positions: Vec<usize> = (0..seq.len()).filter(|&p| seq[p] == mask).collect();
    assert_eq!(positions.len(), 3);
    let splice = Splice::new(&tok, &seq, &positions)?;
    for &p in &positions {
        for id in (0..50368u32).step_by(13).chain([99, 233, 50281, 50284]) {
            let token = tok.decode(&[id])?;
            let got = splice.filled(&tok, &seq, p, id, &token)?;
            let mut filled = seq.clone();
            filled[p] = id;
            assert_eq!(got, tok.decode(&filled)?, "mask at {p}, candidate {id}");
        }
    }
    Ok(())
}

fn check_batches(seqs: &[Vec<u32>], batches: &[PackedBatch], cap: usize, max_seqs: usize) {
    let mut seen = Vec::new();
    for b in batches {
        assert!(b.n_seqs() >= 1 && b.n_seqs() <= max_seqs);
        assert!(b.n_tokens() <= cap);
        assert_eq!(b.cu_seqlens.len(), b.n_seqs() + 1);
        assert_eq!(b.cu_seqlens[0], 0);
        assert_eq!(*b.cu_seqlens.last().unwrap() as usize, b.n_tokens());
        assert_eq!(b.positions.len(), b.n_tokens());
        let mut max = 0;
        for (i, &index) in b.indices.iter().enumerate() {
            let r = b.seq_range(i);
            assert!(!r.is_empty());
            assert_eq!(&b.ids[r.clone()], seqs[index].as_slice());
            let pos: Vec<u32> = (0..r.len() as u32).collect();
            assert_eq!(b.positions[r.clone()], pos[..], "positions restart at 0");
            max = max.max(r.len() as u32);
            seen.push(index);
        }
        assert_eq!(b.max_seqlen, max);
    }
    let all: Vec<usize> = (0..seqs.len()).collect();
    assert_eq!(seen, all, "each sequence exactly once, in input order");
}

proptest! {
    #[test]
    fn pack_properties(
        seqs in prop::collection::vec(prop::collection::vec(any::<u32>(), 1..40), 0..60),
        cap in 40usize..200,
        max_seqs in 1usize..10,
    ) {
        let batches = pack(&seqs, cap, max_seqs).unwrap();
        check_batches(&seqs, &batches, cap, max_seqs);
        // Greedy: a batch closed only because the next sequence did not fit.
        for w in batches.windows(2) {
            let first_next = seqs[w[1].indices[0]].len();
            prop_assert!(
                w[0].n_seqs() == max_seqs || w[0].n_tokens() + first_next > cap
            );
        }
    }
}

// ---------------------------------------------------------------- hub

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
