//! `POST /v1/embeddings` (also `/embeddings`): OpenAI's embeddings API. Vectors are
//! normalized; `encoding_format: "base64"` sends each as little-endian f32 bytes in base64.
//! Token-id inputs are taken as the model's whole sequence, as given.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, Flavor};
use super::model::with_prompt;
use super::state::{AppState, Cut, JsonBody};
use super::timing::Timing;

#[derive(Deserialize)]
#[serde(untagged)]
pub enum Input {
    Text(String),
    Texts(Vec<String>),
    Ids(Vec<u32>),
    IdsBatch(Vec<Vec<u32>>),
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Float,
    Base64,
}

#[derive(Deserialize)]
pub struct Request {
    input: Input,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    encoding_format: Format,
    dimensions: Option<usize>,
    /// Accepted and ignored, as OpenAI's clients may send it.
    #[serde(default)]
    #[allow(dead_code)]
    user: Option<String>,
}

pub async fn embeddings(
    State(s): State<Arc<AppState>>,
    JsonBody(req): JsonBody<Request>,
) -> Result<(Timing, Json<Value>), ApiError> {
    let mut t = s.timing();
    match answer(&s, req, &mut t).await {
        Ok(v) => Ok((t, Json(v))),
        Err(e) => Err(e.in_flavor(Flavor::OpenAi)),
    }
}

async fn answer(s: &Arc<AppState>, req: Request, t: &mut Timing) -> Result<Value, ApiError> {
    let m = s.model()?;
    let dims = m.dimensions(req.dimensions)?;
    let spec = m.setup.spec(&m.enc, None)?;
    let from_ids = matches!(req.input, Input::Ids(_) | Input::IdsBatch(_));
    let seqs = match req.input {
        Input::Text(one) => {
            let texts = with_prompt(&spec, s.texts(super::state::Inputs::One(one))?);
            s.tokenize(texts, Cut::default(), t).await?
        }
        Input::Texts(many) => {
            let texts = with_prompt(&spec, s.texts(super::state::Inputs::Many(many))?);
            s.tokenize(texts, Cut::default(), t).await?
        }
        Input::Ids(ids) => token_inputs(s, vec![ids])?,
        Input::IdsBatch(batch) => token_inputs(s, batch)?,
    };
    if from_ids {
        t.ids(&seqs);
    }
    let tokens: usize = seqs.iter().map(Vec::len).sum();
    let vectors = m.pooled(spec, seqs, dims, true, t).await?;
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = match req.encoding_format {
                Format::Float => json!(v),
                Format::Base64 => {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
            };
            json!({ "object": "embedding", "embedding": embedding, "index": index })
        })
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": req.model.unwrap_or_else(|| m.id.clone()),
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    }))
}

/// Token-id inputs: each non-empty, inside the vocabulary, and within the length limit (or
/// cut to it under `--auto-truncate`).
fn token_inputs(s: &AppState, mut batch: Vec<Vec<u32>>) -> Result<Vec<Vec<u32>>, ApiError> {
    let m = s.model()?;
    s.check_count(batch.len())?;
    let vocab = m.enc.config().vocab_size;
    for (i, ids) in batch.iter_mut().enumerate() {
        if ids.is_empty() {
            return Err(ApiError::empty(format!("input {i} has no tokens")));
        }
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(ApiError::bad_request(format!(
                "input {i}: token id {bad} is outside the model's vocabulary of {vocab}"
            )));
        }
        if s.limits.auto_truncate {
            ids.truncate(m.max_input);
        }
        m.check_len(i, ids.len())?;
    }
    Ok(batch)
}
