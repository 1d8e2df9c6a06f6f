//! The TEI routes that embed or tokenize: `/embed`, `/embed_all`, `/embed_sparse`, `/similarity`,
//! `/tokenize`, `/decode`. Field names, defaults and answers follow
//! text-embeddings-inference; every route that truncates takes `truncation_direction`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::engine::{Output, Task};
use super::error::ApiError;
use super::model::{ModelKind, mismatch, with_prompt};
use super::state::{AppState, Cut, Inputs, JsonBody, blocking};
use super::timing::Timing;
use wgbert::encoder::Prompt;

fn yes() -> bool {
    true
}

/// An answer with TEI's timing headers.
pub type Answer<T> = Result<(Timing, Json<T>), ApiError>;

#[derive(Deserialize)]
pub struct EmbedRequest {
    pub inputs: Inputs,
    #[serde(default = "yes")]
    pub normalize: bool,
    #[serde(flatten)]
    pub cut: Cut,
    pub dimensions: Option<usize>,
    pub prompt_name: Option<String>,
}

pub async fn embed(
    State(s): State<Arc<AppState>>,
    JsonBody(req): JsonBody<EmbedRequest>,
) -> Answer<Vec<Vec<f32>>> {
    embed_with(&s, req).await
}

pub async fn embed_with(s: &Arc<AppState>, req: EmbedRequest) -> Answer<Vec<Vec<f32>>> {
    let mut t = s.timing();
    let m = s.model()?;
    let dims = m.dimensions(req.dimensions)?;
    let spec = m.setup.spec(&m.enc, req.prompt_name.as_deref())?;
    let texts = with_prompt(&spec, s.texts(req.inputs)?);
    let seqs = s.tokenize(texts, req.cut, &mut t).await?;
    let vectors = m.pooled(spec, seqs, dims, req.normalize, &mut t).await?;
    Ok((t, Json(vectors)))
}

#[derive(Deserialize)]
pub struct EmbedAllRequest {
    inputs: Inputs,
    #[serde(flatten)]
    cut: Cut,
    prompt_name: Option<String>,
}

pub async fn embed_all(
    State(s): State<Arc<AppState>>,
    JsonBody(req): JsonBody<EmbedAllRequest>,
) -> Answer<Vec<Vec<Vec<f32>>>> {
    let mut t = s.timing();
    let m = s.model()?;
    let spec = m.setup.spec_all(&m.enc, req.prompt_name.as_deref())?;
    let texts = with_prompt(&spec, s.texts(req.inputs)?);
    let seqs = s.tokenize(texts, req.cut, &mut t).await?;
    match m.run(Task::Embed(Box::new(spec)), seqs, &mut t).await? {
        Output::Embeddings(e) => Ok((t, Json(e.into_iter().map(|e| e.vectors).collect()))),
        _ => Err(mismatch()),
    }
}

#[derive(Deserialize)]
pub struct EmbedSparseRequest {
    inputs: Inputs,
    #[serde(flatten)]
    cut: Cut,
    prompt_name: Option<String>,
}

/// One non-zero term of a sparse vector, as TEI writes it.
#[derive(serde::Serialize)]
pub struct SparseValue {
    index: u32,
    value: f32,
}

pub async fn embed_sparse(
    State(s): State<Arc<AppState>>,
    JsonBody(req): JsonBody<EmbedSparseRequest>,
) -> Answer<Vec<Vec<SparseValue>>> {
    embed_sparse_with(&s, req).await
}

/// Sparse vectors of a SPLADE model: per input, its non-zero terms, indices ascending. Any
/// other kind of model is a 400 naming its kind.
pub async fn embed_sparse_with(
    s: &Arc<AppState>,
    req: EmbedSparseRequest,
) -> Answer<Vec<Vec<SparseValue>>> {
    let mut t = s.timing();
    let m = s.model()?;
    if m.kind() != ModelKind::Sparse {
        return Err(m.wrong_task("/embed_sparse", "a sparse (SPLADE) encoder"));
    }
    let prompt = req.prompt_name.map_or(Prompt::ModelDefault, Prompt::Name);
    let prompt = m
        .enc
        .prompt_text(&prompt)
        .map_err(|e| ApiError::bad_request(format!("prompt_name: {e}")))?;
    let mut texts = s.texts(req.inputs)?;
    if let Some(p) = prompt {
        texts = texts.into_iter().map(|t| format!("{p}{t}")).collect();
    }
    let seqs = s.tokenize(texts, req.cut, &mut t).await?;
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
    Ok((t, Json(out)))
}

/// huggingface_hub's `sentence_similarity` body.
#[derive(Deserialize)]
pub struct SimilarityRequest {
    pub inputs: SimilarityInputs,
    #[serde(default)]
    pub parameters: Option<SimilarityParameters>,
}

#[derive(Deserialize)]
pub struct SimilarityInputs {
    pub source_sentence: String,
    pub sentences: Vec<String>,
}

#[derive(Deserialize, Default)]
pub struct SimilarityParameters {
    #[serde(flatten)]
    pub cut: Cut,
    pub prompt_name: Option<String>,
}

pub async fn similarity(
    State(s): State<Arc<AppState>>,
    JsonBody(req): JsonBody<SimilarityRequest>,
) -> Answer<Vec<f32>> {
    similarity_with(&s, req).await
}

/// Cosine similarity of the source sentence with each of the others, in their order.
pub async fn similarity_with(s: &Arc<AppState>, req: SimilarityRequest) -> Answer<Vec<f32>> {
    if req.inputs.sentences.is_empty() {
        return Err(ApiError::empty("`inputs.sentences` cannot be empty"));
    }
    let params = req.parameters.unwrap_or_default();
    let mut texts = vec![req.inputs.source_sentence];
    texts.extend(req.inputs.sentences);
    let embed = EmbedRequest {
        inputs: Inputs::Many(texts),
        normalize: true,
        cut: params.cut,
        dimensions: None,
        prompt_name: params.prompt_name,
    };
    let (t, Json(vectors)) = embed_with(s, embed).await?;
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
    Ok((t, Json(scores)))
}

#[derive(Deserialize)]
pub struct TokenizeRequest {
    inputs: Inputs,
    #[serde(default = "yes")]
    add_special_tokens: bool,
}

pub async fn tokenize(
    State(s): State<Arc<AppState>>,
    JsonBody(req): JsonBody<TokenizeRequest>,
) -> Result<Json<Vec<Vec<Value>>>, ApiError> {
    let texts = s.texts(req.inputs)?;
    let state = s.clone();
    let out = blocking(move || {
        let inner = state.model()?.tokenizer().inner();
        let mut out = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            let enc = inner
                .encode(text.as_str(), req.add_special_tokens)
                .map_err(|e| {
                    ApiError::bad_request(format!("input {i}: tokenizing failed: {e}"))
                })?;
            let tokens = enc
                .get_ids()
                .iter()
                .zip(enc.get_tokens())
                .zip(enc.get_offsets())
                .zip(enc.get_special_tokens_mask())
                .map(|(((id, token), &(start, stop)), &special)| {
                    let special = special == 1;
                    let piece = match text.get(start..stop) {
                        Some(p) if !special => p.to_string(),
                        _ => token.clone(),
                    };
                    json!({ "id": id, "text": piece, "special": special, "start": start, "stop": stop })
                })
                .collect();
            out.push(tokens);
        }
        Ok(out)
    })
    .await?;
    Ok(Json(out))
}

/// Token ids: one sequence or a batch of them.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Ids {
    One(Vec<u32>),
    Many(Vec<Vec<u32>>),
}

#[derive(Deserialize)]
pub struct DecodeRequest {
    ids: Ids,
    #[serde(default = "yes")]
    skip_special_tokens: bool,
}

/// `/decode`: one text per sequence of ids (special tokens skipped unless asked).
pub async fn decode(
    State(s): State<Arc<AppState>>,
    JsonBody(req): JsonBody<DecodeRequest>,
) -> Result<Json<Vec<String>>, ApiError> {
    let batch = match req.ids {
        Ids::One(ids) => vec![ids],
        Ids::Many(batch) => batch,
    };
    if batch.is_empty() {
        return Err(ApiError::empty("`ids` cannot be empty"));
    }
    s.check_count(batch.len())?;
    let vocab = s.model()?.enc.config().vocab_size;
    for (i, ids) in batch.iter().enumerate() {
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(ApiError::bad_request(format!(
                "input {i}: token id {bad} is outside the model's vocabulary of {vocab}"
            )));
        }
    }
    let state = s.clone();
    let skip = req.skip_special_tokens;
    let texts = blocking(move || {
        let inner = state.model()?.tokenizer().inner();
        batch
            .iter()
            .enumerate()
            .map(|(i, ids)| {
                inner
                    .decode(ids, skip)
                    .map_err(|e| ApiError::bad_request(format!("input {i}: decoding failed: {e}")))
            })
            .collect()
    })
    .await?;
    Ok(Json(texts))
}
