//! `wgbert fill-mask` and `wgbert classify`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::Global;
use super::input::Texts;

#[derive(Args, Debug)]
pub struct FillMaskArgs {
    /// Candidates per [MASK].
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// One JSON object per text per line.
    #[arg(long)]
    pub json: bool,
    /// Read texts from a file (.jsonl: objects with "text"; else one per line).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Texts (else --input, else stdin).
    pub texts: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// One JSON object per text per line.
    #[arg(long)]
    pub json: bool,
    /// Classify (text, text) pairs, `[CLS] a [SEP] b [SEP]`: arguments in twos (`a1 b1 a2
    /// b2`), lines as `a<TAB>b`, or JSONL objects with `text` and `text_pair`.
    #[arg(long)]
    pub pair: bool,
    /// Read texts from a file (.jsonl: objects with "text"; else one per line).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Texts (else --input, else stdin).
    pub texts: Vec<String>,
}

fn read_all(texts: &[String], input: Option<&std::path::Path>) -> Result<Vec<String>> {
    Texts::open(texts, input)?
        .map(|t| t.map(|t| t.text))
        .collect()
}

pub fn fill_mask(g: &Global, a: &FillMaskArgs) -> Result<()> {
    if a.top_k == 0 || a.top_k > 64 {
        anyhow::bail!("--top-k must be between 1 and 64, got {}", a.top_k);
    }
    let texts = read_all(&a.texts, a.input.as_deref())?;
    let started = std::time::Instant::now();
    let enc = g.load()?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let results = enc.fill_mask(&refs, a.top_k)?;
    for (text, masks) in texts.iter().zip(results) {
        if a.json {
            println!("{}", json!({ "text": text, "masks": masks }));
            continue;
        }
        println!("{text}");
        for m in masks {
            println!("  [MASK] at token {}:", m.position);
            for c in m.candidates {
                println!(
                    "    {:>8.4}  {:<16} {}",
                    c.score,
                    format!("{:?}", c.token),
                    c.sequence
                );
            }
        }
    }
    g.report_timings(&enc, started);
    Ok(())
}

pub fn classify(g: &Global, a: &ClassifyArgs) -> Result<()> {
    if a.pair {
        return classify_pairs(g, a);
    }
    let texts = read_all(&a.texts, a.input.as_deref())?;
    let started = std::time::Instant::now();
    let enc = g.load()?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let results = enc.classify(&refs)?;
    for (text, c) in texts.iter().zip(results) {
        if a.json {
            println!(
                "{}",
                json!({ "text": text, "label": c.label, "score": c.score, "logits": c.logits })
            );
        } else {
            println!("{:<20} {:.4}  {text}", c.label, c.score);
        }
    }
    g.report_timings(&enc, started);
    Ok(())
}

/// The pairs of `classify --pair`.
fn read_pairs(a: &ClassifyArgs) -> Result<Vec<(String, String)>> {
    if !a.texts.is_empty() {
        if !a.texts.len().is_multiple_of(2) {
            anyhow::bail!(
                "--pair takes texts in twos (a1 b1 a2 b2 ...); {} were given",
                a.texts.len()
            );
        }
        return Ok(a
            .texts
            .chunks_exact(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect());
    }
    Texts::open(&[], a.input.as_deref())?
        .enumerate()
        .map(|(i, item)| {
            let item = item?;
            if let Some(b) = item.extra.get("text_pair") {
                let b = b
                    .as_str()
                    .ok_or_else(|| anyhow::anyhow!("input {i}: \"text_pair\" is not a string"))?;
                return Ok((item.text, b.to_string()));
            }
            match item.text.split_once('\t') {
                Some((x, y)) => Ok((x.to_string(), y.to_string())),
                None => anyhow::bail!(
                    "input {i}: a pair is two texts separated by a tab (or a JSONL object \
                     with \"text\" and \"text_pair\")"
                ),
            }
        })
        .collect()
}

fn classify_pairs(g: &Global, a: &ClassifyArgs) -> Result<()> {
    let pairs = read_pairs(a)?;
    let started = std::time::Instant::now();
    let enc = g.load()?;
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(x, y)| (x.as_str(), y.as_str()))
        .collect();
    let results = enc.classify_pairs(&refs)?;
    for ((text, pair), c) in pairs.iter().zip(results) {
        if a.json {
            let line = json!({ "text": text, "text_pair": pair, "label": c.label,
                               "score": c.score, "logits": c.logits });
            println!("{line}");
        } else {
            println!("{:<20} {:.4}  {text}\t{pair}", c.label, c.score);
        }
    }
    g.report_timings(&enc, started);
    Ok(())
}
