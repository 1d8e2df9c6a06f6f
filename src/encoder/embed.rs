//! Embeddings: pooled (cls / mean, optionally L2-normalised) or every token's state.

use super::{Bucket, Encoder, poisoned, read_hidden};
use crate::Result;
use crate::model::heads::PoolHead;
use crate::ops::DType;
use crate::ops::pooling::PoolMode;
use crate::runtime::RunSizes;
use crate::text::pack::PackedBatch;

/// Pooling of `embed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedPooling {
    Cls,
    Mean,
    /// Every token's hidden state.
    None,
}

/// One text's embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    pub n_tokens: usize,
    /// One vector (cls/mean pooling) or one per token (`EmbedPooling::None`).
    pub vectors: Vec<Vec<f32>>,
}

impl Encoder {
    /// Embeddings of token sequences (see `embed`).
    pub fn embed_ids(
        &self,
        seqs: &[Vec<u32>],
        pooling: EmbedPooling,
        normalize: bool,
    ) -> Result<Vec<Embedding>> {
        let mut out: Vec<Option<Embedding>> = vec![None; seqs.len()];
        self.for_each_batch(seqs, None, |batch, bucket, sizes| {
            for (i, e) in self.embed_batch(batch, bucket, sizes, pooling, normalize)? {
                out[i] = Some(e);
            }
            Ok(())
        })?;
        Ok(out.into_iter().flatten().collect())
    }

    /// Embeds one packed batch, returning (input index, embedding) pairs.
    pub fn embed_packed(
        &self,
        batch: &PackedBatch,
        pooling: EmbedPooling,
        normalize: bool,
    ) -> Result<Vec<(usize, Embedding)>> {
        self.with_batch(batch, 0, |bucket, sizes| {
            self.embed_batch(batch, bucket, sizes, pooling, normalize)
        })
    }

    fn embed_batch(
        &self,
        batch: &PackedBatch,
        bucket: &mut Bucket,
        sizes: &RunSizes,
        pooling: EmbedPooling,
        normalize: bool,
    ) -> Result<Vec<(usize, Embedding)>> {
        let n_tokens = |s: usize| batch.seq_range(s).len();
        let mode = match pooling {
            EmbedPooling::Cls => PoolMode::Cls,
            EmbedPooling::Mean => PoolMode::Mean,
            EmbedPooling::None => {
                let hs = read_hidden(bucket, batch)?;
                return Ok(hs
                    .into_iter()
                    .enumerate()
                    .map(|(s, mut v)| {
                        if normalize {
                            v.iter_mut()
                                .for_each(|row| crate::vector::l2_normalize(row));
                        }
                        (
                            batch.indices[s],
                            Embedding {
                                n_tokens: n_tokens(s),
                                vectors: v,
                            },
                        )
                    })
                    .collect());
            }
        };
        if !bucket.pools.contains_key(&(mode, normalize)) {
            let started = std::time::Instant::now();
            let head = PoolHead::build(&self.gpu, &bucket.enc, mode, normalize)?;
            self.built(started);
            bucket.pools.insert((mode, normalize), head);
        }
        let head = bucket
            .pools
            .get_mut(&(mode, normalize))
            .ok_or_else(poisoned)?;
        head.plan.run(sizes)?;
        let h = self.config.hidden_size;
        let bytes = head
            .plan
            .read(head.out, 0, (batch.n_seqs() * h * 4) as u64)?;
        // Each vector decoded straight from the read-back bytes (one copy).
        Ok(bytes
            .chunks_exact(h * 4)
            .enumerate()
            .map(|(s, v)| {
                (
                    batch.indices[s],
                    Embedding {
                        n_tokens: n_tokens(s),
                        vectors: vec![DType::F32.decode(v)],
                    },
                )
            })
            .collect())
    }

    /// Embeds texts: pooled (cls/mean, optionally L2-normalised) or every token's state.
    pub fn embed(
        &self,
        texts: &[&str],
        pooling: EmbedPooling,
        normalize: bool,
    ) -> Result<Vec<Embedding>> {
        let seqs = self.tokenize(texts)?;
        self.embed_ids(&seqs, pooling, normalize)
    }
}
