//! What every handler shares: the model (once loaded), its health, limits, metrics, the API
//! key and the count of requests in flight; the JSON body extractor and the request checks
//! common to the routes; the auth, body-size and load-shedding middleware; `/health`,
//! `/info`, `/metrics`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::{ApiError, Flavor, Kind, parse_json};
use super::health::Health;
use super::metrics::Metrics;
use super::model::{Direction, Model, Text};
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
}

pub struct AppState {
    pub model: OnceLock<Model>,
    /// `/info`'s answer, set with the model.
    pub info: OnceLock<serde_json::Value>,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    api_key: Option<String>,
    pub limits: Limits,
    /// `x-compute-type`: "gpu", or "cpu" on a software adapter.
    pub compute_type: OnceLock<&'static str>,
    inflight: AtomicUsize,
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
            limits,
            compute_type: OnceLock::new(),
            inflight: AtomicUsize::new(0),
        }
    }

    /// The model, or 503 while it loads or once the server is unhealthy.
    pub fn model(&self) -> Result<&Model, ApiError> {
        self.health.check()?;
        self.model.get().ok_or_else(ApiError::unhealthy)
    }

    /// A fresh timing for one request's headers.
    pub fn timing(&self) -> Timing {
        Timing::start(self.compute_type.get().copied().unwrap_or("gpu"))
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
        if n > self.limits.max_client_batch {
            return Err(ApiError::too_large(format!(
                "{n} inputs, over --max-client-batch-size {}",
                self.limits.max_client_batch
            )));
        }
        Ok(())
    }

    /// Tokenizes single texts on a blocking thread.
    pub async fn tokenize(
        self: &Arc<Self>,
        texts: Vec<String>,
        cut: Cut,
        timing: &mut Timing,
    ) -> Result<Vec<Vec<u32>>, ApiError> {
        let texts = texts.into_iter().map(Text::One).collect();
        self.tokenize_texts(texts, cut, timing).await
    }

    /// Tokenizes texts or pairs on a blocking thread; `cut.truncate` defaults to
    /// `--auto-truncate`.
    pub async fn tokenize_texts(
        self: &Arc<Self>,
        texts: Vec<Text>,
        cut: Cut,
        timing: &mut Timing,
    ) -> Result<Vec<Vec<u32>>, ApiError> {
        let truncate = cut.truncate.unwrap_or(self.limits.auto_truncate);
        let chars = texts
            .iter()
            .map(|t| match t {
                Text::One(a) => a.chars().count(),
                Text::Pair(a, b) => a.chars().count() + b.chars().count(),
            })
            .sum();
        let state = self.clone();
        let start = Instant::now();
        let seqs = blocking(move || {
            state
                .model()?
                .encode_all(&texts, truncate, cut.truncation_direction)
        })
        .await?;
        timing.tokenized(start.elapsed(), chars, &seqs);
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

/// A request's length policy: TEI's `truncate` and `truncation_direction`.
#[derive(Debug, Deserialize, Default, Clone, Copy)]
pub struct Cut {
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: Direction,
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

/// A JSON body: unreadable, malformed or mistyped bodies are a 422 in the route's dialect,
/// a body over `--payload-limit` a 413.
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

/// Compares two byte strings in time that depends on their lengths only.
fn same_secret(given: &[u8], key: &[u8]) -> bool {
    let mut diff = given.len() ^ key.len();
    for (i, k) in key.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(!k);
        diff |= usize::from(g ^ k);
    }
    diff == 0
}

/// Routes that answer without a key: the probes.
fn is_public(path: &str) -> bool {
    matches!(path, "/health" | "/ping")
}

/// Middleware: every route but the probes needs `Authorization: Bearer KEY` when a key is
/// set. `GET /` is the health probe; `POST /` needs the key.
pub async fn auth(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let public = is_public(path) || (path == "/" && req.method() == axum::http::Method::GET);
    if let Some(key) = &s.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !public && !same_secret(given.as_bytes(), key.as_bytes()) {
            let e = ApiError::new(
                StatusCode::UNAUTHORIZED,
                Kind::Unauthorized,
                "missing or wrong API key (send Authorization: Bearer KEY)",
            );
            return refuse(e.in_flavor(Flavor::of_path(path)));
        }
    }
    next.run(req).await
}

/// Middleware: a body whose declared length is over `--payload-limit` is a 413 before any
/// of it is read.
pub async fn payload(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > s.limits.payload as u64) {
        let e = ApiError::too_large(format!(
            "the request body has {n} bytes, over --payload-limit {}",
            s.limits.payload
        ));
        return refuse(e.in_flavor(Flavor::of_path(req.uri().path())));
    }
    next.run(req).await
}

/// Answers `e` without reading the request's body, and closes the connection after it: a
/// body still on its way is not read into memory.
fn refuse(e: ApiError) -> Response {
    let mut r = e.into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
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
    if before >= s.limits.max_concurrent {
        let e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            Kind::Overloaded,
            format!(
                "over --max-concurrent-requests {}; retry later",
                s.limits.max_concurrent
            ),
        );
        let flavor = Flavor::of_path(req.uri().path());
        discard_body(req, s.limits.payload).await;
        return refuse(e.in_flavor(flavor));
    }
    next.run(req).await
}

/// Reads a refused request's body (up to `limit` bytes, for at most 5 s) and drops each
/// chunk as it comes: a client that is still sending when the answer comes and the
/// connection closes gets a reset instead of the answer (a 429 must reach it), and no
/// chunk is kept in memory.
async fn discard_body(req: Request, limit: usize) {
    use axum::body::HttpBody;
    let mut body = req.into_body();
    let drain = async {
        let mut read = 0usize;
        loop {
            let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx));
            match frame.await {
                Some(Ok(f)) => read += f.data_ref().map_or(0, |d| d.len()),
                Some(Err(_)) | None => break,
            }
            if read > limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
}

/// 200 once the model is loaded and a test batch has run; 503 before, and for good after
/// the device is lost or hung or the engine thread died (the body says why).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(same_secret(b"secret", b"secret"));
        assert!(!same_secret(b"secreT", b"secret"));
        assert!(!same_secret(b"secret1", b"secret"));
        assert!(!same_secret(b"secre", b"secret"));
        assert!(!same_secret(b"", b"secret"));
        assert!(same_secret(b"", b""));
    }
}
