//! The loaded model as the server sees it: the encoder, its engine, the two tokenizers (one
//! that refuses texts over the limit, one that cuts them), the embedding setup (pooling,
//! prompts) and the task its heads serve.

use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Deserialize;
use wgbert::encoder::{EmbedOptions, EmbedPooling, EmbedSpec, Encoder, Prompt, l2_normalize};
use wgbert::text::{TextTokenizer, TruncationSide};

use super::engine::{EngineHandle, Output, Task};
use super::error::ApiError;
use super::timing::Timing;
use crate::cli::embed::PoolingArg;

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

/// What the model serves, which decides what `POST /` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// No task head: vectors (`/embed`), or similarity scores.
    Embedding,
    /// A sequence classifier with two or more labels (`/predict`).
    Classifier,
    /// A one-label sequence classifier: a cross-encoder (`/rerank`).
    Reranker,
    /// A masked language model (`/fill-mask`).
    FillMask,
    /// A token classifier: no route serves it yet.
    TokenClassifier,
    /// A sparse (SPLADE) encoder (`/embed_sparse`).
    Sparse,
}

/// How `/embed` and `/v1/embeddings` embed: `--pooling` when given, else the model's own
/// sentence-transformers modules (Pooling, Dense, Normalize, prompts), else mean pooling.
pub struct EmbedSetup {
    /// `--pooling`: pool the encoder's output this way instead of the model's modules.
    pub pooling: Option<EmbedPooling>,
    /// What `/info` reports: "cls", "mean", ... or "model" (its modules decide).
    pub describe: String,
}

/// The one place where the server decides pooling and prompts (see [`EmbedSetup`]).
pub fn embed_setup(cli: Option<PoolingArg>, enc: &Encoder) -> Result<EmbedSetup> {
    let pooling = match cli {
        Some(PoolingArg::Cls) => Some(EmbedPooling::Cls),
        Some(PoolingArg::Mean) => Some(EmbedPooling::Mean),
        None => None,
        Some(PoolingArg::None) => {
            anyhow::bail!("--pooling none does not pool: per-token vectors come from /embed_all")
        }
    };
    let describe = match (pooling, &enc.sentence_config().pooling) {
        (Some(p), _) => format!("{p:?}").to_lowercase(),
        (None, Some(_)) => "model".to_string(),
        (None, None) => "mean".to_string(),
    };
    Ok(EmbedSetup { pooling, describe })
}

impl EmbedSetup {
    /// The embedding of one request: its `prompt_name` (else the model's default prompt)
    /// checked against the model. An unknown name, or a model that does not embed into one
    /// vector (a cross-encoder, ColBERT), is a 400.
    pub fn spec(&self, enc: &Encoder, prompt_name: Option<&str>) -> Result<EmbedSpec, ApiError> {
        let opts = EmbedOptions {
            prompt: prompt_name.map_or(Prompt::ModelDefault, |n| Prompt::Name(n.to_string())),
            dimensions: None,
            normalize: false,
            pooling: self.pooling,
        };
        enc.embed_spec(&opts)
            .map_err(|e| ApiError::bad_request(format!("prompt_name or model: {e}")))
    }

    /// Every token's state (`/embed_all`), with the request's prompt before the text.
    pub fn spec_all(
        &self,
        enc: &Encoder,
        prompt_name: Option<&str>,
    ) -> Result<EmbedSpec, ApiError> {
        let opts = EmbedOptions {
            prompt: prompt_name.map_or(Prompt::ModelDefault, |n| Prompt::Name(n.to_string())),
            dimensions: None,
            normalize: false,
            pooling: Some(EmbedPooling::None),
        };
        enc.embed_spec(&opts)
            .map_err(|e| ApiError::bad_request(format!("prompt_name: {e}")))
    }
}

/// Puts the spec's prompt before every text, as sentence-transformers does.
pub fn with_prompt(spec: &EmbedSpec, texts: Vec<String>) -> Vec<String> {
    match spec.prompt() {
        Some(p) => texts.into_iter().map(|t| format!("{p}{t}")).collect(),
        None => texts,
    }
}

/// One input of a request: a text, or a (query, document) pair for cross-encoders.
pub enum Text {
    One(String),
    Pair(String, String),
}

pub struct Model {
    pub enc: Arc<Encoder>,
    pub engine: EngineHandle,
    pub id: String,
    pub setup: EmbedSetup,
    /// Longest input in tokens: the model's positions or the batch capacity, the smaller.
    pub max_input: usize,
    strict: TextTokenizer,
    cut_right: TextTokenizer,
    cut_left: TextTokenizer,
}

impl Model {
    pub fn new(
        id: String,
        enc: Arc<Encoder>,
        engine: EngineHandle,
        setup: EmbedSetup,
    ) -> Result<Model> {
        let max_input = enc.config().max_position_embeddings.min(enc.capacity());
        let inner = enc.tokenizer()?.inner().clone();
        let strict = TextTokenizer::from_tokenizer(inner.clone())?;
        let cut = |side| {
            TextTokenizer::from_tokenizer(inner.clone())?
                .with_limit_from(Some(max_input), true, side)
                .context("setting up truncation")
        };
        Ok(Model {
            cut_right: cut(TruncationSide::Right)?,
            cut_left: cut(TruncationSide::Left)?,
            enc,
            engine,
            id,
            setup,
            max_input,
            strict,
        })
    }

    /// The tokenizer without a length limit (for `/tokenize`).
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.strict
    }

    /// Tokenizes every input; one over `max_input` tokens is a 413 unless `truncate`, which
    /// cuts it from `side`.
    pub fn encode_all(
        &self,
        texts: &[Text],
        truncate: bool,
        side: Direction,
    ) -> Result<Vec<Vec<u32>>, ApiError> {
        let tok = match (truncate, side) {
            (false, _) => &self.strict,
            (true, Direction::Right) => &self.cut_right,
            (true, Direction::Left) => &self.cut_left,
        };
        let mut seqs = Vec::with_capacity(texts.len());
        for (i, t) in texts.iter().enumerate() {
            let enc = match t {
                Text::One(s) => tok.encode(s, i),
                Text::Pair(a, b) => tok.encode_pair(a, b, i),
            }
            .map_err(ApiError::from_engine)?;
            self.check_len(i, enc.ids.len())?;
            seqs.push(enc.ids);
        }
        Ok(seqs)
    }

    pub fn check_len(&self, index: usize, n: usize) -> Result<(), ApiError> {
        if n > self.max_input {
            return Err(ApiError::too_large(format!(
                "input {index} has {n} tokens, over the limit of {} (send \"truncate\": true, \
                 or leave the server's --auto-truncate on)",
                self.max_input
            )));
        }
        Ok(())
    }

    /// `dimensions` checked against the hidden size (`None`: all of them).
    pub fn dimensions(&self, dims: Option<usize>) -> Result<usize, ApiError> {
        let hidden = self
            .enc
            .sentence_config()
            .output_dim(self.enc.config().hidden_size);
        match dims {
            None => Ok(hidden),
            Some(d) if (1..=hidden).contains(&d) => Ok(d),
            Some(d) => Err(ApiError::bad_request(format!(
                "dimensions {d}: this model's vectors have 1 to {hidden} dimensions"
            ))),
        }
    }

    /// One pooled vector per sequence, cut to `dims` and then normalized if asked.
    pub async fn pooled(
        &self,
        spec: EmbedSpec,
        seqs: Vec<Vec<u32>>,
        dims: usize,
        normalize: bool,
        timing: &mut Timing,
    ) -> Result<Vec<Vec<f32>>, ApiError> {
        let out = self.run(Task::Embed(Box::new(spec)), seqs, timing).await?;
        let Output::Embeddings(embs) = out else {
            return Err(mismatch());
        };
        Ok(embs
            .into_iter()
            .map(|e| {
                let mut v = e.vectors.into_iter().next().unwrap_or_default();
                v.truncate(dims);
                if normalize {
                    l2_normalize(&mut v);
                }
                v
            })
            .collect())
    }

    /// Runs a task on the engine; its errors are 400 (input), 424 (device), 429 (queue
    /// full), 500 (a panic) or 503 (unhealthy). The queue and inference times go to `timing`.
    pub async fn run(
        &self,
        task: Task,
        seqs: Vec<Vec<u32>>,
        timing: &mut Timing,
    ) -> Result<Output, ApiError> {
        let (out, times) = self.engine.run(task, seqs).await?;
        timing.ran(times);
        Ok(out)
    }

    /// What the model serves (see [`ModelKind`]).
    pub fn kind(&self) -> ModelKind {
        let heads = self.enc.heads();
        let token_level = self
            .enc
            .config()
            .architectures
            .iter()
            .any(|a| a.ends_with("TokenClassification"));
        if self.enc.sentence_config().kind() == wgbert::sentence::ModelKind::Sparse {
            return ModelKind::Sparse;
        }
        match heads.classifier {
            Some(_) if token_level => ModelKind::TokenClassifier,
            Some(1) => ModelKind::Reranker,
            Some(_) => ModelKind::Classifier,
            None if heads.mlm => ModelKind::FillMask,
            None => ModelKind::Embedding,
        }
    }

    /// What the model's heads serve, in words, for wrong-task errors and `/info`.
    pub fn task(&self) -> String {
        let n = self.enc.heads().classifier.unwrap_or(0);
        match self.kind() {
            ModelKind::TokenClassifier => format!("token classifier ({n} labels)"),
            ModelKind::Reranker => "reranker (a one-label sequence classifier)".into(),
            ModelKind::Classifier => format!("sequence classifier ({n} labels)"),
            ModelKind::FillMask => "masked language model (fill-mask, embeddings)".into(),
            ModelKind::Embedding => "encoder without a task head (embeddings)".into(),
            ModelKind::Sparse => "sparse (SPLADE) encoder (sparse embeddings)".into(),
        }
    }

    /// Labels of a sequence classifier; a 400 naming the model's task otherwise.
    pub fn sequence_labels(&self, route: &str) -> Result<Vec<String>, ApiError> {
        match self.kind() {
            ModelKind::Classifier | ModelKind::Reranker => Ok(self.enc.label_names()),
            _ => Err(self.wrong_task(route, "a sequence classifier")),
        }
    }

    pub fn wrong_task(&self, route: &str, needs: &str) -> ApiError {
        ApiError::bad_request(format!(
            "{route} needs {needs}; this model is a {}",
            self.task()
        ))
    }
}

/// The engine answered with another kind of output than the task asks (a bug, not input).
pub fn mismatch() -> ApiError {
    ApiError::from_engine(wgbert::Error::PlanInput(
        "the engine returned results of another task".into(),
    ))
}
