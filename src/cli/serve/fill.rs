//! Fill-mask: our `/fill-mask` route (`[{"text", "masks": [{"position", "candidates"}]}]`,
//! as `wgbert fill-mask --json` prints it), and the transformers pipeline's format that
//! `POST /` answers on a masked language model (`[{"score", "token", "token_str",
//! "sequence"}]` per mask). Both take `top_k` (1 to 64) at the top level or, as
//! huggingface_hub sends it, in `parameters`.
//!
//! The MLM head always returns 64 candidates per mask, so one head serves every `top_k`;
//! decoding the candidates runs on a blocking thread, bounded by the limits on masks per
//! input and `top_k`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use wgbert::encoder::MaskPrediction;

use super::engine::{MAX_TOP_K, Output, Task};
use super::error::ApiError;
use super::model::{Direction, mismatch};
use super::state::{AppState, Cut, Inputs, JsonBody, blocking};
use super::tei::Answer;
use super::timing::Timing;

/// The most `[MASK]` tokens one input may hold.
pub const MAX_MASKS: usize = 64;

const DEFAULT_TOP_K: usize = 5;

#[derive(Deserialize)]
pub struct FillMaskRequest {
    inputs: Inputs,
    top_k: Option<usize>,
    #[serde(default)]
    parameters: Parameters,
    #[serde(flatten)]
    cut: Cut,
}

#[derive(Deserialize, Default)]
struct Parameters {
    top_k: Option<usize>,
    targets: Option<Value>,
    truncate: Option<bool>,
    truncation_direction: Option<Direction>,
}

impl FillMaskRequest {
    fn top_k(&self) -> Result<usize, ApiError> {
        let k = self
            .top_k
            .or(self.parameters.top_k)
            .unwrap_or(DEFAULT_TOP_K);
        if !(1..=MAX_TOP_K).contains(&k) {
            return Err(ApiError::bad_request(format!(
                "top_k must be between 1 and {MAX_TOP_K}, got {k}"
            )));
        }
        if self.parameters.targets.is_some() {
            return Err(ApiError::bad_request(
                "parameters.targets is not supported: candidates are the model's top_k tokens",
            ));
        }
        Ok(k)
    }

    /// The length policy, at the top level or in `parameters` (which wins).
    fn cut(&self) -> Cut {
        let p = &self.parameters;
        Cut {
            truncate: p.truncate.or(self.cut.truncate),
            truncation_direction: p
                .truncation_direction
                .unwrap_or(self.cut.truncation_direction),
        }
    }
}

pub async fn fill_mask(
    State(s): State<Arc<AppState>>,
    JsonBody(req): JsonBody<FillMaskRequest>,
) -> Answer<Vec<Value>> {
    let (t, texts, preds) = predict(&s, req, "/fill-mask").await?;
    let out = texts
        .into_iter()
        .zip(preds)
        .map(|(text, masks)| json!({ "text": text, "masks": masks }))
        .collect();
    Ok((t, Json(out)))
}

/// The transformers pipeline's answer: per input, the candidates of its one mask, or one
/// list per mask where it has several; a single text answers its own entry.
pub async fn pipeline(s: &Arc<AppState>, req: FillMaskRequest) -> Answer<Value> {
    let single = req.inputs.is_single();
    let (t, _, preds) = predict(s, req, "POST /").await?;
    let per_input: Vec<Value> = preds
        .into_iter()
        .map(|masks| {
            let mut lists: Vec<Value> = masks
                .into_iter()
                .map(|m| {
                    json!(
                        m.candidates
                            .into_iter()
                            .map(|c| json!({
                                "score": c.score,
                                "token": c.token_id,
                                "token_str": c.token,
                                "sequence": c.sequence,
                            }))
                            .collect::<Vec<_>>()
                    )
                })
                .collect();
            if lists.len() == 1 {
                lists.pop().unwrap_or_default()
            } else {
                json!(lists)
            }
        })
        .collect();
    let out = if single {
        per_input.into_iter().next().unwrap_or_else(|| json!([]))
    } else {
        json!(per_input)
    };
    Ok((t, Json(out)))
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
    let texts = s.texts(req.inputs)?;
    let seqs = s.tokenize(texts.clone(), cut, &mut t).await?;
    let mask = m
        .enc
        .tokenizer()
        .and_then(|t| t.mask_id())
        .map_err(ApiError::from_engine)?;
    for (i, seq) in seqs.iter().enumerate() {
        match seq.iter().filter(|&&id| id == mask).count() {
            0 => {
                return Err(ApiError::bad_request(format!(
                    "input {i}: the text has no [MASK] token"
                )));
            }
            n if n > MAX_MASKS => {
                return Err(ApiError::bad_request(format!(
                    "input {i} has {n} [MASK] tokens, over the limit of {MAX_MASKS} per input"
                )));
            }
            _ => {}
        }
    }
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
