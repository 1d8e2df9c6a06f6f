//! `POST /v1/embeddings` (also `/embeddings`): OpenAI's embeddings API. Vectors are
//! normalized; `encoding_format: "base64"` sends each as little-endian f32 bytes in base64.
//! Inputs are texts or token ids, as `/embed` takes them (ids are the whole sequence as
//! given; a prompt decodes them to text first, as TEI does).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::JsonBody;
use super::error::{ApiError, Flavor};
use super::parse::EmbedInputs;
use super::state::{AppState, Cut};
use super::tei::BYTES_PER_FLOAT;
use super::timing::Timing;

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Float,
    Base64,
}

#[derive(Deserialize)]
pub struct Request {
    input: EmbedInputs,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    encoding_format: Format,
    #[serde(default)]
    dimensions: Option<usize>,
    /// Accepted and ignored, as OpenAI's clients may send it.
    #[serde(default)]
    #[allow(dead_code)]
    user: Option<serde::de::IgnoredAny>,
}

pub async fn embeddings(State(s): State<Arc<AppState>>, body: JsonBody<Request>) -> Response {
    let mut t = s.timing();
    match answer(&s, body.value, &mut t).await {
        Ok(v) => (t, Json(v)).into_response(),
        Err(e) => e.in_flavor(Flavor::OpenAi).into_response(),
    }
}

async fn answer(s: &Arc<AppState>, req: Request, t: &mut Timing) -> Result<Value, ApiError> {
    let m = s.model()?;
    let dims = m.dimensions(req.dimensions)?;
    let spec = m.setup.spec(&m.enc, None)?;
    let batch = req.input.0;
    s.check_inputs(&batch)?;
    s.check_response(batch.items.len() * dims * BYTES_PER_FLOAT, "the vectors")?;
    let prompt = spec.prompt().map(str::to_string);
    let seqs = s.tokenize(batch.items, prompt, Cut::default(), t).await?;
    let tokens: usize = seqs.iter().map(Vec::len).sum();
    let vectors = m.pooled(spec, seqs, dims, true, t).await?;
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = match req.encoding_format {
                Format::Float => json!(v),
                Format::Base64 => {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
            };
            json!({ "object": "embedding", "embedding": embedding, "index": index })
        })
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": req.model.unwrap_or_else(|| m.id.clone()),
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    }))
}
