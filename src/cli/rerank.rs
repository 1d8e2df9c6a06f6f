//! `wgbert rerank`: documents scored against one query and sorted, best first, with whatever
//! the model is: a cross-encoder, a bi-encoder (its query/document prompts) or ColBERT.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use serde_json::json;
use wgbert::encoder::RerankOptions;

use super::Global;
use super::input::Texts;

#[derive(Args, Debug)]
pub struct RerankArgs {
    /// The query.
    #[arg(long)]
    pub query: String,
    /// Keep only the best N documents.
    #[arg(long)]
    pub top_n: Option<usize>,
    /// Cross-encoders: the raw logit instead of the model's activation of it.
    #[arg(long)]
    pub raw_scores: bool,
    /// One JSON object {"index", "score", "text"} per line.
    #[arg(long)]
    pub json: bool,
    /// Read documents from a file (.jsonl: objects with "text"; else one per line).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Documents (else --input, else stdin).
    pub texts: Vec<String>,
}

pub fn run(g: &Global, a: &RerankArgs) -> Result<()> {
    if a.top_n == Some(0) {
        bail!("--top-n must be at least 1");
    }
    let docs: Vec<String> = Texts::open(&a.texts, a.input.as_deref())?
        .map(|t| t.map(|t| t.text))
        .collect::<Result<_>>()?;
    if docs.is_empty() {
        bail!("no documents to rerank");
    }
    let started = std::time::Instant::now();
    let enc = g.load()?;
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let opts = RerankOptions {
        raw_scores: a.raw_scores,
        top_n: a.top_n,
    };
    let ranked = enc.rerank(&a.query, &refs, &opts)?;
    let mut out = std::io::stdout().lock();
    for r in ranked {
        let text = &docs[r.index];
        let line = if a.json {
            json!({ "index": r.index, "score": r.score, "text": text }).to_string()
        } else {
            format!("{:>10.4}  {:>4}  {text}", r.score, r.index)
        };
        writeln!(out, "{line}")?;
    }
    g.report_timings(&enc, started);
    Ok(())
}
