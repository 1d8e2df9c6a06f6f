//! `Encoder`: a loaded ModernBERT on a GPU, and the tasks it serves (embeddings, fill-mask,
//! classification). Texts are tokenized, packed into batches up to the device's token
//! capacity, run through the recorded encoder plan of the smallest capacity bucket that holds
//! the batch, and the heads' results are returned in input order.
//!
//! Device memory stays bounded whatever the traffic: the buckets are powers of two (at most
//! seven), each with at most one head per task (one MLM head serves every top-k), and every
//! plan's temporaries live in one activation arena shared by all buckets and heads, sized
//! for the largest bucket used so far (`runtime::arena::SharedArena`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::hub::{self, ModelSource};
use crate::model::config::ModelConfig;
use crate::model::graph::{self, EncoderGraph};
use crate::model::heads::{ClassifierHead, MlmHead, PoolHead, SparseHead};
use crate::model::upload::ModelWeights;
use crate::model::weights::{Checkpoint, Heads};
use crate::ops::DType;
use crate::ops::choice::Choices;
use crate::ops::pooling::PoolMode;
use crate::ops::tune;
use crate::ops::tune::F16Kernels;
use crate::runtime::arena::SharedArena;
use crate::runtime::{Gpu, MemoryStats, Plan, RunSizes};
use crate::sentence::{ModelKind, SentenceConfig};
use crate::text::pack::{PackedBatch, Packer};
use crate::text::tokenizer::TextTokenizer;

use crate::{Error, Result};

mod classify;
mod embed;
mod inputs;
mod kind;
mod late;
mod mlm;
mod options;
mod sentence;
mod sparse;

pub use crate::vector::l2_normalize;
pub use classify::{Classification, TokenLabel, softmax};
pub use embed::{EmbedPooling, Embedding};
pub use inputs::{Input, Truncation};
pub use kind::ModelTask;
pub use late::{
    Chunking, DEFAULT_OVERLAP, LateChunk, LateDocument, LateOptions, LatePlan, LateSpec,
};
pub use mlm::{Candidate, MaskPrediction, TopK};
pub use options::LoadOptions;
pub use sentence::{EmbedOptions, EmbedSpec, Prompt, Ranked, RerankOptions, similarity};
pub use sparse::{SparseOptions, SparseVector};

/// Where the time of a load went (`Encoder::timings`), and the plans built since.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadTimings {
    /// Reading the files and uploading the weights.
    pub load: Duration,
    /// Making the kernel choices: tensor-core self-checks and tile lookups or tuning.
    pub self_check: Duration,
    /// Recording plans and compiling their pipelines (each capacity bucket and head is
    /// built on first use).
    pub compile: Duration,
}

struct Bucket {
    enc: EncoderGraph,
    pools: HashMap<(PoolMode, bool), PoolHead>,
    mlm: Option<MlmHead>,
    seq_cls: Option<ClassifierHead>,
    tok_cls: Option<ClassifierHead>,
    sparse: Option<SparseHead>,
}

impl Bucket {
    fn plans_mut(&mut self) -> impl Iterator<Item = &mut Plan> {
        std::iter::once(&mut self.enc.plan)
            .chain(self.pools.values_mut().map(|h| &mut h.plan))
            .chain(self.mlm.iter_mut().map(|h| &mut h.plan))
            .chain(self.seq_cls.iter_mut().map(|h| &mut h.plan))
            .chain(self.tok_cls.iter_mut().map(|h| &mut h.plan))
            .chain(self.sparse.iter_mut().map(|h| &mut h.plan))
    }

    fn plans(&self) -> impl Iterator<Item = &Plan> {
        std::iter::once(&self.enc.plan)
            .chain(self.pools.values().map(|h| &h.plan))
            .chain(self.mlm.iter().map(|h| &h.plan))
            .chain(self.seq_cls.iter().map(|h| &h.plan))
            .chain(self.tok_cls.iter().map(|h| &h.plan))
            .chain(self.sparse.iter().map(|h| &h.plan))
    }

    /// The slots of its largest plan: what an arena of its own would hold.
    fn arena_need(&self) -> u64 {
        self.plans().map(Plan::arena_bytes).max().unwrap_or(0)
    }

    fn own_bytes(&self) -> u64 {
        self.plans().map(Plan::own_bytes).sum()
    }
}

/// Device bytes one encoder holds (`Encoder::device_bytes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeviceBytes {
    /// Weights.
    pub weights: u64,
    /// The shared activation arena (every bucket's and head's temporaries).
    pub arena: u64,
    /// Each built bucket's and head's own buffers: token ids, offsets, the final hidden
    /// states, head inputs and outputs, parameters.
    pub plans: u64,
    /// Capacity buckets built so far.
    pub buckets: usize,
    /// What the built buckets' activations would hold with an arena each instead of the
    /// shared one (the design before it): the sum over buckets of their largest plan's
    /// slots. For comparisons (`wgbert bench`); nothing holds these bytes.
    pub arena_per_bucket: u64,
}

impl DeviceBytes {
    pub fn total(&self) -> u64 {
        self.weights + self.arena + self.plans
    }
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
    choices: Choices,
    timings: Mutex<LoadTimings>,
    config: ModelConfig,
    weights: ModelWeights,
    tokenizer: Option<TextTokenizer>,
    sentence: SentenceConfig,
    capacity: usize,
    buckets: Mutex<BTreeMap<usize, Bucket>>,
    arena: Arc<SharedArena>,
    kernels: Option<F16Kernels>,
}

/// Smallest bucket: batches up to this many tokens use a plan of this size.
const MIN_BUCKET: usize = 512;
/// Default capacity (less where the device's binding limit says so): every benchmark
/// workload (64 x 512, 4 x 8192 tokens) runs as one batch. Buckets below it are built on
/// first use, so short jobs never allocate this much.
const DEFAULT_CAPACITY: usize = 32768;

impl Encoder {
    /// Loads a model from a directory or a hub id (e.g. `answerdotai/ModernBERT-base`) on an
    /// adapter picked by `opts.gpu`.
    pub fn load(source: &str, opts: &LoadOptions) -> Result<Encoder> {
        let gpu = Gpu::new(&opts.gpu)?;
        Self::load_on(gpu, source, opts)
    }

    /// Loads a model onto a device the caller already owns (`Gpu::from_wgpu`).
    pub fn load_on(gpu: Arc<Gpu>, source: &str, opts: &LoadOptions) -> Result<Encoder> {
        let started = Instant::now();
        let src = ModelSource::parse(source)?;
        let mut hub_opts = opts.hub.clone();
        if hub_opts.progress.is_none() {
            hub_opts.progress = opts.progress.clone();
        }
        // The retrieval layout names its own companion files.
        let files = hub::resolve_with(&src, &hub_opts, &mut crate::sentence::companion_files)?;
        let config = ModelConfig::from_file(&files.config)?;
        let sentence = SentenceConfig::from_files(&files, &config)?;
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
        // sentence-transformers' max_seq_length caps the model's own limit (ColBERT models
        // cut queries and documents to their own lengths instead).
        let limit = match (sentence.max_seq_length, sentence.kind()) {
            (Some(n), kind) if kind != ModelKind::Colbert => n.min(config.max_position_embeddings),
            _ => config.max_position_embeddings,
        };
        let tokenizer = match tok_path {
            Some(p) => Some(TextTokenizer::from_file(&p)?.with_limit(Some(limit), opts.truncate)?),
            None => None,
        };
        let dtype = pick_dtype(&gpu, opts.dtype)?;
        let observer = opts.progress.as_deref();
        if let Some(p) = observer {
            p.start("loading weights", ck.len() as u64);
        }
        let mut on_tensor = |name: &str| {
            if let Some(p) = observer {
                p.advance(1, name);
            }
        };
        let weights = ModelWeights::load(&gpu, &config, &ck, dtype, &mut on_tensor)?;
        if let Some(p) = observer {
            p.finish();
        }
        let load = started.elapsed();
        let mut enc = Self::assemble(gpu, config, weights, tokenizer, opts, observer)?;
        enc.sentence = sentence;
        if let Ok(mut t) = enc.timings.lock() {
            t.load = load;
        }
        Ok(enc)
    }

    /// A model with random weights of `config`'s shapes (benchmarks, tests); no tokenizer.
    pub fn random(
        gpu: Arc<Gpu>,
        config: ModelConfig,
        dtype: Option<DType>,
        max_batch_tokens: Option<usize>,
    ) -> Result<Encoder> {
        let opts = LoadOptions {
            dtype,
            max_batch_tokens,
            ..Default::default()
        };
        Self::random_with(gpu, config, &opts)
    }

    /// `random` with the precision, batch size and kernel settings of `opts`.
    pub fn random_with(gpu: Arc<Gpu>, config: ModelConfig, opts: &LoadOptions) -> Result<Encoder> {
        let dtype = pick_dtype(&gpu, opts.dtype)?;
        let weights = ModelWeights::random(&gpu, &config, dtype, 0x5eed)?;
        Self::assemble(gpu, config, weights, None, opts, None)
    }

    /// The f16 kernels this encoder runs (tensor-core or not, and why not), for f16 models
    /// and where tensor cores are required; `None` otherwise.
    pub fn f16_kernels(&self) -> Option<&F16Kernels> {
        self.kernels.as_ref()
    }

    /// The kernel choices this encoder records its plans with.
    pub fn choices(&self) -> &Choices {
        &self.choices
    }

    /// Records plans with `choices` from now on (tiles an application knows to be best, or a
    /// test's): the plans recorded so far are dropped and built again on next use. Two
    /// encoders on one device may hold different choices.
    pub fn set_choices(&mut self, choices: Choices) -> Result<()> {
        self.buckets.lock().map_err(|_| poisoned())?.clear();
        self.choices = choices;
        Ok(())
    }

    /// Where the time of the load went, and the time spent building plans since.
    pub fn timings(&self) -> LoadTimings {
        self.timings.lock().map(|t| *t).unwrap_or_default()
    }

    /// Checks and chooses the kernels (`ops::tune::choose`: the tensor-core self-checks,
    /// once per device and cached on disk, and the tiles of the kernels this model runs),
    /// then sizes the capacity. Plans are recorded (and their pipelines compiled) on first
    /// use.
    fn assemble(
        gpu: Arc<Gpu>,
        config: ModelConfig,
        weights: ModelWeights,
        tokenizer: Option<TextTokenizer>,
        opts: &LoadOptions,
        progress: Option<&dyn crate::progress::Progress>,
    ) -> Result<Encoder> {
        let started = Instant::now();
        let start = Choices::new(opts.coop);
        let head_dim = u32::try_from(config.head_dim).unwrap_or(0);
        let dtype = weights.dtype;
        let mode = tune::Mode::Ensure;
        let chosen = tune::choose(&gpu, start, &opts.tune, dtype, head_dim, mode, progress)?;
        if let Some(k) = &chosen.kernels {
            log::info!("f16 kernels on '{}': {k:?}", gpu.info().name);
        }
        for c in &chosen.tiles {
            log::info!(
                "{} {} {}: {} ({})",
                c.op,
                c.class,
                c.dtype,
                c.config,
                c.source
            );
        }
        let self_check = started.elapsed();
        let limit = graph::max_capacity_for_bindings(&gpu, &config, weights.dtype);
        let capacity = match opts.max_batch_tokens {
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
            arena: SharedArena::new(gpu.clone()),
            gpu,
            choices: chosen.choices,
            timings: Mutex::new(LoadTimings {
                self_check,
                ..Default::default()
            }),
            config,
            weights,
            tokenizer,
            sentence: SentenceConfig::default(),
            capacity,
            buckets: Mutex::new(BTreeMap::new()),
            kernels: chosen.kernels,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }
    /// The model's retrieval layout: its kind (embedder, cross-encoder, ColBERT), pooling,
    /// Dense modules, normalization, prompts and similarity.
    pub fn sentence_config(&self) -> &SentenceConfig {
        &self.sentence
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
    /// The task heads the checkpoint carries (masked-LM, classifier with its label count).
    pub fn heads(&self) -> Heads {
        self.weights.heads
    }
    /// Bytes of weights on the device.
    pub fn weight_bytes(&self) -> u64 {
        self.weights.bytes
    }
    /// The weights held in row pieces because they exceed one storage binding of the
    /// device (`model::split`), with the rows of each piece; empty when every tensor fits.
    pub fn weight_splits(&self) -> Vec<crate::model::split::SplitReport> {
        self.weights.splits()
    }

    /// Device bytes this encoder holds now: weights, the shared activation arena, and the
    /// buckets' and heads' own buffers. `gpu().memory()` counts every buffer of the device
    /// instead (several encoders, readback staging), with its peak.
    pub fn device_bytes(&self) -> Result<DeviceBytes> {
        let buckets = self.lock_buckets();
        Ok(DeviceBytes {
            weights: self.weights.bytes,
            arena: self.arena.bytes(),
            plans: buckets.values().map(Bucket::own_bytes).sum(),
            buckets: buckets.len(),
            arena_per_bucket: buckets.values().map(Bucket::arena_need).sum(),
        })
    }

    /// Gives back every bucket, head and the shared arena; the next batches build what they
    /// need again (measuring one workload's memory, or after a burst of long batches).
    pub fn trim(&self) -> Result<()> {
        let mut buckets = self.lock_buckets();
        buckets.clear();
        self.arena.clear()
    }

    /// The device's memory count (`Gpu::memory`): what every buffer of this device holds now
    /// by kind, and the peak.
    pub fn memory(&self) -> MemoryStats {
        self.gpu.memory()
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
                let started = Instant::now();
                let arena = Some(self.arena.clone());
                let (cfg, w) = (&self.config, &self.weights);
                let enc = EncoderGraph::build(&self.gpu, &self.choices, cfg, w, (cap, cap), arena)?;
                self.built(started);
                Ok(v.insert(Bucket {
                    enc,
                    pools: HashMap::new(),
                    mlm: None,
                    seq_cls: None,
                    tok_cls: None,
                    sparse: None,
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
        let mut buckets = self.lock_buckets();
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
        enc.plan
            .write(enc.key_lens, bytemuck::cast_slice(&batch.key_lens))?;
        enc.plan.run(&sizes)?;
        let out = f(bucket, &sizes);
        // A plan built in this call may have grown the shared arena: every other plan binds
        // the new slots now, so the old ones are given back at once.
        for b in buckets.values_mut() {
            for plan in b.plans_mut() {
                plan.refresh()?;
            }
        }
        out
    }

    /// Builds the bucket (and so grows the shared arena) that a batch of `tokens` tokens
    /// would use, without running it: what a run of that size would allocate
    /// (`wgbert bench --dry-run`).
    pub fn reserve(&self, tokens: usize) -> Result<usize> {
        if tokens > self.capacity {
            return Err(Error::PlanInput(format!(
                "batch of {tokens} tokens over the capacity {}",
                self.capacity
            )));
        }
        let cap = self.bucket_for(tokens.max(1));
        let mut buckets = self.lock_buckets();
        self.bucket_mut(&mut buckets, cap)?;
        for b in buckets.values_mut() {
            for plan in b.plans_mut() {
                plan.refresh()?;
            }
        }
        Ok(cap)
    }

    /// Final hidden states `[len, hidden]` (f32) of every token of each sequence.
    pub fn hidden_states(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<Vec<f32>>>> {
        self.hidden_states_keyed(seqs, None)
    }

    /// `hidden_states` where sequence i attends only to its first `keys[i]` tokens (all of
    /// its tokens are still computed): PyLate's unattended query expansion.
    pub fn hidden_states_keyed(
        &self,
        seqs: &[Vec<u32>],
        keys: Option<&[usize]>,
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        if keys.is_some_and(|k| k.len() != seqs.len()) {
            return Err(Error::Option(
                "hidden_states_keyed: one key count per sequence is needed".into(),
            ));
        }
        let mut out = vec![Vec::new(); seqs.len()];
        self.for_each_batch(seqs, keys, |batch, bucket, _| {
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
        keys: Option<&[usize]>,
        mut f: impl FnMut(&PackedBatch, &mut Bucket, &RunSizes) -> Result<()>,
    ) -> Result<()> {
        let source = seqs.iter().enumerate().map(|(i, s)| Ok((i, s.as_slice())));
        for batch in Packer::new(source, self.capacity, self.capacity)? {
            let mut batch = batch?;
            if let Some(keys) = keys {
                for s in 0..batch.n_seqs() {
                    batch.limit_keys(s, keys[batch.indices[s]]);
                }
            }
            self.with_batch(&batch, 0, |bucket, sizes| f(&batch, bucket, sizes))?;
        }
        Ok(())
    }

    /// The plan listing of the bucket that a batch of `tokens` tokens would use.
    pub fn describe_plan(&self, tokens: usize) -> Result<String> {
        let cap = self.bucket_for(tokens.max(1));
        let mut buckets = self.lock_buckets();
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

impl Encoder {
    /// Counts the time of a plan built since `started` as compile time, and writes the
    /// pipelines compiled for it to the pipeline cache.
    fn built(&self, started: Instant) {
        if let Ok(mut t) = self.timings.lock() {
            t.compile += started.elapsed();
        }
        self.gpu.save_pipeline_cache();
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

impl Encoder {
    /// The buckets, locked. A panic while they were held (a bug) may have left a plan or a
    /// head half written: they are all dropped, with the shared arena, and rebuilt on next
    /// use, instead of every later call failing on the poisoned lock.
    fn lock_buckets(&self) -> MutexGuard<'_, BTreeMap<usize, Bucket>> {
        match self.buckets.lock() {
            Ok(buckets) => buckets,
            Err(poison) => {
                let mut buckets = poison.into_inner();
                log::warn!("an earlier panic interrupted a batch; the encoder's plans are rebuilt");
                buckets.clear();
                if let Err(e) = self.arena.clear() {
                    log::warn!("clearing the activation arena: {e}");
                }
                self.buckets.clear_poison();
                buckets
            }
        }
    }
}

/// A head that its bucket should hold is missing (a bug, not input).
fn poisoned() -> Error {
    Error::Gpu {
        context: "encoder state".into(),
        message: "a head of this batch's bucket is missing".into(),
    }
}

#[cfg(test)]
mod tests;
