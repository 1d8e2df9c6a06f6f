//! Head plans that read the encoder's output in place: pooling for embeddings, the MLM head
//! at selected rows followed by a GPU top-k, the MLM head over chunks of rows followed by
//! SPLADE pooling (sparse embeddings), and the classification heads. Each is a small
//! recorded plan bound to one encoder plan's output buffers; its temporaries go into the
//! encoder's shared activation arena when it has one, and its own buffers count as
//! `MemoryKind::Heads`.

use std::sync::Arc;

use crate::model::config::{ModelConfig, Pooling};
use crate::model::graph::EncoderGraph;
use crate::model::record::Recorder;
use crate::model::upload::{HeadWeights, Linear, ModelWeights};
use crate::ops::choice::Choices;
use crate::ops::matmul::Epilogue;
use crate::ops::pooling::{PoolArgs, PoolMode};
use crate::ops::{self, DType, Rows};
use crate::runtime::{Gpu, MemoryKind, Plan, PlanBuilder, TensorId};
use crate::{Error, Result};

/// Rows the MLM head handles per run, at most (fewer where the device's storage binding
/// limit cannot hold `[rows, vocab]` f32 logits); more `[MASK]`s in a batch take several
/// runs.
pub const MLM_ROWS: usize = 64;

/// Rows of MLM logits a sparse head computes per run, at most (fewer where the device's
/// storage binding limit cannot hold `[rows, vocab]` f32 logits).
pub const SPARSE_ROWS: usize = 128;
/// Sequences a sparse head pools between read-backs, at most.
pub const SPARSE_SEQS: usize = 32;

/// Pooled embeddings `[max_seqs, hidden]` in f32.
pub struct PoolHead {
    pub plan: Plan,
    pub out: TensorId,
}

/// Top-k (id, probability) at selected rows, for k = `MLM_TOP_K`: one head serves every
/// k up to it (the first k of the sorted 64 are the top k), so asking for another k never
/// builds another head.
pub struct MlmHead {
    pub plan: Plan,
    pub rows: TensorId,
    /// `[max_rows, MLM_TOP_K]` (id, probability) pairs, `ops::topk`'s layout.
    pub out: TensorId,
    /// Rows per run: `MLM_ROWS`, or fewer where the logits would exceed a binding.
    pub max_rows: usize,
}

/// Rows of `row_bytes` (a row of f32 logits, of top-k pairs) that one binding holds, at
/// most `want` (at least 1: a row over the limit fails when its buffer is made, naming it).
fn fitting_rows(gpu: &Gpu, row_bytes: u64, want: usize) -> usize {
    let fit = gpu.caps().max_storage_binding / row_bytes.max(1);
    (fit as usize).clamp(1, want.max(1))
}

/// The k an MLM head selects: the most `fill_mask` accepts.
pub const MLM_TOP_K: usize = ops::topk::MAX_K as usize;

/// A builder for a head plan reading `enc`: its buffers count as heads, its temporaries go
/// into the encoder's shared arena (if any).
fn head_builder(gpu: &Arc<Gpu>, enc: &EncoderGraph) -> PlanBuilder {
    let b = PlanBuilder::new(gpu.clone()).memory_kind(MemoryKind::Heads);
    match &enc.arena {
        Some(arena) => b.shared_arena(arena.clone()),
        None => b,
    }
}

/// Classification logits in f32: per sequence `[max_seqs, labels]` or per token.
/// The MLM head over up to `r` rows of the encoder's output chosen by the host (`rows`, u32
/// row indices): gathers them (`what`: the step's label, "masks" or "rows"; `states`: the
/// gathered buffer's), runs head.dense, the activation, head.norm and the decoder, and
/// returns the `[r, vocab]` f32 logits. They are a temporary: they never leave the GPU.
#[allow(clippy::too_many_arguments)]
fn selected_logits(
    b: &mut PlanBuilder,
    enc: &EncoderGraph,
    cfg: &ModelConfig,
    (head, decoder): (&HeadWeights, &Linear),
    rows: TensorId,
    r: u64,
    (what, states): (&str, &str),
) -> Result<TensorId> {
    let dt = enc.dtype;
    let h = cfg.hidden_size as u32;
    let v = cfg.vocab_size as u32;
    let hidden = b.external("last_hidden_state", enc.plan.buffer(enc.hidden)?);
    let sel = b.activation(states, r * h as u64 * dt.size());
    let gather = format!("gather {what}");
    ops::gather::record(b, &gather, hidden, rows, sel, Rows::Selected, h, dt)?;
    let mut rec = Recorder {
        b,
        choices: &enc.choices,
        dtype: dt,
        rows: Rows::Selected,
        cap_rows: r,
        eps: cfg.norm_eps,
    };
    let normed = dense_act_norm(&mut rec, cfg, head, sel)?;
    let logits = rec.b.activation("logits", r * v as u64 * 4);
    linear_f32_out(&mut rec, "decoder", decoder, normed, (h, v), logits)
}

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

/// A linear layer into the f32 tensor `out` (`[cap_rows, n]`): converts when the model
/// stores f16.
fn linear_f32_out(
    r: &mut Recorder,
    name: &str,
    lin: &Linear,
    x: TensorId,
    (k, n): (u32, u32),
    out: TensorId,
) -> Result<TensorId> {
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
        let mut b = head_builder(gpu, enc);
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
    ) -> Result<Self> {
        let (Some(head), Some(decoder)) = (&w.head, &w.decoder) else {
            return Err(Error::MissingHead {
                task: "fill masks",
                message: "the checkpoint has no MLM head (head.dense, head.norm, decoder)".into(),
            });
        };
        let v = cfg.vocab_size as u32;
        // A row of f32 logits, and of the top-k's (id, probability) pairs.
        let row_bytes = (v as u64 * 4).max(ops::topk::out_bytes(1, MLM_TOP_K as u32));
        let max_rows = fitting_rows(gpu, row_bytes, MLM_ROWS);
        let r = max_rows as u64;
        let k = MLM_TOP_K as u32;
        let mut b = head_builder(gpu, enc);
        let rows = b.input("mask rows", r * 4);
        let labels = ("masks", "mask states");
        let weights = (head, decoder);
        let logits = selected_logits(&mut b, enc, cfg, weights, rows, r, labels)?;
        let out = b.output("top-k", ops::topk::out_bytes(r as u32, k));
        ops::topk::record(&mut b, "top-k", logits, out, Rows::Selected, v, k)?;
        Ok(MlmHead {
            plan: b.build()?,
            rows,
            out,
            max_rows,
        })
    }
}

/// SPLADE vectors: the MLM head over chunks of `max_rows` rows (the host names them in
/// `rows`, each with its sequence's slot in `slots`), pooled per sequence into
/// `out` (`[max_slots, vocab]` f32) by `ops::splade`. Only `out` is ever read back: the
/// `[rows, vocab]` logits stay a GPU temporary.
pub struct SparseHead {
    pub plan: Plan,
    /// u32 `[max_rows]` packed row indices.
    pub rows: TensorId,
    /// u32 `[max_rows]` output slots (`ops::splade::FIRST` on a sequence's first row).
    pub slots: TensorId,
    pub out: TensorId,
    pub max_rows: usize,
    pub max_slots: usize,
}

impl SparseHead {
    pub fn build(
        gpu: &Arc<Gpu>,
        cfg: &ModelConfig,
        w: &ModelWeights,
        enc: &EncoderGraph,
        mode: ops::splade::SpladeMode,
        activation: ops::splade::SpladeActivation,
    ) -> Result<Self> {
        let (Some(head), Some(decoder)) = (&w.head, &w.decoder) else {
            return Err(Error::MissingHead {
                task: "give sparse embeddings",
                message: "the checkpoint has no MLM head (head.dense, head.norm, decoder)".into(),
            });
        };
        let v = cfg.vocab_size as u32;
        let max_rows = fitting_rows(gpu, v as u64 * 4, SPARSE_ROWS).min(enc.capacity.max(1));
        let max_slots = fitting_rows(gpu, v as u64 * 4, SPARSE_SEQS);
        let r = max_rows as u64;
        let mut b = head_builder(gpu, enc);
        let rows = b.input("sparse rows", r * 4);
        let slots = b.input("sparse slots", r * 4);
        let labels = ("rows", "sparse states");
        let weights = (head, decoder);
        let logits = selected_logits(&mut b, enc, cfg, weights, rows, r, labels)?;
        let out = b.output("sparse", max_slots as u64 * v as u64 * 4);
        let args = ops::splade::SpladeArgs {
            logits,
            slots,
            out,
            rows: Rows::Selected,
            vocab: v,
            mode,
            activation,
        };
        ops::splade::record(&mut b, "splade", &args)?;
        Ok(SparseHead {
            plan: b.build()?,
            rows,
            slots,
            out,
            max_rows,
            max_slots,
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
        let mut b = head_builder(gpu, enc);
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
        let mut b = head_builder(gpu, enc);
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
        let out = r.b.output("logits", cap_rows * n as u64 * 4);
        linear_f32_out(&mut r, "classifier", classifier, normed, (h, n), out)?;
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
