//! Weights on the GPU: every tensor the config requires, converted to the storage precision
//! one tensor at a time while streaming from the memory-mapped checkpoint (so RAM never holds
//! a second full copy of the model), or random weights of the right shapes for benchmarks.
//! The matrices (linear layers, the embedding table) are `split::Weight`s: in row pieces
//! where one exceeds the device's binding limit.

use std::sync::Arc;

use crate::Result;
use crate::model::config::ModelConfig;
use crate::model::split::{self, SplitReport, Weight};
use crate::model::weights::{Checkpoint, Heads, Storage};
use crate::ops::DType;
use crate::runtime::{DeviceBuffer, Gpu, MemoryKind};

/// A linear layer: `weight` `[out, in]` as stored, and its bias when the config has one
/// (in the weight's pieces).
pub struct Linear {
    pub weight: Weight,
    pub bias: Option<Weight>,
}

/// A LayerNorm's scale, and its shift when the config has `norm_bias`.
pub struct Norm {
    pub weight: DeviceBuffer,
    pub bias: Option<DeviceBuffer>,
}

/// One encoder layer, named as in the checkpoint. `attn_norm` is absent on layer 0
/// (identity).
pub struct LayerWeights {
    pub attn_norm: Option<Norm>,
    pub wqkv: Linear,
    pub wo: Linear,
    pub mlp_norm: Norm,
    pub wi: Linear,
    pub mlp_wo: Linear,
}

/// `head.dense` -> act -> `head.norm`, shared by the MLM and classification heads.
pub struct HeadWeights {
    pub dense: Linear,
    pub norm: Norm,
}

/// All weights of a model on one device, in one storage precision.
pub struct ModelWeights {
    pub dtype: DType,
    pub tok_embeddings: Weight,
    pub emb_norm: Norm,
    pub layers: Vec<LayerWeights>,
    pub final_norm: Norm,
    pub head: Option<HeadWeights>,
    /// The MLM decoder: `decoder.weight` when stored (untied), else the embedding table.
    pub decoder: Option<Linear>,
    /// `classifier.weight` `[labels, H]` and `classifier.bias` `[labels]`.
    pub classifier: Option<Linear>,
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
    /// Reads tensor `name` into `scratch` in the storage precision.
    fn read(&mut self, name: &str) -> Result<()> {
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
        Ok(())
    }

    /// A vector (a norm's weight or bias) in one buffer.
    fn load(&mut self, name: &str) -> Result<DeviceBuffer> {
        self.read(name)?;
        self.gpu.upload_as(MemoryKind::Weights, name, &self.scratch)
    }

    /// A matrix of `cols` columns in `halves` halves paired by row (2: `mlp.Wi`), in pieces
    /// of whole features where it exceeds a binding.
    fn matrix(&mut self, name: &str, cols: usize, halves: usize) -> Result<Weight> {
        self.read(name)?;
        let row_bytes = cols as u64 * self.dtype.size();
        let rows = (self.scratch.len() as u64 / row_bytes.max(1)) as usize;
        let limit = split::binding_limit(self.gpu);
        let features = rows / halves;
        let ranges = split::plan_pieces(name, features, halves, row_bytes, limit)?;
        split::upload(self.gpu, name, &self.scratch, (rows, halves), &ranges)
    }

    /// `{name}.weight` (`cols` inputs, `halves` as `matrix`), and `{name}.bias` when `bias`,
    /// split like the weight.
    fn linear(&mut self, name: &str, (cols, halves): (usize, usize), bias: bool) -> Result<Linear> {
        let weight = self.matrix(&format!("{name}.weight"), cols, halves)?;
        let bias = match bias {
            true => Some(self.bias_like(&format!("{name}.bias"), &weight)?),
            false => None,
        };
        Ok(Linear { weight, bias })
    }

    /// A bias in the pieces of its weight's features.
    fn bias_like(&mut self, name: &str, weight: &Weight) -> Result<Weight> {
        self.read(name)?;
        let shape = (weight.rows, weight.halves);
        split::upload(self.gpu, name, &self.scratch, shape, &weight.ranges())
    }

    fn norm(&mut self, name: &str, bias: bool) -> Result<Norm> {
        Ok(Norm {
            weight: self.load(&format!("{name}.weight"))?,
            bias: match bias {
                true => Some(self.load(&format!("{name}.bias"))?),
                false => None,
            },
        })
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
        let (h, inter) = (cfg.hidden_size, cfg.intermediate_size);
        let tok_embeddings = l.matrix("model.embeddings.tok_embeddings.weight", h, 1)?;
        let emb_norm = l.norm("model.embeddings.norm", nb)?;
        let (ab, mb) = (cfg.attention_bias, cfg.mlp_bias);
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = |s: &str| format!("model.layers.{i}.{s}");
            layers.push(LayerWeights {
                attn_norm: (i > 0).then(|| l.norm(&p("attn_norm"), nb)).transpose()?,
                wqkv: l.linear(&p("attn.Wqkv"), (h, 1), ab)?,
                wo: l.linear(&p("attn.Wo"), (h, 1), ab)?,
                mlp_norm: l.norm(&p("mlp_norm"), nb)?,
                wi: l.linear(&p("mlp.Wi"), (h, 2), mb)?,
                mlp_wo: l.linear(&p("mlp.Wo"), (inter, 1), mb)?,
            });
        }
        let final_norm = l.norm("model.final_norm", nb)?;
        let any_head = heads.mlm || heads.classifier.is_some();
        let head = if any_head {
            Some(HeadWeights {
                dense: l.linear("head.dense", (h, 1), cfg.classifier_bias)?,
                norm: l.norm("head.norm", nb)?,
            })
        } else {
            None
        };
        let decoder = if heads.mlm {
            let weight = if untied {
                l.matrix("decoder.weight", h, 1)?
            } else {
                tok_embeddings.clone()
            };
            let bias = match cfg.decoder_bias {
                true => Some(l.bias_like("decoder.bias", &weight)?),
                false => None,
            };
            Some(Linear { weight, bias })
        } else {
            None
        };
        let classifier = match heads.classifier {
            Some(_) => Some(l.linear("classifier", (h, 1), true)?),
            None => None,
        };
        let bytes = l.bytes;
        Ok(ModelWeights {
            dtype,
            tok_embeddings,
            emb_norm,
            layers,
            final_norm,
            head,
            decoder,
            classifier,
            heads,
            bytes,
        })
    }
}

impl ModelWeights {
    /// The tensors held in more than one piece, with the rows of each (`info --model`).
    pub fn splits(&self) -> Vec<SplitReport> {
        let mut all = vec![&self.tok_embeddings];
        for l in &self.layers {
            all.extend([&l.wqkv, &l.wo, &l.wi, &l.mlp_wo].map(|lin| &lin.weight));
        }
        all.extend(self.head.iter().map(|h| &h.dense.weight));
        all.extend(self.decoder.iter().map(|d| &d.weight));
        all.extend(self.classifier.iter().map(|c| &c.weight));
        let mut out: Vec<SplitReport> = Vec::new();
        for w in all.into_iter().filter(|w| w.is_split()) {
            // The tied decoder is the embedding table: listed once.
            if !out.iter().any(|r| r.name == w.name) {
                out.push(w.report());
            }
        }
        out
    }
}
