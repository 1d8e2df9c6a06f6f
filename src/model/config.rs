//! `config.json` of a ModernBERT checkpoint, read into [`ModelConfig`].
//!
//! Two dialects exist (see shared/MODERNBERT.md): the released 4.x one
//! (`global_attn_every_n_layers`, `global_rope_theta`, `local_rope_theta`) and the one written by
//! transformers >= 5 (`layer_types`, `rope_parameters`). Both resolve to the same per-layer view.
//! Unknown keys are ignored; known keys with a wrong type or an impossible value are errors that
//! name the key, so a bad file fails here and not halfway through a GPU upload.

mod json;
pub mod rope;

use std::path::Path;

use serde_json::Value;

use crate::{Error, Result};
use json::Fields;
pub use rope::RopeScaling;

/// Largest vocabulary we accept; larger is certainly a broken file (ModernBERT has 50368).
pub const MAX_VOCAB: usize = 10_000_000;
/// Largest hidden size we accept (ModernBERT-large has 1024).
pub const MAX_HIDDEN: usize = 65_536;
/// Largest intermediate size we accept.
pub const MAX_INTERMEDIATE: usize = 1 << 20;
/// Largest layer count we accept.
pub const MAX_LAYERS: usize = 1024;

/// Attention pattern of one encoder layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// Every key of the sequence (`full_attention`).
    Global,
    /// Keys within `local_attention / 2` positions on either side (`sliding_attention`).
    Local,
}

impl LayerKind {
    /// Parses a transformers 5 `layer_types` entry.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "full_attention" => Some(LayerKind::Global),
            "sliding_attention" => Some(LayerKind::Local),
            _ => None,
        }
    }

    /// The transformers 5 name of this kind.
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Global => "full_attention",
            LayerKind::Local => "sliding_attention",
        }
    }
}

/// Activation functions (`hidden_activation`, `classifier_activation`); the kernels' own type.
pub use crate::ops::Activation;

/// How sequence classification pools the final hidden states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pooling {
    /// Row 0 of the sequence (the `[CLS]` token).
    Cls,
    /// Mean over the real tokens of the sequence.
    Mean,
}

impl Pooling {
    /// Parses `classifier_pooling` (`cls` or `mean`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "cls" => Some(Pooling::Cls),
            "mean" => Some(Pooling::Mean),
            _ => None,
        }
    }

    /// The config.json spelling.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Cls => "cls",
            Pooling::Mean => "mean",
        }
    }
}

/// Everything the engine needs from config.json, resolved and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    /// `I`: the MLP's `Wi` produces `2 I` features (input and gate).
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// `hidden_size / num_attention_heads`; always even (RoPE rotates halves).
    pub head_dim: usize,
    pub max_position_embeddings: usize,
    /// LayerNorm epsilon, from `norm_eps` only (`layer_norm_eps` is a stale key).
    pub norm_eps: f32,
    /// Total local window; a local layer sees keys with `|i - j| <= local_attention / 2`.
    pub local_attention: usize,
    /// One entry per layer.
    pub layers: Vec<LayerKind>,
    /// RoPE theta of global layers.
    pub global_rope_theta: f32,
    /// RoPE theta of local layers.
    pub local_rope_theta: f32,
    /// The `rope_type` of global layers' `rope_parameters` and its keys.
    pub global_rope_scaling: RopeScaling,
    /// The `rope_type` of local layers' `rope_parameters` and its keys.
    pub local_rope_scaling: RopeScaling,
    pub hidden_activation: Activation,
    pub classifier_activation: Activation,
    /// Bias on `Wqkv` and `attn.Wo`.
    pub attention_bias: bool,
    /// Bias on `mlp.Wi` and `mlp.Wo`.
    pub mlp_bias: bool,
    /// Bias on every LayerNorm.
    pub norm_bias: bool,
    /// Bias on `head.dense` (the `classifier` linear always has one).
    pub classifier_bias: bool,
    /// `decoder.bias` exists.
    pub decoder_bias: bool,
    /// The MLM decoder reuses `tok_embeddings` (no `decoder.weight` stored).
    pub tie_word_embeddings: bool,
    pub classifier_pooling: Pooling,
    /// Label names ordered by id; empty when the config has none.
    pub id2label: Vec<String>,
    pub pad_token_id: Option<u32>,
    pub cls_token_id: Option<u32>,
    pub sep_token_id: Option<u32>,
    pub mask_token_id: Option<u32>,
    pub unk_token_id: Option<u32>,
    /// `architectures` as written (e.g. `ModernBertForMaskedLM`); empty when absent.
    pub architectures: Vec<String>,
}

impl ModelConfig {
    /// Reads and validates a config.json file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json_str(&text, path)
    }

    /// Parses and validates config.json text; `path` only labels errors.
    pub fn from_json_str(text: &str, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let value: Value = serde_json::from_str(text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: format!("not valid JSON: {e}"),
        })?;
        let Some(obj) = value.as_object() else {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: "expected a JSON object at the top level".into(),
            });
        };
        let config = Self::from_fields(&Fields::new(obj, path))?;
        config.check().map_err(|message| Error::Config {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    /// The real shapes of ModernBERT `"base"` or `"large"`, or `"mmbert-base"` (base's
    /// encoder with a 256,000-token vocabulary, Gemma's, as mmBERT-base has), for runs with
    /// random weights.
    pub fn random(size: &str) -> Result<Self> {
        let (hidden, intermediate, layers, heads, vocab) = match size {
            "base" => (768, 1152, 22, 12, 50368),
            "large" => (1024, 2624, 28, 16, 50368),
            "mmbert-base" => (768, 1152, 22, 12, 256000),
            other => {
                return Err(Error::Option(format!(
                    "unknown model size '{other}' (expected 'base', 'large' or 'mmbert-base')"
                )));
            }
        };
        Ok(ModelConfig {
            vocab_size: vocab,
            hidden_size: hidden,
            intermediate_size: intermediate,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            head_dim: hidden / heads,
            max_position_embeddings: 8192,
            norm_eps: 1e-5,
            local_attention: 128,
            layers: every_nth_global(layers, 3),
            global_rope_theta: 160_000.0,
            local_rope_theta: 10_000.0,
            global_rope_scaling: RopeScaling::Default,
            local_rope_scaling: RopeScaling::Default,
            hidden_activation: Activation::GeluErf,
            classifier_activation: Activation::GeluErf,
            attention_bias: false,
            mlp_bias: false,
            norm_bias: false,
            classifier_bias: false,
            decoder_bias: true,
            tie_word_embeddings: true,
            classifier_pooling: Pooling::Mean,
            id2label: Vec::new(),
            pad_token_id: Some(50283),
            cls_token_id: Some(50281),
            sep_token_id: Some(50282),
            mask_token_id: Some(50284),
            unk_token_id: Some(50280),
            architectures: vec!["ModernBertForMaskedLM".into()],
        })
    }

    /// Attention pattern of layer `layer` (panics if out of range, like indexing).
    pub fn layer_kind(&self, layer: usize) -> LayerKind {
        self.layers[layer]
    }

    /// RoPE theta of layer `layer` (panics if out of range, like indexing).
    pub fn rope_theta(&self, layer: usize) -> f32 {
        match self.layers[layer] {
            LayerKind::Global => self.global_rope_theta,
            LayerKind::Local => self.local_rope_theta,
        }
    }

    /// The RoPE of layer `layer` (panics if out of range): its frequencies and the factor
    /// transformers multiplies cos and sin by (`rope::RopeScaling::frequencies`; validated
    /// when the config was read).
    pub fn rope_frequencies(&self, layer: usize) -> Result<(Vec<f32>, f32)> {
        let scaling = match self.layers[layer] {
            LayerKind::Global => &self.global_rope_scaling,
            LayerKind::Local => &self.local_rope_scaling,
        };
        scaling
            .frequencies(
                self.rope_theta(layer),
                self.head_dim,
                self.max_position_embeddings,
            )
            .map_err(|message| Error::Config {
                path: "config.json".into(),
                message,
            })
    }

    /// Half of the local window: a local layer lets query i see key j iff `|i - j| <=` this.
    pub fn window_half(&self) -> usize {
        self.local_attention / 2
    }

    /// Number of labels named by the config (`id2label`), 0 when none.
    pub fn num_labels(&self) -> usize {
        self.id2label.len()
    }

    fn from_fields(f: &Fields<'_>) -> Result<Self> {
        if let Some(model_type) = f.opt_str("model_type")? {
            if model_type != "modernbert" {
                return Err(f.err(format!(
                    "`model_type` is '{model_type}', this engine only runs 'modernbert'"
                )));
            }
        }
        let num_hidden_layers = f.req_usize("num_hidden_layers")?;
        let hidden_size = f.req_usize("hidden_size")?;
        let num_attention_heads = f.req_usize("num_attention_heads")?;
        let hidden_activation = f.activation("hidden_activation", Activation::GeluErf)?;
        let max_position_embeddings = f.opt_usize("max_position_embeddings")?.unwrap_or(8192);
        let json::Layers {
            kinds: layers,
            thetas: (global_rope_theta, local_rope_theta),
            scalings: (global_rope_scaling, local_rope_scaling),
        } = f.layers(num_hidden_layers, max_position_embeddings)?;
        Ok(ModelConfig {
            vocab_size: f.req_usize("vocab_size")?,
            hidden_size,
            intermediate_size: f.req_usize("intermediate_size")?,
            num_hidden_layers,
            num_attention_heads,
            head_dim: hidden_size.checked_div(num_attention_heads).unwrap_or(0),
            max_position_embeddings,
            norm_eps: f.opt_f64("norm_eps")?.unwrap_or(1e-5) as f32,
            local_attention: f.opt_usize("local_attention")?.unwrap_or(128),
            layers,
            global_rope_theta,
            local_rope_theta,
            global_rope_scaling,
            local_rope_scaling,
            hidden_activation,
            // transformers' own default, whatever `hidden_activation` says.
            classifier_activation: f.activation("classifier_activation", Activation::GeluErf)?,
            attention_bias: f.opt_bool("attention_bias")?.unwrap_or(false),
            mlp_bias: f.opt_bool("mlp_bias")?.unwrap_or(false),
            norm_bias: f.opt_bool("norm_bias")?.unwrap_or(false),
            classifier_bias: f.opt_bool("classifier_bias")?.unwrap_or(false),
            decoder_bias: f.opt_bool("decoder_bias")?.unwrap_or(true),
            tie_word_embeddings: f.opt_bool("tie_word_embeddings")?.unwrap_or(true),
            classifier_pooling: f.pooling("classifier_pooling", Pooling::Cls)?,
            id2label: f.id2label()?,
            pad_token_id: f.token_id("pad_token_id")?,
            cls_token_id: f.token_id("cls_token_id")?,
            sep_token_id: f.token_id("sep_token_id")?,
            mask_token_id: f.token_id("mask_token_id")?,
            unk_token_id: f.token_id("unk_token_id")?,
            architectures: f.str_list("architectures")?,
        })
    }

    /// Checks that the numbers describe a model we can build; the message names the key.
    fn check(&self) -> std::result::Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("max_position_embeddings", self.max_position_embeddings),
            ("local_attention", self.local_attention),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("`{key}` is 0; it must be at least 1"));
            }
        }
        let limits = [
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("hidden_size", self.hidden_size, MAX_HIDDEN),
            (
                "intermediate_size",
                self.intermediate_size,
                MAX_INTERMEDIATE,
            ),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
        ];
        for (key, value, limit) in limits {
            if value > limit {
                return Err(format!(
                    "`{key}` = {value} is implausibly large (limit {limit})"
                ));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "`hidden_size` ({}) is not divisible by `num_attention_heads` ({})",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "head_dim = hidden_size / num_attention_heads = {} is odd; RoPE needs an even head_dim",
                self.head_dim
            ));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return Err(format!(
                "`norm_eps` = {} must be a positive number",
                self.norm_eps
            ));
        }
        for (key, theta) in [
            ("global rope theta", self.global_rope_theta),
            ("local rope theta", self.local_rope_theta),
        ] {
            if !(theta.is_finite() && theta > 1.0) {
                return Err(format!("{key} = {theta} must be a finite number above 1"));
            }
        }
        let kinds = [
            (
                "full_attention",
                &self.global_rope_scaling,
                self.global_rope_theta,
            ),
            (
                "sliding_attention",
                &self.local_rope_scaling,
                self.local_rope_theta,
            ),
        ];
        for (kind, scaling, theta) in kinds {
            let dim = self.head_dim;
            if let Err(m) = scaling.frequencies(theta, dim, self.max_position_embeddings) {
                return Err(format!("rope_parameters.{kind}: {m}"));
            }
        }
        let ids = [
            ("pad_token_id", self.pad_token_id),
            ("cls_token_id", self.cls_token_id),
            ("sep_token_id", self.sep_token_id),
            ("mask_token_id", self.mask_token_id),
            ("unk_token_id", self.unk_token_id),
        ];
        for (key, id) in ids {
            if let Some(id) = id.filter(|&id| id as usize >= self.vocab_size) {
                return Err(format!(
                    "`{key}` = {id} is outside the vocabulary (vocab_size {})",
                    self.vocab_size
                ));
            }
        }
        Ok(())
    }
}

/// `n` layers where layer i is global iff `i % every == 0`.
pub(crate) fn every_nth_global(n: usize, every: usize) -> Vec<LayerKind> {
    (0..n)
        .map(|i| {
            if i % every.max(1) == 0 {
                LayerKind::Global
            } else {
                LayerKind::Local
            }
        })
        .collect()
}
