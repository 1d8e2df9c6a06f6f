//! Pooling a late-chunked document's chunks from its windows' token states: the mean of each
//! chunk's tokens, then the model's Dense modules and Normalize, then `dimensions` and
//! `normalize` (see the parent module).

use super::{LateChunk, LateDocument, LatePlan, LateSpec};
use crate::encoder::Encoder;
use crate::sentence::finish_vector;
use crate::{Error, Result};

impl Encoder {
    pub(super) async fn embed_late_group(
        &self,
        plans: &[LatePlan],
        spec: &LateSpec,
    ) -> Result<Vec<LateDocument>> {
        let seqs: Vec<Vec<u32>> = plans.iter().flat_map(|p| p.windows.clone()).collect();
        // An input error names a window; the caller knows documents.
        let doc_of: Vec<usize> = (0..plans.len())
            .flat_map(|d| std::iter::repeat_n(d, plans[d].windows.len()))
            .collect();
        let states = self.hidden_states_keyed_async(&seqs, None).await;
        let states = states.map_err(|e| match e {
            Error::Input { index, message } => Error::Input {
                index: doc_of.get(index).copied().unwrap_or(index),
                message,
            },
            other => other,
        })?;
        self.pool_late(plans, &states, spec)
    }

    /// Pools planned documents from the final hidden states of their windows (`states`:
    /// every window of `plans`, in order, as [`Encoder::hidden_states`] gives them), for a
    /// caller that runs the encoder itself (a server's batching engine).
    pub fn pool_late(
        &self,
        plans: &[LatePlan],
        states: &[Vec<Vec<f32>>],
        spec: &LateSpec,
    ) -> Result<Vec<LateDocument>> {
        let windows: usize = plans.iter().map(|p| p.windows.len()).sum();
        let hidden = self.config.hidden_size;
        let fits = |w: &[Vec<f32>], plan_w: &Vec<u32>| {
            w.len() == plan_w.len() && w.iter().all(|row| row.len() == hidden)
        };
        let all_w = plans.iter().flat_map(|p| &p.windows);
        if states.len() != windows || !states.iter().zip(all_w).all(|(s, w)| fits(s, w)) {
            return Err(Error::PlanInput(
                "pool_late: the states do not match the planned windows".into(),
            ));
        }
        let mut first = 0;
        let sc = &self.sentence;
        Ok(plans
            .iter()
            .map(|plan| {
                let mine = &states[first..first + plan.windows.len()];
                first += plan.windows.len();
                let chunks = plan.chunks.iter().map(|(span, at)| {
                    let mut sum = vec![0f64; hidden];
                    for &(w, pos) in at {
                        sum.iter_mut()
                            .zip(&mine[w][pos])
                            .for_each(|(s, &x)| *s += x as f64);
                    }
                    let n = at.len().max(1) as f64;
                    let mut v: Vec<f32> = sum.into_iter().map(|s| (s / n) as f32).collect();
                    for d in &sc.dense {
                        v = d.forward(&v);
                    }
                    if sc.normalize {
                        crate::encoder::l2_normalize(&mut v);
                    }
                    finish_vector(&mut v, spec.dimensions, spec.normalize);
                    LateChunk {
                        span: *span,
                        n_tokens: at.len(),
                        embedding: v,
                    }
                });
                LateDocument {
                    n_tokens: plan.n_tokens,
                    windows: plan.windows.len(),
                    chunks: chunks.collect(),
                }
            })
            .collect())
    }
}
