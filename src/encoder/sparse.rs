//! Sparse (SPLADE) embeddings: the MLM head over every token, pooled per sequence on the
//! GPU (`ops::splade`), read back as one `[vocab]` row per sequence and kept as its
//! non-zero (index, value) pairs.

use super::{Encoder, Prompt, poisoned};
use crate::model::heads::SparseHead;
use crate::ops::DType;
use crate::ops::splade::FIRST;
use crate::runtime::RunSizes;
use crate::sentence::{ModelKind, Similarity};
use crate::{Error, Result};

/// How `embed_sparse` embeds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparseOptions {
    pub prompt: Prompt,
    /// Keep only the `top_k` largest values (sentence-transformers' `max_active_dims`);
    /// ties go to the lower index.
    pub top_k: Option<usize>,
}

/// One text's sparse vector: the non-zero entries, indices ascending (vocabulary ids).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SparseVector {
    /// Tokens of the text (prompt and special tokens included).
    pub n_tokens: usize,
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl SparseVector {
    /// The dot product with another sparse vector (f64 sum).
    pub fn dot(&self, other: &SparseVector) -> f32 {
        let (mut i, mut j, mut sum) = (0, 0, 0.0f64);
        while i < self.indices.len() && j < other.indices.len() {
            match self.indices[i].cmp(&other.indices[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    sum += self.values[i] as f64 * other.values[j] as f64;
                    i += 1;
                    j += 1;
                }
            }
        }
        sum as f32
    }

    /// The model's similarity of two sparse vectors: dot or cosine.
    pub fn similarity(&self, sim: Similarity, other: &SparseVector) -> Result<f32> {
        match sim {
            Similarity::Dot => Ok(self.dot(other)),
            Similarity::Cosine => {
                let norm = |v: &SparseVector| {
                    v.values
                        .iter()
                        .map(|&x| x as f64 * x as f64)
                        .sum::<f64>()
                        .sqrt()
                };
                let n = (norm(self) * norm(other)).max(1e-12);
                Ok((self.dot(other) as f64 / n) as f32)
            }
            other => Err(Error::Option(format!(
                "similarity {other:?} of sparse vectors is not supported (dot, cosine)"
            ))),
        }
    }

    /// Keeps the `k` largest values (ties to the lower index), indices ascending.
    pub fn keep_top(&mut self, k: usize) {
        if self.indices.len() <= k {
            return;
        }
        let mut order: Vec<usize> = (0..self.indices.len()).collect();
        order.sort_by(|&a, &b| {
            self.values[b]
                .total_cmp(&self.values[a])
                .then(self.indices[a].cmp(&self.indices[b]))
        });
        order.truncate(k);
        order.sort_unstable();
        self.indices = order.iter().map(|&i| self.indices[i]).collect();
        self.values = order.iter().map(|&i| self.values[i]).collect();
    }

    /// The non-zero entries of a dense row.
    pub fn from_dense(row: &[f32], n_tokens: usize) -> SparseVector {
        let mut v = SparseVector {
            n_tokens,
            ..Default::default()
        };
        for (i, &x) in row.iter().enumerate() {
            if x != 0.0 {
                v.indices.push(i as u32);
                v.values.push(x);
            }
        }
        v
    }
}

impl Encoder {
    /// The tokens of one text for `embed_sparse` (prompt first).
    pub fn sparse_tokens(
        &self,
        opts: &SparseOptions,
        text: &str,
        index: usize,
    ) -> Result<Vec<u32>> {
        let prompt = self.prompt_text(&opts.prompt)?;
        let input = super::Input::Text(text.to_string());
        self.input_tokens(&input, prompt.as_deref(), super::Truncation::Model, index)
    }

    /// Sparse (SPLADE) vectors of texts, as sentence-transformers' `SparseEncoder` computes
    /// them: the MLM logits of every token (special tokens included), `log1p(relu)` (or its
    /// `log1p_relu` variant), max or sum over the text's tokens, the non-zero entries kept.
    pub fn embed_sparse(&self, texts: &[&str], opts: &SparseOptions) -> Result<Vec<SparseVector>> {
        self.sparse_check(opts)?;
        let seqs = texts
            .iter()
            .enumerate()
            .map(|(i, t)| self.sparse_tokens(opts, t, i))
            .collect::<Result<Vec<_>>>()?;
        self.embed_sparse_ids(&seqs, opts.top_k)
    }

    fn sparse_check(&self, opts: &SparseOptions) -> Result<()> {
        if self.sentence.kind() != ModelKind::Sparse {
            return Err(Error::MissingHead {
                task: "give sparse embeddings",
                message: format!(
                    "this is a {} model, not a sparse (SPLADE) encoder (modules.json with an MLM transformer and SpladePooling)",
                    self.sentence.kind().name()
                ),
            });
        }
        if opts.top_k == Some(0) {
            return Err(Error::Option("--top-k-terms must be at least 1".into()));
        }
        Ok(())
    }

    /// Sparse vectors of token sequences (`sparse_tokens`), in input order, each cut to its
    /// `top_k` largest values when asked.
    pub fn embed_sparse_ids(
        &self,
        seqs: &[Vec<u32>],
        top_k: Option<usize>,
    ) -> Result<Vec<SparseVector>> {
        self.sparse_check(&SparseOptions {
            top_k,
            ..Default::default()
        })?;
        let Some(cfg) = self.sentence.sparse else {
            return Err(poisoned());
        };
        if !self.weights.heads.mlm {
            return Err(Error::MissingHead {
                task: "give sparse embeddings",
                message: "the checkpoint has no MLM head (head.dense, head.norm, decoder); a SPLADE model is a ModernBertForMaskedLM checkpoint".into(),
            });
        }
        let vocab = self.config.vocab_size;
        let mut out = vec![SparseVector::default(); seqs.len()];
        self.for_each_batch(seqs, None, |batch, bucket, _| {
            if bucket.sparse.is_none() {
                let started = std::time::Instant::now();
                let head = SparseHead::build(
                    &self.gpu,
                    &self.config,
                    &self.weights,
                    &bucket.enc,
                    cfg.mode,
                    cfg.activation,
                )?;
                self.built(started);
                bucket.sparse = Some(head);
            }
            let head = bucket.sparse.as_mut().ok_or_else(poisoned)?;
            let all: Vec<usize> = (0..batch.n_seqs()).collect();
            for group in all.chunks(head.max_slots) {
                // (packed row, slot word) of every token of the group's sequences.
                let mut rows: Vec<(u32, u32)> = Vec::new();
                for (slot, &s) in group.iter().enumerate() {
                    let range = batch.seq_range(s);
                    let start = range.start;
                    for t in range {
                        let first = if t == start { FIRST } else { 0 };
                        rows.push((t as u32, slot as u32 | first));
                    }
                }
                for chunk in rows.chunks(head.max_rows) {
                    let (r, sl): (Vec<u32>, Vec<u32>) = chunk.iter().copied().unzip();
                    head.plan.write(head.rows, bytemuck::cast_slice(&r))?;
                    head.plan.write(head.slots, bytemuck::cast_slice(&sl))?;
                    head.plan.run(&RunSizes {
                        selected: r.len() as u32,
                        ..Default::default()
                    })?;
                }
                let bytes = head
                    .plan
                    .read(head.out, 0, (group.len() * vocab * 4) as u64)?;
                let values = DType::F32.decode(&bytes);
                for (&s, row) in group.iter().zip(values.chunks_exact(vocab)) {
                    let mut v = SparseVector::from_dense(row, batch.seq_range(s).len());
                    if let Some(k) = top_k {
                        v.keep_top(k);
                    }
                    out[batch.indices[s]] = v;
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The tokens of a sparse vector's indices (how SPLADE output is read by people).
    pub fn sparse_terms(&self, v: &SparseVector) -> Result<Vec<String>> {
        let tok = self.tokenizer()?;
        Ok(v.indices
            .iter()
            .map(|&i| tok.id_to_token(i).unwrap_or_else(|| format!("[{i}]")))
            .collect())
    }
}
