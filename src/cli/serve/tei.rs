//! The TEI routes: `/embed`, `/embed_all`, `/rerank`, `/predict`, `/tokenize`, and our own
//! `/fill-mask`. Field names, defaults and answers follow text-embeddings-inference.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use wgbert::encoder::softmax;

use super::engine::{Output, Task};
use super::error::ApiError;
use super::model::{Text, mismatch, with_prompt};
use super::state::{AppState, Inputs, JsonBody};

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
pub struct EmbedRequest {
    inputs: Inputs,
    #[serde(default = "yes")]
    normalize: bool,
    truncate: Option<bool>,
    dimensions: Option<usize>,
    prompt_name: Option<String>,
}

pub async fn embed(
    State(s): State<Arc<AppState>>,
    JsonBody(req): JsonBody<EmbedRequest>,
) -> Result<Json<Vec<Vec<f32>>>, ApiError> {
    let m = s.model()?;
    let dims = m.dimensions(req.dimensions)?;
    let spec = m.setup.spec(&m.enc, req.prompt_name.as_deref())?;
    let texts = with_prompt(&spec, s.texts(req.inputs)?);
    let seqs = s.tokenize(texts, req.truncate).await?;
    Ok(Json(m.pooled(spec, seqs, dims, req.normalize).await?))
}

#[derive(Deserialize)]
pub struct EmbedAllRequest {
    inputs: Inputs,
    truncate: Option<bool>,
    prompt_name: Option<String>,
}

pub async fn embed_all(
    State(s): State<Arc<AppState>>,
    JsonBody(req): JsonBody<EmbedAllRequest>,
) -> Result<Json<Vec<Vec<Vec<f32>>>>, ApiError> {
    let m = s.model()?;
    let spec = m.setup.spec_all(&m.enc, req.prompt_name.as_deref())?;
    let texts = with_prompt(&spec, s.texts(req.inputs)?);
    let seqs = s.tokenize(texts, req.truncate).await?;
    match m.run(Task::Embed(Box::new(spec)), seqs).await? {
        Output::Embeddings(e) => Ok(Json(e.into_iter().map(|e| e.vectors).collect())),
        _ => Err(mismatch()),
    }
}

#[derive(Deserialize)]
pub struct RerankRequest {
    query: String,
    texts: Vec<String>,
    #[serde(default)]
    raw_scores: bool,
    #[serde(default)]
    return_text: bool,
    truncate: Option<bool>,
}

fn sigmoid(x: f32) -> f32 {
    (1.0 / (1.0 + (-(x as f64)).exp())) as f32
}

/// Sorts `(index, score)` by score, highest first; ties keep input order.
fn by_score<T>(items: &mut [T], score: impl Fn(&T) -> f32) {
    items.sort_by(|a, b| score(b).total_cmp(&score(a)));
}

pub async fn rerank(
    State(s): State<Arc<AppState>>,
    JsonBody(req): JsonBody<RerankRequest>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let m = s.model()?;
    if m.enc.heads().classifier != Some(1) || m.sequence_labels("/rerank").is_err() {
        return Err(m.wrong_task("/rerank", "a cross-encoder (one-label sequence classifier)"));
    }
    if req.query.is_empty() {
        return Err(ApiError::empty("`query` cannot be empty"));
    }
    let docs = s.texts(Inputs::Many(req.texts))?;
    let pairs = docs
        .iter()
        .map(|d| Text::Pair(req.query.clone(), d.clone()))
        .collect();
    let seqs = s.tokenize_texts(pairs, req.truncate).await?;
    let Output::Logits(logits) = m.run(Task::Classify, seqs).await? else {
        return Err(mismatch());
    };
    let mut ranked: Vec<(usize, f32)> = logits
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let x = l.first().copied().unwrap_or(f32::NAN);
            (i, if req.raw_scores { x } else { sigmoid(x) })
        })
        .collect();
    by_score(&mut ranked, |r| r.1);
    Ok(Json(
        ranked
            .into_iter()
            .map(|(index, score)| {
                let mut o = json!({ "index": index, "score": score });
                if req.return_text {
                    o["text"] = json!(docs[index]);
                }
                o
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct PredictRequest {
    inputs: Inputs,
    #[serde(default)]
    raw_scores: bool,
    truncate: Option<bool>,
}

pub async fn predict(
    State(s): State<Arc<AppState>>,
    JsonBody(req): JsonBody<PredictRequest>,
) -> Result<Json<Value>, ApiError> {
    let m = s.model()?;
    let labels = m.sequence_labels("/predict")?;
    let single = req.inputs.is_single();
    let texts = s.texts(req.inputs)?;
    let seqs = s.tokenize(texts, req.truncate).await?;
    let Output::Logits(logits) = m.run(Task::Classify, seqs).await? else {
        return Err(mismatch());
    };
    let per_input: Vec<Value> = logits
        .into_iter()
        .map(|l| {
            // Softmax over the labels; a one-label model's single logit goes through sigmoid.
            let scores = match (req.raw_scores, l.len()) {
                (true, _) => l,
                (false, 1) => vec![sigmoid(l[0])],
                (false, _) => softmax(&l),
            };
            let mut pairs: Vec<(String, f32)> = labels.iter().cloned().zip(scores).collect();
            by_score(&mut pairs, |p| p.1);
            json!(
                pairs
                    .into_iter()
                    .map(|(label, score)| json!({ "label": label, "score": score }))
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    if single {
        Ok(Json(
            per_input.into_iter().next().unwrap_or_else(|| json!([])),
        ))
    } else {
        Ok(Json(json!(per_input)))
    }
}

#[derive(Deserialize)]
pub struct FillMaskRequest {
    inputs: Inputs,
    #[serde(default = "five")]
    top_k: usize,
    truncate: Option<bool>,
}

fn five() -> usize {
    5
}

pub async fn fill_mask(
    State(s): State<Arc<AppState>>,
    JsonBody(req): JsonBody<FillMaskRequest>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let m = s.model()?;
    if !m.enc.heads().mlm {
        return Err(m.wrong_task("/fill-mask", "a masked language model head"));
    }
    if !(1..=64).contains(&req.top_k) {
        return Err(ApiError::bad_request(format!(
            "top_k must be between 1 and 64, got {}",
            req.top_k
        )));
    }
    let texts = s.texts(req.inputs)?;
    let seqs = s.tokenize(texts.clone(), req.truncate).await?;
    let mask = m
        .enc
        .tokenizer()
        .and_then(|t| t.mask_id())
        .map_err(ApiError::from_engine)?;
    if let Some(i) = seqs.iter().position(|s| !s.contains(&mask)) {
        return Err(ApiError::bad_request(format!(
            "input {i}: the text has no [MASK] token"
        )));
    }
    let task = Task::FillMask { top_k: req.top_k };
    let Output::TopK(top) = m.run(task, seqs.clone()).await? else {
        return Err(mismatch());
    };
    let mut out = Vec::with_capacity(texts.len());
    for ((text, seq), preds) in texts.iter().zip(&seqs).zip(top) {
        let masks = m
            .enc
            .mask_predictions(seq, preds)
            .map_err(ApiError::from_engine)?;
        out.push(json!({ "text": text, "masks": masks }));
    }
    Ok(Json(out))
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
    let m = s.model()?;
    let texts = s.texts(req.inputs)?;
    let inner = m.tokenizer().inner();
    let mut out = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let enc = inner
            .encode(text.as_str(), req.add_special_tokens)
            .map_err(|e| ApiError::bad_request(format!("input {i}: tokenizing failed: {e}")))?;
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
    Ok(Json(out))
}
