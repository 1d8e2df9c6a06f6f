//! `wgbert embed` on a sparse (SPLADE) model: JSONL rows of non-zero terms or a CSR matrix
//! (npz, safetensors), written in input order.

use std::io::Write;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use wgbert::encoder::{Encoder, SparseOptions, SparseVector};

use super::Global;
use super::csr::CsrWriter;
use super::embed::EmbedArgs;
use super::input::{TextItem, Texts};

pub enum SparseSink {
    Jsonl(Box<dyn Write>),
    Csr(CsrWriter),
}

/// `embed` on a sparse (SPLADE) model: chunks of texts, each packed and embedded, written
/// in input order.
pub fn run_sparse(
    g: &Global,
    a: &EmbedArgs,
    enc: &Encoder,
    texts: Texts,
    mut sink: SparseSink,
    opts: &SparseOptions,
) -> Result<()> {
    let bar = if g.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    let mut index = 0usize;
    let mut texts = texts.peekable();
    while texts.peek().is_some() {
        let chunk: Vec<TextItem> = texts.by_ref().take(a.chunk).collect::<Result<_>>()?;
        let first = index;
        index += chunk.len();
        let mut seqs = Vec::with_capacity(chunk.len());
        for (i, item) in chunk.iter().enumerate() {
            seqs.push(enc.sparse_tokens(opts, &item.text, first + i)?);
        }
        let vectors = enc
            .embed_sparse_ids(&seqs, opts.top_k)
            .map_err(|e| e.reindexed(first))?;
        bar.inc(chunk.len() as u64);
        for (i, (item, v)) in chunk.into_iter().zip(vectors).enumerate() {
            write_sparse(&mut sink, enc, first + i, item, v, a.terms)?;
        }
    }
    bar.finish_and_clear();
    match sink {
        SparseSink::Jsonl(mut w) => w.flush().context("writing the output"),
        SparseSink::Csr(c) => c.finish(),
    }
}

fn write_sparse(
    sink: &mut SparseSink,
    enc: &Encoder,
    index: usize,
    item: TextItem,
    v: SparseVector,
    terms: bool,
) -> Result<()> {
    match sink {
        SparseSink::Csr(c) => c.push(&v.indices, &v.values),
        SparseSink::Jsonl(w) => {
            let mut obj = item.extra;
            obj.insert("index".into(), index.into());
            obj.insert("n_tokens".into(), v.n_tokens.into());
            if terms {
                obj.insert("terms".into(), serde_json::to_value(enc.sparse_terms(&v)?)?);
            }
            obj.insert("indices".into(), serde_json::to_value(&v.indices)?);
            obj.insert("values".into(), serde_json::to_value(&v.values)?);
            writeln!(w, "{}", serde_json::Value::Object(obj)).context("writing the output")
        }
    }
}
