//! Retrieval models as they ship: the sentence-transformers layout (`modules.json` with
//! Transformer, Pooling, Dense and Normalize modules, `config_sentence_transformers.json`
//! with prompts), sentence-transformers cross-encoders (a one-label classifier whose
//! `config.json` names the score activation), late-interaction models in PyLate's layout or
//! sentence-transformers' `MultiVectorEncoder` layout (a Dense projection of every token,
//! query/document prefixes or prompts, query expansion, a skiplist) and sparse (SPLADE)
//! encoders.
//!
//! [`SentenceConfig`] is what the model directory says; the encoder follows it (see
//! `Encoder::sentence_config`). Everything past the encoder is small and runs on the CPU in
//! f32 with f64 sums: pooling ([`pool`]), Dense layers ([`dense`]), normalization and
//! Matryoshka truncation.

pub mod colbert;
pub mod dense;
mod layout;
pub mod pool;
pub mod quantize;
pub mod sparse;
pub mod token_pool;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use colbert::{ColbertConfig, Expansion, MultiVectorLayout};
pub use dense::{Activation, Dense};
pub use layout::layout_file_names;
pub use pool::{PoolingConfig, PoolingMode};
pub use sparse::{SparseConfig, SpladeActivation, SpladeMode};
pub use token_pool::TokenPooling;

use crate::hub::{Fetch, ModelFiles};
use crate::model::config::ModelConfig;
use crate::{Error, Result};

/// The file that marks a sentence-transformers layout.
pub const MODULES: &str = "modules.json";

/// What kind of retrieval model a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// A plain ModernBERT checkpoint (no sentence-transformers layout).
    Plain,
    /// A bi-encoder: one vector per text (Pooling, Dense, Normalize).
    Embedder,
    /// A cross-encoder: one relevance score per (query, document) pair.
    CrossEncoder,
    /// A late-interaction model: one vector per token, scored with MaxSim.
    Colbert,
    /// A sparse (SPLADE) encoder: one vocabulary-wide sparse vector per text.
    Sparse,
}

impl ModelKind {
    /// The kind's name in messages ("embedder", "cross-encoder", ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Embedder => "embedder",
            Self::CrossEncoder => "cross-encoder",
            Self::Colbert => "colbert",
            Self::Sparse => "sparse",
        }
    }
}

/// How a model scores a pair of vectors (`similarity_fn_name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Similarity {
    Cosine,
    Dot,
    Euclidean,
    Manhattan,
    /// ColBERT's late interaction (PyLate's `MaxSim`).
    MaxSim,
}

impl Similarity {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "cosine" => Some(Self::Cosine),
            "dot" => Some(Self::Dot),
            "euclidean" => Some(Self::Euclidean),
            "manhattan" => Some(Self::Manhattan),
            "MaxSim" | "maxsim" => Some(Self::MaxSim),
            _ => None,
        }
    }
}

/// A model directory's retrieval layout, as sentence-transformers / PyLate would load it.
#[derive(Debug, Clone, Default)]
pub struct SentenceConfig {
    /// Plain, embedder, cross-encoder or ColBERT.
    pub kind: Option<ModelKind>,
    /// The Transformer module's `max_seq_length` (tokens, special tokens included).
    pub max_seq_length: Option<usize>,
    /// The Pooling module (embedders).
    pub pooling: Option<PoolingConfig>,
    /// The Dense modules, in order.
    pub dense: Vec<Dense>,
    /// Whether a Normalize module ends the pipeline.
    pub normalize: bool,
    /// Named prompts (`config_sentence_transformers.json` `prompts`).
    pub prompts: BTreeMap<String, String>,
    /// The prompt used when none is asked for.
    pub default_prompt_name: Option<String>,
    /// How the model compares vectors (default cosine; ColBERT: MaxSim).
    pub similarity: Option<Similarity>,
    /// A cross-encoder's score activation (applied to its one logit).
    pub cross_activation: Option<Activation>,
    /// PyLate's ColBERT settings.
    pub colbert: Option<ColbertConfig>,
    /// A sparse encoder's SpladePooling.
    pub sparse: Option<SparseConfig>,
    /// A multi-vector model's token pooling (`HierarchicalTokenPooling`).
    pub token_pooling: Option<TokenPooling>,
}

/// The companion files of a sentence-transformers / PyLate layout that the model's source
/// has (`hub::resolve_with`): `modules.json`, the configs and the files of the folders it
/// names; none for a plain checkpoint.
pub fn companion_files(src: &mut dyn Fetch) -> Result<BTreeMap<String, PathBuf>> {
    let mut found = BTreeMap::new();
    if let Some(modules) = src.fetch(MODULES)? {
        let names = layout_file_names(&modules)?;
        found.insert(MODULES.to_string(), modules);
        for name in names {
            if let Some(path) = src.fetch(&name)? {
                found.insert(name, path);
            }
        }
    }
    Ok(found)
}

impl SentenceConfig {
    /// Reads the layout of a model's files; a plain checkpoint gives `kind: Plain`.
    pub fn from_files(files: &ModelFiles, config: &ModelConfig) -> Result<SentenceConfig> {
        if files.companions.is_empty() {
            let cross = layout::cross_encoder_activation(&files.config, None, config)?;
            return Ok(SentenceConfig {
                kind: Some(if cross.is_some() {
                    ModelKind::CrossEncoder
                } else {
                    ModelKind::Plain
                }),
                cross_activation: cross,
                ..Default::default()
            });
        }
        layout::read(&files.companions, &files.config, config)
    }

    /// The model's kind (`Plain` when unknown).
    pub fn kind(&self) -> ModelKind {
        self.kind.unwrap_or(ModelKind::Plain)
    }

    /// The prompt text of `name`, or an error listing the prompts the model has.
    pub fn prompt(&self, name: &str) -> Result<&str> {
        self.prompts.get(name).map(String::as_str).ok_or_else(|| {
            let known: Vec<&str> = self.prompts.keys().map(String::as_str).collect();
            Error::Option(format!(
                "the model has no prompt named '{name}' (its prompts: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    /// The prompt for queries (`query`) or documents (`document`/`passage`), when the model
    /// has one.
    pub fn role_prompt(&self, query: bool) -> Option<&str> {
        let names: &[&str] = if query {
            &["query", "search_query"]
        } else {
            &["document", "passage", "search_document", "corpus"]
        };
        names
            .iter()
            .find_map(|n| self.prompts.get(*n).map(String::as_str))
    }

    /// The width of the final vector (before any Matryoshka truncation).
    pub fn output_dim(&self, hidden: usize) -> usize {
        let pooled = self
            .pooling
            .as_ref()
            .map_or(hidden, |p| p.output_dim(hidden));
        self.dense.last().map_or(pooled, |d| d.out_features)
    }
}

/// A layout error naming the file.
pub(crate) fn layout_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Config {
        path: PathBuf::from(path),
        message: message.into(),
    }
}

/// Reads and parses a JSON file.
pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| layout_err(path, format!("not JSON: {e}")))
}

/// Scales vectors to unit L2 norm and cuts them to `dims` (the Matryoshka rule: cut first,
/// then normalize when asked).
pub fn finish_vector(v: &mut Vec<f32>, dims: Option<usize>, normalize: bool) {
    if let Some(d) = dims {
        v.truncate(d);
    }
    if normalize {
        crate::vector::l2_normalize(v);
    }
}
