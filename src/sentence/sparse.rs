//! Sparse (SPLADE) encoders as sentence-transformers' `SparseEncoder` saves them: an MLM
//! transformer (`MLMTransformer`, or a `Transformer` with `transformer_task: "fill-mask"`)
//! followed by `SpladePooling`. The pooling itself runs on the GPU (`ops::splade`).

use std::path::Path;

use serde_json::Value;

use super::layout_err;
use crate::Result;
pub use crate::ops::splade::{SpladeActivation, SpladeMode};

/// A `SpladePooling` module's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SparseConfig {
    /// `pooling_strategy`: max (default) or sum over the tokens.
    pub mode: SpladeMode,
    /// `activation_function`: relu (default, `log1p(relu(x))`) or log1p_relu.
    pub activation: SpladeActivation,
    /// `embedding_dimension` (or the older `word_embedding_dimension`), when given.
    pub dimension: Option<usize>,
}

impl SparseConfig {
    /// Parses a SpladePooling `config.json`.
    pub fn from_json(v: &Value, path: &Path) -> Result<Self> {
        let obj = v
            .as_object()
            .ok_or_else(|| layout_err(path, "the SpladePooling config is not a JSON object"))?;
        let text = |key: &str| obj.get(key).filter(|x| !x.is_null());
        let mode = match text("pooling_strategy") {
            None => SpladeMode::Max,
            Some(x) => match x.as_str() {
                Some("max") => SpladeMode::Max,
                Some("sum") => SpladeMode::Sum,
                _ => {
                    return Err(layout_err(
                        path,
                        format!("unknown pooling_strategy {x} (known: max, sum)"),
                    ));
                }
            },
        };
        let activation = match text("activation_function") {
            None => SpladeActivation::Relu,
            Some(x) => match x.as_str() {
                Some("relu") => SpladeActivation::Relu,
                Some("log1p_relu") => SpladeActivation::Log1pRelu,
                _ => {
                    return Err(layout_err(
                        path,
                        format!("unknown activation_function {x} (known: relu, log1p_relu)"),
                    ));
                }
            },
        };
        let dimension =
            match text("embedding_dimension").or_else(|| text("word_embedding_dimension")) {
                None => None,
                Some(x) => Some(x.as_u64().ok_or_else(|| {
                    layout_err(
                        path,
                        format!("the embedding dimension is not a number: {x}"),
                    )
                })? as usize),
            };
        Ok(SparseConfig {
            mode,
            activation,
            dimension,
        })
    }
}
