//! Fill-mask: the MLM head at selected rows and its GPU top-k.

use super::{Encoder, poisoned};
use crate::model::heads::{MLM_TOP_K, MlmHead};
use crate::runtime::RunSizes;
use crate::text::Splice;
use crate::{Error, Result};

/// Per sequence: (position, top-k (token id, probability)) for each selected position.
pub type TopK = Vec<Vec<(usize, Vec<(u32, f32)>)>>;

/// One candidate token for a `[MASK]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Candidate {
    pub token_id: u32,
    pub token: String,
    pub score: f32,
    /// The text with this mask filled by the candidate (other masks left as they are).
    pub sequence: String,
}

/// The candidates of one `[MASK]`, at its index in the tokenized sequence (`[CLS]` = 0).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MaskPrediction {
    pub position: usize,
    pub candidates: Vec<Candidate>,
}

impl Encoder {
    /// Top-k predictions at every mask position of token sequences.
    pub fn fill_mask_ids(&self, seqs: &[Vec<u32>], mask_id: u32, k: usize) -> Result<TopK> {
        let positions: Vec<Vec<usize>> = seqs
            .iter()
            .map(|s| {
                s.iter()
                    .enumerate()
                    .filter(|(_, id)| **id == mask_id)
                    .map(|(p, _)| p)
                    .collect()
            })
            .collect();
        self.mlm_topk(seqs, &positions, k)
    }

    /// The MLM head's top-k (token id, softmax probability) at chosen positions of each
    /// sequence; results follow the order of `positions`.
    pub fn mlm_topk(&self, seqs: &[Vec<u32>], positions: &[Vec<usize>], k: usize) -> Result<TopK> {
        if k == 0 || k > MLM_TOP_K {
            return Err(Error::Option(format!(
                "top-k must be between 1 and {MLM_TOP_K}, got {k}"
            )));
        }
        if positions.len() != seqs.len() {
            return Err(Error::Option(
                "one position list per sequence is needed".into(),
            ));
        }
        for (i, (s, p)) in seqs.iter().zip(positions).enumerate() {
            if let Some(bad) = p.iter().find(|&&p| p >= s.len()) {
                return Err(Error::Input {
                    index: i,
                    message: format!("position {bad} is past the sequence's {} tokens", s.len()),
                });
            }
        }
        if !self.weights.heads.mlm {
            return Err(Error::MissingHead {
                task: "fill masks",
                message: "the checkpoint has no MLM head (head.dense, head.norm, decoder); use a ModernBertForMaskedLM checkpoint".into(),
            });
        }
        let mut out = vec![Vec::new(); seqs.len()];
        self.for_each_batch(seqs, None, |batch, bucket, _| {
            // One head per bucket for every k: it selects the top MLM_TOP_K, sorted, and the
            // first k of them are read back.
            if bucket.mlm.is_none() {
                let started = std::time::Instant::now();
                let head = MlmHead::build(&self.gpu, &self.config, &self.weights, &bucket.enc)?;
                self.built(started);
                bucket.mlm = Some(head);
            }
            let head = bucket.mlm.as_mut().ok_or_else(poisoned)?;
            // (sequence, position in sequence, packed row) of every selected token.
            let mut picks: Vec<(usize, usize, u32)> = Vec::new();
            for s in 0..batch.n_seqs() {
                let start = batch.seq_range(s).start;
                for &p in &positions[batch.indices[s]] {
                    picks.push((s, p, (start + p) as u32));
                }
            }
            for chunk in picks.chunks(head.max_rows) {
                let rows: Vec<u32> = chunk.iter().map(|m| m.2).collect();
                head.plan.write(head.rows, bytemuck::cast_slice(&rows))?;
                head.plan.run(&RunSizes {
                    selected: rows.len() as u32,
                    ..Default::default()
                })?;
                let bytes = head
                    .plan
                    .read(head.out, 0, (rows.len() * MLM_TOP_K * 8) as u64)?;
                let top = crate::ops::topk::decode(&bytes, rows.len(), MLM_TOP_K);
                for (m, mut cands) in chunk.iter().zip(top) {
                    cands.truncate(k);
                    out[batch.indices[m.0]].push((m.1, cands));
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Fill-mask on texts: for every `[MASK]`, the top-k tokens with probabilities. A text
    /// without `[MASK]` is an error naming it.
    pub fn fill_mask(&self, texts: &[&str], k: usize) -> Result<Vec<Vec<MaskPrediction>>> {
        let tok = self.tokenizer()?;
        let mask = tok.mask_id()?;
        let seqs = self.tokenize(texts)?;
        for (i, s) in seqs.iter().enumerate() {
            if !s.contains(&mask) {
                return Err(Error::Input {
                    index: i,
                    message: "the text has no [MASK] token".into(),
                });
            }
        }
        let raw = self.fill_mask_ids(&seqs, mask, k)?;
        seqs.iter()
            .zip(raw)
            .map(|(seq, preds)| self.mask_predictions(seq, preds))
            .collect()
    }

    /// Turns one sequence's raw top-k (as `fill_mask_ids` returns it) into the candidates
    /// `fill_mask` gives: each token decoded, and the sequence with that mask filled in
    /// (the other masks left out, as decoding skips special tokens). For callers that
    /// tokenize and batch themselves (a server packing many requests).
    ///
    /// The text around the masks is decoded once per sequence; each candidate then costs the
    /// decoding of its one token and a copy of that text, not a decoding of the whole
    /// sequence (checked once per sequence against the tokenizer's own decoding, which is
    /// used instead where the two would differ).
    pub fn mask_predictions(
        &self,
        seq: &[u32],
        preds: Vec<(usize, Vec<(u32, f32)>)>,
    ) -> Result<Vec<MaskPrediction>> {
        let tok = self.tokenizer()?;
        let positions: Vec<usize> = preds.iter().map(|p| p.0).collect();
        let splice = Splice::new(tok, seq, &positions)?;
        let mut masks = Vec::with_capacity(preds.len());
        for (position, cands) in preds {
            let mut candidates = Vec::with_capacity(cands.len());
            for (id, score) in cands {
                let token = tok.decode(&[id])?;
                let sequence = splice.filled(tok, seq, position, id, &token)?;
                candidates.push(Candidate {
                    token_id: id,
                    token,
                    score,
                    sequence,
                });
            }
            masks.push(MaskPrediction {
                position,
                candidates,
            });
        }
        Ok(masks)
    }
}
