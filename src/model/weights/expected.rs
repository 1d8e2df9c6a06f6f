//! Which tensors a config requires, which heads a checkpoint carries, and the check of both
//! before anything is uploaded.

use super::Checkpoint;
use crate::model::config::ModelConfig;
use crate::{Error, Result};

/// The task heads present in a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Heads {
    /// `head.dense`, `head.norm` (and `decoder.bias` when the config has one): fill-mask.
    pub mlm: bool,
    /// `head.*` plus `classifier.*` with this many labels: sequence or token classification.
    pub classifier: Option<usize>,
}

impl Heads {
    /// A bare encoder.
    pub const NONE: Heads = Heads {
        mlm: false,
        classifier: None,
    };
    /// The masked-LM head.
    pub const MLM: Heads = Heads {
        mlm: true,
        classifier: None,
    };

    /// A classifier with `labels` outputs.
    pub fn classifier(labels: usize) -> Heads {
        Heads {
            mlm: false,
            classifier: Some(labels),
        }
    }

    /// Whether `head.dense` / `head.norm` are needed.
    pub fn has_head(self) -> bool {
        self.mlm || self.classifier.is_some()
    }
}

/// Every tensor `cfg` requires with `heads`, by canonical name, with its shape, in model order.
pub fn expected_tensors(cfg: &ModelConfig, heads: Heads) -> Vec<(String, Vec<usize>)> {
    let (h, v, i) = (cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size);
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    let mut push = |name: String, shape: Vec<usize>| out.push((name, shape));
    let norm = |push: &mut dyn FnMut(String, Vec<usize>), prefix: &str| {
        push(format!("{prefix}.weight"), vec![h]);
        if cfg.norm_bias {
            push(format!("{prefix}.bias"), vec![h]);
        }
    };
    let linear = |push: &mut dyn FnMut(String, Vec<usize>), prefix: &str, rows, cols, bias| {
        push(format!("{prefix}.weight"), vec![rows, cols]);
        if bias {
            push(format!("{prefix}.bias"), vec![rows]);
        }
    };
    push("model.embeddings.tok_embeddings.weight".into(), vec![v, h]);
    norm(&mut push, "model.embeddings.norm");
    for layer in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{layer}");
        if layer > 0 {
            norm(&mut push, &format!("{p}.attn_norm"));
        }
        linear(
            &mut push,
            &format!("{p}.attn.Wqkv"),
            3 * h,
            h,
            cfg.attention_bias,
        );
        linear(&mut push, &format!("{p}.attn.Wo"), h, h, cfg.attention_bias);
        norm(&mut push, &format!("{p}.mlp_norm"));
        linear(&mut push, &format!("{p}.mlp.Wi"), 2 * i, h, cfg.mlp_bias);
        linear(&mut push, &format!("{p}.mlp.Wo"), h, i, cfg.mlp_bias);
    }
    norm(&mut push, "model.final_norm");
    if heads.has_head() {
        linear(&mut push, "head.dense", h, h, cfg.classifier_bias);
        norm(&mut push, "head.norm");
    }
    if heads.mlm {
        if !cfg.tie_word_embeddings {
            push("decoder.weight".into(), vec![v, h]);
        }
        if cfg.decoder_bias {
            push("decoder.bias".into(), vec![v]);
        }
    }
    if let Some(labels) = heads.classifier {
        // nn.Linear(hidden, num_labels) always has a bias; `classifier_bias` is head.dense's.
        linear(&mut push, "classifier", labels, h, true);
    }
    out
}

/// Number of parameters `cfg` stores with `heads` (ModernBERT-base MLM: 149,655,232).
pub fn param_count(cfg: &ModelConfig, heads: Heads) -> usize {
    expected_tensors(cfg, heads)
        .iter()
        .map(|(_, shape)| shape.iter().product::<usize>())
        .sum()
}

impl Checkpoint {
    /// Which heads the tensors present describe (before checking them).
    pub fn detect_heads(&self, cfg: &ModelConfig) -> Heads {
        if let Some(shape) = self.shape("classifier.weight") {
            return Heads::classifier(shape.first().copied().unwrap_or(0));
        }
        let decoder_ok = !cfg.decoder_bias || self.contains("decoder.bias");
        let mlm =
            self.contains("head.dense.weight") && self.contains("head.norm.weight") && decoder_ok;
        Heads {
            mlm,
            classifier: None,
        }
    }

    /// Checks presence, shape and dtype of every tensor `cfg` requires, before any upload;
    /// returns the heads the checkpoint carries. Errors name the tensor.
    pub fn validate(&self, cfg: &ModelConfig) -> Result<Heads> {
        let heads = self.detect_heads(cfg);
        if let Some(labels) = heads.classifier {
            let shape = self.shape("classifier.weight").unwrap_or_default();
            if shape.len() != 2 || labels == 0 {
                return Err(self.err(format!(
                    "tensor 'classifier.weight' has shape {shape:?}; expected [num_labels, {}]",
                    cfg.hidden_size
                )));
            }
            if cfg.num_labels() != 0 && cfg.num_labels() != labels {
                return Err(self.err(format!(
                    "tensor 'classifier.weight' has {labels} rows but config.json `id2label` \
                     names {} labels",
                    cfg.num_labels()
                )));
            }
        }
        let expected = expected_tensors(cfg, heads);
        for (name, shape) in &expected {
            let Some(found) = self.shape(name) else {
                return Err(self.err(format!(
                    "missing tensor '{name}' (expected shape {shape:?}); the checkpoint does \
                     not match config.json"
                )));
            };
            if found != shape.as_slice() {
                return Err(self.err(format!(
                    "tensor '{name}' has shape {found:?} but config.json implies {shape:?}"
                )));
            }
            self.dtype(name)?;
        }
        let unused: Vec<&str> = self
            .names()
            .into_iter()
            .filter(|n| !expected.iter().any(|(e, _)| e == n) && *n != "decoder.weight")
            .collect();
        if !unused.is_empty() {
            log::warn!(
                "{}: {} tensor(s) not used by this config, e.g. '{}' (check the *_bias flags)",
                self.dir.display(),
                unused.len(),
                unused[0]
            );
        }
        Ok(heads)
    }

    fn err(&self, message: String) -> Error {
        Error::Weights {
            path: self.dir.clone(),
            message,
        }
    }
}
