//! The classifier routes: `/predict` (sequence classifiers) and `/rerank` (one-label
//! cross-encoders), as TEI answers them; and text classification in the Hugging Face
//! Inference API's dialect (`{"inputs", "parameters": {"top_k", "function_to_apply"}}`),
//! which `POST /` speaks to `huggingface_hub.InferenceClient.text_classification`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use wgbert::encoder::softmax;

use super::engine::{Output, Task};
use super::error::ApiError;
use super::model::{Text, mismatch};
use super::state::{AppState, Cut, Inputs, JsonBody};
use super::tei::Answer;
use super::timing::Timing;

#[derive(Deserialize)]
pub struct RerankRequest {
    query: String,
    texts: Vec<String>,
    #[serde(default)]
    raw_scores: bool,
    #[serde(default)]
    return_text: bool,
    #[serde(flatten)]
    cut: Cut,
}

fn sigmoid(x: f32) -> f32 {
    (1.0 / (1.0 + (-(x as f64)).exp())) as f32
}

/// Sorts by score, highest first; ties keep input order.
fn by_score<T>(items: &mut [T], score: impl Fn(&T) -> f32) {
    items.sort_by(|a, b| score(b).total_cmp(&score(a)));
}

pub async fn rerank(
    State(s): State<Arc<AppState>>,
    JsonBody(req): JsonBody<RerankRequest>,
) -> Answer<Vec<Value>> {
    rerank_with(&s, req).await
}

pub async fn rerank_with(s: &Arc<AppState>, req: RerankRequest) -> Answer<Vec<Value>> {
    let mut t = s.timing();
    let m = s.model()?;
    if m.kind() != super::model::ModelKind::Reranker {
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
    let seqs = s.tokenize_texts(pairs, req.cut, &mut t).await?;
    let Output::Logits(logits) = m.run(Task::Classify, seqs, &mut t).await? else {
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
    let out = ranked
        .into_iter()
        .map(|(index, score)| {
            let mut o = json!({ "index": index, "score": score });
            if req.return_text {
                o["text"] = json!(docs[index]);
            }
            o
        })
        .collect();
    Ok((t, Json(out)))
}

#[derive(Deserialize)]
pub struct PredictRequest {
    inputs: Inputs,
    #[serde(default)]
    raw_scores: bool,
    #[serde(flatten)]
    cut: Cut,
}

/// What turns logits into scores.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    Sigmoid,
    Softmax,
    None,
}

/// The Inference API's text-classification body.
#[derive(Deserialize)]
pub struct PipelineRequest {
    inputs: Inputs,
    #[serde(default)]
    parameters: PipelineParameters,
}

#[derive(Deserialize, Default)]
pub struct PipelineParameters {
    top_k: Option<usize>,
    function_to_apply: Option<Function>,
    #[serde(flatten)]
    cut: Cut,
}

pub async fn predict(
    State(s): State<Arc<AppState>>,
    JsonBody(req): JsonBody<PredictRequest>,
) -> Answer<Value> {
    predict_with(&s, req).await
}

pub async fn predict_with(s: &Arc<AppState>, req: PredictRequest) -> Answer<Value> {
    let single = req.inputs.is_single();
    let function = req.raw_scores.then_some(Function::None);
    let (t, per_input) = classify(s, req.inputs, req.cut, function, None).await?;
    // TEI: one input answers its list of labels, a batch one list per input.
    let out = if single {
        per_input.into_iter().next().unwrap_or_else(|| json!([]))
    } else {
        json!(per_input)
    };
    Ok((t, Json(out)))
}

/// Text classification in the Inference API's dialect: always one list per input.
pub async fn pipeline(s: &Arc<AppState>, req: PipelineRequest) -> Answer<Value> {
    let p = req.parameters;
    if p.top_k == Some(0) {
        return Err(ApiError::bad_request("parameters.top_k must be at least 1"));
    }
    let (t, per_input) = classify(s, req.inputs, p.cut, p.function_to_apply, p.top_k).await?;
    Ok((t, Json(json!(per_input))))
}

/// Each input's labels with scores, best first: softmax over the labels, sigmoid for a
/// one-label model, unless `function` says otherwise; the first `top_k` when given.
async fn classify(
    s: &Arc<AppState>,
    inputs: Inputs,
    cut: Cut,
    function: Option<Function>,
    top_k: Option<usize>,
) -> Result<(Timing, Vec<Value>), ApiError> {
    let mut t = s.timing();
    let m = s.model()?;
    let labels = m.sequence_labels("/predict")?;
    let texts = s.texts(inputs)?;
    let seqs = s.tokenize(texts, cut, &mut t).await?;
    let Output::Logits(logits) = m.run(Task::Classify, seqs, &mut t).await? else {
        return Err(mismatch());
    };
    let per_input = logits
        .into_iter()
        .map(|l| {
            let function = function.unwrap_or(if l.len() == 1 {
                Function::Sigmoid
            } else {
                Function::Softmax
            });
            let scores = match function {
                Function::None => l,
                Function::Sigmoid => l.into_iter().map(sigmoid).collect(),
                Function::Softmax => softmax(&l),
            };
            let mut pairs: Vec<(String, f32)> = labels.iter().cloned().zip(scores).collect();
            by_score(&mut pairs, |p| p.1);
            pairs.truncate(top_k.unwrap_or(usize::MAX));
            json!(
                pairs
                    .into_iter()
                    .map(|(label, score)| json!({ "label": label, "score": score }))
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    Ok((t, per_input))
}
