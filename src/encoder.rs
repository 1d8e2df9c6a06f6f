//! `Encoder`: a loaded ModernBERT on a GPU, and the tasks it serves (embeddings, fill-mask,
//! classification). Texts are tokenized, packed into batches up to the device's token
//! capacity, run through the recorded encoder plan of the smallest capacity bucket that holds
//! the batch, and the heads' results are returned in input order.

use std::collections::{BTreeMap, HashMap};
use std::ops::Not;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::hub::{self, HubOptions, ModelSource};
use crate::model::config::ModelConfig;
use crate::model::graph::{self, EncoderGraph};
use crate::model::heads::{ClassifierHead, MLM_ROWS, MlmHead, PoolHead};
use crate::model::upload::ModelWeights;
use crate::model::weights::Checkpoint;
use crate::ops::DType;
use crate::ops::pooling::PoolMode;
use crate::runtime::{Gpu, GpuOptions, RunSizes};
use crate::text::pack::{PackedBatch, Packer};
use crate::text::tokenizer::TextTokenizer;

/// Per sequence: (position, top-k (token id, probability)) for each selected position.
pub type TopK = Vec<Vec<(usize, Vec<(u32, f32)>)>>;
use crate::{Error, Result};

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Storage precision; `None` picks f16 where the adapter has it, else f32.
    pub dtype: Option<DType>,
    /// Adapter choice (ignored by `load_on`).
    pub gpu: GpuOptions,
    /// Hub access (cache, offline, token, progress).
    pub hub: HubOptions,
    /// A tokenizer.json to use instead of the model's.
    pub tokenizer: Option<PathBuf>,
    /// Cut texts longer than the model's limit instead of refusing them.
    pub truncate: bool,
    /// Largest number of tokens in one batch; `None` sizes it to the device.
    pub max_batch_tokens: Option<usize>,
    /// Print loading progress on stderr.
    pub progress: bool,
}

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

/// One candidate token for a [MASK].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Candidate {
    pub token_id: u32,
    pub token: String,
    pub score: f32,
    /// The text with this mask filled by the candidate (other masks left as they are).
    pub sequence: String,
}

/// The candidates of one [MASK], at its index in the tokenized sequence ([CLS] = 0).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MaskPrediction {
    pub position: usize,
    pub candidates: Vec<Candidate>,
}

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

struct Bucket {
    enc: EncoderGraph,
    pools: HashMap<(PoolMode, bool), PoolHead>,
    mlm: HashMap<usize, MlmHead>,
    seq_cls: Option<ClassifierHead>,
    tok_cls: Option<ClassifierHead>,
}

/// A loaded model on a GPU. `Send + Sync`: calls from several threads are serialised on the
/// device (one batch at a time), each returning its own results.
///
/// ```no_run
/// use wgbert::encoder::{EmbedPooling, Encoder, LoadOptions};
///
/// let enc = Encoder::load("answerdotai/ModernBERT-base", &LoadOptions::default())?;
/// for mask in &enc.fill_mask(&["The capital of France is [MASK]."], 5)?[0] {
///     for c in &mask.candidates {
///         println!("{:.3} {}", c.score, c.token);
///     }
/// }
/// let docs = enc.embed(&["first document", "second document"], EmbedPooling::Mean, true)?;
/// assert_eq!(docs[0].vectors[0].len(), enc.config().hidden_size);
/// # Ok::<(), wgbert::Error>(())
/// ```
///
/// On a device the host application owns:
///
/// ```no_run
/// # fn app_device() -> (wgpu::Device, wgpu::Queue, wgpu::Adapter) { unimplemented!() }
/// use wgbert::encoder::{Encoder, LoadOptions};
/// use wgbert::runtime::Gpu;
///
/// let (device, queue, adapter) = app_device();
/// let gpu = Gpu::from_wgpu(device, queue, Some(&adapter));
/// let enc = Encoder::load_on(gpu, "answerdotai/ModernBERT-base", &LoadOptions::default())?;
/// # Ok::<(), wgbert::Error>(())
/// ```
pub struct Encoder {
    gpu: Arc<Gpu>,
    config: ModelConfig,
    weights: ModelWeights,
    tokenizer: Option<TextTokenizer>,
    capacity: usize,
    buckets: Mutex<BTreeMap<usize, Bucket>>,
}

/// Smallest bucket: batches up to this many tokens use a plan of this size.
const MIN_BUCKET: usize = 512;
/// Default capacity: enough for a full 8192-token sequence plus a little.
const DEFAULT_CAPACITY: usize = 16384;

impl Encoder {
    /// Loads a model from a directory or a hub id (e.g. `answerdotai/ModernBERT-base`) on an
    /// adapter picked by `opts.gpu`.
    pub fn load(source: &str, opts: &LoadOptions) -> Result<Encoder> {
        let gpu = Gpu::new(&opts.gpu)?;
        Self::load_on(gpu, source, opts)
    }

    /// Loads a model onto a device the caller already owns (`Gpu::from_wgpu`).
    pub fn load_on(gpu: Arc<Gpu>, source: &str, opts: &LoadOptions) -> Result<Encoder> {
        let src = ModelSource::parse(source)?;
        let files = hub::resolve(&src, &opts.hub)?;
        let config = ModelConfig::from_file(&files.config)?;
        let ck = match files.weights.first() {
            // A hub snapshot or a model directory holds the index and its shards side by side.
            Some(first) if files.is_sharded() => {
                Checkpoint::open(first.parent().unwrap_or(std::path::Path::new(".")))?
            }
            Some(first) => Checkpoint::open_file(first)?,
            None => {
                return Err(Error::Hub {
                    source_name: source.to_string(),
                    message: "no safetensors weights found".into(),
                });
            }
        };
        let tok_path = opts.tokenizer.clone().or(files.tokenizer.clone());
        let tokenizer = match tok_path {
            Some(p) => Some(
                TextTokenizer::from_file(&p)?
                    .with_limit(Some(config.max_position_embeddings), opts.truncate)?,
            ),
            None => None,
        };
        let dtype = pick_dtype(&gpu, opts.dtype)?;
        // A bar on a terminal; nothing when stderr is redirected or progress is off.
        let bar = if opts.progress {
            indicatif::ProgressBar::new(ck.len() as u64)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template("loading weights {bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let mut on_tensor = |name: &str| {
            bar.inc(1);
            bar.set_message(name.to_string());
        };
        let weights = ModelWeights::load(&gpu, &config, &ck, dtype, &mut on_tensor)?;
        bar.finish_and_clear();
        if opts.progress {
            let mib = weights.bytes >> 20;
            eprintln!(
                "loaded {} ({mib} MiB, {dtype:?}) on {}",
                source,
                gpu.info().name
            );
        }
        Self::assemble(gpu, config, weights, tokenizer, opts.max_batch_tokens)
    }

    /// A model with random weights of `config`'s shapes (benchmarks, tests); no tokenizer.
    pub fn random(
        gpu: Arc<Gpu>,
        config: ModelConfig,
        dtype: Option<DType>,
        max_batch_tokens: Option<usize>,
    ) -> Result<Encoder> {
        let dtype = pick_dtype(&gpu, dtype)?;
        let weights = ModelWeights::random(&gpu, &config, dtype, 0x5eed)?;
        Self::assemble(gpu, config, weights, None, max_batch_tokens)
    }

    fn assemble(
        gpu: Arc<Gpu>,
        config: ModelConfig,
        weights: ModelWeights,
        tokenizer: Option<TextTokenizer>,
        max_batch_tokens: Option<usize>,
    ) -> Result<Encoder> {
        let limit = graph::max_capacity_for_bindings(&gpu, &config, weights.dtype);
        let capacity = match max_batch_tokens {
            Some(0) => return Err(Error::Option("--max-tokens must be at least 1".into())),
            Some(n) if n > limit => {
                return Err(Error::Option(format!(
                    "a batch of {n} tokens needs buffers over this device's binding limit; at most {limit}"
                )));
            }
            Some(n) => n,
            None => DEFAULT_CAPACITY.min(limit),
        };
        Ok(Encoder {
            gpu,
            config,
            weights,
            tokenizer,
            capacity,
            buckets: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }
    pub fn dtype(&self) -> DType {
        self.weights.dtype
    }
    /// Tokens per batch at most (the largest plan's capacity).
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    pub fn tokenizer(&self) -> Result<&TextTokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| {
            Error::Tokenizer("this model has no tokenizer.json; pass one with --tokenizer".into())
        })
    }
    /// Bytes of weights on the device.
    pub fn weight_bytes(&self) -> u64 {
        self.weights.bytes
    }

    /// Tokenizes texts (errors name the text's index).
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let tok = self.tokenizer()?;
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| tok.encode(t, i).map(|e| e.ids))
            .collect()
    }

    fn bucket_for(&self, tokens: usize) -> usize {
        let mut c = MIN_BUCKET.min(self.capacity);
        while c < tokens {
            c = (c * 2).min(self.capacity);
        }
        c
    }

    /// The bucket of capacity `cap`, its encoder plan recorded on first use.
    fn bucket_mut<'a>(
        &self,
        buckets: &'a mut BTreeMap<usize, Bucket>,
        cap: usize,
    ) -> Result<&'a mut Bucket> {
        match buckets.entry(cap) {
            std::collections::btree_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::btree_map::Entry::Vacant(v) => {
                let enc = EncoderGraph::build(&self.gpu, &self.config, &self.weights, cap, cap)?;
                Ok(v.insert(Bucket {
                    enc,
                    pools: HashMap::new(),
                    mlm: HashMap::new(),
                    seq_cls: None,
                    tok_cls: None,
                }))
            }
        }
    }

    /// Runs the encoder on one packed batch and hands the bucket to `f` to run heads/read.
    fn with_batch<T>(
        &self,
        batch: &PackedBatch,
        selected: u32,
        f: impl FnOnce(&mut Bucket, &RunSizes) -> Result<T>,
    ) -> Result<T> {
        let t = batch.n_tokens();
        if t > self.capacity {
            return Err(Error::PlanInput(format!(
                "batch of {t} tokens over the capacity {}",
                self.capacity
            )));
        }
        let vocab = self.config.vocab_size as u32;
        if let Some(pos) = batch.ids.iter().position(|&id| id >= vocab) {
            // Name the sequence that holds the id, not the batch's first one.
            let s = (0..batch.n_seqs())
                .find(|&s| batch.seq_range(s).contains(&pos))
                .unwrap_or(0);
            return Err(Error::Input {
                index: batch.indices.get(s).copied().unwrap_or(0),
                message: format!(
                    "token id {} is outside the model's vocabulary of {vocab}",
                    batch.ids[pos]
                ),
            });
        }
        let cap = self.bucket_for(t);
        let mut buckets = self.buckets.lock().map_err(|_| poisoned())?;
        let bucket = self.bucket_mut(&mut buckets, cap)?;
        let sizes = RunSizes {
            rows: t as u32,
            segments: batch.n_seqs() as u32,
            max_segment: batch.max_seqlen,
            selected,
        };
        let enc = &mut bucket.enc;
        enc.plan.write(enc.ids, bytemuck::cast_slice(&batch.ids))?;
        enc.plan
            .write(enc.positions, bytemuck::cast_slice(&batch.positions))?;
        enc.plan
            .write(enc.cu_seqlens, bytemuck::cast_slice(&batch.cu_seqlens))?;
        enc.plan.run(&sizes)?;
        f(bucket, &sizes)
    }

    /// Final hidden states `[len, hidden]` (f32) of every token of each sequence.
    pub fn hidden_states(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<Vec<f32>>>> {
        let mut out = vec![Vec::new(); seqs.len()];
        self.for_each_batch(seqs, |batch, bucket, _| {
            let hs = read_hidden(bucket, batch)?;
            for (s, v) in hs.into_iter().enumerate() {
                out[batch.indices[s]] = v;
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn for_each_batch(
        &self,
        seqs: &[Vec<u32>],
        mut f: impl FnMut(&PackedBatch, &mut Bucket, &RunSizes) -> Result<()>,
    ) -> Result<()> {
        let source = seqs.iter().enumerate().map(|(i, s)| Ok((i, s.as_slice())));
        for batch in Packer::new(source, self.capacity, self.capacity)? {
            let batch = batch?;
            self.with_batch(&batch, 0, |bucket, sizes| f(&batch, bucket, sizes))?;
        }
        Ok(())
    }

    /// Embeddings of token sequences (see `embed`).
    pub fn embed_ids(
        &self,
        seqs: &[Vec<u32>],
        pooling: EmbedPooling,
        normalize: bool,
    ) -> Result<Vec<Embedding>> {
        let mut out: Vec<Option<Embedding>> = vec![None; seqs.len()];
        self.for_each_batch(seqs, |batch, bucket, sizes| {
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
                            v.iter_mut().for_each(|row| l2_normalize(row));
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
            let head = PoolHead::build(&self.gpu, &bucket.enc, mode, normalize)?;
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
        let values = DType::F32.decode(&bytes);
        Ok(values
            .chunks_exact(h)
            .enumerate()
            .map(|(s, v)| {
                (
                    batch.indices[s],
                    Embedding {
                        n_tokens: n_tokens(s),
                        vectors: vec![v.to_vec()],
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
        if k == 0 || k > 64 {
            return Err(Error::Option(format!(
                "top-k must be between 1 and 64, got {k}"
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
        if self.weights.heads.mlm.not() {
            return Err(Error::MissingHead {
                task: "fill masks",
                message: "the checkpoint has no MLM head (head.dense, head.norm, decoder); use a ModernBertForMaskedLM checkpoint".into(),
            });
        }
        let mut out = vec![Vec::new(); seqs.len()];
        self.for_each_batch(seqs, |batch, bucket, _| {
            if !bucket.mlm.contains_key(&k) {
                let head = MlmHead::build(&self.gpu, &self.config, &self.weights, &bucket.enc, k)?;
                bucket.mlm.insert(k, head);
            }
            let head = bucket.mlm.get_mut(&k).ok_or_else(poisoned)?;
            // (sequence, position in sequence, packed row) of every selected token.
            let mut picks: Vec<(usize, usize, u32)> = Vec::new();
            for s in 0..batch.n_seqs() {
                let start = batch.seq_range(s).start;
                for &p in &positions[batch.indices[s]] {
                    picks.push((s, p, (start + p) as u32));
                }
            }
            for chunk in picks.chunks(MLM_ROWS) {
                let rows: Vec<u32> = chunk.iter().map(|m| m.2).collect();
                head.plan.write(head.rows, bytemuck::cast_slice(&rows))?;
                head.plan.run(&RunSizes {
                    selected: rows.len() as u32,
                    ..Default::default()
                })?;
                let bytes = head.plan.read(head.out, 0, (rows.len() * k * 8) as u64)?;
                let top = crate::ops::topk::decode(&bytes, rows.len(), k);
                for (m, cands) in chunk.iter().zip(top) {
                    out[batch.indices[m.0]].push((m.1, cands));
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Fill-mask on texts: for every [MASK], the top-k tokens with probabilities. A text
    /// without [MASK] is an error naming it.
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
        let mut results = Vec::with_capacity(raw.len());
        for (seq, preds) in seqs.iter().zip(raw) {
            let mut masks = Vec::new();
            for (position, cands) in preds {
                let mut candidates = Vec::new();
                for (id, score) in cands {
                    let mut filled = seq.clone();
                    filled[position] = id;
                    candidates.push(Candidate {
                        token_id: id,
                        token: tok.decode(&[id])?,
                        score,
                        sequence: tok.decode(&filled)?,
                    });
                }
                masks.push(MaskPrediction {
                    position,
                    candidates,
                });
            }
            results.push(masks);
        }
        Ok(results)
    }

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

    /// Raw sequence-classification logits of token sequences.
    pub fn classify_ids(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let mut out = vec![Vec::new(); seqs.len()];
        self.for_each_batch(seqs, |batch, bucket, sizes| {
            if bucket.seq_cls.is_none() {
                bucket.seq_cls = Some(ClassifierHead::sequence(
                    &self.gpu,
                    &self.config,
                    &self.weights,
                    &bucket.enc,
                )?);
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
        self.require_classifier()?;
        let seqs = self.tokenize(texts)?;
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
        self.for_each_batch(seqs, |batch, bucket, sizes| {
            if bucket.tok_cls.is_none() {
                bucket.tok_cls = Some(ClassifierHead::token(
                    &self.gpu,
                    &self.config,
                    &self.weights,
                    &bucket.enc,
                )?);
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

    /// The plan listing of the bucket that a batch of `tokens` tokens would use.
    pub fn describe_plan(&self, tokens: usize) -> Result<String> {
        let cap = self.bucket_for(tokens.max(1));
        let mut buckets = self.buckets.lock().map_err(|_| poisoned())?;
        let b = self.bucket_mut(&mut buckets, cap)?;
        Ok(format!(
            "encoder plan for {cap} tokens ({:?}), weights {} bytes\n{}",
            self.weights.dtype,
            self.weights.bytes,
            b.enc.plan.describe()
        ))
    }

    /// Runs the encoder on a packed batch with per-step GPU timing (benchmarks).
    pub fn profile_batch(&self, batch: &PackedBatch) -> Result<crate::runtime::Profile> {
        self.with_batch(batch, 0, |bucket, sizes| {
            bucket.enc.plan.run_profiled(sizes)
        })
    }

    /// Runs the encoder on a packed batch and waits (benchmarks): returns the plan's peak bytes.
    pub fn run_batch(&self, batch: &PackedBatch) -> Result<u64> {
        self.with_batch(batch, 0, |bucket, _| {
            self.gpu.wait()?;
            Ok(bucket.enc.plan.peak_bytes())
        })
    }
}

fn read_hidden(bucket: &Bucket, batch: &PackedBatch) -> Result<Vec<Vec<Vec<f32>>>> {
    let enc = &bucket.enc;
    let h = enc.hidden_size;
    let e = enc.dtype.size() as usize;
    let bytes = enc
        .plan
        .read(enc.hidden, 0, (batch.n_tokens() * h * e) as u64)?;
    let all = enc.dtype.decode(&bytes);
    Ok((0..batch.n_seqs())
        .map(|s| {
            let r = batch.seq_range(s);
            all[r.start * h..r.end * h]
                .chunks_exact(h)
                .map(|c| c.to_vec())
                .collect()
        })
        .collect())
}

fn pick_dtype(gpu: &Gpu, want: Option<DType>) -> Result<DType> {
    match want {
        Some(DType::F16) if !gpu.caps().f16 => Err(Error::Unsupported(format!(
            "f16 storage (SHADER_F16) on '{}'; use --dtype f32",
            gpu.info().name
        ))),
        Some(d) => Ok(d),
        None if gpu.caps().f16 => Ok(DType::F16),
        None => Ok(DType::F32),
    }
}

fn poisoned() -> Error {
    Error::Gpu {
        context: "encoder state".into(),
        message: "lock poisoned by an earlier panic".into(),
    }
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

/// Scales a vector to unit L2 norm (as torch's F.normalize, eps 1e-12).
pub fn l2_normalize(v: &mut [f32]) {
    let n = v
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt()
        .max(1e-12);
    v.iter_mut().for_each(|x| *x = (*x as f64 / n) as f32);
}
