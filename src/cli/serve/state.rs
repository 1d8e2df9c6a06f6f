//! What every handler shares: the model (once loaded), limits, metrics, the API key and the
//! count of requests in flight; the JSON body extractor and the request checks common to the
//! routes; the auth and load-shedding middleware; `/health`, `/info`, `/metrics`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::{ApiError, Flavor, Kind, parse_json};
use super::metrics::Metrics;
use super::model::{Model, Text};

pub struct AppState {
    pub model: OnceLock<Model>,
    /// `/info`'s answer, set with the model.
    pub info: OnceLock<serde_json::Value>,
    pub metrics: Arc<Metrics>,
    pub api_key: Option<String>,
    pub max_client_batch: usize,
    pub max_concurrent: usize,
    pub auto_truncate: bool,
    inflight: AtomicUsize,
}

impl AppState {
    pub fn new(
        metrics: Arc<Metrics>,
        api_key: Option<String>,
        max_client_batch: usize,
        max_concurrent: usize,
        auto_truncate: bool,
    ) -> AppState {
        AppState {
            model: OnceLock::new(),
            info: OnceLock::new(),
            metrics,
            api_key,
            max_client_batch,
            max_concurrent,
            auto_truncate,
            inflight: AtomicUsize::new(0),
        }
    }

    /// The model, or 503 while it loads.
    pub fn model(&self) -> Result<&Model, ApiError> {
        self.model.get().ok_or_else(ApiError::unhealthy)
    }

    /// The request's texts: at least one, none empty, at most `--max-client-batch-size`.
    pub fn texts(&self, inputs: Inputs) -> Result<Vec<String>, ApiError> {
        let texts = inputs.into_vec();
        self.check_count(texts.len())?;
        if let Some(i) = texts.iter().position(|t| t.is_empty()) {
            return Err(ApiError::empty(format!("input {i} is an empty text")));
        }
        Ok(texts)
    }

    pub fn check_count(&self, n: usize) -> Result<(), ApiError> {
        if n == 0 {
            return Err(ApiError::empty("no inputs"));
        }
        if n > self.max_client_batch {
            return Err(ApiError::too_large(format!(
                "{n} inputs, over --max-client-batch-size {}",
                self.max_client_batch
            )));
        }
        Ok(())
    }

    /// Tokenizes single texts off the async threads.
    pub async fn tokenize(
        self: &Arc<Self>,
        texts: Vec<String>,
        truncate: Option<bool>,
    ) -> Result<Vec<Vec<u32>>, ApiError> {
        let texts = texts.into_iter().map(Text::One).collect();
        self.tokenize_texts(texts, truncate).await
    }

    /// Tokenizes texts or pairs off the async threads; `truncate` defaults to
    /// `--auto-truncate`.
    pub async fn tokenize_texts(
        self: &Arc<Self>,
        texts: Vec<Text>,
        truncate: Option<bool>,
    ) -> Result<Vec<Vec<u32>>, ApiError> {
        let truncate = truncate.unwrap_or(self.auto_truncate);
        let state = self.clone();
        tokio::task::spawn_blocking(move || state.model()?.encode_all(&texts, truncate))
            .await
            .map_err(|e| ApiError::bad_request(format!("tokenizing failed: {e}")))?
    }
}

/// `"text"` or `["text", ...]`.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Inputs {
    One(String),
    Many(Vec<String>),
}

impl Inputs {
    pub fn is_single(&self) -> bool {
        matches!(self, Inputs::One(_))
    }
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Inputs::One(t) => vec![t],
            Inputs::Many(v) => v,
        }
    }
}

/// A JSON body: unreadable, malformed or mistyped bodies are a 422 in the route's dialect.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let flavor = Flavor::of_path(req.uri().path());
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let kind = Kind::Validation;
            ApiError::new(e.status(), kind, e.body_text()).in_flavor(flavor)
        })?;
        parse_json(&bytes)
            .map(JsonBody)
            .map_err(|e| e.in_flavor(flavor))
    }
}

/// Middleware: every route but `/health` needs `Authorization: Bearer KEY` when a key is set.
pub async fn auth(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if let Some(key) = &s.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if path != "/health" && given != Some(key.as_str()) {
            let e = ApiError::new(
                StatusCode::UNAUTHORIZED,
                Kind::Unauthorized,
                "missing or wrong API key (send Authorization: Bearer KEY)",
            );
            let e = e.in_flavor(Flavor::of_path(path));
            return refuse(req, e).await;
        }
    }
    next.run(req).await
}

/// Answers `e` after reading the request's body: a client still sending its body to a
/// connection closed under it would see a reset instead of the answer.
async fn refuse(req: Request, e: ApiError) -> Response {
    let _ = axum::body::to_bytes(req.into_body(), super::MAX_BODY_BYTES).await;
    e.into_response()
}

/// Decrements the in-flight count when a request ends, however it ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Middleware: over `--max-concurrent-requests` in flight, a request is refused with 429.
pub async fn limit(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let before = s.inflight.fetch_add(1, Ordering::SeqCst);
    let _guard = InFlight(&s.inflight);
    if before >= s.max_concurrent {
        let e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            Kind::Overloaded,
            format!(
                "over --max-concurrent-requests {}; retry later",
                s.max_concurrent
            ),
        );
        let e = e.in_flavor(Flavor::of_path(req.uri().path()));
        return refuse(req, e).await;
    }
    next.run(req).await
}

/// 200 once the model is loaded and a test batch has run, 503 before.
pub async fn health(State(s): State<Arc<AppState>>) -> Result<StatusCode, ApiError> {
    s.model().map(|_| StatusCode::OK)
}

pub async fn info(State(s): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    s.info
        .get()
        .cloned()
        .map(Json)
        .ok_or_else(ApiError::unhealthy)
}

pub async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], s.metrics.render()).into_response()
}
