//! One call of each `tei.v1` method on one request: the protobuf message turned into the
//! HTTP route's request, its work, and the answer turned back (with TEI's `Metadata`).

use std::sync::Arc;

use tonic::Status;
use wgbert::encoder::Input;

use super::super::classify::{self, PredictRequest, Prediction, Rank};
use super::super::parse::{Batch, EmbedInputs, IdsInputs, PredictInputs, TextInputs};
use super::super::state::{AppState, Cut, Direction};
use super::super::tei::{self, EmbedRequest};
use super::super::timing::Timing;
use super::super::tokens::{self, DecodeRequest, TokenizeRequest};
use super::pb;
use super::status;

pub fn direction(d: i32) -> Direction {
    match pb::TruncationDirection::try_from(d) {
        Ok(pb::TruncationDirection::Left) => Direction::Left,
        _ => Direction::Right,
    }
}

pub fn cut(truncate: bool, d: i32) -> Cut {
    Cut {
        truncate: Some(truncate),
        truncation_direction: direction(d),
    }
}

fn one<T>(item: T) -> Batch<T> {
    Batch {
        items: vec![item],
        single: true,
    }
}

fn metadata(t: &Timing) -> Option<pb::Metadata> {
    let s = t.spent();
    let ns = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    Some(pb::Metadata {
        compute_chars: u32::try_from(s.chars).unwrap_or(u32::MAX),
        compute_tokens: u32::try_from(s.tokens).unwrap_or(u32::MAX),
        total_time_ns: ns(s.total),
        tokenization_time_ns: ns(s.tokenization),
        queue_time_ns: ns(s.queue),
        inference_time_ns: ns(s.inference),
    })
}

pub async fn embed(s: Arc<AppState>, r: pb::EmbedRequest) -> Result<pb::EmbedResponse, Status> {
    let req = EmbedRequest {
        inputs: EmbedInputs(one(Input::Text(r.inputs))),
        normalize: r.normalize.unwrap_or(true),
        truncate: Some(r.truncate),
        truncation_direction: direction(r.truncation_direction),
        dimensions: r.dimensions.map(|d| d as usize),
        prompt_name: r.prompt_name,
    };
    let (t, mut v) = tei::embed_with(&s, req).await.map_err(status)?;
    Ok(pb::EmbedResponse {
        embeddings: v.pop().unwrap_or_default(),
        metadata: metadata(&t),
    })
}

pub async fn embed_sparse(
    s: Arc<AppState>,
    r: pb::EmbedSparseRequest,
) -> Result<pb::EmbedSparseResponse, Status> {
    let req = tei::EmbedSparseRequest {
        inputs: EmbedInputs(one(Input::Text(r.inputs))),
        truncate: Some(r.truncate),
        truncation_direction: direction(r.truncation_direction),
        prompt_name: r.prompt_name,
    };
    let (t, mut v) = tei::embed_sparse_with(&s, req).await.map_err(status)?;
    let sparse_embeddings = v
        .pop()
        .unwrap_or_default()
        .into_iter()
        .map(|x| pb::SparseValue {
            index: x.index,
            value: x.value,
        })
        .collect();
    Ok(pb::EmbedSparseResponse {
        sparse_embeddings,
        metadata: metadata(&t),
    })
}

pub async fn embed_all(
    s: Arc<AppState>,
    r: pb::EmbedAllRequest,
) -> Result<pb::EmbedAllResponse, Status> {
    let req = tei::EmbedAllRequest {
        inputs: EmbedInputs(one(Input::Text(r.inputs))),
        truncate: Some(r.truncate),
        truncation_direction: direction(r.truncation_direction),
        prompt_name: r.prompt_name,
    };
    let (t, mut v) = tei::embed_all_with(&s, req).await.map_err(status)?;
    let token_embeddings = v
        .pop()
        .unwrap_or_default()
        .into_iter()
        .map(|embeddings| pb::TokenEmbedding { embeddings })
        .collect();
    Ok(pb::EmbedAllResponse {
        token_embeddings,
        metadata: metadata(&t),
    })
}

fn predictions(t: &Timing, mut p: classify::Predictions) -> pb::PredictResponse {
    let list: Vec<Prediction> = match &mut p {
        classify::Predictions::One(l) => std::mem::take(l),
        classify::Predictions::Many(ls) => ls.pop().unwrap_or_default(),
    };
    pb::PredictResponse {
        predictions: list
            .into_iter()
            .map(|p| pb::Prediction {
                score: p.score,
                label: p.label,
            })
            .collect(),
        metadata: metadata(t),
    }
}

pub async fn predict_input(
    s: Arc<AppState>,
    input: Input,
    raw_scores: bool,
    cut: Cut,
) -> Result<pb::PredictResponse, Status> {
    let req = PredictRequest {
        inputs: PredictInputs(one(input)),
        raw_scores,
        truncate: cut.truncate,
        truncation_direction: cut.truncation_direction,
    };
    let (t, p) = classify::predict_with(&s, req).await.map_err(status)?;
    Ok(predictions(&t, p))
}

pub async fn predict(
    s: Arc<AppState>,
    r: pb::PredictRequest,
) -> Result<pb::PredictResponse, Status> {
    let c = cut(r.truncate, r.truncation_direction);
    predict_input(s, Input::Text(r.inputs), r.raw_scores, c).await
}

pub async fn predict_pair(
    s: Arc<AppState>,
    r: pb::PredictPairRequest,
) -> Result<pb::PredictResponse, Status> {
    let c = cut(r.truncate, r.truncation_direction);
    let mut inputs = r.inputs;
    if inputs.len() != 2 {
        return Err(Status::invalid_argument(format!(
            "`inputs` must hold one pair of texts, not {}",
            inputs.len()
        )));
    }
    let b = inputs.pop().unwrap_or_default();
    let a = inputs.pop().unwrap_or_default();
    predict_input(s, Input::Pair(a, b), r.raw_scores, c).await
}

pub fn ranks(t: &Timing, ranks: Vec<Rank>) -> pb::RerankResponse {
    pb::RerankResponse {
        ranks: ranks
            .into_iter()
            .map(|r| pb::Rank {
                index: u32::try_from(r.index).unwrap_or(u32::MAX),
                text: r.text,
                score: r.score,
            })
            .collect(),
        metadata: metadata(t),
    }
}

pub async fn tokenize(
    s: Arc<AppState>,
    r: pb::EncodeRequest,
) -> Result<pb::EncodeResponse, Status> {
    let req = TokenizeRequest {
        inputs: TextInputs(one(r.inputs)),
        add_special_tokens: r.add_special_tokens,
        prompt_name: r.prompt_name,
    };
    let mut out = tokens::tokenize_with(&s, req).await.map_err(status)?;
    let as_u32 = |v: Option<usize>| v.map(|x| u32::try_from(x).unwrap_or(u32::MAX));
    let tokens = out
        .pop()
        .unwrap_or_default()
        .into_iter()
        .map(|t| pb::SimpleToken {
            id: t.id,
            text: t.text,
            special: t.special,
            start: as_u32(t.start),
            stop: as_u32(t.stop),
        })
        .collect();
    Ok(pb::EncodeResponse { tokens })
}

pub async fn decode(s: Arc<AppState>, r: pb::DecodeRequest) -> Result<pb::DecodeResponse, Status> {
    let req = DecodeRequest {
        ids: IdsInputs(one(r.ids)),
        skip_special_tokens: r.skip_special_tokens,
    };
    let mut texts = tokens::decode_with(&s, req).await.map_err(status)?;
    Ok(pb::DecodeResponse {
        text: texts.pop().unwrap_or_default(),
    })
}
