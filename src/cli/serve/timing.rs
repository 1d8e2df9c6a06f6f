//! TEI's timing headers on every answer that ran the model: `x-compute-time` and
//! `x-total-time` (ms since the request's handler started), `x-tokenization-time`,
//! `x-queue-time`, `x-inference-time` (ms), `x-compute-tokens`, `x-compute-characters` and
//! `x-compute-type`.

use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use axum::response::{IntoResponseParts, ResponseParts};

use super::engine::Times;

#[derive(Debug, Clone)]
pub struct Timing {
    start: Instant,
    compute_type: &'static str,
    tokenization: Duration,
    queue: Duration,
    inference: Duration,
    tokens: usize,
    chars: usize,
}

impl Timing {
    pub fn start(compute_type: &'static str) -> Timing {
        Timing {
            start: Instant::now(),
            compute_type,
            tokenization: Duration::ZERO,
            queue: Duration::ZERO,
            inference: Duration::ZERO,
            tokens: 0,
            chars: 0,
        }
    }

    /// Adds one tokenization: its time, the characters in and the tokens out.
    pub fn tokenized(&mut self, took: Duration, chars: usize, seqs: &[Vec<u32>]) {
        self.tokenization += took;
        self.chars += chars;
        self.tokens += seqs.iter().map(Vec::len).sum::<usize>();
    }

    /// Adds one engine job's queue and inference time.
    pub fn ran(&mut self, t: Times) {
        self.queue += t.queue;
        self.inference += t.inference;
    }
}

/// What the gRPC services report as `Metadata`: characters, tokens, and the total,
/// tokenization, queue and inference times.
#[cfg(feature = "grpc")]
#[derive(Debug, Clone, Copy)]
pub struct Spent {
    pub chars: usize,
    pub tokens: usize,
    pub total: Duration,
    pub tokenization: Duration,
    pub queue: Duration,
    pub inference: Duration,
}

#[cfg(feature = "grpc")]
impl Timing {
    /// The figures so far.
    pub fn spent(&self) -> Spent {
        Spent {
            chars: self.chars,
            tokens: self.tokens,
            total: self.start.elapsed(),
            tokenization: self.tokenization,
            queue: self.queue,
            inference: self.inference,
        }
    }
}

fn ms(d: Duration) -> HeaderValue {
    HeaderValue::from(d.as_millis() as u64)
}

impl IntoResponseParts for Timing {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        let total = self.start.elapsed();
        let h = res.headers_mut();
        h.insert(
            "x-compute-type",
            HeaderValue::from_static(self.compute_type),
        );
        h.insert("x-compute-time", ms(total));
        h.insert("x-total-time", ms(total));
        h.insert("x-compute-characters", HeaderValue::from(self.chars as u64));
        h.insert("x-compute-tokens", HeaderValue::from(self.tokens as u64));
        h.insert("x-tokenization-time", ms(self.tokenization));
        h.insert("x-queue-time", ms(self.queue));
        h.insert("x-inference-time", ms(self.inference));
        Ok(res)
    }
}
