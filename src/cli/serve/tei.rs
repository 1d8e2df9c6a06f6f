//! The TEI routes that embed: `/embed`, `/embed_all`, `/embed_sparse`, `/similarity`. Field names, defaults and answers follow
//! text-embeddings-inference; every route that truncates takes `truncation_direction`, and
//! the embedding routes take token ids as inputs. Each route's work is a function the gRPC
//! services call too (`grpc/`), so both answer alike.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use wgbert::encoder::{Input, Prompt};

use super::body::JsonBody;
use super::engine::{Output, Task};
use super::error::ApiError;
use super::model::mismatch;
use super::parse::{Batch, EmbedInputs, SimilarityInputs};
use super::state::{AppState, Cut, Direction, Slot};
use super::timing::Timing;

pub(super) fn yes() -> bool {
    true
}

/// A route's work: TEI's timing headers and the answer.
pub type Answer<T> = Result<(Timing, T), ApiError>;

/// An answer as JSON with its timing headers, or the error.
pub fn respond<T: Serialize>(answer: Answer<T>) -> Response {
    match answer {
        Ok((t, v)) => (t, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// JSON bytes per value of a vector, as an estimate of an answer's size.
pub const BYTES_PER_FLOAT: usize = 12;

#[derive(Deserialize)]
pub struct EmbedRequest {
    pub inputs: EmbedInputs,
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
}

impl EmbedRequest {
    pub fn cut(&self) -> Cut {
        Cut {
            truncate: self.truncate,
            truncation_direction: self.truncation_direction,
        }
    }
}

/// `/embed`, with the extension fields of `ext.rs` (a TEI client's request is answered by
/// `embed_with` as before).
pub async fn embed(
    State(s): State<Arc<AppState>>,
    body: JsonBody<super::ext::EmbedExtRequest>,
) -> Response {
    respond(super::ext::embed(&s, body.value).await)
}

pub async fn embed_with(s: &Arc<AppState>, req: EmbedRequest) -> Answer<Vec<Vec<f32>>> {
    let mut t = s.timing();
    let m = s.model()?;
    let dims = m.dimensions(req.dimensions)?;
    let spec = m.setup.spec(&m.enc, req.prompt_name.as_deref())?;
    let cut = req.cut();
    let batch = req.inputs.0;
    s.check_inputs(&batch)?;
    s.check_response(batch.items.len() * dims * BYTES_PER_FLOAT, "the vectors")?;
    let prompt = spec.prompt().map(str::to_string);
    let seqs = s.tokenize(batch.items, prompt, cut, &mut t).await?;
    let vectors = m.pooled(spec, seqs, dims, req.normalize, &mut t).await?;
    Ok((t, vectors))
}

#[derive(Deserialize)]
pub struct EmbedAllRequest {
    pub inputs: EmbedInputs,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: Direction,
    #[serde(default)]
    pub prompt_name: Option<String>,
}

/// `/embed_all`: every token's vector. The answer is estimated before the model runs
/// (413 over `--max-response-bytes`) and streamed one input at a time, so the server never
/// holds its JSON whole.
pub async fn embed_all(
    State(s): State<Arc<AppState>>,
    body: JsonBody<EmbedAllRequest>,
) -> Response {
    let JsonBody { value, slot } = body;
    match embed_all_with(&s, value).await {
        Ok((t, rows)) => (t, stream_json(rows, slot)).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn embed_all_with(s: &Arc<AppState>, req: EmbedAllRequest) -> Answer<Vec<Vec<Vec<f32>>>> {
    let mut t = s.timing();
    let m = s.model()?;
    let spec = m.setup.spec_all(&m.enc, req.prompt_name.as_deref())?;
    let cut = Cut {
        truncate: req.truncate,
        truncation_direction: req.truncation_direction,
    };
    let batch = req.inputs.0;
    s.check_inputs(&batch)?;
    let prompt = spec.prompt().map(str::to_string);
    let seqs = s.tokenize(batch.items, prompt, cut, &mut t).await?;
    let tokens: usize = seqs.iter().map(Vec::len).sum();
    let hidden = m.enc.config().hidden_size;
    s.check_response(tokens * hidden * BYTES_PER_FLOAT, "every token's vector")?;
    match m.run(Task::Embed(Box::new(spec)), seqs, &mut t).await? {
        Output::Embeddings(e) => Ok((t, e.into_iter().map(|e| e.vectors).collect())),
        _ => Err(mismatch()),
    }
}

/// A JSON list written one item at a time; `slot` is held until the last is sent.
fn stream_json<T: Serialize + Send + 'static>(items: Vec<T>, slot: Slot) -> Response {
    let n = items.len();
    let chunks = items.into_iter().enumerate().map(move |(i, item)| {
        let _held = &slot;
        let mut out = Vec::new();
        out.push(if i == 0 { b'[' } else { b',' });
        if let Err(e) = serde_json::to_writer(&mut out, &item) {
            log::error!("writing an answer failed: {e}");
        }
        if i + 1 == n {
            out.push(b']');
        }
        Ok::<_, Infallible>(Bytes::from(out))
    });
    let body = match n {
        0 => Body::from("[]"),
        _ => Body::from_stream(futures_util::stream::iter(chunks)),
    };
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[derive(Deserialize)]
pub struct EmbedSparseRequest {
    pub inputs: EmbedInputs,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: Direction,
    #[serde(default)]
    pub prompt_name: Option<String>,
}

/// One non-zero term of a sparse vector, as TEI writes it.
#[derive(Serialize)]
pub struct SparseValue {
    pub index: u32,
    pub value: f32,
}

pub async fn embed_sparse(
    State(s): State<Arc<AppState>>,
    body: JsonBody<EmbedSparseRequest>,
) -> Response {
    respond(embed_sparse_with(&s, body.value).await)
}

/// Sparse vectors of a SPLADE model: per input, its non-zero terms, indices ascending. Any
/// other kind of model is a 424 naming its kind.
pub async fn embed_sparse_with(
    s: &Arc<AppState>,
    req: EmbedSparseRequest,
) -> Answer<Vec<Vec<SparseValue>>> {
    let mut t = s.timing();
    let m = s.model()?;
    if m.task() != wgbert::encoder::ModelTask::Sparse {
        return Err(m.wrong_task("/embed_sparse", "a sparse (SPLADE) encoder"));
    }
    let prompt = req.prompt_name.map_or(Prompt::ModelDefault, Prompt::Name);
    let prompt = m.enc.prompt_text(&prompt).map_err(ApiError::from_engine)?;
    let cut = Cut {
        truncate: req.truncate,
        truncation_direction: req.truncation_direction,
    };
    let batch = req.inputs.0;
    s.check_inputs(&batch)?;
    let vocab = m.enc.config().vocab_size;
    // A sparse vector has at most one term per vocabulary entry, about 24 bytes each.
    s.check_response(
        batch.items.len() * vocab.min(4096) * 24,
        "the sparse vectors",
    )?;
    let seqs = s.tokenize(batch.items, prompt, cut, &mut t).await?;
    let Output::Sparse(vectors) = m.run(Task::Sparse, seqs, &mut t).await? else {
        return Err(mismatch());
    };
    let out = vectors
        .into_iter()
        .map(|v| {
            v.indices
                .into_iter()
                .zip(v.values)
                .map(|(index, value)| SparseValue { index, value })
                .collect()
        })
        .collect();
    Ok((t, out))
}

/// huggingface_hub's `sentence_similarity` body.
#[derive(Deserialize)]
pub struct SimilarityRequest {
    pub inputs: SimilarityInputs,
    #[serde(default)]
    pub parameters: Option<SimilarityParameters>,
}

#[derive(Deserialize, Default)]
pub struct SimilarityParameters {
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: Direction,
    #[serde(default)]
    pub prompt_name: Option<String>,
}

pub async fn similarity(
    State(s): State<Arc<AppState>>,
    body: JsonBody<SimilarityRequest>,
) -> Response {
    respond(similarity_with(&s, body.value.inputs, body.value.parameters).await)
}

/// Cosine similarity of the source sentence with each of the others, in their order.
pub async fn similarity_with(
    s: &Arc<AppState>,
    inputs: SimilarityInputs,
    parameters: Option<SimilarityParameters>,
) -> Answer<Vec<f32>> {
    let sentences = inputs.sentences.0;
    if sentences.is_empty() {
        return Err(ApiError::empty("`inputs.sentences` cannot be empty"));
    }
    let params = parameters.unwrap_or_default();
    let mut items = vec![Input::Text(inputs.source_sentence)];
    items.extend(sentences.into_iter().map(Input::Text));
    let embed = EmbedRequest {
        inputs: EmbedInputs(Batch {
            items,
            single: false,
        }),
        normalize: true,
        truncate: params.truncate,
        truncation_direction: params.truncation_direction,
        dimensions: None,
        prompt_name: params.prompt_name,
    };
    let (t, vectors) = embed_with(s, embed).await?;
    let Some((source, others)) = vectors.split_first() else {
        return Err(mismatch());
    };
    let scores = others
        .iter()
        .map(|v| {
            let dot: f64 = source.iter().zip(v).map(|(a, b)| (a * b) as f64).sum();
            dot as f32
        })
        .collect();
    Ok((t, scores))
}
