//! Head plans that read the encoder's output in place: pooling for embeddings, the MLM head
//! at selected rows followed by a GPU top-k, and the classification heads. Each is a small
//! recorded plan bound to one encoder plan's output buffers.

use std::sync::Arc;

use crate::model::config::{ModelConfig, Pooling};
use crate::model::graph::EncoderGraph;
use crate::model::record::Recorder;
use crate::model::upload::{HeadWeights, Linear, ModelWeights};
use crate::ops::choice::Choices;
use crate::ops::matmul::Epilogue;
use crate::ops::pooling::{PoolArgs, PoolMode};
use crate::ops::{self, DType, Rows};
use crate::runtime::{Gpu, Plan, PlanBuilder, TensorId};
use crate::{Error, Result};

/// Rows the MLM head handles per run; more `[MASK]`s in a batch take several runs.
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
    /// Row indices written by the host (the `[CLS]` rows for cls pooling); absent otherwise.
    pub rows: Option<TensorId>,
    pub out: TensorId,
    pub labels: usize,
}

/// dense -> act -> LN over the recorder's rows of `x`; returns the normed activation.
fn dense_act_norm(
    r: &mut Recorder,
    cfg: &ModelConfig,
    head: &HeadWeights,
    x: TensorId,
) -> Result<TensorId> {
    let h = cfg.hidden_size as u32;
    let act = Epilogue::Act(cfg.classifier_activation);
    let d = r.linear("head.dense", &head.dense, x, (h, h), act)?;
    r.norm("head.norm", &head.norm, d, h)
}

/// A linear layer whose f32 output `out_name` the host reads: converts when the model stores
/// f16.
fn linear_f32_out(
    r: &mut Recorder,
    name: &str,
    lin: &Linear,
    x: TensorId,
    (k, n): (u32, u32),
    out_name: &str,
) -> Result<TensorId> {
    let out = r.b.output(out_name, r.cap_rows * n as u64 * 4);
    if r.dtype == DType::F32 {
        r.linear_into(name, lin, x, out, (k, n), Epilogue::None, None)?;
    } else {
        let y = r.linear(name, lin, x, (k, n), Epilogue::None)?;
        let to_f32 = format!("{name}.to_f32");
        ops::convert::record(r.b, &to_f32, y, out, r.rows, n, r.dtype, DType::F32)?;
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
        let mut rec = Recorder {
            b: &mut b,
            choices: &enc.choices,
            dtype: dt,
            rows: Rows::Selected,
            cap_rows: r,
            eps: cfg.norm_eps,
        };
        let normed = dense_act_norm(&mut rec, cfg, head, sel)?;
        let logits = linear_f32_out(&mut rec, "decoder", decoder, normed, (h, v), "logits")?;
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
        Self::finish(b, &enc.choices, cfg, w, dt, pooled, Rows::Segments, s, rows)
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
        Self::finish(
            b,
            &enc.choices,
            cfg,
            w,
            enc.dtype,
            hidden,
            Rows::Tokens,
            cap,
            None,
        )
    }

    /// dense -> act -> LN -> classifier (f32 logits) over `rows` rows of `x`, then build.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        mut b: PlanBuilder,
        choices: &Choices,
        cfg: &ModelConfig,
        w: &ModelWeights,
        dt: DType,
        x: TensorId,
        rows: Rows,
        cap_rows: u64,
        row_index: Option<TensorId>,
    ) -> Result<Self> {
        let (head, classifier, labels) = parts(w)?;
        let h = cfg.hidden_size as u32;
        let mut r = Recorder {
            b: &mut b,
            choices,
            dtype: dt,
            rows,
            cap_rows,
            eps: cfg.norm_eps,
        };
        let normed = dense_act_norm(&mut r, cfg, head, x)?;
        let n = labels as u32;
        let out = linear_f32_out(&mut r, "classifier", classifier, normed, (h, n), "logits")?;
        Ok(ClassifierHead {
            plan: b.build()?,
            rows: row_index,
            out,
            labels,
        })
    }
}

fn parts(w: &ModelWeights) -> Result<(&HeadWeights, &Linear, usize)> {
    match (&w.head, &w.classifier, w.heads.classifier) {
        (Some(head), Some(classifier), Some(labels)) => Ok((head, classifier, labels)),
        _ => Err(Error::MissingHead {
            task: "classify",
            message: "the checkpoint has no classifier (classifier.weight); use a \
                      ModernBertForSequenceClassification/TokenClassification checkpoint"
                .into(),
        }),
    }
}
