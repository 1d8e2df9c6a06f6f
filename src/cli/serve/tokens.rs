//! The TEI routes of the tokenizer: `/tokenize` (every input's tokens, the prompt before
//! the text, never cut) and `/decode`. Field names, defaults and answers follow
//! text-embeddings-inference.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use wgbert::encoder::Prompt;

use super::body::JsonBody;
use super::error::ApiError;
use super::parse::{IdsInputs, TextInputs};
use super::state::{AppState, blocking};
use super::tei::yes;

#[derive(Deserialize)]
pub struct TokenizeRequest {
    pub inputs: TextInputs,
    #[serde(default = "yes")]
    pub add_special_tokens: bool,
    #[serde(default)]
    pub prompt_name: Option<String>,
}

/// One token as `/tokenize` answers it.
#[derive(Serialize, Debug, Clone)]
pub struct SimpleToken {
    pub id: u32,
    pub text: String,
    pub special: bool,
    pub start: Option<usize>,
    pub stop: Option<usize>,
}

pub async fn tokenize(State(s): State<Arc<AppState>>, body: JsonBody<TokenizeRequest>) -> Response {
    match tokenize_with(&s, body.value).await {
        Ok(tokens) => Json(tokens).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Every input's tokens (the request's prompt, else the model's default, before the
/// text), never cut: `/tokenize` shows what a text is.
pub async fn tokenize_with(
    s: &Arc<AppState>,
    req: TokenizeRequest,
) -> Result<Vec<Vec<SimpleToken>>, ApiError> {
    let m = s.model()?;
    let texts = req.inputs.0.items;
    s.check_count(texts.len())?;
    let prompt = req.prompt_name.map_or(Prompt::ModelDefault, Prompt::Name);
    let prompt = m.enc.prompt_text(&prompt).map_err(ApiError::from_engine)?;
    let bytes: usize = texts.iter().map(String::len).sum();
    s.check_response(bytes * 16, "the tokens")?;
    let state = s.clone();
    let special = req.add_special_tokens;
    blocking(move || {
        let inner = state
            .model()?
            .enc
            .tokenizer()
            .map_err(ApiError::from_engine)?
            .inner();
        let mut out = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            let text = wgbert::text::prompted(prompt.as_deref().unwrap_or(""), text);
            let enc = inner.encode(text.as_ref(), special).map_err(|e| {
                ApiError::from_engine(wgbert::Error::Tokenizer(format!(
                    "input {i}: tokenizing failed: {e}"
                )))
            })?;
            let tokens = enc
                .get_ids()
                .iter()
                .zip(enc.get_tokens())
                .zip(enc.get_offsets())
                .zip(enc.get_special_tokens_mask())
                .map(|(((&id, token), &(start, stop)), &special)| {
                    let special = special == 1;
                    let piece = match text.get(start..stop) {
                        Some(p) if !special => p.to_string(),
                        _ => token.clone(),
                    };
                    let (start, stop) = match special {
                        true => (None, None),
                        false => (Some(start), Some(stop)),
                    };
                    SimpleToken {
                        id,
                        text: piece,
                        special,
                        start,
                        stop,
                    }
                })
                .collect();
            out.push(tokens);
        }
        Ok(out)
    })
    .await
}

#[derive(Deserialize)]
pub struct DecodeRequest {
    pub ids: IdsInputs,
    #[serde(default = "yes")]
    pub skip_special_tokens: bool,
}

pub async fn decode(State(s): State<Arc<AppState>>, body: JsonBody<DecodeRequest>) -> Response {
    match decode_with(&s, body.value).await {
        Ok(texts) => Json(texts).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `/decode`: one text per sequence of ids (special tokens skipped unless asked).
pub async fn decode_with(s: &Arc<AppState>, req: DecodeRequest) -> Result<Vec<String>, ApiError> {
    let batch = req.ids.0.items;
    if batch.iter().all(Vec::is_empty) {
        return Err(ApiError::empty("`ids` cannot be empty"));
    }
    s.check_count(batch.len())?;
    let vocab = s.model()?.enc.config().vocab_size;
    for (i, ids) in batch.iter().enumerate() {
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(ApiError::validation(format!(
                "input {i}: token id {bad} is outside the model's vocabulary of {vocab}"
            )));
        }
    }
    let state = s.clone();
    let skip = req.skip_special_tokens;
    blocking(move || {
        let inner = state
            .model()?
            .enc
            .tokenizer()
            .map_err(ApiError::from_engine)?
            .inner();
        batch
            .iter()
            .enumerate()
            .map(|(i, ids)| {
                inner.decode(ids, skip).map_err(|e| {
                    ApiError::from_engine(wgbert::Error::Tokenizer(format!(
                        "input {i}: decoding failed: {e}"
                    )))
                })
            })
            .collect()
    })
    .await
}
