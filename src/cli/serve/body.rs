//! Request bodies within bounds, and refusals that reach their clients.
//!
//! A body is read up to `--payload-limit` bytes and within `--body-timeout`; only then is it
//! parsed (counting its inputs, `parse.rs`) and only a whole, valid body takes a request
//! slot. A request refused before its body is read (a missing key 401, a declared or actual
//! size over the limit 413) is answered at once with `Connection: close`, and its body is
//! read and dropped in the background (up to [`DRAIN_FACTOR`] times the payload limit,
//! within the body timeout): a client that is still sending when the connection closes
//! would get a reset instead of its answer, as HTTP/1.1 clients that write the whole body
//! before reading (Python's `http.client`, `requests`) do. A body that does not arrive in
//! time is answered 408 and its connection closed.
//!
//! Why not tower-http's layers: its body timeout is reset at every frame (a body trickled a
//! byte at a time never times out), and its body limit answers 413 and drops the rest of the
//! body (a reset for a client still sending). Nor tower's concurrency and load-shed layers:
//! they take a slot when the request reaches the service, before its body is read. So the
//! body is read here over http-body-util's frames, with one deadline for the whole body, and
//! the slot is tokio's semaphore, taken after the parse (as TEI takes its permit).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use super::error::{ApiError, Flavor, Kind};
use super::parse::parse;
use super::state::{AppState, Limits, Slot};

/// A refused body is read and dropped up to this many times `--payload-limit`.
pub const DRAIN_FACTOR: usize = 16;

/// Answers `e` now with `Connection: close`, reading and dropping `body` in the background.
pub fn refuse(e: ApiError, body: Option<Body>, limits: &Limits) -> Response {
    if let Some(body) = body {
        drain(
            body,
            limits.payload.saturating_mul(DRAIN_FACTOR),
            limits.body_timeout,
        );
    }
    let mut r = e.into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Reads `body` to its end and drops it, for at most `bytes` bytes and `time`; the
/// connection keeps reading it meanwhile (the answer goes out first), then closes.
fn drain(mut body: Body, bytes: usize, time: Duration) {
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + time;
        let mut read = 0usize;
        while read <= bytes {
            match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(Some(Ok(frame))) => read += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
    });
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Whether the body says it is JSON (`application/json`, or a `+json` type), as axum's
/// `Json` (and so TEI) requires.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Reads a request's body: at most `--payload-limit` bytes (413, the rest drained), within
/// `--body-timeout` (408).
pub async fn read(req: Request, limits: &Limits) -> Result<Vec<u8>, Response> {
    let flavor = Flavor::of_path(req.uri().path());
    let declared = declared_length(req.headers()).unwrap_or(0);
    let mut body = req.into_body();
    let mut buf = Vec::with_capacity(declared.min(limits.payload as u64) as usize);
    let deadline = tokio::time::Instant::now() + limits.body_timeout;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => return Ok(buf),
            Ok(Some(Err(e))) => {
                let e = ApiError::bad_request(format!("reading the request body failed: {e}"));
                return Err(refuse(e.in_flavor(flavor), None, limits));
            }
            Err(_) => {
                let e = ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    Kind::Timeout,
                    format!(
                        "the request body did not arrive within --body-timeout {} s",
                        limits.body_timeout.as_secs_f64()
                    ),
                );
                return Err(refuse(e.in_flavor(flavor), None, limits));
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > limits.payload {
            let e = ApiError::too_large(format!(
                "the request body is over --payload-limit {} bytes",
                limits.payload
            ));
            return Err(refuse(e.in_flavor(flavor), Some(body), limits));
        }
        buf.extend_from_slice(&data);
    }
}

/// A JSON body parsed into `T` (its inputs counted while parsing), with the request slot it
/// took once it was whole and valid. Errors speak the route's dialect.
pub struct JsonBody<T> {
    pub value: T,
    pub slot: Slot,
}

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(req: Request, s: &Arc<AppState>) -> Result<Self, Response> {
        let flavor = Flavor::of_path(req.uri().path());
        let json = is_json(req.headers());
        let bytes = read(req, &s.limits).await?;
        let value = json_value(s, json, &bytes).map_err(|e| e.in_flavor(flavor).into_response())?;
        drop(bytes);
        let slot = s.slot().map_err(|e| e.in_flavor(flavor).into_response())?;
        Ok(JsonBody { value, slot })
    }
}

/// Parses a body that said it is JSON (415 otherwise).
pub fn json_value<T: DeserializeOwned>(
    s: &AppState,
    json: bool,
    bytes: &[u8],
) -> Result<T, ApiError> {
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Kind::Validation,
            "expected a request with `Content-Type: application/json`",
        ));
    }
    parse(bytes, s.limits.max_client_batch)
}

/// A raw body that said whether it is JSON (`POST /`, which parses by the model's kind).
pub struct RawBody {
    pub json: bool,
    pub bytes: Vec<u8>,
}

impl FromRequest<Arc<AppState>> for RawBody {
    type Rejection = Response;

    async fn from_request(req: Request, s: &Arc<AppState>) -> Result<Self, Response> {
        let json = is_json(req.headers());
        let bytes = read(req, &s.limits).await?;
        Ok(RawBody { json, bytes })
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

/// Whether `authorization` (a header's value) carries the key.
pub fn authorized(authorization: Option<&str>, key: &str) -> bool {
    let given = authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    same_secret(given.as_bytes(), key.as_bytes())
}

/// Routes that answer without a key: the probes.
fn is_public(path: &str) -> bool {
    matches!(path, "/health" | "/ping")
}

/// Middleware: every route but the probes needs `Authorization: Bearer KEY` when a key is
/// set (`GET /` is the health probe; `POST /` needs the key). A request without it is
/// answered 401 before its body is read.
pub async fn auth(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let public = is_public(path) || (path == "/" && req.method() == axum::http::Method::GET);
    if let Some(key) = &s.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !public && !authorized(given, key) {
            let e = ApiError::new(
                StatusCode::UNAUTHORIZED,
                Kind::Unauthorized,
                "missing or wrong API key (send Authorization: Bearer KEY)",
            )
            .in_flavor(Flavor::of_path(path));
            return refuse(e, Some(req.into_body()), &s.limits);
        }
    }
    next.run(req).await
}

/// Middleware: a body whose declared length is over `--payload-limit` is a 413 before any
/// of it is read.
pub async fn payload(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(n) = declared_length(req.headers()).filter(|&n| n > s.limits.payload as u64) {
        let e = ApiError::too_large(format!(
            "the request body has {n} bytes, over --payload-limit {}",
            s.limits.payload
        ))
        .in_flavor(Flavor::of_path(req.uri().path()));
        return refuse(e, Some(req.into_body()), &s.limits);
    }
    next.run(req).await
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
        assert!(authorized(Some("Bearer k"), "k"));
        assert!(!authorized(Some("k"), "k"));
        assert!(!authorized(None, "k"));
    }

    #[test]
    fn json_content_types() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        for (ct, want) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("application/vnd.api+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(is_json(&h), want, "{ct}");
        }
    }
}
