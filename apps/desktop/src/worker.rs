//! The GPU worker: one thread that owns the encoders and the index, takes jobs from the
//! window over a channel and answers over another, asking the window to repaint after each
//! answer. The window never waits on the GPU.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};

use wgbert::encoder::{EmbedOptions, EmbedSpec, Encoder, LoadOptions, ModelTask, Prompt};
use wgbert::ops::DType;
use wgbert::runtime::Gpu;

use crate::corpus::{self, Chunk};

/// Chunks embedded per call: progress and cancel are checked between batches.
const BATCH: usize = 16;
/// Files shown for a query.
pub const TOP_FILES: usize = 20;
/// Candidates shown for each mask.
const TOP_MASK: usize = 5;

pub enum Job {
    /// Index `folder` with the embedding model `model` (loaded first if it is not the one
    /// loaded). `cancel` stops it between batches.
    Index {
        folder: PathBuf,
        model: String,
        cancel: Arc<AtomicBool>,
    },
    /// Rank the indexed files for a query.
    Query { id: u64, text: String },
    /// Fill the `[MASK]`s of a text with the MLM model `model`.
    FillMask {
        id: u64,
        model: String,
        text: String,
    },
}

pub enum Reply {
    /// A model is being loaded (or was: `done`).
    Loading {
        model: String,
        done: bool,
    },
    /// What the folder holds, before embedding starts.
    Read {
        files: usize,
        chunks: usize,
        skipped: Vec<String>,
    },
    /// Chunks embedded so far.
    Progress {
        done: usize,
        total: usize,
    },
    Indexed(Result<IndexInfo, String>),
    Cancelled,
    Results {
        id: u64,
        result: Result<Vec<Hit>, String>,
    },
    Masks {
        id: u64,
        result: Result<Vec<MaskRow>, String>,
    },
}

/// What the window shows (and the script prints) about a finished index.
#[derive(Clone, Debug, serde::Serialize)]
pub struct IndexInfo {
    pub folder: String,
    pub model: String,
    pub dtype: String,
    pub files: usize,
    /// The prompts put before chunks and queries (the model's document and query prompts).
    pub document_prompt: Option<String>,
    pub query_prompt: Option<String>,
    pub chunks: Vec<Chunk>,
    pub seconds: f64,
}

/// One ranked file: its best chunk and that chunk's cosine similarity to the query.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Hit {
    pub file: String,
    pub score: f32,
    /// The best chunk's index in the index's chunk list.
    pub chunk: usize,
    pub lines: [usize; 2],
    pub text: String,
}

/// One `[MASK]`'s candidates: token and probability.
#[derive(Clone, Debug)]
pub struct MaskRow {
    pub position: usize,
    pub candidates: Vec<(String, f32, String)>,
}

struct Index {
    chunks: Vec<Chunk>,
    /// Unit-length vectors, one per chunk.
    vectors: Vec<Vec<f32>>,
    query: EmbedSpec,
}

struct Worker {
    gpu: Arc<Gpu>,
    dtype: Option<DType>,
    offline: bool,
    embedder: Option<(String, Encoder)>,
    mlm: Option<(String, Encoder)>,
    index: Option<Index>,
    tx: Sender<Reply>,
    repaint: Box<dyn Fn() + Send>,
}

/// Starts the worker on its own thread. It ends when the window drops its job sender.
pub fn spawn(
    gpu: Arc<Gpu>,
    dtype: Option<DType>,
    offline: bool,
    jobs: Receiver<Job>,
    tx: Sender<Reply>,
    repaint: impl Fn() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("wgbert-worker".into())
        .spawn(move || {
            let mut w = Worker {
                gpu,
                dtype,
                offline,
                embedder: None,
                mlm: None,
                index: None,
                tx,
                repaint: Box::new(repaint),
            };
            while let Ok(job) = jobs.recv() {
                w.run(job);
            }
        })
}

impl Worker {
    fn send(&self, reply: Reply) {
        let _ = self.tx.send(reply);
        (self.repaint)();
    }

    /// Runs one job and answers it. A panic inside is caught and answered as that job's
    /// error, so the window shows it and the worker stays up.
    fn run(&mut self, job: Job) {
        match job {
            Job::Index {
                folder,
                model,
                cancel,
            } => {
                self.index = None;
                let r = guarded(|| self.build_index(&folder, &model, &cancel));
                match r {
                    Ok(Some(info)) => self.send(Reply::Indexed(Ok(info))),
                    Ok(None) => self.send(Reply::Cancelled),
                    Err(e) => self.send(Reply::Indexed(Err(e))),
                }
            }
            Job::Query { id, text } => {
                let result = guarded(|| self.query(&text));
                self.send(Reply::Results { id, result });
            }
            Job::FillMask { id, model, text } => {
                let result = guarded(|| self.fill_mask(&model, &text));
                self.send(Reply::Masks { id, result });
            }
        }
    }

    fn load(&self, model: &str) -> Result<Encoder, String> {
        self.send(Reply::Loading {
            model: model.to_string(),
            done: false,
        });
        let mut opts = LoadOptions {
            dtype: self.dtype,
            truncate: true,
            ..Default::default()
        };
        opts.hub.offline = self.offline;
        let enc = Encoder::load_on(self.gpu.clone(), model, &opts)
            .map_err(|e| format!("cannot load {model}: {e}"));
        self.send(Reply::Loading {
            model: model.to_string(),
            done: true,
        });
        let enc = enc?;
        // Checked now, so that a model directory without a tokenizer fails at load.
        enc.tokenizer()
            .map_err(|e| format!("cannot load {model}: {e}"))?;
        Ok(enc)
    }

    /// Loads the embedding model `model` unless it is the one loaded.
    fn load_embedder(&mut self, model: &str) -> Result<(), String> {
        if self.embedder.as_ref().is_none_or(|(m, _)| m != model) {
            self.embedder = None;
            let enc = self.load(model)?;
            // The library says what the model serves; the index needs one vector per text.
            let task = enc.task();
            if !matches!(
                task,
                ModelTask::Embedder | ModelTask::Encoder | ModelTask::FillMask
            ) {
                let labels = enc.heads().classifier.unwrap_or(0);
                return Err(format!(
                    "{model} is a {}, not an embedding model",
                    task.describe(labels)
                ));
            }
            self.embedder = Some((model.to_string(), enc));
        }
        Ok(())
    }

    fn build_index(
        &mut self,
        folder: &std::path::Path,
        model: &str,
        cancel: &AtomicBool,
    ) -> Result<Option<IndexInfo>, String> {
        let started = std::time::Instant::now();
        let corpus = corpus::read_folder(folder)?;
        self.send(Reply::Read {
            files: corpus.files,
            chunks: corpus.chunks.len(),
            skipped: corpus.skipped.clone(),
        });
        self.load_embedder(model)?;
        let enc = &self.embedder.as_ref().expect("loaded above").1;
        let sc = enc.sentence_config();
        let document_prompt = sc.role_prompt(false).map(str::to_string);
        let query_prompt = sc.role_prompt(true).map(str::to_string);
        let spec_for = |prompt: &Option<String>| {
            enc.embed_spec(&EmbedOptions {
                prompt: prompt.clone().map_or(Prompt::ModelDefault, Prompt::Text),
                normalize: true,
                ..Default::default()
            })
            .map_err(|e| e.to_string())
        };
        let doc = spec_for(&document_prompt)?;
        let query = spec_for(&query_prompt)?;
        let total = corpus.chunks.len();
        let mut vectors = Vec::with_capacity(total);
        for (b, batch) in corpus.chunks.chunks(BATCH).enumerate() {
            if cancel.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let seqs = batch
                .iter()
                .enumerate()
                .map(|(i, c)| enc.embed_tokens(&doc, &c.text, b * BATCH + i))
                .collect::<wgbert::Result<Vec<_>>>()
                .map_err(|e| e.to_string())?;
            let embedded = enc
                .embed_ids_with(&seqs, &doc)
                .map_err(|e| format!("embedding failed: {e}"))?;
            vectors.extend(embedded.into_iter().map(|mut e| e.vectors.swap_remove(0)));
            self.send(Reply::Progress {
                done: vectors.len(),
                total,
            });
        }
        let info = IndexInfo {
            folder: folder.display().to_string(),
            model: model.to_string(),
            dtype: format!("{:?}", enc.dtype()).to_lowercase(),
            files: corpus.files,
            document_prompt,
            query_prompt,
            chunks: corpus.chunks.clone(),
            seconds: started.elapsed().as_secs_f64(),
        };
        self.index = Some(Index {
            chunks: corpus.chunks,
            vectors,
            query,
        });
        Ok(Some(info))
    }

    fn query(&mut self, text: &str) -> Result<Vec<Hit>, String> {
        let (Some(index), Some((_, enc))) = (&self.index, &self.embedder) else {
            return Err("index a folder first".into());
        };
        if text.trim().is_empty() {
            return Err("type a query".into());
        }
        let q = enc
            .embed_tokens(&index.query, text, 0)
            .and_then(|ids| enc.embed_ids_with(&[ids], &index.query))
            .map_err(|e| format!("cannot embed the query: {e}"))?;
        let q = &q[0].vectors[0];
        Ok(rank(&index.chunks, &index.vectors, q, TOP_FILES))
    }

    fn fill_mask(&mut self, model: &str, text: &str) -> Result<Vec<MaskRow>, String> {
        if model.trim().is_empty() {
            return Err("choose an MLM model first (--mlm-model)".into());
        }
        if self.mlm.as_ref().is_none_or(|(m, _)| m != model) {
            self.mlm = None;
            let enc = self.load(model)?;
            self.mlm = Some((model.to_string(), enc));
        }
        let enc = &self.mlm.as_ref().expect("loaded above").1;
        let preds = enc
            .fill_mask(&[text], TOP_MASK)
            .map_err(|e| e.to_string())?;
        Ok(preds
            .into_iter()
            .flatten()
            .map(|p| MaskRow {
                position: p.position,
                candidates: p
                    .candidates
                    .into_iter()
                    .map(|c| (c.token, c.score, c.sequence))
                    .collect(),
            })
            .collect())
    }
}

fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(format!("internal error in the GPU worker: {what}"))
    })
}

/// Files ranked by their best chunk's cosine similarity to `q` (vectors are unit length, so
/// the dot product), best first; ties in file order. At most `top` files.
pub fn rank(chunks: &[Chunk], vectors: &[Vec<f32>], q: &[f32], top: usize) -> Vec<Hit> {
    let mut best: Vec<Hit> = Vec::new();
    for (i, (c, v)) in chunks.iter().zip(vectors).enumerate() {
        let score: f32 = v.iter().zip(q).map(|(a, b)| a * b).sum();
        match best.last_mut() {
            Some(h) if h.file == c.file => {
                if score > h.score {
                    *h = hit(i, c, score);
                }
            }
            _ => best.push(hit(i, c, score)),
        }
    }
    best.sort_by(|a, b| b.score.total_cmp(&a.score));
    best.truncate(top);
    best
}

fn hit(i: usize, c: &Chunk, score: f32) -> Hit {
    Hit {
        file: c.file.clone(),
        score,
        chunk: i,
        lines: c.lines,
        text: c.text.clone(),
    }
}

#[cfg(test)]
mod tests;
