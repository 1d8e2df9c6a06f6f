//! The loaded model as the server sees it: the encoder, its engine, the two tokenizers (one
//! that refuses texts over the limit, one that cuts them), the embedding setup (pooling,
//! prompts) and the task its heads serve.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use wgbert::encoder::{EmbedPooling, Encoder, l2_normalize};
use wgbert::text::TextTokenizer;

use super::engine::{EngineHandle, Output, Task};
use super::error::ApiError;
use crate::cli::embed::PoolingArg;

/// How `/embed` and `/v1/embeddings` embed: the pooling and the model's named prompts.
pub struct EmbedSetup {
    pub pooling: EmbedPooling,
    /// Prompt name -> text put before the input (sentence-transformers `prompts`).
    pub prompts: BTreeMap<String, String>,
}

/// The one place where the server decides pooling and prompts: `--pooling` when given, else
/// what the model's own configuration says, else mean. The configuration read today is
/// `config.json`, which names neither, so the fallback is mean and there are no prompts.
pub fn embed_setup(cli: Option<PoolingArg>, _enc: &Encoder) -> Result<EmbedSetup> {
    let pooling = match cli {
        Some(PoolingArg::Cls) => EmbedPooling::Cls,
        Some(PoolingArg::Mean) | None => EmbedPooling::Mean,
        Some(PoolingArg::None) => {
            anyhow::bail!("--pooling none does not pool: per-token vectors come from /embed_all")
        }
    };
    Ok(EmbedSetup {
        pooling,
        prompts: BTreeMap::new(),
    })
}

impl EmbedSetup {
    /// Puts the named prompt before every text; an unknown name is a 400 listing the known.
    pub fn apply_prompt(
        &self,
        name: Option<&str>,
        texts: Vec<String>,
    ) -> Result<Vec<String>, ApiError> {
        let Some(name) = name else {
            return Ok(texts);
        };
        match self.prompts.get(name) {
            Some(prompt) => Ok(texts.into_iter().map(|t| format!("{prompt}{t}")).collect()),
            None if self.prompts.is_empty() => Err(ApiError::bad_request(format!(
                "prompt_name '{name}': this model defines no prompts"
            ))),
            None => Err(ApiError::bad_request(format!(
                "prompt_name '{name}' is not one of the model's prompts: {}",
                self.prompts.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
        }
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
    cut: TextTokenizer,
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
        let cut = TextTokenizer::from_tokenizer(inner)?
            .with_limit(Some(max_input), true)
            .context("setting up truncation")?;
        Ok(Model {
            enc,
            engine,
            id,
            setup,
            max_input,
            strict,
            cut,
        })
    }

    /// The tokenizer without a length limit (for `/tokenize`).
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.strict
    }

    /// Tokenizes every input; one over `max_input` tokens is a 413 unless `truncate`.
    pub fn encode_all(&self, texts: &[Text], truncate: bool) -> Result<Vec<Vec<u32>>, ApiError> {
        let tok = if truncate { &self.cut } else { &self.strict };
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
                 or start the server with --auto-truncate)",
                self.max_input
            )));
        }
        Ok(())
    }

    /// `dimensions` checked against the hidden size (`None`: all of them).
    pub fn dimensions(&self, dims: Option<usize>) -> Result<usize, ApiError> {
        let hidden = self.enc.config().hidden_size;
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
        seqs: Vec<Vec<u32>>,
        dims: usize,
        normalize: bool,
    ) -> Result<Vec<Vec<f32>>, ApiError> {
        let out = self.run(Task::Embed(self.setup.pooling), seqs).await?;
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

    /// Runs a task on the engine; engine errors become 400 (input) or 424 (device).
    pub async fn run(&self, task: Task, seqs: Vec<Vec<u32>>) -> Result<Output, ApiError> {
        self.engine
            .run(task, seqs)
            .await
            .map_err(ApiError::from_engine)
    }

    /// What the model's heads serve, in words, for wrong-task errors and `/info`.
    pub fn task(&self) -> String {
        let heads = self.enc.heads();
        let token_level = self
            .enc
            .config()
            .architectures
            .iter()
            .any(|a| a.ends_with("TokenClassification"));
        match heads.classifier {
            Some(n) if token_level => format!("token classifier ({n} labels)"),
            Some(1) => "reranker (a one-label sequence classifier)".into(),
            Some(n) => format!("sequence classifier ({n} labels)"),
            None if heads.mlm => "masked language model (fill-mask, embeddings)".into(),
            None => "encoder without a task head (embeddings)".into(),
        }
    }

    /// Labels of a sequence classifier; a 400 naming the model's task otherwise.
    pub fn sequence_labels(&self, route: &str) -> Result<Vec<String>, ApiError> {
        let token_level = self.task().starts_with("token");
        match self.enc.heads().classifier {
            Some(_) if !token_level => Ok(self.enc.label_names()),
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
