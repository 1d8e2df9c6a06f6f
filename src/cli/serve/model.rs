//! The loaded model as the server sees it: the encoder, its engine, the embedding setup
//! (pooling, prompts) and what it serves (`Encoder::task`, decided by the library).

use std::sync::Arc;

use anyhow::Result;
use wgbert::encoder::{
    EmbedOptions, EmbedPooling, EmbedSpec, Encoder, ModelTask, Prompt, l2_normalize,
};

use super::engine::{EngineHandle, Output, Task};
use super::error::ApiError;
use super::timing::Timing;
use crate::cli::embed::PoolingArg;

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
    /// checked against the model. An unknown name is a 422; a model that does not embed
    /// into one vector (a cross-encoder, ColBERT, SPLADE) a 424, as TEI answers both.
    pub fn spec(&self, enc: &Encoder, prompt_name: Option<&str>) -> Result<EmbedSpec, ApiError> {
        let opts = EmbedOptions {
            prompt: prompt_name.map_or(Prompt::ModelDefault, |n| Prompt::Name(n.to_string())),
            dimensions: None,
            normalize: false,
            pooling: self.pooling,
        };
        enc.embed_spec(&opts).map_err(ApiError::from_engine)
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
        enc.embed_spec(&opts).map_err(ApiError::from_engine)
    }
}

pub struct Model {
    pub enc: Arc<Encoder>,
    pub engine: EngineHandle,
    pub id: String,
    pub setup: EmbedSetup,
    /// Longest input in tokens (`Encoder::max_input_tokens`).
    pub max_input: usize,
}

impl Model {
    pub fn new(id: String, enc: Arc<Encoder>, engine: EngineHandle, setup: EmbedSetup) -> Model {
        Model {
            max_input: enc.max_input_tokens(),
            enc,
            engine,
            id,
            setup,
        }
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
            Some(d) => Err(ApiError::validation(format!(
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

    /// What the model serves, as the library decides it.
    pub fn task(&self) -> ModelTask {
        self.enc.task()
    }

    /// What the model serves, in words, for wrong-task errors and `/info`.
    pub fn describe(&self) -> String {
        let labels = self.enc.heads().classifier.unwrap_or(0);
        self.task().describe(labels)
    }

    /// Labels of a sequence classifier (or cross-encoder); a 424 naming the model's task
    /// otherwise.
    pub fn sequence_labels(&self, route: &str) -> Result<Vec<String>, ApiError> {
        match self.task() {
            ModelTask::Classifier | ModelTask::CrossEncoder => Ok(self.enc.label_names()),
            _ => Err(self.wrong_task(route, "a sequence classifier")),
        }
    }

    /// A route this model cannot serve: 424, as TEI answers it (a backend error).
    pub fn wrong_task(&self, route: &str, needs: &str) -> ApiError {
        ApiError::wrong_task(format!(
            "{route} needs {needs}; this model is a {}",
            self.describe()
        ))
    }
}

/// The engine answered with another kind of output than the task asks (a bug, not input).
pub fn mismatch() -> ApiError {
    ApiError::from_engine(wgbert::Error::PlanInput(
        "the engine returned results of another task".into(),
    ))
}
