//! Retrieval for RAG: embed every file of a folder (long documents up to the model's 8192
//! tokens, truncated beyond), then answer queries by cosine similarity.
//!
//! cargo run --release --example semantic_search -- DOCS_DIR "query" ["query"...] [--model ID|DIR]
//! (an embedding fine-tune such as nomic-ai/modernbert-embed-base gives meaningful scores)

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use wgbert::encoder::{EmbedPooling, Encoder, LoadOptions};
use wgbert::progress::Progress;

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let model =
        take_flag(&mut args, "--model").unwrap_or_else(|| "answerdotai/ModernBERT-base".into());
    if args.len() < 2 {
        bail!("usage: semantic_search DOCS_DIR QUERY... [--model ID|DIR]");
    }
    let dir = args.remove(0);
    let mut names = Vec::new();
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let path = entry?.path();
        if let Ok(text) = std::fs::read_to_string(&path) {
            names.push(path.display().to_string());
            docs.push(text);
        }
    }
    let opts = LoadOptions {
        truncate: true,
        progress: Some(Arc::new(Report)),
        ..Default::default()
    };
    let enc = Encoder::load(&model, &opts)?;
    let doc_refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let doc_vecs = enc.embed(&doc_refs, EmbedPooling::Mean, true)?;
    let query_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let query_vecs = enc.embed(&query_refs, EmbedPooling::Mean, true)?;
    for (q, qv) in args.iter().zip(&query_vecs) {
        let mut scored: Vec<(f32, &str)> = doc_vecs
            .iter()
            .zip(&names)
            .map(|(d, n)| (dot(&qv.vectors[0], &d.vectors[0]), n.as_str()))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        println!("{q}");
        for (s, n) in scored.iter().take(5) {
            println!("  {s:.4}  {n}");
        }
    }
    Ok(())
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn take_flag(args: &mut Vec<String>, flag: &str) -> Option<String> {
    let i = args.iter().position(|a| a == flag)?;
    if i + 1 >= args.len() {
        return None;
    }
    let v = args.remove(i + 1);
    args.remove(i);
    Some(v)
}

/// The library reports loading progress to an observer and never prints; this one prints a
/// line per job (downloads, the weight upload). An application would draw a bar.
struct Report;

impl Progress for Report {
    fn start(&self, what: &str, total: u64) {
        eprintln!("{what} ({total})");
    }
}
