//! Head plans that read the encoder's output in place: pooling for embeddings, the MLM head
//! at selected rows followed by a GPU top-k, and the classification heads. Each is a small
//! recorded plan bound to one encoder plan's output buffers.

use std::sync::Arc;

use crate::model::config::{ModelConfig, Pooling};
use crate::model::graph::EncoderGraph;
use crate::model::upload::{HeadWeights, ModelWeights};
use crate::ops::matmul::{Epilogue, MatmulArgs};
use crate::ops::pooling::{PoolArgs, PoolMode};
use crate::ops::{self, DType, Rows};
use crate::runtime::{Gpu, Plan, PlanBuilder, TensorId};
use crate::{Error, Result};

/// Rows the MLM head handles per run; more [MASK]s in a batch take several runs.
pub const MLM_ROWS: usize = 64;

/// Pooled embeddings `[max_seqs, hidden]` in f32.
pub struct PoolHead {
    pub plan: Plan,
    pub out: TensorId,
}

/// Top-k (id, probability) at selected rows.
pub struct MlmHead {
    pub plan: Plan,
    pub rows: TensorId,
    pub out: TensorId,
    pub k: usize,
}

/// Classification logits in f32: per sequence `[max_seqs, labels]` or per token.
pub struct ClassifierHead {
    pub plan: Plan,
    /// Row indices written by the host (the [CLS] rows for cls pooling); absent otherwise.
    pub rows: Option<TensorId>,
    pub out: TensorId,
    pub labels: usize,
}

fn ext(b: &mut PlanBuilder, name: &str, buf: &Option<wgpu::Buffer>) -> Option<TensorId> {
    buf.as_ref().map(|w| b.external(name, w))
}

/// dense -> act -> LN over `rows` rows of `x` (ELEM); returns the normed activation.
fn dense_act_norm(
    b: &mut PlanBuilder,
    cfg: &ModelConfig,
    head: &HeadWeights,
    x: TensorId,
    rows: Rows,
    cap_rows: u64,
    dt: DType,
) -> Result<TensorId> {
    let h = cfg.hidden_size as u32;
    let bytes = cap_rows * h as u64 * dt.size();
    let dense_w = b.external("head.dense", &head.dense);
    let dense_b = ext(b, "head.dense.bias", &head.dense_bias);
    let d = b.activation("head.dense.out", bytes);
    ops::matmul::record(
        b,
        "head.dense+act",
        &MatmulArgs {
            x,
            w: dense_w,
            bias: dense_b,
            residual: None,
            y: d,
            rows,
            k: h,
            n: h,
            dtype: dt,
            epilogue: Epilogue::Act(cfg.classifier_activation),
            variant: None,
        },
    )?;
    let norm_w = b.external("head.norm", &head.norm);
    let norm_b = ext(b, "head.norm.bias", &head.norm_bias);
    let y = b.activation("head.norm.out", bytes);
    ops::layernorm::record(
        b,
        "head.norm",
        &ops::layernorm::LayerNormArgs {
            x: d,
            residual: None,
            sum_out: None,
            weight: norm_w,
            bias: norm_b,
            y,
            rows,
            hidden: h,
            eps: cfg.norm_eps,
            dtype: dt,
        },
    )?;
    Ok(y)
}

/// A linear layer whose f32 output the host reads: converts when the model stores f16.
#[allow(clippy::too_many_arguments)]
fn linear_f32_out(
    b: &mut PlanBuilder,
    label: &str,
    x: TensorId,
    w: TensorId,
    bias: Option<TensorId>,
    rows: Rows,
    cap_rows: u64,
    k: u32,
    n: u32,
    dt: DType,
    out_name: &str,
) -> Result<TensorId> {
    let out = b.output(out_name, cap_rows * n as u64 * 4);
    let direct = dt == DType::F32;
    let y = if direct {
        out
    } else {
        b.activation(&format!("{label}.out"), cap_rows * n as u64 * dt.size())
    };
    ops::matmul::record(
        b,
        label,
        &MatmulArgs {
            x,
            w,
            bias,
            residual: None,
            y,
            rows,
            k,
            n,
            dtype: dt,
            epilogue: Epilogue::None,
            variant: None,
        },
    )?;
    if !direct {
        ops::convert::record(
            b,
            &format!("{label}.to_f32"),
            y,
            out,
            rows,
            n,
            dt,
            DType::F32,
        )?;
    }
    Ok(out)
}

impl PoolHead {
    pub fn build(
        gpu: &Arc<Gpu>,
        enc: &EncoderGraph,
        mode: PoolMode,
        normalize: bool,
    ) -> Result<Self> {
        let mut b = PlanBuilder::new(gpu.clone());
        let hidden = b.external("last_hidden_state", enc.plan.buffer(enc.hidden)?);
        let cu = b.external("cu_seqlens", enc.plan.buffer(enc.cu_seqlens)?);
        let h = enc.hidden_size as u32;
        let out = b.output("pooled", enc.max_seqs as u64 * h as u64 * 4);
        ops::pooling::record(
            &mut b,
            "pool",
            &PoolArgs {
                x: hidden,
                cu_seqlens: cu,
                out,
                hidden: h,
                mode,
                normalize,
                dtype: enc.dtype,
            },
        )?;
        Ok(PoolHead {
            plan: b.build()?,
            out,
        })
    }
}

impl MlmHead {
    pub fn build(
        gpu: &Arc<Gpu>,
        cfg: &ModelConfig,
        w: &ModelWeights,
        enc: &EncoderGraph,
        k: usize,
    ) -> Result<Self> {
        let (Some(head), Some(decoder)) = (&w.head, &w.decoder) else {
            return Err(Error::MissingHead {
                task: "fill masks",
                message: "the checkpoint has no MLM head (head.dense, head.norm, decoder)".into(),
            });
        };
        let dt = enc.dtype;
        let h = cfg.hidden_size as u32;
        let v = cfg.vocab_size as u32;
        let r = MLM_ROWS as u64;
        let mut b = PlanBuilder::new(gpu.clone());
        let hidden = b.external("last_hidden_state", enc.plan.buffer(enc.hidden)?);
        let rows = b.input("mask rows", r * 4);
        let sel = b.activation("mask states", r * h as u64 * dt.size());
        ops::gather::record(
            &mut b,
            "gather masks",
            hidden,
            rows,
            sel,
            Rows::Selected,
            h,
            dt,
        )?;
        let normed = dense_act_norm(&mut b, cfg, head, sel, Rows::Selected, r, dt)?;
        let dec = b.external("decoder", decoder);
        let dec_b = ext(&mut b, "decoder.bias", &w.decoder_bias);
        let logits = linear_f32_out(
            &mut b,
            "decoder",
            normed,
            dec,
            dec_b,
            Rows::Selected,
            r,
            h,
            v,
            dt,
            "logits",
        )?;
        let out = b.output("top-k", r * k as u64 * 8);
        ops::topk::record(&mut b, "top-k", logits, out, Rows::Selected, v, k as u32)?;
        Ok(MlmHead {
            plan: b.build()?,
            rows,
            out,
            k,
        })
    }
}

impl ClassifierHead {
    /// Sequence classification: pool (cls or mean, per the config), head, classifier.
    pub fn sequence(
        gpu: &Arc<Gpu>,
        cfg: &ModelConfig,
        w: &ModelWeights,
        enc: &EncoderGraph,
    ) -> Result<Self> {
        let dt = enc.dtype;
        let h = cfg.hidden_size as u32;
        let s = enc.max_seqs as u64;
        let mut b = PlanBuilder::new(gpu.clone());
        let hidden = b.external("last_hidden_state", enc.plan.buffer(enc.hidden)?);
        let pooled = b.activation("pooled", s * h as u64 * dt.size());
        let rows = match cfg.classifier_pooling {
            Pooling::Cls => {
                let rows = b.input("cls rows", s * 4);
                let seg = Rows::Segments;
                ops::gather::record(&mut b, "cls rows", hidden, rows, pooled, seg, h, dt)?;
                Some(rows)
            }
            Pooling::Mean => {
                let cu = b.external("cu_seqlens", enc.plan.buffer(enc.cu_seqlens)?);
                // Pooling writes f32; an f16 model converts before its head.
                let out = match dt {
                    DType::F32 => pooled,
                    DType::F16 => b.activation("pooled f32", s * h as u64 * 4),
                };
                let args = PoolArgs {
                    x: hidden,
                    cu_seqlens: cu,
                    out,
                    hidden: h,
                    mode: PoolMode::Mean,
                    normalize: false,
                    dtype: dt,
                };
                ops::pooling::record(&mut b, "mean pool", &args)?;
                if dt != DType::F32 {
                    let seg = Rows::Segments;
                    ops::convert::record(&mut b, "pooled", out, pooled, seg, h, DType::F32, dt)?;
                }
                None
            }
        };
        Self::finish(b, cfg, w, dt, pooled, Rows::Segments, s, rows)
    }

    /// Token classification: head and classifier at every token.
    pub fn token(
        gpu: &Arc<Gpu>,
        cfg: &ModelConfig,
        w: &ModelWeights,
        enc: &EncoderGraph,
    ) -> Result<Self> {
        let mut b = PlanBuilder::new(gpu.clone());
        let hidden = b.external("last_hidden_state", enc.plan.buffer(enc.hidden)?);
        let cap = enc.capacity as u64;
        Self::finish(b, cfg, w, enc.dtype, hidden, Rows::Tokens, cap, None)
    }

    /// dense -> act -> LN -> classifier (f32 logits) over `rows` rows of `x`, then build.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        mut b: PlanBuilder,
        cfg: &ModelConfig,
        w: &ModelWeights,
        dt: DType,
        x: TensorId,
        rows: Rows,
        cap_rows: u64,
        row_index: Option<TensorId>,
    ) -> Result<Self> {
        let (head, (cw, cb), labels) = parts(w)?;
        let h = cfg.hidden_size as u32;
        let normed = dense_act_norm(&mut b, cfg, head, x, rows, cap_rows, dt)?;
        let cw = b.external("classifier", cw);
        let cb = ext(&mut b, "classifier.bias", cb);
        let n = labels as u32;
        let out = linear_f32_out(
            &mut b,
            "classifier",
            normed,
            cw,
            cb,
            rows,
            cap_rows,
            h,
            n,
            dt,
            "logits",
        )?;
        Ok(ClassifierHead {
            plan: b.build()?,
            rows: row_index,
            out,
            labels,
        })
    }
}

type ClassifierParts<'a> = (
    &'a HeadWeights,
    (&'a wgpu::Buffer, &'a Option<wgpu::Buffer>),
    usize,
);

fn parts(w: &ModelWeights) -> Result<ClassifierParts<'_>> {
    match (&w.head, &w.classifier, w.heads.classifier) {
        (Some(head), Some((cw, cb)), Some(labels)) => Ok((head, (cw, cb), labels)),
        _ => Err(Error::MissingHead {
            task: "classify",
            message: "the checkpoint has no classifier (classifier.weight); use a \
                      ModernBertForSequenceClassification/TokenClassification checkpoint"
                .into(),
        }),
    }
}
