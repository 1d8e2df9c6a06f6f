//! `wgbert._wgbert`: the compiled half of the Python package. It holds a loaded
//! [`wgbert::encoder::Encoder`] and runs it with the GIL released; results come back as flat
//! little-endian f32 buffers with their shapes, which the pure-Python layer (`wgbert/`)
//! turns into numpy arrays. Library errors become the exceptions of `wgbert.exceptions`.

mod buffers;
mod errors;
mod progress;
mod retrieval;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyByteArray;
use wgbert::encoder::{
    EmbedOptions, EmbedPooling, Encoder, Input, LoadOptions, Prompt, RerankOptions, Truncation,
};
use wgbert::ops::DType;
use wgbert::progress::Progress;
use wgbert::sentence::quantize::Precision;

use buffers::{Matrix, f32_array, matrix, put_f32, zeroed};
use errors::{py_err, value_error};
use progress::{PyProgress, finish_on_error, tell};

/// Labels, their probabilities, the flat logits and the number of labels.
type Classified = (Vec<String>, Vec<f32>, Py<PyByteArray>, usize);

/// The prompt of `prompt` (`""`: none) or `prompt_name`, else the model's default.
fn prompt_of(prompt: Option<String>, prompt_name: Option<String>) -> Prompt {
    match (prompt, prompt_name) {
        (Some(p), _) if p.is_empty() => Prompt::NoPrompt,
        (Some(p), _) => Prompt::Text(p),
        (None, Some(name)) => Prompt::Name(name),
        (None, None) => Prompt::ModelDefault,
    }
}

/// Loads on a thread of its own while this one waits with the GIL released and looks for
/// Ctrl-C every 50 ms: `KeyboardInterrupt` comes at once, and the abandoned load finishes in
/// the background and is dropped (its device memory with it).
fn load_interruptibly(py: Python<'_>, model: String, opts: LoadOptions) -> PyResult<Encoder> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("wgbert-load".into())
        .spawn(move || {
            let _ = tx.send(Encoder::load(&model, &opts));
        })
        .map_err(|e| value_error(format!("cannot start the loading thread: {e}")))?;
    let mut rx = rx;
    loop {
        let (got, back) = py.detach(move || (rx.recv_timeout(Duration::from_millis(50)), rx));
        rx = back;
        match got {
            Ok(loaded) => return loaded.map_err(py_err),
            Err(RecvTimeoutError::Timeout) => py.check_signals()?,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "the loading thread ended without a result (it panicked)",
                ));
            }
        }
    }
}

/// A loaded model on a GPU (see `wgbert.Encoder`, which wraps this class).
#[pyclass(frozen, name = "Encoder", module = "wgbert._wgbert")]
struct PyEncoder {
    inner: Arc<Encoder>,
    model: String,
    info: String,
}

#[pymethods]
impl PyEncoder {
    #[new]
    #[pyo3(signature = (model, *, dtype=None, backend=None, adapter=None, offline=false,
                        max_tokens=None, truncate=false, tokenizer=None, progress=None,
                        max_binding=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: String,
        dtype: Option<String>,
        backend: Option<String>,
        adapter: Option<String>,
        offline: bool,
        max_tokens: Option<usize>,
        truncate: bool,
        tokenizer: Option<PathBuf>,
        progress: Option<Py<PyAny>>,
        max_binding: Option<String>,
    ) -> PyResult<Self> {
        let progress = progress.map(PyProgress::new);
        let dtype = match dtype.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => None,
            Some("f16" | "float16") => Some(DType::F16),
            Some("f32" | "float32") => Some(DType::F32),
            Some(other) => {
                return Err(value_error(format!(
                    "dtype must be \"f16\" or \"f32\", got \"{other}\""
                )));
            }
        };
        // The environment's options first (WGPU_BACKEND, WGBERT_CACHE, HF_HUB_OFFLINE, ...),
        // then the arguments, as the `wgbert` command line does with its flags.
        let env = LoadOptions::from_env().map_err(py_err)?;
        let opts = LoadOptions {
            dtype,
            gpu: wgbert::runtime::GpuOptions {
                backend: backend.or(env.gpu.backend.clone()),
                adapter: adapter.or(env.gpu.adapter.clone()),
                max_binding: match max_binding {
                    Some(size) => Some(wgbert::runtime::parse_size(&size).map_err(py_err)?),
                    None => env.gpu.max_binding,
                },
                ..env.gpu.clone()
            },
            hub: wgbert::hub::HubOptions {
                offline: offline || env.hub.offline,
                ..env.hub.clone()
            },
            tokenizer,
            truncate,
            max_batch_tokens: max_tokens,
            progress: progress.clone().map(|p| p as Arc<dyn Progress>),
            ..env
        };
        let enc = load_interruptibly(py, model.clone(), opts)?;
        // The bar's own exception, if drawing it failed, is this call's.
        if let Some(p) = &progress {
            p.take_error()?;
        }
        let info = describe(&enc, &model);
        Ok(PyEncoder {
            inner: Arc::new(enc),
            model,
            info,
        })
    }

    /// The model as given to the constructor.
    #[getter]
    fn model(&self) -> &str {
        &self.model
    }

    /// What the model is and where it runs, as JSON (`wgbert.Encoder.info` parses it).
    fn info_json(&self) -> &str {
        &self.info
    }

    /// The model's prompt for queries (`query: true`) or documents, if it has one.
    fn role_prompt(&self, query: bool) -> Option<String> {
        self.inner
            .sentence_config()
            .role_prompt(query)
            .map(str::to_string)
    }

    /// Whether the model has a named prompt `name`.
    fn has_prompt(&self, name: &str) -> bool {
        self.inner.sentence_config().prompts.contains_key(name)
    }

    /// Embeddings of `texts` in chunks of `batch_size` texts (the GIL released while each
    /// chunk runs; Ctrl-C checked between chunks). Returns the flat values, the rows of each
    /// text (1, or its tokens with `per_token`), the row width and the values' dtype. Float
    /// results go straight into the array returned (one copy of each value); quantized ones
    /// (`precision` int8, uint8, binary, ubinary) use `ranges` or, for int8 and uint8 without
    /// them, the ranges of these embeddings.
    #[pyo3(signature = (texts, *, prompt_name=None, prompt=None, normalize=false,
                        truncate_dim=None, per_token=false, batch_size=1024, progress=None,
                        precision="float32", ranges=None))]
    #[allow(clippy::too_many_arguments)]
    fn embed(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        prompt_name: Option<String>,
        prompt: Option<String>,
        normalize: bool,
        truncate_dim: Option<usize>,
        per_token: bool,
        batch_size: usize,
        progress: Option<Py<PyAny>>,
        precision: &str,
        ranges: Option<(Vec<f32>, Vec<f32>)>,
    ) -> PyResult<(Py<PyByteArray>, Vec<usize>, usize, &'static str)> {
        if batch_size == 0 {
            return Err(value_error("batch_size must be at least 1"));
        }
        let precision = retrieval::precision_of(precision)?;
        let ranges = retrieval::ranges_of(ranges)?;
        if precision != Precision::Float32 && per_token {
            return Err(value_error(
                "precision applies to sentence embeddings, not token embeddings",
            ));
        }
        if ranges.is_some() && !precision.uses_ranges() {
            return Err(value_error(format!(
                "ranges are for int8 and uint8, not {}",
                precision.name()
            )));
        }
        let enc = &*self.inner;
        let opts = EmbedOptions {
            prompt: prompt_of(prompt, prompt_name),
            dimensions: truncate_dim,
            normalize,
            pooling: per_token.then_some(EmbedPooling::None),
        };
        let (spec, seqs) = py
            .detach(|| {
                let spec = enc.embed_spec(&opts)?;
                let seqs = texts
                    .iter()
                    .enumerate()
                    .map(|(i, t)| enc.embed_tokens(&spec, t, i))
                    .collect::<wgbert::Result<Vec<_>>>()?;
                Ok((spec, seqs))
            })
            .map_err(py_err)?;
        let hidden = enc.config().hidden_size;
        let width = if per_token {
            hidden
        } else {
            enc.sentence_config().output_dim(hidden)
        };
        let width = truncate_dim.map_or(width, |d| d.min(width));
        let rows: Vec<usize> = match per_token {
            true => seqs.iter().map(Vec::len).collect(),
            false => vec![1; seqs.len()],
        };
        let floats = precision == Precision::Float32;
        let buf = zeroed(
            py,
            if floats {
                rows.iter().sum::<usize>() * width * 4
            } else {
                0
            },
        )?;
        let mut at = 0;
        let mut held: Vec<Vec<f32>> = Vec::new();
        tell(py, &progress, "start", ("encoding", texts.len()))?;
        for (c, chunk) in seqs.chunks(batch_size).enumerate() {
            let done = py.detach(|| {
                enc.embed_ids_with(chunk, &spec)
                    .map_err(|e| e.reindexed(c * batch_size))
            });
            let step = done.map_err(py_err).and_then(|embedded| {
                for v in embedded.into_iter().flat_map(|e| e.vectors) {
                    if v.len() != width {
                        return Err(value_error(format!(
                            "a vector of {} values where {width} were expected",
                            v.len()
                        )));
                    }
                    match floats {
                        true => at = put_f32(&buf, at, &v)?,
                        false => held.push(v),
                    }
                }
                tell(py, &progress, "advance", (chunk.len(), ""))?;
                py.check_signals()
            });
            finish_on_error(py, &progress, step)?;
        }
        tell(py, &progress, "finish", ())?;
        if floats {
            return Ok((buf.unbind(), rows, width, "float32"));
        }
        let (q, qwidth) = retrieval::quantize_rows(py, &held, precision, ranges)?;
        let dtype = if precision.signed() { "int8" } else { "uint8" };
        Ok((q, rows, qwidth, dtype))
    }

    /// ColBERT (PyLate) per-token vectors of queries or documents, in chunks as `embed`.
    #[pyo3(signature = (texts, *, is_query, batch_size=1024))]
    fn embed_multi(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        is_query: bool,
        batch_size: usize,
    ) -> PyResult<Matrix> {
        if batch_size == 0 {
            return Err(value_error("batch_size must be at least 1"));
        }
        let enc = &*self.inner;
        let width = enc.sentence_config().output_dim(enc.config().hidden_size);
        let mut all = Vec::with_capacity(texts.len());
        for (c, chunk) in texts.chunks(batch_size).enumerate() {
            let first = c * batch_size;
            let done = py
                .detach(|| {
                    let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                    let seqs = enc.multi_tokens(&refs, is_query, first)?;
                    enc.embed_multi_ids(&seqs, is_query)
                        .map_err(|e| e.reindexed(first))
                })
                .map_err(py_err)?;
            all.extend(done);
            py.check_signals()?;
        }
        if texts.is_empty() {
            // The model's kind is still checked.
            py.detach(|| enc.multi_tokens(&[], is_query, 0))
                .map_err(py_err)?;
        }
        matrix(py, &all, width)
    }

    /// Documents scored against the query, best first: (index, score) pairs.
    #[pyo3(signature = (query, documents, *, top_k=None, raw_scores=false))]
    fn rerank(
        &self,
        py: Python<'_>,
        query: String,
        documents: Vec<String>,
        top_k: Option<usize>,
        raw_scores: bool,
    ) -> PyResult<Vec<(usize, f32)>> {
        if documents.is_empty() {
            return Err(value_error("no documents to rank"));
        }
        if top_k == Some(0) {
            return Err(value_error("top_k must be at least 1"));
        }
        let enc = &*self.inner;
        let opts = RerankOptions {
            raw_scores,
            top_n: top_k,
        };
        let ranked = py
            .detach(|| {
                let refs: Vec<&str> = documents.iter().map(String::as_str).collect();
                enc.rerank(&query, &refs, &opts)
            })
            .map_err(py_err)?;
        Ok(ranked.into_iter().map(|r| (r.index, r.score)).collect())
    }

    /// A cross-encoder's score of each (query, document) pair, in input order.
    #[pyo3(signature = (pairs, *, raw_scores=false))]
    fn cross_scores(
        &self,
        py: Python<'_>,
        pairs: Vec<(String, String)>,
        raw_scores: bool,
    ) -> PyResult<Vec<f32>> {
        let enc = &*self.inner;
        py.detach(|| {
            // Pairs that share a query go to the model together.
            let mut scores = vec![0.0f32; pairs.len()];
            let mut order: Vec<usize> = (0..pairs.len()).collect();
            order.sort_by(|&a, &b| pairs[a].0.cmp(&pairs[b].0).then(a.cmp(&b)));
            let mut start = 0;
            while start < order.len() {
                let query = &pairs[order[start]].0;
                let mut end = start;
                while end < order.len() && &pairs[order[end]].0 == query {
                    end += 1;
                }
                let docs: Vec<&str> = order[start..end]
                    .iter()
                    .map(|&i| pairs[i].1.as_str())
                    .collect();
                let got = enc
                    .cross_scores(query, &docs, raw_scores)
                    .map_err(|e| match e {
                        wgbert::Error::Input { index, message } => wgbert::Error::Input {
                            index: order[start + index],
                            message,
                        },
                        other => other,
                    })?;
                for (k, s) in got.into_iter().enumerate() {
                    scores[order[start + k]] = s;
                }
                start = end;
            }
            if pairs.is_empty() {
                enc.cross_scores("", &[], raw_scores)?;
            }
            Ok(scores)
        })
        .map_err(py_err)
    }

    /// Per text, per `[MASK]`: the top-k (token id, token, probability, filled sequence).
    #[pyo3(signature = (texts, top_k=5))]
    #[allow(clippy::type_complexity)]
    fn fill_mask(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        top_k: usize,
    ) -> PyResult<Vec<Vec<Vec<(u32, String, f32, String)>>>> {
        let enc = &*self.inner;
        let got = py
            .detach(|| {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                enc.fill_mask(&refs, top_k)
            })
            .map_err(py_err)?;
        Ok(got
            .into_iter()
            .map(|masks| {
                masks
                    .into_iter()
                    .map(|m| {
                        m.candidates
                            .into_iter()
                            .map(|c| (c.token_id, c.token, c.score, c.sequence))
                            .collect()
                    })
                    .collect()
            })
            .collect())
    }

    /// Sequence classification: label, its probability, and the flat logits with the
    /// number of labels.
    fn classify(&self, py: Python<'_>, texts: Vec<String>) -> PyResult<Classified> {
        let inputs = texts.into_iter().map(Input::Text).collect();
        self.classify_inputs(py, inputs)
    }

    /// Sequence classification of (text, text) pairs, as `classify` answers texts.
    fn classify_pairs(&self, py: Python<'_>, pairs: Vec<(String, String)>) -> PyResult<Classified> {
        let inputs = pairs.into_iter().map(|(a, b)| Input::Pair(a, b)).collect();
        self.classify_inputs(py, inputs)
    }

    /// Token classification: per text, per token (token id, token, label, probability),
    /// and the flat logits with each text's token count and the number of labels.
    #[allow(clippy::type_complexity)]
    fn token_classify(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
    ) -> PyResult<(
        Vec<Vec<(u32, String, String, f32)>>,
        Py<PyByteArray>,
        Vec<usize>,
        usize,
    )> {
        let enc = &*self.inner;
        let got = py
            .detach(|| {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let labels = enc.token_classify(&refs)?;
                let tok = enc.tokenizer()?;
                labels
                    .into_iter()
                    .map(|tokens| {
                        tokens
                            .into_iter()
                            .map(|t| {
                                let token = tok.id_to_token(t.token_id).unwrap_or_default();
                                Ok((t, token))
                            })
                            .collect::<wgbert::Result<Vec<_>>>()
                    })
                    .collect::<wgbert::Result<Vec<_>>>()
            })
            .map_err(py_err)?;
        let n = enc.heads().classifier.unwrap_or(0);
        let mut flat = Vec::new();
        let mut rows = Vec::with_capacity(got.len());
        let mut labels = Vec::with_capacity(got.len());
        for tokens in got {
            rows.push(tokens.len());
            let mut mine = Vec::with_capacity(tokens.len());
            for (t, token) in tokens {
                flat.extend_from_slice(&t.logits);
                mine.push((t.token_id, token, t.label, t.score));
            }
            labels.push(mine);
        }
        Ok((labels, f32_array(py, &flat)?, rows, n))
    }
}

impl PyEncoder {
    /// `classify` and `classify_pairs`: texts or pairs through the library's one path.
    fn classify_inputs(&self, py: Python<'_>, inputs: Vec<Input>) -> PyResult<Classified> {
        let enc = &*self.inner;
        let got = py
            .detach(|| enc.classify_inputs(&inputs, Truncation::Model))
            .map_err(py_err)?;
        let n = enc.heads().classifier.unwrap_or(0);
        let logits: Vec<f32> = got.iter().flat_map(|c| c.logits.iter().copied()).collect();
        let labels = got.iter().map(|c| c.label.clone()).collect();
        let scores = got.iter().map(|c| c.score).collect();
        Ok((labels, scores, f32_array(py, &logits)?, n))
    }
}

/// The facts `Encoder.info` gives, as JSON.
fn describe(enc: &Encoder, model: &str) -> String {
    let gpu = enc.gpu().info();
    let sc = enc.sentence_config();
    let hidden = enc.config().hidden_size;
    // The library decides what the model serves, for every front end alike.
    let kind = enc.task().name();
    let max_length = enc.tokenizer().ok().and_then(|t| t.max_len());
    serde_json::json!({
        "model": model,
        "kind": kind,
        "adapter": gpu.name,
        "backend": format!("{:?}", gpu.backend).to_lowercase(),
        "device_type": format!("{:?}", gpu.device_type),
        "dtype": format!("{:?}", enc.dtype()).to_lowercase(),
        "f16_kernels": enc.f16_kernels(),
        "hidden_size": hidden,
        "dimensions": sc.output_dim(hidden),
        "max_length": max_length,
        "max_batch_tokens": enc.capacity(),
        "prompts": sc.prompts,
        "default_prompt_name": sc.default_prompt_name,
        "similarity": sc.similarity,
        "labels": enc.label_names(),
        "heads": {"mlm": enc.heads().mlm, "classifier": enc.heads().classifier},
        "weight_bytes": enc.weight_bytes(),
        "split": enc.weight_splits(),
    })
    .to_string()
}

/// Every adapter the backends expose (all when `backend` is None), as JSON.
#[pyfunction]
#[pyo3(signature = (backend=None))]
fn adapters_json(py: Python<'_>, backend: Option<String>) -> PyResult<String> {
    let list = py.detach(|| wgbert::runtime::list_adapters(backend.as_deref()));
    serde_json::to_string(&list).map_err(|e| value_error(e.to_string()))
}

#[pymodule]
fn _wgbert(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEncoder>()?;
    m.add_function(wrap_pyfunction!(adapters_json, m)?)?;
    m.add_function(wrap_pyfunction!(retrieval::embed_sparse, m)?)?;
    m.add_function(wrap_pyfunction!(retrieval::id_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(retrieval::late_chunks, m)?)?;
    m.add_function(wrap_pyfunction!(retrieval::quantize_embeddings, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
