//! Code search: split source files of a folder into functions-sized chunks (blank-line
//! separated blocks), embed them, and rank the chunks for a natural-language query.
//!
//! cargo run --release --example code_search -- SRC_DIR "query" [--model ID|DIR] [--ext rs]

use anyhow::{Result, bail};
use wgbert::encoder::{EmbedPooling, Encoder, LoadOptions};

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let model = take(&mut args, "--model").unwrap_or_else(|| "answerdotai/ModernBERT-base".into());
    let ext = take(&mut args, "--ext").unwrap_or_else(|| "rs".into());
    if args.len() != 2 {
        bail!("usage: code_search SRC_DIR QUERY [--model ID|DIR] [--ext rs]");
    }
    let mut chunks: Vec<(String, String)> = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(&args[0])];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        } else if p.extension().is_some_and(|e| e == ext.as_str()) {
            let text = std::fs::read_to_string(&p)?;
            let mut line = 1;
            for block in text.split("\n\n") {
                if block.trim().len() > 40 {
                    chunks.push((format!("{}:{line}", p.display()), block.to_string()));
                }
                line += block.lines().count() + 1;
            }
        }
    }
    if chunks.is_empty() {
        bail!("no .{ext} code under {}", args[0]);
    }
    let enc = Encoder::load(
        &model,
        &LoadOptions {
            truncate: true,
            ..Default::default()
        },
    )?;
    let texts: Vec<&str> = chunks.iter().map(|c| c.1.as_str()).collect();
    let vecs = enc.embed(&texts, EmbedPooling::Mean, true)?;
    let q = &enc.embed(&[args[1].as_str()], EmbedPooling::Mean, true)?[0].vectors[0];
    let mut scored: Vec<(f32, usize)> = vecs
        .iter()
        .enumerate()
        .map(|(i, v)| (v.vectors[0].iter().zip(q).map(|(a, b)| a * b).sum(), i))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (s, i) in scored.iter().take(5) {
        println!(
            "{s:.4}  {}\n{}\n",
            chunks[*i].0,
            chunks[*i].1.lines().take(6).collect::<Vec<_>>().join("\n")
        );
    }
    Ok(())
}

fn take(args: &mut Vec<String>, flag: &str) -> Option<String> {
    let i = args.iter().position(|a| a == flag)?;
    if i + 1 >= args.len() {
        return None;
    }
    let v = args.remove(i + 1);
    args.remove(i);
    Some(v)
}
