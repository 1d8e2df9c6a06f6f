//! `POST /` (and `/invocations`): the route TEI's clients call at the server's root URL.
//! As in TEI it serves the model's task (`Encoder::task`, decided by the library):
//! - an embedder (or a bare encoder) embeds (`/embed`), or scores `{"inputs":
//!   {"source_sentence", "sentences"}}` (`/similarity`, huggingface_hub's
//!   `sentence_similarity`);
//! - a classifier predicts: TEI's answer, or the Inference API's (one list per input,
//!   `parameters.top_k` and `function_to_apply`) when the body has `parameters`, as
//!   huggingface_hub's `text_classification` sends it;
//! - a cross-encoder reranks (`/rerank`);
//! - a masked language model fills masks in the transformers pipeline's format;
//! - a sparse (SPLADE) encoder gives sparse vectors (`/embed_sparse`).
//!
//! The body is parsed straight into the request type of the model's task, counting its
//! inputs as every route does; a token classifier or ColBERT model has no route here (424).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use wgbert::encoder::ModelTask;

use super::body::{RawBody, json_value};
use super::classify::{self, PipelineParameters, PredictRequest};
use super::parse::{PredictInputs, RootInputs};
use super::state::{AppState, Direction};
use super::tei::{self, EmbedRequest, SimilarityParameters, respond};
use super::{fill, state::Slot};

/// `POST /` on an embedder: `/embed`'s body or `/similarity`'s.
#[derive(Deserialize)]
struct RootEmbed {
    inputs: RootInputs,
    #[serde(default = "tei::yes")]
    normalize: bool,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    truncation_direction: Direction,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    prompt_name: Option<String>,
    #[serde(default)]
    parameters: Option<SimilarityParameters>,
}

/// `POST /` on a classifier: `/predict`'s body, or the Inference API's with `parameters`.
#[derive(Deserialize)]
struct RootPredict {
    inputs: PredictInputs,
    #[serde(default)]
    raw_scores: bool,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    truncation_direction: Direction,
    #[serde(default)]
    parameters: Option<PipelineParameters>,
}

pub async fn post(State(s): State<Arc<AppState>>, body: RawBody) -> Response {
    let task = match s.model() {
        Ok(m) => m.task(),
        Err(e) => return e.into_response(),
    };
    // Parsed as the task's request type, then a slot, as the named routes do.
    macro_rules! parsed {
        ($t:ty) => {{
            let value: $t = match json_value(&s, body.json, &body.bytes) {
                Ok(v) => v,
                Err(e) => return e.into_response(),
            };
            let slot: Slot = match s.slot() {
                Ok(slot) => slot,
                Err(e) => return e.into_response(),
            };
            (value, slot)
        }};
    }
    match task {
        ModelTask::Encoder | ModelTask::Embedder => {
            let (req, _slot) = parsed!(RootEmbed);
            match req.inputs {
                RootInputs::Similarity(inputs) => {
                    respond(tei::similarity_with(&s, inputs, req.parameters).await)
                }
                RootInputs::Embed(inputs) => {
                    let embed = EmbedRequest {
                        inputs,
                        normalize: req.normalize,
                        truncate: req.truncate,
                        truncation_direction: req.truncation_direction,
                        dimensions: req.dimensions,
                        prompt_name: req.prompt_name,
                    };
                    respond(tei::embed_with(&s, embed).await)
                }
            }
        }
        ModelTask::Classifier => {
            let (req, _slot) = parsed!(RootPredict);
            match req.parameters {
                Some(p) => respond(classify::pipeline(&s, req.inputs, p).await),
                None => {
                    let predict = PredictRequest {
                        inputs: req.inputs,
                        raw_scores: req.raw_scores,
                        truncate: req.truncate,
                        truncation_direction: req.truncation_direction,
                    };
                    respond(classify::predict_with(&s, predict).await)
                }
            }
        }
        ModelTask::CrossEncoder => {
            let (req, _slot) = parsed!(classify::RerankRequest);
            respond(classify::rerank_with(&s, req).await)
        }
        ModelTask::FillMask => {
            let (req, _slot) = parsed!(fill::FillMaskRequest);
            respond(fill::pipeline(&s, req).await)
        }
        ModelTask::Sparse => {
            let (req, _slot) = parsed!(tei::EmbedSparseRequest);
            respond(tei::embed_sparse_with(&s, req).await)
        }
        ModelTask::TokenClassifier | ModelTask::Colbert => match s.model() {
            Ok(m) => m
                .wrong_task(
                    "POST /",
                    "an embedder, a sequence classifier, a cross-encoder, a masked language \
                     model or a sparse encoder",
                )
                .into_response(),
            Err(e) => e.into_response(),
        },
    }
}
