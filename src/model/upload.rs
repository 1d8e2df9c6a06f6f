//! Weights on the GPU: every tensor the config requires, converted to the storage precision
//! one tensor at a time while streaming from the memory-mapped checkpoint (so RAM never holds
//! a second full copy of the model), or random weights of the right shapes for benchmarks.

use std::sync::Arc;

use crate::Result;
use crate::model::config::ModelConfig;
use crate::model::weights::{Checkpoint, Heads, Storage};
use crate::ops::DType;
use crate::runtime::Gpu;

/// One layer's buffers. `attn_norm` is absent on layer 0 (identity); biases follow the
/// config's flags.
pub struct LayerWeights {
    pub attn_norm: Option<wgpu::Buffer>,
    pub attn_norm_bias: Option<wgpu::Buffer>,
    pub wqkv: wgpu::Buffer,
    pub wqkv_bias: Option<wgpu::Buffer>,
    pub wo: wgpu::Buffer,
    pub wo_bias: Option<wgpu::Buffer>,
    pub mlp_norm: wgpu::Buffer,
    pub mlp_norm_bias: Option<wgpu::Buffer>,
    pub wi: wgpu::Buffer,
    pub wi_bias: Option<wgpu::Buffer>,
    pub wo_mlp: wgpu::Buffer,
    pub wo_mlp_bias: Option<wgpu::Buffer>,
}

/// `head.dense` -> act -> `head.norm`, shared by the MLM and classification heads.
pub struct HeadWeights {
    pub dense: wgpu::Buffer,
    pub dense_bias: Option<wgpu::Buffer>,
    pub norm: wgpu::Buffer,
    pub norm_bias: Option<wgpu::Buffer>,
}

/// All weights of a model on one device, in one storage precision.
pub struct ModelWeights {
    pub dtype: DType,
    pub tok_embeddings: wgpu::Buffer,
    pub emb_norm: wgpu::Buffer,
    pub emb_norm_bias: Option<wgpu::Buffer>,
    pub layers: Vec<LayerWeights>,
    pub final_norm: wgpu::Buffer,
    pub final_norm_bias: Option<wgpu::Buffer>,
    pub head: Option<HeadWeights>,
    /// The MLM decoder: `decoder.weight` when stored (untied), else the embedding table.
    pub decoder: Option<wgpu::Buffer>,
    pub decoder_bias: Option<wgpu::Buffer>,
    /// `classifier.weight` [labels, H] and `classifier.bias` [labels].
    pub classifier: Option<(wgpu::Buffer, Option<wgpu::Buffer>)>,
    pub heads: Heads,
    /// Bytes of all weight buffers.
    pub bytes: u64,
}

/// Where tensors come from: a checkpoint, or a seeded random generator.
enum Source<'a> {
    Checkpoint(&'a Checkpoint),
    Random { seed: u64, cfg: &'a ModelConfig },
}

struct Loader<'a> {
    gpu: &'a Arc<Gpu>,
    source: Source<'a>,
    storage: Storage,
    dtype: DType,
    scratch: Vec<u8>,
    bytes: u64,
    on_tensor: &'a mut dyn FnMut(&str),
}

impl Loader<'_> {
    fn load(&mut self, name: &str) -> Result<wgpu::Buffer> {
        (self.on_tensor)(name);
        match &self.source {
            Source::Checkpoint(ck) => {
                ck.read_as(name, self.storage, &mut self.scratch)?;
            }
            Source::Random { seed, cfg } => {
                let n = random_len(cfg, name);
                let values = random_values(n, *seed ^ hash(name), name);
                self.scratch = self.dtype.encode(&values);
            }
        }
        self.bytes += self.scratch.len() as u64;
        self.gpu.upload(name, &self.scratch)
    }

    fn maybe(&mut self, present: bool, name: &str) -> Result<Option<wgpu::Buffer>> {
        if present {
            self.load(name).map(Some)
        } else {
            Ok(None)
        }
    }
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// Element count of a tensor of a random model (names as in the checkpoint).
fn random_len(cfg: &ModelConfig, name: &str) -> usize {
    let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let last = name.rsplit('.').nth(1).unwrap_or("");
    match (last, name.ends_with("bias")) {
        ("tok_embeddings", _) => v * h,
        ("Wqkv", false) => 3 * h * h,
        ("Wqkv", true) => 3 * h,
        ("Wi", false) => 2 * i * h,
        ("Wi", true) => 2 * i,
        ("Wo", false) if name.contains(".mlp.") => h * i,
        ("Wo", false) | ("dense", false) => h * h,
        ("decoder", true) => v,
        _ => h,
    }
}

/// Norm weights near 1, everything else small and centred (like an initialised model).
fn random_values(n: usize, seed: u64, name: &str) -> Vec<f32> {
    let norm = name.contains("norm") && name.ends_with("weight");
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            if norm { 1.0 + 0.1 * u } else { 0.04 * u }
        })
        .collect()
}

impl ModelWeights {
    /// Uploads a validated checkpoint. `on_tensor` is called before each tensor (progress).
    pub fn load(
        gpu: &Arc<Gpu>,
        cfg: &ModelConfig,
        ck: &Checkpoint,
        dtype: DType,
        on_tensor: &mut dyn FnMut(&str),
    ) -> Result<ModelWeights> {
        let heads = ck.validate(cfg)?;
        Self::build(gpu, cfg, Source::Checkpoint(ck), heads, dtype, on_tensor)
    }

    /// Random weights of the config's shapes (benchmarks without downloads), with an MLM head.
    pub fn random(
        gpu: &Arc<Gpu>,
        cfg: &ModelConfig,
        dtype: DType,
        seed: u64,
    ) -> Result<ModelWeights> {
        let heads = Heads {
            mlm: true,
            classifier: None,
        };
        Self::build(
            gpu,
            cfg,
            Source::Random { seed, cfg },
            heads,
            dtype,
            &mut |_| {},
        )
    }

    fn build(
        gpu: &Arc<Gpu>,
        cfg: &ModelConfig,
        source: Source<'_>,
        heads: Heads,
        dtype: DType,
        on_tensor: &mut dyn FnMut(&str),
    ) -> Result<ModelWeights> {
        let storage = match dtype {
            DType::F32 => Storage::F32,
            DType::F16 => Storage::F16,
        };
        let untied = match &source {
            Source::Checkpoint(ck) => ck.contains("decoder.weight"),
            Source::Random { .. } => false,
        };
        let mut l = Loader {
            gpu,
            source,
            storage,
            dtype,
            scratch: Vec::new(),
            bytes: 0,
            on_tensor,
        };
        let nb = cfg.norm_bias;
        let tok_embeddings = l.load("model.embeddings.tok_embeddings.weight")?;
        let emb_norm = l.load("model.embeddings.norm.weight")?;
        let emb_norm_bias = l.maybe(nb, "model.embeddings.norm.bias")?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let (ab, mb) = (cfg.attention_bias, cfg.mlp_bias);
            layers.push(LayerWeights {
                attn_norm: l.maybe(i > 0, &format!("{p}.attn_norm.weight"))?,
                attn_norm_bias: l.maybe(i > 0 && nb, &format!("{p}.attn_norm.bias"))?,
                wqkv: l.load(&format!("{p}.attn.Wqkv.weight"))?,
                wqkv_bias: l.maybe(ab, &format!("{p}.attn.Wqkv.bias"))?,
                wo: l.load(&format!("{p}.attn.Wo.weight"))?,
                wo_bias: l.maybe(ab, &format!("{p}.attn.Wo.bias"))?,
                mlp_norm: l.load(&format!("{p}.mlp_norm.weight"))?,
                mlp_norm_bias: l.maybe(nb, &format!("{p}.mlp_norm.bias"))?,
                wi: l.load(&format!("{p}.mlp.Wi.weight"))?,
                wi_bias: l.maybe(mb, &format!("{p}.mlp.Wi.bias"))?,
                wo_mlp: l.load(&format!("{p}.mlp.Wo.weight"))?,
                wo_mlp_bias: l.maybe(mb, &format!("{p}.mlp.Wo.bias"))?,
            });
        }
        let final_norm = l.load("model.final_norm.weight")?;
        let final_norm_bias = l.maybe(nb, "model.final_norm.bias")?;
        let any_head = heads.mlm || heads.classifier.is_some();
        let head = if any_head {
            Some(HeadWeights {
                dense: l.load("head.dense.weight")?,
                dense_bias: l.maybe(cfg.classifier_bias, "head.dense.bias")?,
                norm: l.load("head.norm.weight")?,
                norm_bias: l.maybe(nb, "head.norm.bias")?,
            })
        } else {
            None
        };
        let decoder = if heads.mlm {
            Some(if untied {
                l.load("decoder.weight")?
            } else {
                tok_embeddings.clone()
            })
        } else {
            None
        };
        let decoder_bias = l.maybe(heads.mlm && cfg.decoder_bias, "decoder.bias")?;
        let classifier = match heads.classifier {
            Some(_) => Some((
                l.load("classifier.weight")?,
                Some(l.load("classifier.bias")?),
            )),
            None => None,
        };
        let bytes = l.bytes;
        Ok(ModelWeights {
            dtype,
            tok_embeddings,
            emb_norm,
            emb_norm_bias,
            layers,
            final_norm,
            final_norm_bias,
            head,
            decoder,
            decoder_bias,
            classifier,
            heads,
            bytes,
        })
    }
}
