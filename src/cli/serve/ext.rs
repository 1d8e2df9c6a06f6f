//! `/embed`'s extension fields, which TEI does not have and its clients never send:
//! - `precision` (`int8`, `uint8`, `binary`, `ubinary`; `float32` is the plain answer) with
//!   optional `ranges` (`[[min...], [max...]]`, one value per output dimension): each vector
//!   quantized as `wgbert embed --precision` does it; int8 / uint8 without `ranges` are
//!   calibrated on the request's own vectors (at least two).
//! - `late_chunking` (`{"chunk_separator"?, "chunk_tokens"?, "overlap"?}`): each input is a
//!   document, encoded once, whose chunks (its own `{"text", "chunks"}` spans, else the
//!   request's separator or token budget) are pooled from its token states
//!   (`Encoder::pool_late`); the answer is one object per input, as
//!   `wgbert embed --late-chunking` writes its lines.
//!
//! A request without them takes `tei::embed_with`'s path unchanged. Bad values are 422s.
//! Late chunking is held to the same bounds as every route: inputs counted while parsed,
//! tokens over all windows of all documents within `--max-request-tokens`, the answer
//! estimated within `--max-response-bytes` before the model runs (given spans before any
//! tokenizing), and the token states read back one engine batch of documents at a time.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use wgbert::encoder::{Chunking, Input, LateOptions, LatePlan, ModelTask, Prompt};
use wgbert::sentence::quantize::{Precision, Quantized, RangeStats, Ranges, quantize};

use super::engine::{Output, Task};
use super::error::ApiError;
use super::model::mismatch;
use super::parse::EmbedDocs;
use super::state::{AppState, Direction, blocking};
use super::tei::{Answer, BYTES_PER_FLOAT, EmbedRequest, embed_with, yes};

/// `/embed`'s body: TEI's fields and the extensions.
#[derive(Deserialize)]
pub struct EmbedExtRequest {
    pub inputs: EmbedDocs,
    #[serde(default = "yes")]
    pub normalize: bool,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: Direction,
    #[serde(default)]
    pub dimensions: Option<usize>,
    #[serde(default)]
    pub prompt_name: Option<String>,
    #[serde(default)]
    pub late_chunking: Option<LateField>,
    #[serde(default)]
    pub precision: Option<String>,
    #[serde(default)]
    pub ranges: Option<Vec<Vec<f32>>>,
}

/// `late_chunking`'s request-level chunking (for inputs without their own spans).
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct LateField {
    #[serde(default)]
    pub chunk_separator: Option<String>,
    #[serde(default)]
    pub chunk_tokens: Option<usize>,
    #[serde(default)]
    pub overlap: Option<usize>,
}

/// One vector of an answer: floats, or integers in a quantized precision.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Vector {
    F32(Vec<f32>),
    I8(Vec<i8>),
    U8(Vec<u8>),
}

impl From<Quantized> for Vector {
    fn from(q: Quantized) -> Vector {
        match q {
            Quantized::F32(v) => Vector::F32(v),
            Quantized::I8(v) => Vector::I8(v),
            Quantized::U8(v) => Vector::U8(v),
        }
    }
}

/// One chunk of a late-chunked document.
#[derive(Serialize)]
pub struct ChunkOut {
    pub span: (usize, usize),
    pub n_tokens: usize,
    pub embedding: Vector,
}

/// One late-chunked document, as `wgbert embed --late-chunking` writes its lines.
#[derive(Serialize)]
pub struct DocOut {
    pub index: usize,
    pub n_tokens: usize,
    pub windows: usize,
    pub chunks: Vec<ChunkOut>,
}

/// `/embed`'s answer: one vector per input (TEI's shape), or one object per document.
#[derive(Serialize)]
#[serde(untagged)]
pub enum EmbedAnswer {
    Vectors(Vec<Vector>),
    Documents(Vec<DocOut>),
}

/// A JSON number's bytes in an answer of integers (at most "-128,").
const BYTES_PER_INT: usize = 5;

/// The precision asked for, checked against the model and its ranges.
struct Quant {
    precision: Precision,
    ranges: Option<Ranges>,
}

impl Quant {
    fn of(
        req: &mut EmbedExtRequest,
        task: ModelTask,
        dims: usize,
    ) -> Result<Option<Quant>, ApiError> {
        let precision = match req.precision.as_deref() {
            None => Precision::Float32,
            Some(name) => Precision::from_name(name).map_err(ApiError::from_engine)?,
        };
        let ranges = req.ranges.take();
        if precision == Precision::Float32 {
            return match ranges {
                Some(_) => Err(ApiError::validation(
                    "\"ranges\" are for \"precision\": \"int8\" or \"uint8\"",
                )),
                None => Ok(None),
            };
        }
        if task == ModelTask::Sparse {
            return Err(ApiError::validation(format!(
                "\"precision\" quantizes dense vectors; this model is a sparse encoder (its vectors come from /embed_sparse), not {}",
                precision.name()
            )));
        }
        let ranges = match ranges {
            Some(_) if !precision.uses_ranges() => {
                return Err(ApiError::validation(format!(
                    "\"ranges\" are for \"precision\": \"int8\" or \"uint8\", not {}",
                    precision.name()
                )));
            }
            Some(r) => match <[Vec<f32>; 2]>::try_from(r) {
                Ok([min, max]) if min.len() == dims && max.len() == dims => {
                    Some(Ranges { min, max })
                }
                Ok(_) | Err(_) => {
                    return Err(ApiError::validation(format!(
                        "\"ranges\" must be [[min, ...], [max, ...]], 2 x {dims} numbers (the vectors' dimensions)"
                    )));
                }
            },
            None => None,
        };
        Ok(Some(Quant { precision, ranges }))
    }

    /// JSON bytes per value of a vector in this precision.
    fn bytes_per_value(q: &Option<Quant>) -> usize {
        match q {
            Some(_) => BYTES_PER_INT,
            None => BYTES_PER_FLOAT,
        }
    }

    /// Quantizes every vector, calibrating on them all where no ranges were given.
    fn apply(&self, vectors: Vec<Vec<f32>>) -> Result<Vec<Vector>, ApiError> {
        let engine = ApiError::from_engine;
        let computed = match (&self.ranges, self.precision.uses_ranges()) {
            (None, true) => {
                let mut stats = RangeStats::default();
                for v in &vectors {
                    stats.observe(v).map_err(engine)?;
                }
                let n = vectors.len();
                Some(stats.finish(self.precision).map_err(|_| {
                    ApiError::validation(format!(
                        "\"precision\": \"{}\" computes its ranges from the request's vectors and needs at least two (this request has {n}); or give \"ranges\": [[min, ...], [max, ...]]",
                        self.precision.name()
                    ))
                })?)
            }
            _ => None,
        };
        let ranges = self.ranges.as_ref().or(computed.as_ref());
        vectors
            .iter()
            .map(|v| {
                quantize(v, self.precision, ranges)
                    .map(Vector::from)
                    .map_err(engine)
            })
            .collect()
    }
}

/// `/embed`: the plain TEI answer, or the extensions' where a request names them.
pub async fn embed(s: &Arc<AppState>, mut req: EmbedExtRequest) -> Answer<EmbedAnswer> {
    let m = s.model()?;
    let dims = m.dimensions(req.dimensions)?;
    let quant = Quant::of(&mut req, m.task(), dims)?;
    if req.late_chunking.is_none() && req.inputs.objects {
        return Err(ApiError::validation(
            "an input object ({\"text\", \"chunks\"}) is a document for \"late_chunking\", which the request does not ask for",
        ));
    }
    if let Some(late) = req.late_chunking.take() {
        return late_chunks(s, req, late, quant, dims).await;
    }
    let plain = EmbedRequest {
        inputs: req.inputs.inputs,
        normalize: req.normalize,
        truncate: req.truncate,
        truncation_direction: req.truncation_direction,
        dimensions: req.dimensions,
        prompt_name: req.prompt_name,
    };
    let (t, vectors) = embed_with(s, plain).await?;
    let out = match quant {
        None => vectors.into_iter().map(Vector::F32).collect(),
        Some(q) => q.apply(vectors)?,
    };
    Ok((t, EmbedAnswer::Vectors(out)))
}

/// The chunking of input `i`: its own spans, else the request's.
fn chunking_of(
    i: usize,
    spans: Option<Vec<(usize, usize)>>,
    late: &LateField,
) -> Result<Chunking, ApiError> {
    match (spans, &late.chunk_separator, late.chunk_tokens) {
        (Some(s), _, _) if s.is_empty() => Err(ApiError::validation(format!(
            "input {i}: \"chunks\" is empty"
        ))),
        (Some(s), _, _) => Ok(Chunking::Spans(s)),
        (None, Some(sep), _) => Ok(Chunking::Separator(sep.clone())),
        (None, None, Some(n)) => Ok(Chunking::Tokens(n)),
        (None, None, None) => Err(ApiError::validation(format!(
            "input {i} has no \"chunks\"; give it as {{\"text\", \"chunks\": [[start, end], ...]}}, or \"late_chunking\": {{\"chunk_separator\"}} or {{\"chunk_tokens\"}}"
        ))),
    }
}

async fn late_chunks(
    s: &Arc<AppState>,
    req: EmbedExtRequest,
    late: LateField,
    quant: Option<Quant>,
    dims: usize,
) -> Answer<EmbedAnswer> {
    let mut t = s.timing();
    let m = s.model()?;
    if late.chunk_separator.is_some() && late.chunk_tokens.is_some() {
        return Err(ApiError::validation(
            "\"late_chunking\" takes \"chunk_separator\" or \"chunk_tokens\", not both",
        ));
    }
    let opts = LateOptions {
        prompt: req
            .prompt_name
            .clone()
            .map_or(Prompt::ModelDefault, Prompt::Name),
        dimensions: req.dimensions,
        normalize: req.normalize,
        overlap: late.overlap,
    };
    // A model that cannot late-chunk is the request's mistake here: it asked for an
    // extension this model does not offer.
    let spec = m.enc.late_spec(&opts).map_err(|e| match e {
        wgbert::Error::MissingHead { message, .. } => {
            ApiError::validation(format!("\"late_chunking\": {message}"))
        }
        other => ApiError::from_engine(other),
    })?;
    let EmbedDocs { inputs, chunks, .. } = req.inputs;
    let batch = inputs.0;
    s.check_inputs(&batch)?;
    let per = Quant::bytes_per_value(&quant);
    let given: usize = chunks.iter().flatten().map(Vec::len).sum();
    s.check_response(given * dims * per, "the chunk vectors")?;
    let mut docs = Vec::with_capacity(batch.items.len());
    let mut spans = chunks.into_iter().chain(std::iter::repeat(None));
    for (i, input) in batch.items.into_iter().enumerate() {
        let Input::Text(text) = input else {
            return Err(ApiError::validation(format!(
                "input {i}: late chunking cuts texts by characters; token ids cannot be chunked"
            )));
        };
        let chunking = chunking_of(i, spans.next().flatten(), &late)?;
        docs.push((text, chunking));
    }
    let chars = docs.iter().map(|(d, _)| d.chars().count()).sum();
    let (state, plan_spec) = (s.clone(), spec.clone());
    let start = Instant::now();
    let plans: Vec<LatePlan> = blocking(move || {
        let m = state.model()?;
        docs.iter()
            .enumerate()
            .map(|(i, (text, c))| m.enc.late_plan(&plan_spec, text, c, i))
            .collect::<wgbert::Result<_>>()
            .map_err(ApiError::from_engine)
    })
    .await?;
    let windows: Vec<Vec<u32>> = plans.iter().flat_map(|p| p.windows().to_vec()).collect();
    t.tokenized(start.elapsed(), chars, &windows);
    drop(windows);
    let tokens: usize = plans.iter().map(LatePlan::tokens).sum();
    let max = s.max_request_tokens();
    if tokens > max {
        return Err(ApiError::too_large(format!(
            "the documents hold {tokens} tokens in all their windows, over --max-request-tokens {max}"
        )));
    }
    let n_chunks: usize = plans.iter().map(LatePlan::n_chunks).sum();
    s.check_response(n_chunks * dims * per, "the chunk vectors")?;
    let spec_all = m.setup.spec_all(&m.enc, req.prompt_name.as_deref())?;
    // One engine batch of documents at a time, so the states held stay bounded.
    let budget = m.enc.capacity().max(1);
    let mut out = Vec::with_capacity(plans.len());
    let mut start = 0;
    while start < plans.len() {
        let mut end = start + 1;
        let mut held = plans[start].tokens();
        while end < plans.len() && held + plans[end].tokens() <= budget {
            held += plans[end].tokens();
            end += 1;
        }
        let group = &plans[start..end];
        let seqs: Vec<Vec<u32>> = group.iter().flat_map(|p| p.windows().to_vec()).collect();
        let task = Task::Embed(Box::new(spec_all.clone()));
        let Output::Embeddings(e) = m.run(task, seqs, &mut t).await? else {
            return Err(mismatch());
        };
        let states: Vec<Vec<Vec<f32>>> = e.into_iter().map(|e| e.vectors).collect();
        out.extend(
            m.enc
                .pool_late(group, &states, &spec)
                .map_err(ApiError::from_engine)?,
        );
        start = end;
    }
    let vectors: Vec<Vec<f32>> = out
        .iter_mut()
        .flat_map(|d| {
            d.chunks
                .iter_mut()
                .map(|c| std::mem::take(&mut c.embedding))
        })
        .collect();
    let mut values = match &quant {
        Some(q) => q.apply(vectors)?,
        None => vectors.into_iter().map(Vector::F32).collect(),
    }
    .into_iter();
    let answer = out
        .into_iter()
        .enumerate()
        .map(|(index, doc)| DocOut {
            index,
            n_tokens: doc.n_tokens,
            windows: doc.windows,
            chunks: doc
                .chunks
                .into_iter()
                .map(|c| ChunkOut {
                    span: c.span,
                    n_tokens: c.n_tokens,
                    embedding: values.next().unwrap_or(Vector::F32(Vec::new())),
                })
                .collect(),
        })
        .collect();
    Ok((t, EmbedAnswer::Documents(answer)))
}
