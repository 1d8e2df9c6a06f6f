//! `wgbert embed`: texts in, embeddings out, streaming in chunks so that any number of texts
//! runs with bounded memory; results are written in input order.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use wgbert::encoder::{EmbedOptions, EmbedPooling, Embedding, LateOptions, Prompt, SparseOptions};
use wgbert::sentence::ModelKind;
use wgbert::sentence::quantize::Precision;
use wgbert::text::pack::Packer;

use super::Global;
use super::csr::{CsrFormat, CsrWriter};
use super::embed_sparse::{SparseSink, run_sparse};
use super::input::{TextItem, Texts};
use super::output::{Element, MatrixFormat, MatrixWriter};
use super::quantized::{quant_stage, record, write_quantized};

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolingArg {
    Cls,
    Mean,
    None,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultiArg {
    Query,
    Document,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrecisionArg {
    Float32,
    Int8,
    Uint8,
    Binary,
    Ubinary,
}

impl PrecisionArg {
    fn precision(self) -> Precision {
        match self {
            Self::Float32 => Precision::Float32,
            Self::Int8 => Precision::Int8,
            Self::Uint8 => Precision::Uint8,
            Self::Binary => Precision::Binary,
            Self::Ubinary => Precision::Ubinary,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatArg {
    Jsonl,
    Npy,
    /// Sparse models: a CSR matrix as scipy.sparse.save_npz writes it.
    Npz,
    Safetensors,
}

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// Pool the encoder's output (cls: the [CLS] state; mean: mean over tokens; none: every
    /// token's state) instead of following the model's sentence-transformers modules
    /// (default: follow them; mean pooling for a plain checkpoint).
    #[arg(long, value_enum)]
    pub pooling: Option<PoolingArg>,
    /// L2-normalise each vector (after --dimensions).
    #[arg(long)]
    pub normalize: bool,
    /// Put the model's prompt NAME (e.g. query, document) before each text.
    #[arg(long, conflicts_with = "prompt")]
    pub prompt_name: Option<String>,
    /// Put this text before each text (as sentence-transformers' prompt).
    #[arg(long)]
    pub prompt: Option<String>,
    /// Keep the first N values of each vector (Matryoshka truncation).
    #[arg(long)]
    pub dimensions: Option<usize>,
    /// ColBERT models: per-token vectors of queries or documents (JSONL only).
    #[arg(long, value_enum, conflicts_with_all = ["pooling", "prompt", "prompt_name", "dimensions"])]
    pub multi_vector: Option<MultiArg>,
    /// Sparse models: keep the N largest terms of each vector.
    #[arg(long, value_name = "N")]
    pub top_k_terms: Option<usize>,
    /// Sparse models (JSONL): also give each index's token, as "terms".
    #[arg(long)]
    pub terms: bool,
    /// Late chunking: encode each document once and embed each of its chunks from the
    /// document's token states (JSONL out: "chunks": [{"span", "n_tokens", "embedding"}]).
    /// Chunks come from each JSONL line's "chunks": [[start, end], ...] (character offsets,
    /// end exclusive), else from --chunk-separator or --chunk-tokens.
    #[arg(long, conflicts_with_all = ["pooling", "multi_vector", "top_k_terms", "terms"])]
    pub late_chunking: bool,
    /// Late chunking: cut each text after every SEP (\n and \t understood).
    #[arg(long, value_name = "SEP", requires = "late_chunking")]
    pub chunk_separator: Option<String>,
    /// Late chunking: chunks of N tokens.
    #[arg(
        long,
        value_name = "N",
        requires = "late_chunking",
        conflicts_with = "chunk_separator"
    )]
    pub chunk_tokens: Option<usize>,
    /// Late chunking: tokens shared by consecutive windows of a document longer than the
    /// model's limit (default 256 or half a window, whichever is fewer; under a window's
    /// document tokens).
    #[arg(long, value_name = "N", requires = "late_chunking")]
    pub overlap: Option<usize>,
    /// Storage precision, as sentence-transformers' quantize_embeddings: int8 and uint8 map
    /// each dimension's range onto 256 buckets; binary and ubinary keep sign bits, 8 to a byte.
    #[arg(long, value_enum, default_value = "float32")]
    pub precision: PrecisionArg,
    /// int8/uint8: calibration ranges, a float32 .npy of shape (2, dim) (minimum row, maximum
    /// row); default: computed over all embeddings of this run.
    #[arg(long, value_name = "FILE")]
    pub ranges: Option<PathBuf>,
    /// int8/uint8 without --ranges: also write the computed ranges to FILE (.npy).
    #[arg(long, value_name = "FILE")]
    pub save_ranges: Option<PathBuf>,
    /// Read texts from a file (.jsonl: objects with "text", other fields carried; else one per line).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Write here instead of stdout (required for npy/safetensors).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: FormatArg,
    /// Texts per chunk read, tokenized and embedded at a time.
    #[arg(long, default_value_t = 4096)]
    pub chunk: usize,
    /// Texts (else --input, else stdin).
    pub texts: Vec<String>,
}

pub enum Sink {
    Jsonl(Box<dyn Write>),
    Matrix(MatrixWriter),
}

fn count_lines(path: &Path) -> Option<u64> {
    let f = std::fs::File::open(path).ok()?;
    Some(std::io::BufReader::new(f).split(b'\n').count() as u64)
}

pub fn run(g: &Global, a: &EmbedArgs) -> Result<()> {
    if a.chunk == 0 {
        bail!("--chunk must be at least 1");
    }
    let matrix = match (a.format, &a.output) {
        (FormatArg::Jsonl, _) => None,
        (format, Some(path)) => Some((format, path)),
        (_, None) => bail!("--format npy/npz/safetensors needs --output FILE"),
    };
    let per_token = a.pooling == Some(PoolingArg::None) || a.multi_vector.is_some();
    if matrix.is_some() && per_token {
        bail!("--pooling none and --multi-vector give a matrix per text: use --format jsonl");
    }
    let texts = Texts::open(&a.texts, a.input.as_deref())?;
    // A JSONL output file is opened before the model loads, so a bad path fails at once.
    let jsonl: Option<Box<dyn Write>> = match (&matrix, &a.output) {
        (Some(_), _) => None,
        (None, Some(path)) => Some(Box::new(BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write output file {}", path.display()))?,
        ))),
        (None, None) => Some(Box::new(BufWriter::new(std::io::stdout().lock()))),
    };
    let started = std::time::Instant::now();
    let enc = g.load()?;
    let prompt = match (&a.prompt_name, &a.prompt) {
        (Some(name), _) => Prompt::Name(name.clone()),
        (None, Some(text)) => Prompt::Text(text.clone()),
        (None, None) => Prompt::ModelDefault,
    };
    let precision = a.precision.precision();
    let quantizing = precision != Precision::Float32;
    if a.late_chunking {
        if matrix.is_some() {
            bail!("--late-chunking writes JSONL (--format jsonl)");
        }
        let opts = LateOptions {
            prompt,
            dimensions: a.dimensions,
            normalize: a.normalize,
            overlap: a.overlap,
        };
        let width = enc.sentence_config().output_dim(enc.config().hidden_size);
        let width = a.dimensions.map_or(width, |d| d.min(width));
        let quant = quant_stage(a, precision, width)?;
        let mut out = jsonl.context("no output")?;
        super::late::run(g, a, &enc, texts, &mut out, &opts, quant)?;
        g.report_timings(&enc, started);
        return Ok(());
    }
    if quantizing && (per_token || a.top_k_terms.is_some() || a.terms) {
        bail!("--precision applies to one vector per text (and --late-chunking's chunks)");
    }
    if enc.sentence_config().kind() == ModelKind::Sparse {
        let sink = match (jsonl, matrix) {
            (Some(w), _) => SparseSink::Jsonl(w),
            (None, Some((FormatArg::Npz, path))) => SparseSink::Csr(CsrWriter::create(
                path,
                CsrFormat::Npz,
                enc.config().vocab_size,
            )?),
            (None, Some((FormatArg::Safetensors, path))) => SparseSink::Csr(CsrWriter::create(
                path,
                CsrFormat::Safetensors,
                enc.config().vocab_size,
            )?),
            (None, _) => bail!("a sparse model writes --format jsonl, npz or safetensors"),
        };
        if a.pooling.is_some()
            || a.dimensions.is_some()
            || a.normalize
            || a.multi_vector.is_some()
            || quantizing
        {
            bail!(
                "a sparse model takes none of --pooling, --dimensions, --normalize, --multi-vector, --precision"
            );
        }
        let opts = SparseOptions {
            prompt,
            top_k: a.top_k_terms,
        };
        run_sparse(g, a, &enc, texts, sink, &opts)?;
        g.report_timings(&enc, started);
        return Ok(());
    }
    if a.top_k_terms.is_some() || a.terms {
        bail!("--top-k-terms and --terms are for sparse (SPLADE) models");
    }
    let matrix = match matrix {
        None => None,
        Some((FormatArg::Npy, path)) => Some((MatrixFormat::Npy, path)),
        Some((FormatArg::Safetensors, path)) => Some((MatrixFormat::Safetensors, path)),
        Some(_) => bail!("--format npz is for sparse models; use npy or safetensors"),
    };
    let pooling = a.pooling.map(|p| match p {
        PoolingArg::Cls => EmbedPooling::Cls,
        PoolingArg::Mean => EmbedPooling::Mean,
        PoolingArg::None => EmbedPooling::None,
    });
    let opts = EmbedOptions {
        prompt,
        dimensions: a.dimensions,
        normalize: a.normalize,
        pooling,
    };
    // Checked before any text is read: a bad prompt name or a model that cannot do this.
    let spec = match a.multi_vector {
        None => Some(enc.embed_spec(&opts)?),
        Some(_) => None,
    };
    let hidden = enc.config().hidden_size;
    let width = match pooling {
        Some(_) => hidden,
        None => enc.sentence_config().output_dim(hidden),
    };
    let width = a.dimensions.map_or(width, |d| d.min(width));
    let mut quant = quant_stage(a, precision, width)?;
    let element = match precision {
        Precision::Float32 => Element::F32,
        p if p.signed() => Element::I8,
        _ => Element::U8,
    };
    let mut sink = match (jsonl, matrix) {
        (Some(w), _) => Sink::Jsonl(w),
        (None, Some((fmt, path))) => Sink::Matrix(MatrixWriter::create(
            path,
            fmt,
            element,
            precision.width(width),
        )?),
        (None, None) => bail!("no output"),
    };
    let total = if !a.texts.is_empty() {
        Some(a.texts.len() as u64)
    } else {
        a.input.as_deref().and_then(count_lines)
    };
    let bar = if g.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total.unwrap_or(0))
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} texts  {msg}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let start = std::time::Instant::now();
    let mut tokens_done = 0usize;
    let mut index = 0usize;
    let mut texts = texts.peekable();
    while texts.peek().is_some() {
        let chunk: Vec<TextItem> = texts.by_ref().take(a.chunk).collect::<Result<_>>()?;
        let first = index;
        index += chunk.len();
        let mut results: Vec<Option<Embedding>> = vec![None; chunk.len()];
        let Some(spec) = &spec else {
            let query = a.multi_vector == Some(MultiArg::Query);
            let refs: Vec<&str> = chunk.iter().map(|t| t.text.as_str()).collect();
            let seqs = enc.multi_tokens(&refs, query, first)?;
            let embedded = enc.embed_multi_ids(&seqs, query);
            for (i, e) in embedded
                .map_err(|e| e.reindexed(first))?
                .into_iter()
                .enumerate()
            {
                tokens_done += e.n_tokens;
                results[i] = Some(e);
            }
            bar.inc(chunk.len() as u64);
            for (i, (item, e)) in chunk.into_iter().zip(results).enumerate() {
                let e = e.context("an embedding went missing")?;
                write_one(&mut sink, first + i, item, e, true)?;
            }
            continue;
        };
        let mut seqs = Vec::with_capacity(chunk.len());
        for (i, item) in chunk.iter().enumerate() {
            seqs.push(enc.embed_tokens(spec, &item.text, first + i)?);
        }
        let source = seqs.iter().enumerate().map(|(i, s)| Ok((i, s.as_slice())));
        for batch in Packer::new(source, enc.capacity(), enc.capacity())? {
            let batch = batch.map_err(|e| e.reindexed(first))?;
            let embedded = enc.embed_packed_with(&batch, spec);
            for (i, e) in embedded.map_err(|e| e.reindexed(first))? {
                tokens_done += e.n_tokens;
                results[i] = Some(e);
            }
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("{:.0} tokens/s", tokens_done as f64 / secs));
            bar.inc(batch.n_seqs() as u64);
        }
        for (i, (item, e)) in chunk.into_iter().zip(results).enumerate() {
            let e = e.context("an embedding went missing")?;
            match &mut quant {
                Some(q) => {
                    let obj = record(first + i, item, &e);
                    q.push(obj, e.vectors, &mut |o, v| write_quantized(&mut sink, o, v))?;
                }
                None => write_one(&mut sink, first + i, item, e, per_token)?,
            }
        }
    }
    bar.finish_and_clear();
    if let Some(q) = quant {
        q.finish(&mut |o, v| write_quantized(&mut sink, o, v))?;
    }
    match sink {
        Sink::Jsonl(mut w) => w.flush().context("writing the output")?,
        Sink::Matrix(m) => m.finish()?,
    }
    g.report_timings(&enc, started);
    Ok(())
}

fn write_one(
    sink: &mut Sink,
    index: usize,
    item: TextItem,
    e: Embedding,
    per_token: bool,
) -> Result<()> {
    match sink {
        Sink::Matrix(m) => m.push(&e.vectors[0]),
        Sink::Jsonl(w) => {
            let mut obj = item.extra;
            obj.insert("index".into(), index.into());
            obj.insert("n_tokens".into(), e.n_tokens.into());
            let embedding = if per_token {
                serde_json::to_value(&e.vectors)?
            } else {
                serde_json::to_value(&e.vectors[0])?
            };
            obj.insert("embedding".into(), embedding);
            writeln!(w, "{}", serde_json::Value::Object(obj)).context("writing the output")
        }
    }
}
