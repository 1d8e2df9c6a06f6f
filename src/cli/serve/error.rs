//! HTTP errors in the two dialects: TEI routes answer `{"error", "error_type"}`, OpenAI routes
//! `{"error": {"message", "type", "code"}}`. Every failure becomes one of these, never a panic
//! or a bare status.

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
    /// Malformed JSON or wrong types (422), a bad value (400), too long or too many (413).
    Validation,
    /// No input at all (400).
    Empty,
    /// Over `--max-concurrent-requests` (429).
    Overloaded,
    /// Missing or wrong API key (401).
    Unauthorized,
    /// The device failed (424), or the engine failed on a batch (500).
    Backend,
    /// The model is not loaded yet, or the device is lost or hung (503).
    Unhealthy,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Validation => "Validation",
            Kind::Empty => "Empty",
            Kind::Overloaded => "Overloaded",
            Kind::Unauthorized => "Unauthorized",
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

    /// Malformed JSON or wrong types.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, Kind::Validation, message)
    }

    /// A value the request may not have (wrong task, bad option, no [MASK]...).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Kind::Validation, message)
    }

    pub fn empty(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Kind::Empty, message)
    }

    /// Too long a text or too many of them.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, Kind::Validation, message)
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

    /// An engine error: the caller's fault (400) or the device's (424; the server stays up).
    pub fn from_engine(e: wgbert::Error) -> Self {
        use wgbert::Error as E;
        match e {
            E::Input { .. } | E::MissingHead { .. } | E::Option(_) | E::Tokenizer(_) => {
                Self::bad_request(e.to_string())
            }
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
                    Kind::Validation | Kind::Empty => "invalid_request_error",
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

/// Parses a JSON body; anything malformed or of the wrong type is a 422 naming the problem.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::unprocessable(format!("bad request body: {e}")))
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
    fn device_failures_are_424_and_input_errors_400() {
        let lost = ApiError::from_engine(wgbert::Error::DeviceLost("reset".into()));
        assert_eq!(lost.status, StatusCode::FAILED_DEPENDENCY);
        let bad = ApiError::from_engine(wgbert::Error::Input {
            index: 2,
            message: "x".into(),
        });
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(parse_json::<Vec<u32>>(b"[1, \"a\"]").is_err_and(|e| e.status == 422));
    }
}
