//! `POST /` (and `/invocations`): the route TEI's clients call at the server's root URL.
//! As in TEI it serves the model's kind:
//! - an embedder embeds (`/embed`), or scores `{"inputs": {"source_sentence",
//!   "sentences"}}` (`/similarity`, huggingface_hub's `sentence_similarity`);
//! - a classifier predicts: TEI's answer, or the Inference API's (one list per input,
//!   `parameters.top_k` and `function_to_apply`) when the body has `parameters`, as
//!   huggingface_hub's `text_classification` sends it;
//! - a one-label cross-encoder reranks (`/rerank`);
//! - a masked language model fills masks in the transformers pipeline's format;
//! - a sparse (SPLADE) encoder gives sparse vectors (`/embed_sparse`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ApiError, parse_json};
use super::model::ModelKind;
use super::state::AppState;
use super::{classify, fill, tei};

pub async fn post(State(s): State<Arc<AppState>>, req: Request) -> Result<Response, ApiError> {
    let bytes = Bytes::from_request(req, &())
        .await
        .map_err(|e| ApiError::new(e.status(), super::error::Kind::Validation, e.body_text()))?;
    let body: Value = parse_json(&bytes)?;
    let kind = s.model()?.kind();
    let has_parameters = body.get("parameters").is_some_and(Value::is_object);
    let similarity = body
        .get("inputs")
        .is_some_and(|i| i.get("source_sentence").is_some());
    Ok(match kind {
        ModelKind::Embedding if similarity => {
            tei::similarity_with(&s, typed(body)?).await.into_response()
        }
        ModelKind::Embedding => tei::embed_with(&s, typed(body)?).await.into_response(),
        ModelKind::Classifier if has_parameters => {
            classify::pipeline(&s, typed(body)?).await.into_response()
        }
        ModelKind::Classifier => classify::predict_with(&s, typed(body)?)
            .await
            .into_response(),
        ModelKind::Reranker => classify::rerank_with(&s, typed(body)?)
            .await
            .into_response(),
        ModelKind::FillMask => fill::pipeline(&s, typed(body)?).await.into_response(),
        ModelKind::Sparse => tei::embed_sparse_with(&s, typed(body)?)
            .await
            .into_response(),
        ModelKind::TokenClassifier => {
            let m = s.model()?;
            return Err(m.wrong_task(
                "POST /",
                "an embedder, a sequence classifier, a reranker or a masked language model",
            ));
        }
    })
}

/// The body as the route's request type; a mistyped body is a 422.
fn typed<T: DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    serde_json::from_value(body)
        .map_err(|e| ApiError::unprocessable(format!("bad request body: {e}")))
}
