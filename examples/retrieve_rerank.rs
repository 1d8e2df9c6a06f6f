//! Two-stage retrieval over a folder of files: an embedding model (its sentence-transformers
//! layout followed: pooling, Dense, Normalize, query/document prompts) finds the nearest
//! files, then a cross-encoder rescores those top hits against the query.
//!
//! cargo run --release --example retrieve_rerank -- DOCS_DIR "query" \
//!     [--embedder ID|DIR] [--reranker ID|DIR] [--hits N]
//! (defaults: nomic-ai/modernbert-embed-base, Alibaba-NLP/gte-reranker-modernbert-base)

use anyhow::{Context, Result, bail};
use wgbert::encoder::{EmbedOptions, Encoder, LoadOptions, Prompt, RerankOptions, similarity};
use wgbert::sentence::Similarity;

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let embedder = take_flag(&mut args, "--embedder")
        .unwrap_or_else(|| "nomic-ai/modernbert-embed-base".into());
    let reranker = take_flag(&mut args, "--reranker")
        .unwrap_or_else(|| "Alibaba-NLP/gte-reranker-modernbert-base".into());
    let hits: usize = match take_flag(&mut args, "--hits") {
        Some(n) => n.parse().context("--hits takes a number")?,
        None => 20,
    };
    if args.len() != 2 {
        bail!("usage: retrieve_rerank DOCS_DIR QUERY [--embedder M] [--reranker M] [--hits N]");
    }
    let (dir, query) = (&args[0], &args[1]);
    let mut names = Vec::new();
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {dir}"))? {
        let path = entry?.path();
        if let Ok(text) = std::fs::read_to_string(&path) {
            names.push(path.display().to_string());
            docs.push(text);
        }
    }
    let opts = LoadOptions {
        truncate: true,
        ..Default::default()
    };

    // Stage 1: embed the query and every file with the model's own prompts.
    let enc = Encoder::load(&embedder, &opts)?;
    let sc = enc.sentence_config();
    let role = |query: bool| EmbedOptions {
        prompt: match sc.role_prompt(query) {
            Some(p) => Prompt::Text(p.to_string()),
            None => Prompt::ModelDefault,
        },
        ..Default::default()
    };
    let doc_refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let doc_vecs = enc.embed_with(&doc_refs, &role(false))?;
    let query_vec = enc.embed_with(&[query.as_str()], &role(true))?.remove(0);
    let sim = sc.similarity.unwrap_or(Similarity::Cosine);
    let mut first: Vec<(f32, usize)> = doc_vecs
        .iter()
        .enumerate()
        .map(|(i, d)| (similarity(sim, &query_vec.vectors[0], &d.vectors[0]), i))
        .collect();
    first.sort_by(|a, b| b.0.total_cmp(&a.0));
    first.truncate(hits);
    drop(enc);

    // Stage 2: the cross-encoder reads the query and each top hit together.
    let ce = Encoder::load(&reranker, &opts)?;
    let top: Vec<&str> = first.iter().map(|&(_, i)| docs[i].as_str()).collect();
    let ranked = ce.rerank(query, &top, &RerankOptions::default())?;
    println!("{query}");
    for r in ranked.iter().take(10) {
        let (embed_score, i) = first[r.index];
        println!(
            "  {:.4}  (embedding {embed_score:.4})  {}",
            r.score, names[i]
        );
    }
    Ok(())
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
