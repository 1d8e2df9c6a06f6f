//! Embeddings as the model's sentence-transformers layout computes them (prompts, Pooling,
//! Dense, Normalize, Matryoshka truncation), PyLate's per-token ColBERT vectors, and
//! reranking with whichever the model is: cross-encoder, bi-encoder or ColBERT.

use super::{EmbedPooling, Embedding, Encoder, Input, SparseOptions, Truncation, read_hidden};
use crate::sentence::colbert::{MultiVectorLayout, maxsim};
use crate::sentence::{ModelKind, PoolingConfig, PoolingMode, Similarity, finish_vector};
use crate::text::pack::PackedBatch;
use crate::{Error, Result};

/// Which prompt goes before each text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Prompt {
    /// The model's `default_prompt_name`, if it has one.
    #[default]
    ModelDefault,
    /// No prompt at all.
    NoPrompt,
    /// One of the model's named prompts (`query`, `document`, ...).
    Name(String),
    /// This text.
    Text(String),
}

/// How `embed_with` embeds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbedOptions {
    pub prompt: Prompt,
    /// Keep the first `dimensions` values (Matryoshka, as `truncate_dim`).
    pub dimensions: Option<usize>,
    /// L2-normalize the final vector (after truncation), whatever the model does.
    pub normalize: bool,
    /// Pool the encoder's output this way instead of running the model's own modules.
    pub pooling: Option<EmbedPooling>,
}

/// `EmbedOptions` checked against the model: the prompt text and how many leading tokens
/// (`[CLS]` and the prompt's) pooling leaves out when the model excludes its prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedSpec {
    prompt: Option<String>,
    skip: usize,
    dimensions: Option<usize>,
    normalize: bool,
    pooling: Option<EmbedPooling>,
}

/// One document's place and score in a ranking.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Ranked {
    /// The document's index in the input.
    pub index: usize,
    pub score: f32,
}

/// How `rerank` scores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RerankOptions {
    /// Cross-encoders: the raw logit instead of the model's activation of it.
    pub raw_scores: bool,
    /// Keep only the best `top_n`.
    pub top_n: Option<usize>,
}

impl EmbedSpec {
    /// The text put before every input, if any.
    pub fn prompt(&self) -> Option<&str> {
        self.prompt.as_deref()
    }
}

impl Encoder {
    /// Checks `opts` against the model and resolves its prompt.
    pub fn embed_spec(&self, opts: &EmbedOptions) -> Result<EmbedSpec> {
        let sc = &self.sentence;
        if opts.pooling.is_none() {
            match sc.kind() {
                ModelKind::CrossEncoder => {
                    return Err(Error::MissingHead {
                        task: "embed",
                        message:
                            "this is a cross-encoder: it scores (query, document) pairs; use rerank"
                                .into(),
                    });
                }
                ModelKind::Sparse => {
                    return Err(Error::MissingHead {
                        task: "embed into one dense vector",
                        message: "this is a sparse (SPLADE) encoder: use sparse embeddings (embed_sparse)".into(),
                    });
                }
                ModelKind::Colbert => {
                    return Err(Error::MissingHead {
                        task: "embed into one vector",
                        message: "this is a ColBERT model: use multi-vector embeddings (--multi-vector query|document) or rerank".into(),
                    });
                }
                _ => {}
            }
        }
        if opts.dimensions == Some(0) {
            return Err(Error::Option("--dimensions must be at least 1".into()));
        }
        let prompt = self.prompt_text(&opts.prompt)?;
        let skip = match &prompt {
            // sentence-transformers counts the tokenized prompt minus its final [SEP].
            Some(p) => self
                .tokenizer()?
                .encode_any_length(p, 0)?
                .len()
                .saturating_sub(1),
            None => 0,
        };
        Ok(EmbedSpec {
            prompt,
            skip,
            dimensions: opts.dimensions,
            normalize: opts.normalize,
            pooling: opts.pooling,
        })
    }

    /// The text a [`Prompt`] puts before every input, as the model's prompts resolve it.
    pub fn prompt_text(&self, prompt: &Prompt) -> Result<Option<String>> {
        let sc = &self.sentence;
        Ok(match prompt {
            Prompt::ModelDefault => match &sc.default_prompt_name {
                Some(name) => Some(sc.prompt(name)?.to_string()),
                None => None,
            },
            Prompt::NoPrompt => None,
            Prompt::Name(name) => Some(sc.prompt(name)?.to_string()),
            Prompt::Text(text) => Some(text.clone()),
        })
    }

    /// The tokens of one text under `spec` (prompt first, cut as the model was loaded to);
    /// `index` names it in errors.
    pub fn embed_tokens(&self, spec: &EmbedSpec, text: &str, index: usize) -> Result<Vec<u32>> {
        let input = Input::Text(text.to_string());
        self.input_tokens(&input, spec.prompt(), Truncation::Model, index)
    }

    /// Embeds texts as the model's layout says (see [`EmbedOptions`]).
    pub fn embed_with(&self, texts: &[&str], opts: &EmbedOptions) -> Result<Vec<Embedding>> {
        let spec = self.embed_spec(opts)?;
        let seqs = texts
            .iter()
            .enumerate()
            .map(|(i, t)| self.embed_tokens(&spec, t, i))
            .collect::<Result<Vec<_>>>()?;
        self.embed_ids_with(&seqs, &spec)
    }

    /// Embeds sequences already tokenized under `spec` (the prompt's tokens included, as
    /// [`Encoder::embed_tokens`] makes them), in input order.
    pub fn embed_ids_with(&self, seqs: &[Vec<u32>], spec: &EmbedSpec) -> Result<Vec<Embedding>> {
        let mut out: Vec<Option<Embedding>> = vec![None; seqs.len()];
        let source = seqs.iter().enumerate().map(|(i, s)| Ok((i, s.as_slice())));
        for batch in crate::text::pack::Packer::new(source, self.capacity, self.capacity)? {
            for (i, e) in self.embed_packed_with(&batch?, spec)? {
                out[i] = Some(e);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Embeds one packed batch of `embed_tokens` sequences under `spec`.
    pub fn embed_packed_with(
        &self,
        batch: &PackedBatch,
        spec: &EmbedSpec,
    ) -> Result<Vec<(usize, Embedding)>> {
        let finish = |mut list: Vec<(usize, Embedding)>| {
            for (_, e) in &mut list {
                e.vectors
                    .iter_mut()
                    .for_each(|v| finish_vector(v, spec.dimensions, spec.normalize));
            }
            list
        };
        if let Some(p) = spec.pooling {
            return Ok(finish(self.embed_packed(batch, p, false)?));
        }
        let sc = &self.sentence;
        let pooling = sc
            .pooling
            .clone()
            .unwrap_or_else(|| PoolingConfig::single(PoolingMode::Mean));
        let gpu_mode = match pooling.modes.as_slice() {
            _ if !pooling.include_prompt && spec.skip > 0 => None,
            [PoolingMode::Cls] => Some(EmbedPooling::Cls),
            [PoolingMode::Mean] => Some(EmbedPooling::Mean),
            _ => None,
        };
        let pooled: Vec<(usize, Embedding)> = match gpu_mode {
            Some(mode) => self.embed_packed(batch, mode, false)?,
            None => self.with_batch(batch, 0, |bucket, _| {
                let hs = read_hidden(bucket, batch)?;
                Ok(hs
                    .iter()
                    .enumerate()
                    .map(|(s, states)| {
                        let e = Embedding {
                            n_tokens: states.len(),
                            vectors: vec![pooling.pool(states, spec.skip)],
                        };
                        (batch.indices[s], e)
                    })
                    .collect())
            })?,
        };
        let mut out = pooled;
        for (_, e) in &mut out {
            for v in &mut e.vectors {
                for d in &sc.dense {
                    *v = d.forward(v);
                }
                if sc.normalize {
                    super::l2_normalize(v);
                }
            }
        }
        Ok(finish(out))
    }

    /// Token sequences of ColBERT queries (`query: true`) or documents, as PyLate builds them.
    pub fn multi_tokens(
        &self,
        texts: &[&str],
        query: bool,
        first_index: usize,
    ) -> Result<Vec<Vec<u32>>> {
        let cb = self.sentence.colbert.as_ref().ok_or_else(not_colbert)?;
        let tok = self.tokenizer()?;
        // PyLate puts the default prompt, when the model names one, before the text;
        // sentence-transformers' MultiVectorEncoder its "query" / "document" prompt, else the
        // default one.
        let sc = &self.sentence;
        let role = match cb.layout {
            MultiVectorLayout::SentenceTransformers => {
                sc.prompts.get(if query { "query" } else { "document" })
            }
            MultiVectorLayout::PyLate => None,
        };
        let prompt = match (role, &sc.default_prompt_name) {
            (Some(p), _) => p.as_str(),
            (None, Some(name)) => sc.prompt(name)?,
            (None, None) => "",
        };
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                cb.tokens(
                    tok,
                    &crate::text::prompted(prompt, t),
                    query,
                    first_index + i,
                )
            })
            .collect()
    }

    /// ColBERT vectors of `multi_tokens` sequences: one unit vector per kept token.
    pub fn embed_multi_ids(&self, seqs: &[Vec<u32>], query: bool) -> Result<Vec<Embedding>> {
        let cb = self.sentence.colbert.as_ref().ok_or_else(not_colbert)?;
        let skip = cb.skiplist_ids(self.tokenizer()?);
        // Unattended query expansion: the trailing expansion tokens are queries but not keys.
        let keys = if query && cb.masks_expansion() {
            let expansion_id = cb.expansion_id(self.tokenizer()?)?;
            let keys = seqs.iter().map(|ids| cb.attended(ids, query, expansion_id));
            Some(keys.collect::<Vec<_>>())
        } else {
            None
        };
        let hidden = self.hidden_states_keyed(seqs, keys.as_deref())?;
        // A Normalize module before the token pooling normalizes its input; one after it
        // (or without pooling) its output.
        let pooling = self.sentence.token_pooling.as_ref();
        let pooling = pooling.filter(|p| p.applies(query));
        let norm_before = cb.normalize && pooling.is_none_or(|p| p.normalized_input);
        let norm_after = cb.normalize && !norm_before;
        Ok(seqs
            .iter()
            .zip(hidden)
            .map(|(ids, states)| {
                let mut vectors: Vec<Vec<f32>> = ids
                    .iter()
                    .zip(states)
                    .filter(|(id, _)| cb.scored(**id, query, &skip))
                    .map(|(_, mut v)| {
                        for d in &self.sentence.dense {
                            v = d.forward(&v);
                        }
                        if norm_before {
                            super::l2_normalize(&mut v);
                        }
                        v
                    })
                    .collect();
                if let Some(p) = pooling {
                    vectors = p.pool(vectors);
                }
                if norm_after {
                    vectors.iter_mut().for_each(|v| super::l2_normalize(v));
                }
                Embedding {
                    n_tokens: ids.len(),
                    vectors,
                }
            })
            .collect())
    }

    /// ColBERT (PyLate) per-token vectors of queries or documents.
    pub fn embed_multi(&self, texts: &[&str], query: bool) -> Result<Vec<Embedding>> {
        let seqs = self.multi_tokens(texts, query, 0)?;
        self.embed_multi_ids(&seqs, query)
    }

    /// Scores documents against a query, best first: a cross-encoder's score of each pair, a
    /// bi-encoder's similarity (with its query/document prompts), or ColBERT's MaxSim.
    pub fn rerank(&self, query: &str, docs: &[&str], opts: &RerankOptions) -> Result<Vec<Ranked>> {
        let scores = match self.sentence.kind() {
            ModelKind::CrossEncoder => self.cross_scores(query, docs, opts.raw_scores)?,
            ModelKind::Colbert => {
                let q = self.embed_multi(&[query], true)?;
                let d = self.embed_multi(docs, false)?;
                d.iter()
                    .map(|d| maxsim(&q[0].vectors, &d.vectors))
                    .collect()
            }
            ModelKind::Sparse => {
                let with = |q: bool| SparseOptions {
                    prompt: self.role(q),
                    top_k: None,
                };
                let qv = self.embed_sparse(&[query], &with(true))?;
                let dv = self.embed_sparse(docs, &with(false))?;
                let sim = self.sentence.similarity.unwrap_or(Similarity::Dot);
                dv.iter()
                    .map(|d| qv[0].similarity(sim, d))
                    .collect::<Result<Vec<f32>>>()?
            }
            ModelKind::Embedder | ModelKind::Plain => {
                let sc = &self.sentence;
                let role = |q: bool| self.role(q);
                let with = |q: bool| EmbedOptions {
                    prompt: role(q),
                    ..Default::default()
                };
                let qv = self.embed_with(&[query], &with(true))?;
                let dv = self.embed_with(docs, &with(false))?;
                let sim = sc.similarity.unwrap_or(Similarity::Cosine);
                dv.iter()
                    .map(|d| similarity(sim, &qv[0].vectors[0], &d.vectors[0]))
                    .collect()
            }
        };
        let mut ranked: Vec<Ranked> = scores
            .into_iter()
            .enumerate()
            .map(|(index, score)| Ranked { index, score })
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
        if let Some(n) = opts.top_n {
            ranked.truncate(n);
        }
        Ok(ranked)
    }

    /// The prompt of a query (`query: true`) or document in `rerank`: the model's
    /// query/document prompt, else its default.
    fn role(&self, query: bool) -> Prompt {
        match self.sentence.role_prompt(query) {
            Some(p) => Prompt::Text(p.to_string()),
            None => Prompt::ModelDefault,
        }
    }

    /// A cross-encoder's score of each (query, document) pair, `[CLS] q [SEP] d [SEP]`.
    pub fn cross_scores(&self, query: &str, docs: &[&str], raw: bool) -> Result<Vec<f32>> {
        let act = self
            .sentence
            .cross_activation
            .ok_or_else(|| Error::MissingHead {
                task: "score pairs",
                message: "not a cross-encoder (a sequence classifier with one label)".into(),
            })?;
        let seqs = docs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let pair = Input::Pair(query.to_string(), d.to_string());
                self.input_tokens(&pair, None, Truncation::Model, i)
            })
            .collect::<Result<Vec<_>>>()?;
        let logits = self.classify_ids(&seqs)?;
        Ok(logits
            .iter()
            .map(|l| {
                let x = l.first().copied().unwrap_or(f32::NAN);
                if raw { x } else { act.apply(x as f64) as f32 }
            })
            .collect())
    }
}

fn not_colbert() -> Error {
    Error::MissingHead {
        task: "give multi-vector embeddings",
        message: "not a ColBERT model (PyLate layout with query/document prefixes)".into(),
    }
}

/// A model's similarity of two vectors (distances negated so that higher is closer).
pub fn similarity(sim: Similarity, a: &[f32], b: &[f32]) -> f32 {
    let pairs = a.iter().zip(b).map(|(&x, &y)| (x as f64, y as f64));
    let v = match sim {
        Similarity::Dot | Similarity::MaxSim => pairs.map(|(x, y)| x * y).sum(),
        Similarity::Euclidean => -pairs.map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt(),
        Similarity::Manhattan => -pairs.map(|(x, y)| (x - y).abs()).sum::<f64>(),
        Similarity::Cosine => {
            let (mut d, mut na, mut nb) = (0.0, 0.0, 0.0);
            for (x, y) in pairs {
                d += x * y;
                na += x * x;
                nb += y * y;
            }
            d / (na.sqrt() * nb.sqrt()).max(1e-12)
        }
    };
    v as f32
}
