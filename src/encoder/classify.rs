//! Sequence and token classification.

use super::{Encoder, Input, Truncation, poisoned};
use crate::model::heads::ClassifierHead;
use crate::ops::DType;
use crate::{Error, Result};

/// Sequence classification of one text.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Classification {
    pub label: String,
    pub score: f32,
    pub logits: Vec<f32>,
    pub scores: Vec<f32>,
}

/// Per-token classification: (token id, label, score, logits) at every position.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TokenLabel {
    pub token_id: u32,
    pub label: String,
    pub score: f32,
    pub logits: Vec<f32>,
}

/// Softmax in f64 for stability.
pub fn softmax(l: &[f32]) -> Vec<f32> {
    let m = l.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = l.iter().map(|&x| (x as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| (x / s) as f32).collect()
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

impl Encoder {
    fn labels(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                self.config
                    .id2label
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("LABEL_{i}"))
            })
            .collect()
    }

    /// The classifier's label names in output order (`id2label`, else `LABEL_i`); empty
    /// for a model without a classifier.
    pub fn label_names(&self) -> Vec<String> {
        self.labels(self.weights.heads.classifier.unwrap_or(0))
    }

    /// Raw sequence-classification logits of token sequences.
    pub fn classify_ids(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let mut out = vec![Vec::new(); seqs.len()];
        self.for_each_batch(seqs, None, |batch, bucket, sizes| {
            if bucket.seq_cls.is_none() {
                let started = std::time::Instant::now();
                bucket.seq_cls = Some(ClassifierHead::sequence(
                    &self.gpu,
                    &self.config,
                    &self.weights,
                    &bucket.enc,
                )?);
                self.built(started);
            }
            let head = bucket.seq_cls.as_mut().ok_or_else(poisoned)?;
            if let Some(rows) = head.rows {
                let first: Vec<u32> = batch.cu_seqlens[..batch.n_seqs()].to_vec();
                head.plan.write(rows, bytemuck::cast_slice(&first))?;
            }
            head.plan.run(sizes)?;
            let l = head.labels;
            let bytes = head
                .plan
                .read(head.out, 0, (batch.n_seqs() * l * 4) as u64)?;
            for (s, v) in DType::F32.decode(&bytes).chunks_exact(l).enumerate() {
                out[batch.indices[s]] = v.to_vec();
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Sequence classification: label, its softmax score, all logits and scores.
    pub fn classify(&self, texts: &[&str]) -> Result<Vec<Classification>> {
        let inputs: Vec<Input> = texts.iter().map(|t| Input::Text(t.to_string())).collect();
        self.classify_inputs(&inputs, Truncation::Model)
    }

    /// Sequence classification of (text, text) pairs, `[CLS] a [SEP] b [SEP]`, as a
    /// pair classifier (natural language inference, paraphrase) was trained on them.
    pub fn classify_pairs(&self, pairs: &[(&str, &str)]) -> Result<Vec<Classification>> {
        let inputs: Vec<Input> = pairs
            .iter()
            .map(|(a, b)| Input::Pair(a.to_string(), b.to_string()))
            .collect();
        self.classify_inputs(&inputs, Truncation::Model)
    }

    /// Sequence classification of texts and pairs under `truncation`.
    pub fn classify_inputs(
        &self,
        inputs: &[Input],
        truncation: Truncation,
    ) -> Result<Vec<Classification>> {
        self.require_classifier()?;
        let seqs = self.inputs_tokens(inputs, None, truncation, 0)?;
        let logits = self.classify_ids(&seqs)?;
        let names = self.labels(self.weights.heads.classifier.unwrap_or(0));
        Ok(logits
            .into_iter()
            .map(|l| {
                let scores = softmax(&l);
                let best = argmax(&scores);
                Classification {
                    label: names.get(best).cloned().unwrap_or_default(),
                    score: scores[best],
                    logits: l,
                    scores,
                }
            })
            .collect())
    }

    fn require_classifier(&self) -> Result<()> {
        if self.weights.heads.classifier.is_none() {
            return Err(Error::MissingHead {
                task: "classify",
                message: "the checkpoint has no classifier (classifier.weight); use a fine-tuned \
                          ModernBertForSequenceClassification/TokenClassification model"
                    .into(),
            });
        }
        Ok(())
    }

    /// Raw per-token classification logits `[len][labels]` of token sequences.
    pub fn token_classify_ids(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<Vec<f32>>>> {
        self.require_classifier()?;
        let mut out = vec![Vec::new(); seqs.len()];
        self.for_each_batch(seqs, None, |batch, bucket, sizes| {
            if bucket.tok_cls.is_none() {
                let started = std::time::Instant::now();
                bucket.tok_cls = Some(ClassifierHead::token(
                    &self.gpu,
                    &self.config,
                    &self.weights,
                    &bucket.enc,
                )?);
                self.built(started);
            }
            let head = bucket.tok_cls.as_mut().ok_or_else(poisoned)?;
            head.plan.run(sizes)?;
            let l = head.labels;
            let bytes = head
                .plan
                .read(head.out, 0, (batch.n_tokens() * l * 4) as u64)?;
            let all = DType::F32.decode(&bytes);
            for s in 0..batch.n_seqs() {
                let r = batch.seq_range(s);
                out[batch.indices[s]] = all[r.start * l..r.end * l]
                    .chunks_exact(l)
                    .map(|c| c.to_vec())
                    .collect();
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Token classification of texts: a label per token of the tokenized sequence.
    pub fn token_classify(&self, texts: &[&str]) -> Result<Vec<Vec<TokenLabel>>> {
        let seqs = self.tokenize(texts)?;
        let logits = self.token_classify_ids(&seqs)?;
        let names = self.labels(self.weights.heads.classifier.unwrap_or(0));
        Ok(seqs
            .iter()
            .zip(logits)
            .map(|(ids, rows)| {
                ids.iter()
                    .zip(rows)
                    .map(|(&token_id, l)| {
                        let scores = softmax(&l);
                        let best = argmax(&scores);
                        TokenLabel {
                            token_id,
                            label: names.get(best).cloned().unwrap_or_default(),
                            score: scores[best],
                            logits: l,
                        }
                    })
                    .collect()
            })
            .collect())
    }
}
