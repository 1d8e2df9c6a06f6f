//! The classifier routes: `/predict` (sequence classifiers, texts or (text, text) pairs as
//! TEI reads them) and `/rerank` (one-label cross-encoders), as TEI answers them; and text
//! classification in the Hugging Face Inference API's dialect (`{"inputs", "parameters":
//! {"top_k", "function_to_apply"}}`), which `POST /` speaks to
//! `huggingface_hub.InferenceClient.text_classification`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use wgbert::encoder::{Input, ModelTask, softmax};

use super::body::JsonBody;
use super::engine::{Output, Task};
use super::error::ApiError;
use super::model::mismatch;
use super::parse::{Batch, PredictInputs, Texts};
use super::state::{AppState, Cut, Direction};
use super::tei::{Answer, respond};

fn sigmoid(x: f32) -> f32 {
    (1.0 / (1.0 + (-(x as f64)).exp())) as f32
}

/// Sorts by score, highest first; ties keep input order.
fn by_score<T>(items: &mut [T], score: impl Fn(&T) -> f32) {
    items.sort_by(|a, b| score(b).total_cmp(&score(a)));
}

#[derive(Deserialize)]
pub struct RerankRequest {
    pub query: String,
    pub texts: Texts,
    #[serde(default)]
    pub raw_scores: bool,
    #[serde(default)]
    pub return_text: bool,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: Direction,
}

/// One document's place in a ranking.
#[derive(Serialize, Debug, Clone)]
pub struct Rank {
    pub index: usize,
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

pub async fn rerank(State(s): State<Arc<AppState>>, body: JsonBody<RerankRequest>) -> Response {
    respond(rerank_with(&s, body.value).await)
}

pub async fn rerank_with(s: &Arc<AppState>, req: RerankRequest) -> Answer<Vec<Rank>> {
    let docs = req.texts.0;
    if docs.is_empty() {
        return Err(ApiError::empty("`texts` cannot be empty"));
    }
    let query = req.query;
    let pairs = docs.into_iter().map(|d| (query.clone(), d)).collect();
    let cut = Cut {
        truncate: req.truncate,
        truncation_direction: req.truncation_direction,
    };
    rank_pairs(s, pairs, req.raw_scores, req.return_text, cut).await
}

/// (query, text) pairs scored by a cross-encoder, best first (the sigmoid of its logit
/// unless `raw`); each rank names its pair's index, and its text when asked.
pub async fn rank_pairs(
    s: &Arc<AppState>,
    pairs: Vec<(String, String)>,
    raw: bool,
    return_text: bool,
    cut: Cut,
) -> Answer<Vec<Rank>> {
    let mut t = s.timing();
    let m = s.model()?;
    if m.task() != ModelTask::CrossEncoder {
        return Err(m.wrong_task("/rerank", "a cross-encoder (one-label sequence classifier)"));
    }
    let mut docs = Vec::with_capacity(pairs.len());
    let mut items = Vec::with_capacity(pairs.len());
    for (q, d) in pairs {
        items.push(Input::Pair(q, d.clone()));
        docs.push(Some(d));
    }
    let batch = Batch {
        items,
        single: false,
    };
    s.check_inputs(&batch)?;
    let seqs = s.tokenize(batch.items, None, cut, &mut t).await?;
    let Output::Logits(logits) = m.run(Task::Classify, seqs, &mut t).await? else {
        return Err(mismatch());
    };
    let mut ranked: Vec<(usize, f32)> = logits
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let x = l.first().copied().unwrap_or(f32::NAN);
            (i, if raw { x } else { sigmoid(x) })
        })
        .collect();
    by_score(&mut ranked, |r| r.1);
    let out = ranked
        .into_iter()
        .map(|(index, score)| Rank {
            index,
            score,
            text: if return_text {
                docs[index].take()
            } else {
                None
            },
        })
        .collect();
    Ok((t, out))
}

#[derive(Deserialize)]
pub struct PredictRequest {
    pub inputs: PredictInputs,
    #[serde(default)]
    pub raw_scores: bool,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: Direction,
}

/// What turns logits into scores.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    Sigmoid,
    Softmax,
    None,
}

#[derive(Deserialize, Default)]
pub struct PipelineParameters {
    #[serde(default)]
    pub top_k: Option<usize>,
    #[serde(default)]
    pub function_to_apply: Option<Function>,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: Direction,
}

/// One label's score.
#[derive(Serialize, Debug, Clone)]
pub struct Prediction {
    pub label: String,
    pub score: f32,
}

/// TEI's answer: one input answers its list of labels, a batch one list per input.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Predictions {
    One(Vec<Prediction>),
    Many(Vec<Vec<Prediction>>),
}

pub async fn predict(State(s): State<Arc<AppState>>, body: JsonBody<PredictRequest>) -> Response {
    respond(predict_with(&s, body.value).await)
}

pub async fn predict_with(s: &Arc<AppState>, req: PredictRequest) -> Answer<Predictions> {
    let single = req.inputs.0.single;
    let function = req.raw_scores.then_some(Function::None);
    let cut = Cut {
        truncate: req.truncate,
        truncation_direction: req.truncation_direction,
    };
    let (t, mut per_input) = classify(s, req.inputs.0, cut, function, None).await?;
    let out = match (single, per_input.pop()) {
        (true, Some(one)) if per_input.is_empty() => Predictions::One(one),
        (_, last) => {
            per_input.extend(last);
            Predictions::Many(per_input)
        }
    };
    Ok((t, out))
}

/// Text classification in the Inference API's dialect: always one list per input.
pub async fn pipeline(
    s: &Arc<AppState>,
    inputs: PredictInputs,
    p: PipelineParameters,
) -> Answer<Vec<Vec<Prediction>>> {
    if p.top_k == Some(0) {
        return Err(ApiError::validation("parameters.top_k must be at least 1"));
    }
    let cut = Cut {
        truncate: p.truncate,
        truncation_direction: p.truncation_direction,
    };
    classify(s, inputs.0, cut, p.function_to_apply, p.top_k).await
}

/// Each input's labels with scores, best first: softmax over the labels, sigmoid for a
/// one-label model, unless `function` says otherwise; the first `top_k` when given.
pub async fn classify(
    s: &Arc<AppState>,
    inputs: Batch<Input>,
    cut: Cut,
    function: Option<Function>,
    top_k: Option<usize>,
) -> Answer<Vec<Vec<Prediction>>> {
    let mut t = s.timing();
    let m = s.model()?;
    let labels = m.sequence_labels("/predict")?;
    s.check_inputs(&inputs)?;
    let seqs = s.tokenize(inputs.items, None, cut, &mut t).await?;
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
            let mut pairs: Vec<Prediction> = labels
                .iter()
                .cloned()
                .zip(scores)
                .map(|(label, score)| Prediction { label, score })
                .collect();
            by_score(&mut pairs, |p| p.score);
            pairs.truncate(top_k.unwrap_or(usize::MAX));
            pairs
        })
        .collect();
    Ok((t, per_input))
}
