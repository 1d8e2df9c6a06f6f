//! The static ModernBERT encoder graph: for a model and a token capacity, one recorded plan
//! from token ids to the final-normed hidden states of every packed token:
//!
//! ```text
//! h = LN_emb(E[ids])
//! per layer i:  a = i == 0 ? h : LN_attn(h)
//!               qkv = a Wqkv^T (+b);  RoPE(q, k; theta_i);  o = Attn(qkv; global | window)
//!               h2 = o Wo^T (+b) + h;  x = LN_mlp(h2)
//!               g = act(x Wi[:I]^T) * (x Wi[I:]^T);  h = g Wo_mlp^T (+b) + h2
//! out = LN_final(h)
//! ```

use std::sync::Arc;

use crate::model::config::{LayerKind, ModelConfig};
use crate::model::upload::ModelWeights;
use crate::ops::matmul::{Epilogue, MatmulArgs};
use crate::ops::{self, DType, Rows};
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
    /// Final hidden states `[capacity, hidden]` in the model's storage precision.
    pub hidden: TensorId,
    pub dtype: DType,
    pub hidden_size: usize,
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

fn opt(b: &mut PlanBuilder, name: &str, buf: &Option<wgpu::Buffer>) -> Option<TensorId> {
    buf.as_ref().map(|w| b.external(name, w))
}

impl EncoderGraph {
    /// Records the encoder for up to `capacity` tokens in up to `max_seqs` sequences.
    pub fn build(
        gpu: &Arc<Gpu>,
        cfg: &ModelConfig,
        w: &ModelWeights,
        capacity: usize,
        max_seqs: usize,
    ) -> Result<EncoderGraph> {
        if capacity == 0 || max_seqs == 0 {
            return Err(Error::Option(
                "the token capacity must be at least 1".into(),
            ));
        }
        let dt = w.dtype;
        let e = dt.size();
        let (h, inter) = (cfg.hidden_size as u32, cfg.intermediate_size as u32);
        let (nh, hd) = (cfg.num_attention_heads as u32, cfg.head_dim as u32);
        let cap = capacity as u64;
        let eps = cfg.norm_eps;
        let mut b = PlanBuilder::new(gpu.clone());
        let ids = b.input("ids", cap * 4);
        let positions = b.input("positions", cap * 4);
        let cu_seqlens = b.input("cu_seqlens", (max_seqs as u64 + 1) * 4);
        let hidden = b.output("last_hidden_state", cap * h as u64 * e);

        let table = b.external("tok_embeddings", &w.tok_embeddings);
        let emb_norm = b.external("embeddings.norm", &w.emb_norm);
        let emb_norm_b = opt(&mut b, "embeddings.norm.bias", &w.emb_norm_bias);
        let mut x = b.activation("h", cap * h as u64 * e);
        ops::embedding::record(
            &mut b,
            "embedding",
            &ops::embedding::EmbeddingArgs {
                ids,
                table,
                weight: emb_norm,
                bias: emb_norm_b,
                y: x,
                rows: Rows::Tokens,
                hidden: h,
                vocab: cfg.vocab_size as u32,
                eps,
                dtype: dt,
            },
        )?;
        let act = cfg.hidden_activation;
        for (i, lw) in w.layers.iter().enumerate() {
            let name = |s: &str| format!("layers.{i}.{s}");
            let attn_in = match &lw.attn_norm {
                None => x,
                Some(norm) => {
                    let weight = b.external(&name("attn_norm"), norm);
                    let bias = opt(&mut b, &name("attn_norm.bias"), &lw.attn_norm_bias);
                    let y = b.activation(&name("attn_in"), cap * h as u64 * e);
                    ops::layernorm::record(
                        &mut b,
                        &name("attn_norm"),
                        &ops::layernorm::LayerNormArgs {
                            x,
                            residual: None,
                            sum_out: None,
                            weight,
                            bias,
                            y,
                            rows: Rows::Tokens,
                            hidden: h,
                            eps,
                            dtype: dt,
                        },
                    )?;
                    y
                }
            };
            let qkv = b.activation(&name("qkv"), cap * 3 * h as u64 * e);
            let wqkv = b.external(&name("Wqkv"), &lw.wqkv);
            let wqkv_b = opt(&mut b, &name("Wqkv.bias"), &lw.wqkv_bias);
            ops::matmul::record(
                &mut b,
                &name("Wqkv"),
                &MatmulArgs {
                    x: attn_in,
                    w: wqkv,
                    bias: wqkv_b,
                    residual: None,
                    y: qkv,
                    rows: Rows::Tokens,
                    k: h,
                    n: 3 * h,
                    dtype: dt,
                    epilogue: Epilogue::None,
                    variant: None,
                },
            )?;
            let kind = cfg.layers[i];
            ops::rope::record(
                &mut b,
                &name("rope"),
                qkv,
                positions,
                Rows::Tokens,
                nh,
                hd,
                cfg.rope_theta(i),
                dt,
            )?;
            let attn = b.activation(&name("attn"), cap * h as u64 * e);
            ops::attention::record(
                &mut b,
                &name("attention"),
                &ops::attention::AttentionArgs {
                    qkv,
                    cu_seqlens,
                    out: attn,
                    n_heads: nh,
                    head_dim: hd,
                    window: match kind {
                        LayerKind::Global => None,
                        LayerKind::Local => Some(cfg.window_half() as u32),
                    },
                    dtype: dt,
                    variant: None,
                },
            )?;
            let h2 = b.activation(&name("h2"), cap * h as u64 * e);
            let wo = b.external(&name("Wo"), &lw.wo);
            let wo_b = opt(&mut b, &name("Wo.bias"), &lw.wo_bias);
            ops::matmul::record(
                &mut b,
                &name("Wo"),
                &MatmulArgs {
                    x: attn,
                    w: wo,
                    bias: wo_b,
                    residual: Some(x),
                    y: h2,
                    rows: Rows::Tokens,
                    k: h,
                    n: h,
                    dtype: dt,
                    epilogue: Epilogue::Residual,
                    variant: None,
                },
            )?;
            let mlp_in = b.activation(&name("mlp_in"), cap * h as u64 * e);
            let mlp_norm = b.external(&name("mlp_norm"), &lw.mlp_norm);
            let mlp_norm_b = opt(&mut b, &name("mlp_norm.bias"), &lw.mlp_norm_bias);
            ops::layernorm::record(
                &mut b,
                &name("mlp_norm"),
                &ops::layernorm::LayerNormArgs {
                    x: h2,
                    residual: None,
                    sum_out: None,
                    weight: mlp_norm,
                    bias: mlp_norm_b,
                    y: mlp_in,
                    rows: Rows::Tokens,
                    hidden: h,
                    eps,
                    dtype: dt,
                },
            )?;
            let gated = b.activation(&name("gated"), cap * inter as u64 * e);
            let wi = b.external(&name("Wi"), &lw.wi);
            let wi_b = opt(&mut b, &name("Wi.bias"), &lw.wi_bias);
            ops::matmul::record(
                &mut b,
                &name("Wi+geglu"),
                &MatmulArgs {
                    x: mlp_in,
                    w: wi,
                    bias: wi_b,
                    residual: None,
                    y: gated,
                    rows: Rows::Tokens,
                    k: h,
                    n: inter,
                    dtype: dt,
                    epilogue: Epilogue::GeGlu(act),
                    variant: None,
                },
            )?;
            let h3 = b.activation(&name("h"), cap * h as u64 * e);
            let wo2 = b.external(&name("mlp.Wo"), &lw.wo_mlp);
            let wo2_b = opt(&mut b, &name("mlp.Wo.bias"), &lw.wo_mlp_bias);
            ops::matmul::record(
                &mut b,
                &name("mlp.Wo"),
                &MatmulArgs {
                    x: gated,
                    w: wo2,
                    bias: wo2_b,
                    residual: Some(h2),
                    y: h3,
                    rows: Rows::Tokens,
                    k: inter,
                    n: h,
                    dtype: dt,
                    epilogue: Epilogue::Residual,
                    variant: None,
                },
            )?;
            x = h3;
        }
        let final_norm = b.external("final_norm", &w.final_norm);
        let final_norm_b = opt(&mut b, "final_norm.bias", &w.final_norm_bias);
        ops::layernorm::record(
            &mut b,
            "final_norm",
            &ops::layernorm::LayerNormArgs {
                x,
                residual: None,
                sum_out: None,
                weight: final_norm,
                bias: final_norm_b,
                y: hidden,
                rows: Rows::Tokens,
                hidden: h,
                eps,
                dtype: dt,
            },
        )?;
        let plan = b.build()?;
        Ok(EncoderGraph {
            plan,
            capacity,
            max_seqs,
            ids,
            positions,
            cu_seqlens,
            hidden,
            dtype: dt,
            hidden_size: cfg.hidden_size,
        })
    }
}
