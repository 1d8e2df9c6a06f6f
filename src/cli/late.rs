//! `wgbert embed --late-chunking`: each input document is encoded once and each of its
//! chunks embedded from the document's token states (`Encoder::embed_late`). JSONL in (a
//! `chunks` list of `[start, end]` character spans per line, else the chunking of
//! `--chunk-separator` / `--chunk-tokens`), JSONL out, one line per document in input order:
//! `{"index", "n_tokens", "windows", "chunks": [{"span", "n_tokens", "embedding"}]}` with the
//! line's other fields carried over.

use std::io::Write;

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use serde_json::{Map, Value};
use wgbert::encoder::{Chunking, Encoder, LateOptions};
use wgbert::sentence::quantize::Quantized;

use super::Global;
use super::embed::EmbedArgs;
use super::input::{TextItem, Texts};
use super::quantized::QuantStage;

/// The chunking of one input: its own `chunks` field, else the command's default.
fn chunking_of(item: &mut TextItem, default: Option<&Chunking>, index: usize) -> Result<Chunking> {
    match item.extra.remove("chunks") {
        Some(Value::Array(list)) => {
            let span = |v: &Value| -> Option<(usize, usize)> {
                let pair = v.as_array()?;
                match pair[..] {
                    [ref s, ref e] => Some((s.as_u64()? as usize, e.as_u64()? as usize)),
                    _ => None,
                }
            };
            let spans = list
                .iter()
                .map(|v| {
                    span(v).with_context(|| {
                        format!("input {index}: \"chunks\" holds {v}, not a [start, end] pair of character offsets")
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            if spans.is_empty() {
                bail!("input {index}: \"chunks\" is empty");
            }
            Ok(Chunking::Spans(spans))
        }
        Some(other) => bail!("input {index}: \"chunks\" must be a list of [start, end] pairs, got {other}"),
        None => default.cloned().with_context(|| {
            format!(
                "input {index} has no \"chunks\"; give them per line, or --chunk-separator or --chunk-tokens"
            )
        }),
    }
}

pub fn run(
    g: &Global,
    a: &EmbedArgs,
    enc: &Encoder,
    texts: Texts,
    out: &mut dyn Write,
    opts: &LateOptions,
    mut quant: Option<QuantStage>,
) -> Result<()> {
    let default = match (&a.chunk_separator, a.chunk_tokens) {
        (Some(sep), _) => Some(Chunking::Separator(unescape(sep))),
        (None, Some(n)) => Some(Chunking::Tokens(n)),
        (None, None) => None,
    };
    // Checked before any text is read.
    let spec = enc.late_spec(opts)?;
    let bar = if g.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    let mut write = |mut obj: Map<String, Value>, vectors: Vec<Quantized>| -> Result<()> {
        if let Some(Value::Array(chunks)) = obj.get_mut("chunks") {
            for (c, v) in chunks.iter_mut().zip(vectors) {
                if let Value::Object(c) = c {
                    c.insert("embedding".into(), v.to_json());
                }
            }
        }
        writeln!(out, "{}", Value::Object(obj)).context("writing the output")
    };
    let mut index = 0usize;
    let mut texts = texts.peekable();
    while texts.peek().is_some() {
        let mut chunk: Vec<TextItem> = texts.by_ref().take(a.chunk).collect::<Result<_>>()?;
        let first = index;
        index += chunk.len();
        let mut plans = Vec::with_capacity(chunk.len());
        for (i, item) in chunk.iter_mut().enumerate() {
            let chunking = chunking_of(item, default.as_ref(), first + i)?;
            plans.push(enc.late_plan(&spec, &item.text, &chunking, first + i)?);
        }
        let docs = enc
            .embed_late_plans(&plans, &spec)
            .map_err(|e| e.reindexed(first))?;
        bar.inc(chunk.len() as u64);
        for (i, (item, doc)) in chunk.into_iter().zip(docs).enumerate() {
            let mut obj = item.extra;
            obj.insert("index".into(), (first + i).into());
            obj.insert("n_tokens".into(), doc.n_tokens.into());
            obj.insert("windows".into(), doc.windows.into());
            let mut vectors = Vec::with_capacity(doc.chunks.len());
            let chunks: Vec<Value> = doc
                .chunks
                .into_iter()
                .map(|c| {
                    vectors.push(c.embedding);
                    serde_json::json!({"span": [c.span.0, c.span.1], "n_tokens": c.n_tokens})
                })
                .collect();
            obj.insert("chunks".into(), Value::Array(chunks));
            match &mut quant {
                Some(q) => q.push(obj, vectors, &mut write)?,
                None => write(obj, vectors.into_iter().map(Quantized::F32).collect())?,
            }
        }
    }
    bar.finish_and_clear();
    if let Some(q) = quant {
        q.finish(&mut write)?;
    }
    out.flush().context("writing the output")
}

/// `\n`, `\t` and `\\` in a separator given on the command line.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('n')) => out.push('\n'),
            ('\\', Some('t')) => out.push('\t'),
            ('\\', Some('\\')) => out.push('\\'),
            _ => {
                out.push(c);
                continue;
            }
        }
        chars.next();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn separators_unescape() {
        assert_eq!(super::unescape(r"\n\n"), "\n\n");
        assert_eq!(super::unescape(r"a\\nb\t"), "a\\nb\t");
        assert_eq!(super::unescape("--"), "--");
    }
}
