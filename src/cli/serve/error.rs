//! HTTP errors in the two dialects: TEI routes answer `{"error", "error_type"}`, OpenAI routes
//! `{"error": {"message", "type", "code"}}`. Every failure becomes one of these, never a panic
//! or a bare status. Kinds map to statuses as TEI's router maps its error types: `Validation`
//! and `Tokenizer` 422, `Empty` 400, `Overloaded` 429, `Backend` 424, `Unhealthy` 503; and,
//! outside TEI's types, a body or work over a limit 413, malformed JSON 400, a body that
//! does not arrive in time 408, a body that is not JSON 415, a missing key 401.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Which API's error body a route speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Tei,
    OpenAi,
}

impl Flavor {
    /// OpenAI's routes (`/v1/...`, `/embeddings`); everything else speaks TEI.
    pub fn of_path(path: &str) -> Flavor {
        if path.starts_with("/v1/") || path == "/embeddings" {
            Flavor::OpenAi
        } else {
            Flavor::Tei
        }
    }
}

/// What went wrong, TEI's `error_type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value the request may not have (422), malformed JSON (400), over a limit (413).
    Validation,
    /// The tokenizer failed on an input (422).
    Tokenizer,
    /// No input at all (400).
    Empty,
    /// Over `--max-concurrent-requests` or a full queue (429).
    Overloaded,
    /// Missing or wrong API key (401).
    Unauthorized,
    /// The body did not arrive within `--body-timeout` (408).
    Timeout,
    /// The model cannot serve the route, the device failed (424), or the engine failed on
    /// a batch (500).
    Backend,
    /// The model is not loaded yet, or the device is lost or hung (503).
    Unhealthy,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Validation => "Validation",
            Kind::Tokenizer => "Tokenizer",
            Kind::Empty => "Empty",
            Kind::Overloaded => "Overloaded",
            Kind::Unauthorized => "Unauthorized",
            Kind::Timeout => "Timeout",
            Kind::Backend => "Backend",
            Kind::Unhealthy => "Unhealthy",
        }
    }
}

/// An error answer: status, kind, message, and the dialect to say it in.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: Kind,
    pub message: String,
    pub flavor: Flavor,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: Kind, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            flavor: Flavor::Tei,
        }
    }

    /// A value the request may not have: wrong types, a bad option, too many inputs, an
    /// input over the model's limit (TEI's `Validation`, 422).
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, Kind::Validation, message)
    }

    /// Malformed JSON (400, as axum's `Json` answers it in TEI).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Kind::Validation, message)
    }

    pub fn empty(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Kind::Empty, message)
    }

    /// A body, or the work or answer a request asks for, over one of the server's limits;
    /// the message names the limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, Kind::Validation, message)
    }

    /// Over `--max-concurrent-requests`, or the queue is full.
    pub fn overloaded(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, Kind::Overloaded, message)
    }

    /// The model cannot serve this route (TEI's `Backend`, 424).
    pub fn wrong_task(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FAILED_DEPENDENCY, Kind::Backend, message)
    }

    pub fn unhealthy() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Kind::Unhealthy,
            "the model is still loading",
        )
    }

    /// The server cannot serve any more (a lost or hung device, a dead engine thread).
    pub fn unhealthy_because(why: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Kind::Unhealthy,
            format!("the server is unhealthy: {why}; restart it"),
        )
    }

    /// Says this error in `flavor`'s body.
    pub fn in_flavor(mut self, flavor: Flavor) -> Self {
        self.flavor = flavor;
        self
    }

    /// An engine error: the caller's (422: an input or an option; the tokenizer's), a task
    /// the model has no head for, or the device's (424; the server stays up).
    pub fn from_engine(e: wgbert::Error) -> Self {
        use wgbert::Error as E;
        match e {
            E::Input { .. } | E::Option(_) => Self::validation(e.to_string()),
            E::Tokenizer(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                Kind::Tokenizer,
                e.to_string(),
            ),
            other => Self::new(
                StatusCode::FAILED_DEPENDENCY,
                Kind::Backend,
                other.to_string(),
            ),
        }
    }

    fn body(&self) -> serde_json::Value {
        match self.flavor {
            Flavor::Tei => json!({ "error": self.message, "error_type": self.kind.name() }),
            Flavor::OpenAi => {
                let kind = match self.kind {
                    Kind::Unauthorized => "authentication_error",
                    Kind::Overloaded => "rate_limit_error",
                    Kind::Backend | Kind::Unhealthy => "server_error",
                    Kind::Validation | Kind::Tokenizer | Kind::Empty | Kind::Timeout => {
                        "invalid_request_error"
                    }
                };
                json!({ "error": {
                    "message": self.message,
                    "type": kind,
                    "code": self.kind.name().to_lowercase(),
                } })
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_follow_each_dialect() {
        let e = ApiError::too_large("input 0: too long");
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            e.body(),
            json!({"error": "input 0: too long", "error_type": "Validation"})
        );
        let o = ApiError::empty("no input").in_flavor(Flavor::OpenAi);
        assert_eq!(o.body()["error"]["type"], "invalid_request_error");
        assert_eq!(o.body()["error"]["code"], "empty");
        assert_eq!(Flavor::of_path("/v1/embeddings"), Flavor::OpenAi);
        assert_eq!(Flavor::of_path("/embed"), Flavor::Tei);
    }

    #[test]
    fn statuses_follow_tei_error_types() {
        let lost = ApiError::from_engine(wgbert::Error::DeviceLost("reset".into()));
        assert_eq!(lost.status, StatusCode::FAILED_DEPENDENCY);
        let bad = ApiError::from_engine(wgbert::Error::Input {
            index: 2,
            message: "x".into(),
        });
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        let tok = ApiError::from_engine(wgbert::Error::Tokenizer("x".into()));
        assert_eq!(
            (tok.status, tok.body()["error_type"].clone()),
            (StatusCode::UNPROCESSABLE_ENTITY, json!("Tokenizer"))
        );
        let head = ApiError::from_engine(wgbert::Error::MissingHead {
            task: "fill masks",
            message: "x".into(),
        });
        assert_eq!(head.status, StatusCode::FAILED_DEPENDENCY);
        assert_eq!(ApiError::empty("x").status, StatusCode::BAD_REQUEST);
        assert_eq!(
            ApiError::overloaded("x").status,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}
