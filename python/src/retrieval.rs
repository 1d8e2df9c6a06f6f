//! What `wgbert.SparseEncoder`, `Encoder.encode_late_chunks` and
//! `wgbert.quantize_embeddings` call: sparse (SPLADE) vectors as CSR arrays, late-chunked
//! vectors in one array with each document's spans, and quantization by the library's rules.

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};
use wgbert::encoder::{Chunking, LateOptions, SparseOptions};
use wgbert::sentence::quantize::{Precision, Quantized, Ranges, quantize};

use crate::PyEncoder;
use crate::buffers::{f32_array, put_f32, quantized_array, zeroed};
use crate::errors::{py_err, value_error};
use crate::progress::{finish_on_error, tell};

/// CSR arrays: row pointers (int64), column indices (int32), values (float32), columns.
type Csr = (Py<PyByteArray>, Py<PyByteArray>, Py<PyByteArray>, usize);

/// Per document: its tokens, windows, chunk spans and each chunk's token count.
type LateDoc = (usize, usize, Vec<(usize, usize)>, Vec<usize>);

/// Sparse vectors of `texts` in chunks of `batch_size` (Ctrl-C and the bar between chunks),
/// as CSR arrays over the vocabulary.
#[pyfunction]
#[pyo3(signature = (encoder, texts, *, prompt_name=None, prompt=None, top_k=None,
                    batch_size=1024, progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn embed_sparse(
    py: Python<'_>,
    encoder: &Bound<'_, PyEncoder>,
    texts: Vec<String>,
    prompt_name: Option<String>,
    prompt: Option<String>,
    top_k: Option<usize>,
    batch_size: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<Csr> {
    if batch_size == 0 {
        return Err(value_error("batch_size must be at least 1"));
    }
    let enc = &*encoder.get().inner;
    let opts = SparseOptions {
        prompt: crate::prompt_of(prompt, prompt_name),
        top_k,
    };
    // The model's kind and the options are checked before any text.
    py.detach(|| enc.embed_sparse(&[], &opts)).map_err(py_err)?;
    let (mut indptr, mut indices, mut values) = (vec![0i64], Vec::new(), Vec::new());
    tell(py, &progress, "start", ("encoding", texts.len()))?;
    for (c, chunk) in texts.chunks(batch_size).enumerate() {
        let first = c * batch_size;
        let done = py.detach(|| {
            let seqs = chunk
                .iter()
                .enumerate()
                .map(|(i, t)| enc.sparse_tokens(&opts, t, first + i))
                .collect::<wgbert::Result<Vec<_>>>()?;
            enc.embed_sparse_ids(&seqs, top_k)
                .map_err(|e| e.reindexed(first))
        });
        let step = done.map_err(py_err).and_then(|vectors| {
            for v in vectors {
                indices.extend(v.indices.iter().map(|&i| i as i32));
                values.extend_from_slice(&v.values);
                indptr.push(indices.len() as i64);
            }
            tell(py, &progress, "advance", (chunk.len(), ""))?;
            py.check_signals()
        });
        finish_on_error(py, &progress, step)?;
    }
    tell(py, &progress, "finish", ())?;
    let ints = |b: Vec<u8>| PyByteArray::new(py, &b).unbind();
    Ok((
        ints(indptr.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ints(indices.iter().flat_map(|v| v.to_le_bytes()).collect()),
        f32_array(py, &values)?,
        enc.config().vocab_size,
    ))
}

/// The vocabulary entries of token ids.
#[pyfunction]
pub fn id_tokens(encoder: &Bound<'_, PyEncoder>, ids: Vec<u32>) -> PyResult<Vec<String>> {
    let tok = encoder.get().inner.tokenizer().map_err(py_err)?;
    ids.iter()
        .map(|&i| {
            tok.id_to_token(i)
                .ok_or_else(|| value_error(format!("token id {i} is not in the vocabulary")))
        })
        .collect()
}

/// Late-chunked vectors of documents: the flat float32 vectors of every chunk in order, per
/// document its (tokens, windows, spans, tokens per chunk), and the vector width.
#[pyfunction]
#[pyo3(signature = (encoder, texts, chunks, *, separator=None, chunk_tokens=None,
                    prompt_name=None, prompt=None, normalize=false, truncate_dim=None,
                    overlap=None, batch_size=256))]
#[allow(clippy::too_many_arguments)]
pub fn late_chunks(
    py: Python<'_>,
    encoder: &Bound<'_, PyEncoder>,
    texts: Vec<String>,
    chunks: Vec<Option<Vec<(usize, usize)>>>,
    separator: Option<String>,
    chunk_tokens: Option<usize>,
    prompt_name: Option<String>,
    prompt: Option<String>,
    normalize: bool,
    truncate_dim: Option<usize>,
    overlap: Option<usize>,
    batch_size: usize,
) -> PyResult<(Py<PyByteArray>, Vec<LateDoc>, usize)> {
    if batch_size == 0 {
        return Err(value_error("batch_size must be at least 1"));
    }
    if chunks.len() != texts.len() {
        return Err(value_error(
            "one chunk list (or None) per document is needed",
        ));
    }
    let enc = &*encoder.get().inner;
    let default = match (separator, chunk_tokens) {
        (Some(_), Some(_)) => return Err(value_error("give separator or chunk_tokens, not both")),
        (Some(s), None) => Some(Chunking::Separator(s)),
        (None, Some(n)) => Some(Chunking::Tokens(n)),
        (None, None) => None,
    };
    let opts = LateOptions {
        prompt: crate::prompt_of(prompt, prompt_name),
        dimensions: truncate_dim,
        normalize,
        overlap,
    };
    let plans = py
        .detach(|| {
            let spec = enc.late_spec(&opts)?;
            let plans = texts
                .iter()
                .zip(chunks)
                .enumerate()
                .map(|(i, (text, spans))| {
                    let chunking = match (spans, &default) {
                        (Some(s), _) => Chunking::Spans(s),
                        (None, Some(d)) => d.clone(),
                        (None, None) => {
                            return Err(wgbert::Error::Input {
                                index: i,
                                message: "no chunks: give its spans, or separator or chunk_tokens"
                                    .into(),
                            });
                        }
                    };
                    enc.late_plan(&spec, text, &chunking, i)
                })
                .collect::<wgbert::Result<Vec<_>>>()?;
            Ok((spec, plans))
        })
        .map_err(py_err);
    let (spec, plans) = plans?;
    let hidden = enc.config().hidden_size;
    let width = enc.sentence_config().output_dim(hidden);
    let width = truncate_dim.map_or(width, |d| d.min(width));
    let total: usize = plans.iter().map(|p| p.n_chunks()).sum();
    let buf = zeroed(py, total * width * 4)?;
    let mut at = 0;
    let mut docs = Vec::with_capacity(plans.len());
    for (c, group) in plans.chunks(batch_size).enumerate() {
        let done = py
            .detach(|| enc.embed_late_plans(group, &spec))
            .map_err(|e| py_err(e.reindexed(c * batch_size)))?;
        for d in done {
            let spans = d.chunks.iter().map(|c| c.span).collect();
            let counts = d.chunks.iter().map(|c| c.n_tokens).collect();
            for chunk in &d.chunks {
                at = put_f32(&buf, at, &chunk.embedding)?;
            }
            docs.push((d.n_tokens, d.windows, spans, counts));
        }
        py.check_signals()?;
    }
    Ok((buf.unbind(), docs, width))
}

/// The precision named as sentence-transformers names it.
pub fn precision_of(name: &str) -> PyResult<Precision> {
    Precision::from_name(name).map_err(py_err)
}

/// Ranges given as (minimum row, maximum row).
pub fn ranges_of(ranges: Option<(Vec<f32>, Vec<f32>)>) -> PyResult<Option<Ranges>> {
    match ranges {
        None => Ok(None),
        Some((min, max)) if min.len() == max.len() && !min.is_empty() => {
            if min.iter().chain(&max).any(|v| !v.is_finite()) {
                return Err(value_error("ranges hold a value that is not finite"));
            }
            Ok(Some(Ranges { min, max }))
        }
        Some((min, max)) => Err(value_error(format!(
            "ranges must have shape (2, dim); got rows of {} and {}",
            min.len(),
            max.len()
        ))),
    }
}

/// Quantizes rows: with `ranges` for int8 and uint8, else over the rows themselves (at
/// least two, as sentence-transformers requires). The rows as one int8 or uint8 array.
pub fn quantize_rows(
    py: Python<'_>,
    rows: &[Vec<f32>],
    precision: Precision,
    ranges: Option<Ranges>,
) -> PyResult<(Py<PyByteArray>, usize)> {
    let width = rows.first().map_or(0, Vec::len);
    let ranges = match ranges {
        Some(r) => Some(r),
        None if precision.uses_ranges() => {
            let mut stats = wgbert::sentence::quantize::RangeStats::default();
            for r in rows {
                stats.observe(r).map_err(py_err)?;
            }
            Some(stats.finish(precision).map_err(py_err)?)
        }
        None => None,
    };
    let q = rows
        .iter()
        .map(|r| quantize(r, precision, ranges.as_ref()))
        .collect::<wgbert::Result<Vec<Quantized>>>()
        .map_err(py_err)?;
    Ok((quantized_array(py, &q)?, precision.width(width)))
}

/// `wgbert.quantize_embeddings`: float32 rows (little-endian bytes, `width` per row) in
/// `precision`; the array and its width.
#[pyfunction]
#[pyo3(signature = (values, width, precision, ranges=None))]
pub fn quantize_embeddings(
    py: Python<'_>,
    values: &Bound<'_, PyBytes>,
    width: usize,
    precision: &str,
    ranges: Option<(Vec<f32>, Vec<f32>)>,
) -> PyResult<(Py<PyByteArray>, usize)> {
    let precision = precision_of(precision)?;
    let bytes = values.as_bytes();
    if width == 0 || bytes.len() % (width * 4) != 0 {
        return Err(value_error(
            "embeddings must be a non-empty (n, dim) float32 array",
        ));
    }
    let rows: Vec<Vec<f32>> = bytes
        .chunks_exact(width * 4)
        .map(|r| {
            r.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
        .collect();
    quantize_rows(py, &rows, precision, ranges_of(ranges)?)
}
