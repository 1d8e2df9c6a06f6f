//! What a loaded model serves, decided once from its layout and heads: the server (which
//! route `POST /` takes, `/info`), the Python package (`Encoder.info["kind"]`) and the
//! desktop app all ask [`Encoder::task`] instead of deciding for themselves.

use super::Encoder;
use crate::sentence::ModelKind;

/// What a model serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelTask {
    /// A checkpoint without a task head or retrieval layout: token states, pooled vectors.
    Encoder,
    /// A sentence-transformers bi-encoder: one vector per text.
    Embedder,
    /// A masked language model: fill-mask (and pooled vectors).
    FillMask,
    /// A sequence classifier with two or more labels (texts or text pairs).
    Classifier,
    /// A token classifier: a label per token.
    TokenClassifier,
    /// A one-label sequence classifier: scores (query, document) pairs.
    CrossEncoder,
    /// A late-interaction (ColBERT) model: one vector per token.
    Colbert,
    /// A sparse (SPLADE) encoder: one vocabulary-wide sparse vector per text.
    Sparse,
}

impl ModelTask {
    /// Its short name: `encoder`, `embedder`, `fill-mask`, `classifier`,
    /// `token-classifier`, `cross-encoder`, `colbert`, `sparse`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Encoder => "encoder",
            Self::Embedder => "embedder",
            Self::FillMask => "fill-mask",
            Self::Classifier => "classifier",
            Self::TokenClassifier => "token-classifier",
            Self::CrossEncoder => "cross-encoder",
            Self::Colbert => "colbert",
            Self::Sparse => "sparse",
        }
    }

    /// What it serves, in words (`labels`: the classifier's label count).
    pub fn describe(self, labels: usize) -> String {
        match self {
            Self::Encoder => "encoder without a task head (embeddings)".into(),
            Self::Embedder => "sentence-transformers embedder (embeddings)".into(),
            Self::FillMask => "masked language model (fill-mask, embeddings)".into(),
            Self::Classifier => format!("sequence classifier ({labels} labels)"),
            Self::TokenClassifier => format!("token classifier ({labels} labels)"),
            Self::CrossEncoder => "cross-encoder (a one-label sequence classifier)".into(),
            Self::Colbert => "ColBERT model (multi-vector embeddings)".into(),
            Self::Sparse => "sparse (SPLADE) encoder (sparse embeddings)".into(),
        }
    }
}

impl Encoder {
    /// What this model serves: its retrieval layout first (sparse, ColBERT, cross-encoder,
    /// embedder), else its heads (token or sequence classifier, masked LM), else a bare
    /// encoder.
    pub fn task(&self) -> ModelTask {
        match self.sentence.kind() {
            ModelKind::Sparse => return ModelTask::Sparse,
            ModelKind::Colbert => return ModelTask::Colbert,
            ModelKind::CrossEncoder => return ModelTask::CrossEncoder,
            ModelKind::Embedder => return ModelTask::Embedder,
            ModelKind::Plain => {}
        }
        let token_level = self
            .config
            .architectures
            .iter()
            .any(|a| a.ends_with("TokenClassification"));
        match self.weights.heads.classifier {
            Some(_) if token_level => ModelTask::TokenClassifier,
            Some(_) => ModelTask::Classifier,
            None if self.weights.heads.mlm => ModelTask::FillMask,
            None => ModelTask::Encoder,
        }
    }
}
