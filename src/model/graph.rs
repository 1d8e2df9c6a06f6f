//! The static ModernBERT encoder graph: for a model and a token capacity, one recorded plan
//! from token ids to the final-normed hidden states of every packed token:
//!
//! ```text
//! h = LN_emb(E[ids])
//! per layer i:  a = i == 0 ? h : LN_attn(h)
//!               qkv = RoPE(a Wqkv^T (+b); inv_freq_i) on q, k
//!               o = Attn(qkv; global | window; scores * attention_factor_i^2)
//!               h2 = o Wo^T (+b) + h;  x = LN_mlp(h2)
//!               g = act(x Wi[:I]^T) * (x Wi[I:]^T);  h = g Wo_mlp^T (+b) + h2
//! out = LN_final(h)
//! ```

use std::sync::Arc;

use crate::model::config::{LayerKind, ModelConfig};
use crate::model::record::Recorder;
use crate::model::upload::{LayerWeights, ModelWeights};
use crate::ops::choice::Choices;
use crate::ops::matmul::Epilogue;
use crate::ops::{self, DType, Rows};
use crate::runtime::arena::SharedArena;
use crate::runtime::{Gpu, Plan, PlanBuilder, TensorId};
use crate::{Error, Result};

/// The built encoder plan and the tensors a batch writes and reads.
pub struct EncoderGraph {
    pub plan: Plan,
    pub capacity: usize,
    pub max_seqs: usize,
    pub ids: TensorId,
    pub positions: TensorId,
    pub cu_seqlens: TensorId,
    /// `[max_seqs]` keys per sequence (`PackedBatch::key_lens`).
    pub key_lens: TensorId,
    /// Final hidden states `[capacity, hidden]` in the model's storage precision.
    pub hidden: TensorId,
    pub dtype: DType,
    pub hidden_size: usize,
    /// The arena the activations live in when shared with other plans (heads use it too).
    pub arena: Option<Arc<SharedArena>>,
    /// The kernel choices it was recorded with (its heads are recorded with them too).
    pub choices: Choices,
}

/// Device bytes per token of the encoder's activations (the widest live set), used to size
/// capacities to a memory budget.
pub fn bytes_per_token(cfg: &ModelConfig, dtype: DType) -> u64 {
    let h = cfg.hidden_size as u64;
    let i = cfg.intermediate_size as u64;
    // h + h2 + normed + max(qkv + attention out, gated intermediate) + ids/positions/output.
    (3 * h + (4 * h).max(i) + h) * dtype.size() + 8
}

/// Largest number of tokens one plan may hold so that no activation exceeds a binding.
pub fn max_capacity_for_bindings(gpu: &Gpu, cfg: &ModelConfig, dtype: DType) -> usize {
    let widest = (3 * cfg.hidden_size).max(cfg.intermediate_size) as u64 * dtype.size();
    (gpu.caps().max_storage_binding / widest.max(1)) as usize
}

/// The inputs every layer reads besides the residual stream.
struct Batch {
    positions: TensorId,
    cu_seqlens: TensorId,
    key_lens: TensorId,
}

impl EncoderGraph {
    /// Records the encoder for up to `capacity` tokens in up to `max_seqs` sequences with the
    /// kernel choices `choices`, its activations in `arena` when given (shared with plans that
    /// never run at the same time), else in slots of its own.
    pub fn build(
        gpu: &Arc<Gpu>,
        choices: &Choices,
        cfg: &ModelConfig,
        w: &ModelWeights,
        (capacity, max_seqs): (usize, usize),
        arena: Option<Arc<SharedArena>>,
    ) -> Result<EncoderGraph> {
        if capacity == 0 || max_seqs == 0 {
            return Err(Error::Option(
                "the token capacity must be at least 1".into(),
            ));
        }
        let h = cfg.hidden_size as u32;
        let cap = capacity as u64;
        let mut b = PlanBuilder::new(gpu.clone());
        if let Some(a) = &arena {
            b = b.shared_arena(a.clone());
        }
        let ids = b.input("ids", cap * 4);
        let positions = b.input("positions", cap * 4);
        let cu_seqlens = b.input("cu_seqlens", (max_seqs as u64 + 1) * 4);
        let key_lens = b.input("key_lens", max_seqs as u64 * 4);
        let hidden = b.output("last_hidden_state", cap * h as u64 * w.dtype.size());
        let mut r = Recorder {
            b: &mut b,
            choices,
            dtype: w.dtype,
            rows: Rows::Tokens,
            cap_rows: cap,
            eps: cfg.norm_eps,
        };
        let mut x = embed(&mut r, cfg, w, ids)?;
        let batch = Batch {
            positions,
            cu_seqlens,
            key_lens,
        };
        for (i, layer) in w.layers.iter().enumerate() {
            x = encoder_layer(&mut r, cfg, i, layer, &batch, x)?;
        }
        r.norm_into("final_norm", &w.final_norm, x, hidden, h)?;
        let plan = b.build()?;
        Ok(EncoderGraph {
            plan,
            capacity,
            max_seqs,
            ids,
            positions,
            cu_seqlens,
            key_lens,
            hidden,
            dtype: w.dtype,
            hidden_size: cfg.hidden_size,
            arena,
            choices: choices.clone(),
        })
    }
}

/// `LN_emb(E[ids])`, the gather fused with the norm: one step per piece of a table held in
/// row pieces, each writing the tokens whose ids it holds.
fn embed(r: &mut Recorder, cfg: &ModelConfig, w: &ModelWeights, ids: TensorId) -> Result<TensorId> {
    let (weight, bias) = r.bind("embeddings.norm", &w.emb_norm.weight, &w.emb_norm.bias);
    let hidden = cfg.hidden_size as u32;
    let y = r.activation("embeddings.out", hidden);
    let pieces = &w.tok_embeddings.pieces;
    for (i, piece) in pieces.iter().enumerate() {
        let (first, rows) = (piece.first as u32, piece.rows as u32);
        let (table_name, label) = match pieces.len() {
            1 => ("tok_embeddings".to_string(), "embedding".to_string()),
            _ => {
                let range = format!("[{first}..{}]", first + rows);
                (
                    format!("tok_embeddings{range}"),
                    format!("embedding{range}"),
                )
            }
        };
        let table = r.b.external(&table_name, &piece.buf);
        let args = ops::embedding::EmbeddingArgs {
            ids,
            table,
            weight,
            bias,
            y,
            rows: r.rows,
            hidden,
            vocab: rows,
            eps: r.eps,
            dtype: r.dtype,
        };
        let last = i + 1 == pieces.len();
        ops::embedding::record_piece(r.b, &label, &args, first, last)?;
    }
    Ok(y)
}

/// One layer on the residual stream `x`; returns the new stream.
fn encoder_layer(
    r: &mut Recorder,
    cfg: &ModelConfig,
    i: usize,
    layer: &LayerWeights,
    batch: &Batch,
    x: TensorId,
) -> Result<TensorId> {
    let name = |s: &str| format!("layers.{i}.{s}");
    let (h, inter) = (cfg.hidden_size as u32, cfg.intermediate_size as u32);
    let attn_in = match &layer.attn_norm {
        Some(norm) => r.norm(&name("attn_norm"), norm, x, h)?,
        None => x,
    };
    // A scaled RoPE's attention factor multiplies cos and sin, so both q and k: the
    // scores, by its square.
    let (inv_freq, attention_factor) = cfg.rope_frequencies(i)?;
    let rope = ops::matmul::RopeArgs {
        positions: batch.positions,
        n_heads: cfg.num_attention_heads as u32,
        head_dim: cfg.head_dim as u32,
        freq: ops::rope::Frequencies::table(&inv_freq),
    };
    let wqkv = name("attn.Wqkv");
    let qkv = r.linear_rope(&wqkv, &layer.wqkv, attn_in, (h, 3 * h), &rope)?;
    let score_scale = attention_factor * attention_factor;
    let attn = attention(r, cfg, i, qkv, batch, score_scale)?;
    let h2 = r.linear_add(&name("attn.Wo"), &layer.wo, attn, (h, h), x)?;
    let mlp_in = r.norm(&name("mlp_norm"), &layer.mlp_norm, h2, h)?;
    let geglu = Epilogue::GeGlu(cfg.hidden_activation);
    let gated = r.linear(&name("mlp.Wi"), &layer.wi, mlp_in, (h, inter), geglu)?;
    r.linear_add(&name("mlp.Wo"), &layer.mlp_wo, gated, (inter, h), h2)
}

/// Attention (global or sliding-window) per sequence over `qkv`, whose q and k carry RoPE.
fn attention(
    r: &mut Recorder,
    cfg: &ModelConfig,
    i: usize,
    qkv: TensorId,
    batch: &Batch,
    score_scale: f32,
) -> Result<TensorId> {
    let (nh, hd, dt) = (cfg.num_attention_heads as u32, cfg.head_dim as u32, r.dtype);
    let out = r.activation(&format!("layers.{i}.attn.out"), cfg.hidden_size as u32);
    let args = ops::attention::AttentionArgs {
        qkv,
        cu_seqlens: batch.cu_seqlens,
        key_lens: Some(batch.key_lens),
        out,
        n_heads: nh,
        head_dim: hd,
        window: match cfg.layers[i] {
            LayerKind::Global => None,
            LayerKind::Local => Some(cfg.window_half() as u32),
        },
        dtype: dt,
        variant: None,
    };
    let label = format!("layers.{i}.attention");
    ops::attention::record_scaled(r.b, r.choices, &label, &args, score_scale)?;
    Ok(out)
}
