//! Fill-mask: our `/fill-mask` route (`[{"text", "masks": [{"position", "candidates"}]}]`,
//! as `wgbert fill-mask --json` prints it), and the transformers pipeline's format that
//! `POST /` answers on a masked language model (`[{"score", "token", "token_str",
//! "sequence"}]` per mask). Both take `top_k` (1 to 64) at the top level or, as
//! huggingface_hub sends it, in `parameters`.
//!
//! The work is bounded by what is asked: at most 64 `[MASK]` per input, and
//! `--max-fill-mask-candidates` masks times `top_k` per request; the answer (every candidate
//! carries its whole filled-in sequence) is estimated before the model runs and refused
//! over `--max-response-bytes`. The MLM head always returns 64 candidates per mask, so one
//! head serves every `top_k`; each candidate's sequence is spliced from the text decoded
//! once (`Encoder::mask_predictions`), on a blocking thread.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use wgbert::encoder::{Input, MaskPrediction};

use super::body::JsonBody;
use super::engine::{MAX_TOP_K, Output, Task};
use super::error::ApiError;
use super::model::mismatch;
use super::parse::TextInputs;
use super::state::{AppState, Cut, Direction, blocking};
use super::tei::{Answer, respond};
use super::timing::Timing;

/// The most `[MASK]` tokens one input may hold.
pub const MAX_MASKS: usize = 64;

const DEFAULT_TOP_K: usize = 5;

/// Bytes a candidate adds to an answer besides its sequence (score, token, keys).
const CANDIDATE_BYTES: usize = 96;

#[derive(Deserialize)]
pub struct FillMaskRequest {
    pub inputs: TextInputs,
    #[serde(default)]
    pub top_k: Option<usize>,
    #[serde(default)]
    pub parameters: Parameters,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: Option<Direction>,
}

#[derive(Deserialize, Default)]
pub struct Parameters {
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    targets: Option<IgnoredAny>,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    truncation_direction: Option<Direction>,
}

impl FillMaskRequest {
    fn top_k(&self) -> Result<usize, ApiError> {
        let k = self
            .top_k
            .or(self.parameters.top_k)
            .unwrap_or(DEFAULT_TOP_K);
        if !(1..=MAX_TOP_K).contains(&k) {
            return Err(ApiError::validation(format!(
                "top_k must be between 1 and {MAX_TOP_K}, got {k}"
            )));
        }
        if self.parameters.targets.is_some() {
            return Err(ApiError::validation(
                "parameters.targets is not supported: candidates are the model's top_k tokens",
            ));
        }
        Ok(k)
    }

    /// The length policy, at the top level or in `parameters` (which wins).
    fn cut(&self) -> Cut {
        let p = &self.parameters;
        Cut {
            truncate: p.truncate.or(self.truncate),
            truncation_direction: p
                .truncation_direction
                .or(self.truncation_direction)
                .unwrap_or_default(),
        }
    }
}

/// One input's answer on `/fill-mask`.
#[derive(Serialize)]
pub struct Filled {
    pub text: String,
    pub masks: Vec<MaskPrediction>,
}

pub async fn fill_mask(
    State(s): State<Arc<AppState>>,
    body: JsonBody<FillMaskRequest>,
) -> Response {
    respond(fill_mask_with(&s, body.value).await)
}

async fn fill_mask_with(s: &Arc<AppState>, req: FillMaskRequest) -> Answer<Vec<Filled>> {
    let (t, texts, preds) = predict(s, req, "/fill-mask").await?;
    let out = texts
        .into_iter()
        .zip(preds)
        .map(|(text, masks)| Filled { text, masks })
        .collect();
    Ok((t, out))
}

/// One candidate in the transformers pipeline's format.
#[derive(Serialize)]
pub struct PipelineCandidate {
    score: f32,
    token: u32,
    token_str: String,
    sequence: String,
}

/// The pipeline's answer: per input, the candidates of its one mask, or one list per mask
/// where it has several; a single text answers its own entry.
#[derive(Serialize)]
#[serde(untagged)]
pub enum PipelineAnswer {
    Mask(Vec<PipelineCandidate>),
    Masks(Vec<Vec<PipelineCandidate>>),
    Inputs(Vec<PipelineAnswer>),
}

pub async fn pipeline(s: &Arc<AppState>, req: FillMaskRequest) -> Answer<PipelineAnswer> {
    let single = req.inputs.0.single;
    let (t, _, preds) = predict(s, req, "POST /").await?;
    let mut per_input: Vec<PipelineAnswer> = preds
        .into_iter()
        .map(|masks| {
            let mut lists: Vec<Vec<PipelineCandidate>> = masks
                .into_iter()
                .map(|m| {
                    m.candidates
                        .into_iter()
                        .map(|c| PipelineCandidate {
                            score: c.score,
                            token: c.token_id,
                            token_str: c.token,
                            sequence: c.sequence,
                        })
                        .collect()
                })
                .collect();
            match (lists.len(), lists.pop()) {
                (1, Some(one)) => PipelineAnswer::Mask(one),
                (_, last) => {
                    lists.extend(last);
                    PipelineAnswer::Masks(lists)
                }
            }
        })
        .collect();
    let out = match (single, per_input.pop()) {
        (true, Some(one)) if per_input.is_empty() => one,
        (_, last) => {
            per_input.extend(last);
            PipelineAnswer::Inputs(per_input)
        }
    };
    Ok((t, out))
}

/// Runs fill-mask: the texts and, per text, its masks' top-k candidates.
async fn predict(
    s: &Arc<AppState>,
    req: FillMaskRequest,
    route: &str,
) -> Result<(Timing, Vec<String>, Vec<Vec<MaskPrediction>>), ApiError> {
    let mut t = s.timing();
    let m = s.model()?;
    if !m.enc.heads().mlm {
        return Err(m.wrong_task(route, "a masked language model head"));
    }
    let k = req.top_k()?;
    let cut = req.cut();
    let texts = req.inputs.0.items;
    s.check_count(texts.len())?;
    if let Some(i) = texts.iter().position(String::is_empty) {
        return Err(ApiError::empty(format!("input {i} is empty")));
    }
    let inputs = texts.iter().map(|t| Input::Text(t.clone())).collect();
    let seqs = s.tokenize(inputs, None, cut, &mut t).await?;
    let mask = m
        .enc
        .tokenizer()
        .and_then(|t| t.mask_id())
        .map_err(ApiError::from_engine)?;
    let mut candidates = 0usize;
    let mut answer_bytes = 0usize;
    for (i, (seq, text)) in seqs.iter().zip(&texts).enumerate() {
        match seq.iter().filter(|&&id| id == mask).count() {
            0 => {
                return Err(ApiError::validation(format!(
                    "input {i}: the text has no [MASK] token"
                )));
            }
            n if n > MAX_MASKS => {
                return Err(ApiError::validation(format!(
                    "input {i} has {n} [MASK] tokens, over the limit of {MAX_MASKS} per input"
                )));
            }
            n => {
                candidates += n * k;
                // Each candidate's sequence is about as long as the text the model saw.
                let seen = text.len().min(seq.len() * 32);
                answer_bytes += n * k * (seen + CANDIDATE_BYTES);
            }
        }
    }
    let max = s.limits.max_fill_candidates;
    if candidates > max {
        return Err(ApiError::too_large(format!(
            "{candidates} candidates ([MASK] tokens times top_k), over \
             --max-fill-mask-candidates {max}"
        )));
    }
    s.check_response(answer_bytes, "the candidates")?;
    let Output::TopK(top) = m.run(Task::FillMask, seqs.clone(), &mut t).await? else {
        return Err(mismatch());
    };
    let enc = m.enc.clone();
    let preds = blocking(move || {
        seqs.iter()
            .zip(top)
            .map(|(seq, mut preds)| {
                for (_, cands) in &mut preds {
                    cands.truncate(k);
                }
                enc.mask_predictions(seq, preds)
                    .map_err(ApiError::from_engine)
            })
            .collect()
    })
    .await?;
    Ok((t, texts, preds))
}
