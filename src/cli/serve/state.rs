//! What every handler shares: the model (once loaded), its health, the limits, metrics, the
//! API key and the request slots (`--max-concurrent-requests`, taken only once a whole,
//! valid body is in hand); the checks every route makes on its inputs, tokenizing through
//! the library's one path (`Encoder::inputs_tokens`), and `/health`, `/info`, `/metrics`.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wgbert::encoder::{Input, Truncation};
use wgbert::text::TruncationSide;

use super::error::{ApiError, Kind};
use super::health::Health;
use super::metrics::Metrics;
use super::model::Model;
use super::parse::Batch;
use super::timing::Timing;

/// The limits a request is held to.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Inputs in one request (`--max-client-batch-size`).
    pub max_client_batch: usize,
    /// Requests in flight (`--max-concurrent-requests`).
    pub max_concurrent: usize,
    /// Bytes in one request body (`--payload-limit`).
    pub payload: usize,
    /// Cut over-long inputs unless a request says `"truncate": false` (`--auto-truncate`).
    pub auto_truncate: bool,
    /// Time to receive a whole body (`--body-timeout`).
    pub body_timeout: Duration,
    /// Tokens across a request's inputs (`--max-request-tokens`; `None`: the client batch
    /// size times the model's longest input).
    pub max_request_tokens: Option<usize>,
    /// `[MASK]` tokens times `top_k` across a fill-mask request
    /// (`--max-fill-mask-candidates`).
    pub max_fill_candidates: usize,
    /// Bytes of one answer, estimated before the model runs (`--max-response-bytes`).
    pub max_response_bytes: usize,
}

/// A request slot; dropping it frees it.
pub type Slot = OwnedSemaphorePermit;

pub struct AppState {
    pub model: OnceLock<Model>,
    /// `/info`'s answer, set with the model.
    pub info: OnceLock<serde_json::Value>,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    pub api_key: Option<String>,
    pub limits: Limits,
    /// `x-compute-type`: "gpu", or "cpu" on a software adapter.
    pub compute_type: OnceLock<&'static str>,
    slots: Arc<Semaphore>,
}

impl AppState {
    pub fn new(
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        api_key: Option<String>,
        limits: Limits,
    ) -> AppState {
        AppState {
            model: OnceLock::new(),
            info: OnceLock::new(),
            health,
            metrics,
            api_key,
            slots: Arc::new(Semaphore::new(limits.max_concurrent)),
            limits,
            compute_type: OnceLock::new(),
        }
    }

    /// The model, or 503 while it loads or once the server is unhealthy.
    pub fn model(&self) -> Result<&Model, ApiError> {
        self.health.check()?;
        self.model.get().ok_or_else(ApiError::unhealthy)
    }

    /// A request slot, or 429 when `--max-concurrent-requests` are in flight.
    pub fn slot(&self) -> Result<Slot, ApiError> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            ApiError::overloaded(format!(
                "over --max-concurrent-requests {}; retry later",
                self.limits.max_concurrent
            ))
        })
    }

    /// A fresh timing for one request's headers.
    pub fn timing(&self) -> Timing {
        Timing::start(self.compute_type.get().copied().unwrap_or("gpu"))
    }

    /// At least one input, none empty, at most `--max-client-batch-size` (also checked while
    /// parsing; gRPC requests come here directly).
    pub fn check_inputs(&self, batch: &Batch<Input>) -> Result<(), ApiError> {
        self.check_count(batch.items.len())?;
        for (i, input) in batch.items.iter().enumerate() {
            let empty = match input {
                Input::Text(t) => t.is_empty(),
                Input::Pair(a, b) => a.is_empty() && b.is_empty(),
                Input::Ids(ids) => ids.is_empty(),
            };
            if empty {
                return Err(ApiError::empty(format!("input {i} is empty")));
            }
        }
        Ok(())
    }

    pub fn check_count(&self, n: usize) -> Result<(), ApiError> {
        if n == 0 {
            return Err(ApiError::empty("`inputs` cannot be empty"));
        }
        if n > self.limits.max_client_batch {
            return Err(ApiError::validation(format!(
                "batch size {n} > maximum allowed batch size {} (--max-client-batch-size)",
                self.limits.max_client_batch
            )));
        }
        Ok(())
    }

    /// Tokens a request may hold across its inputs.
    pub fn max_request_tokens(&self) -> usize {
        let longest = self.model.get().map_or(0, |m| m.max_input);
        self.limits
            .max_request_tokens
            .unwrap_or(self.limits.max_client_batch.saturating_mul(longest))
    }

    /// Refuses, with 413 naming the limit, an answer estimated at `bytes`.
    pub fn check_response(&self, bytes: usize, what: &str) -> Result<(), ApiError> {
        let max = self.limits.max_response_bytes;
        if bytes > max {
            return Err(ApiError::too_large(format!(
                "{what} would take about {bytes} bytes, over --max-response-bytes {max}"
            )));
        }
        Ok(())
    }

    /// Tokenizes inputs on a blocking thread through the library's one path: `prompt` before
    /// each text (kept whole when the text is cut), cut or refused as `cut` says
    /// (`truncate` defaults to `--auto-truncate`). Over `--max-request-tokens` in all, 413.
    pub async fn tokenize(
        self: &Arc<Self>,
        inputs: Vec<Input>,
        prompt: Option<String>,
        cut: Cut,
        timing: &mut Timing,
    ) -> Result<Vec<Vec<u32>>, ApiError> {
        let truncation = match cut.truncate.unwrap_or(self.limits.auto_truncate) {
            true => Truncation::Cut(cut.truncation_direction.side()),
            false => Truncation::Refuse,
        };
        let chars = inputs.iter().map(Input::chars).sum();
        let state = self.clone();
        let start = Instant::now();
        let seqs = blocking(move || {
            let m = state.model()?;
            m.enc
                .inputs_tokens(&inputs, prompt.as_deref(), truncation, 0)
                .map_err(ApiError::from_engine)
        })
        .await?;
        timing.tokenized(start.elapsed(), chars, &seqs);
        let total: usize = seqs.iter().map(Vec::len).sum();
        let max = self.max_request_tokens();
        if total > max {
            return Err(ApiError::too_large(format!(
                "the inputs hold {total} tokens, over --max-request-tokens {max}"
            )));
        }
        Ok(seqs)
    }
}

/// Runs `f` on a blocking thread (tokenizing, decoding: work that would stall the async
/// workers); a panic there is a 500 for this request only.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Kind::Backend,
            format!("a worker failed on this request: {e}"),
        )
    })?
}

/// TEI's `truncation_direction`: which end of a text over the limit is cut. Any other value
/// is a 422.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    #[serde(alias = "left")]
    Left,
    #[serde(alias = "right")]
    #[default]
    Right,
}

impl Direction {
    pub fn side(self) -> TruncationSide {
        match self {
            Direction::Left => TruncationSide::Left,
            Direction::Right => TruncationSide::Right,
        }
    }
}

/// A request's length policy: TEI's `truncate` and `truncation_direction`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cut {
    pub truncate: Option<bool>,
    pub truncation_direction: Direction,
}

/// 200 once the model is loaded and a test batch has run; 503 before, and for good after
/// the device is lost or hung or the engine thread died (the body says why). Load never
/// turns it 503: slots, queues and connections have their own answers.
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
