//! The batching engine: one thread owns every call into the `Encoder`.
//!
//! Handlers tokenize on their own threads and send jobs (token sequences plus the task) on a
//! channel. The engine thread takes every job that is waiting, without waiting for company
//! when it finds none, groups the jobs that run the same head, and runs each group as one
//! call, so the sequences of many requests share packed batches. While a group runs on the
//! GPU, handlers go on tokenizing and queueing the next requests. Packing keeps every
//! sequence apart (no padding, attention inside each sequence), so a result does not depend
//! on which requests shared its batch.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Instant;

use tokio::sync::oneshot;
use wgbert::encoder::{EmbedSpec, Embedding, Encoder, TopK};

use super::metrics::Metrics;

/// What a job asks of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Vectors as the spec says: the model's own modules (pooling, Dense, Normalize) or a
    /// pooling override, where `EmbedPooling::None` keeps every token's state.
    Embed(Box<EmbedSpec>),
    /// Sequence-classification logits.
    Classify,
    /// Top-k candidates at every `[MASK]`.
    FillMask { top_k: usize },
}

/// The results of one job, one entry per sequence.
#[derive(Debug)]
pub enum Output {
    Embeddings(Vec<Embedding>),
    Logits(Vec<Vec<f32>>),
    TopK(TopK),
}

type Reply = oneshot::Sender<wgbert::Result<Output>>;

struct Job {
    task: Task,
    seqs: Vec<Vec<u32>>,
    queued: Instant,
    reply: Reply,
}

impl Job {
    fn tokens(&self) -> usize {
        self.seqs.iter().map(Vec::len).sum()
    }
}

/// The handlers' side of the engine.
#[derive(Clone)]
pub struct EngineHandle {
    tx: Sender<Job>,
}

impl EngineHandle {
    /// Queues `seqs` and waits for their results.
    pub async fn run(&self, task: Task, seqs: Vec<Vec<u32>>) -> wgbert::Result<Output> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            task,
            seqs,
            queued: Instant::now(),
            reply,
        };
        let stopped = || wgbert::Error::Gpu {
            context: "queueing a batch".into(),
            message: "the engine has stopped".into(),
        };
        self.tx.send(job).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

/// Everything the engine thread owns.
pub struct Engine {
    pub enc: Arc<Encoder>,
    pub metrics: Arc<Metrics>,
    /// Tokens per engine call: jobs are grouped up to this many tokens.
    pub budget: usize,
    /// Tests only: any call holding this token id fails like a lost device would.
    pub fault_token: Option<u32>,
}

impl Engine {
    /// Starts the engine thread; it ends when every handle is dropped (join it before the
    /// process exits, so the device is never torn down under the driver's exit handlers).
    pub fn spawn(self) -> std::io::Result<(EngineHandle, std::thread::JoinHandle<()>)> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("wgbert-engine".into())
            .spawn(move || self.serve(rx))?;
        Ok((EngineHandle { tx }, thread))
    }

    fn serve(self, rx: Receiver<Job>) {
        let mut pending: VecDeque<Job> = VecDeque::new();
        loop {
            if pending.is_empty() {
                match rx.recv() {
                    Ok(job) => pending.push_back(job),
                    Err(_) => return,
                }
            }
            while let Ok(job) = rx.try_recv() {
                pending.push_back(job);
            }
            let group = self.take_group(&mut pending);
            self.run_group(group);
        }
    }

    /// The oldest job and every later one of the same task, up to the token budget (the
    /// oldest always goes, however big).
    fn take_group(&self, pending: &mut VecDeque<Job>) -> Vec<Job> {
        let Some(first) = pending.pop_front() else {
            return Vec::new();
        };
        let task = first.task.clone();
        let mut tokens = first.tokens();
        let mut group = vec![first];
        let mut rest = VecDeque::with_capacity(pending.len());
        while let Some(job) = pending.pop_front() {
            if job.task == task && tokens + job.tokens() <= self.budget {
                tokens += job.tokens();
                group.push(job);
            } else {
                rest.push_back(job);
            }
        }
        *pending = rest;
        group
    }

    fn run_group(&self, group: Vec<Job>) {
        let Some(task) = group.first().map(|j| j.task.clone()) else {
            return;
        };
        let now = Instant::now();
        for job in &group {
            self.metrics
                .queue_seconds
                .observe((now - job.queued).as_secs_f64());
        }
        let seqs: Vec<Vec<u32>> = group.iter().flat_map(|j| j.seqs.iter().cloned()).collect();
        match self.call(&task, &seqs) {
            Ok(out) => split(out, &group)
                .into_iter()
                .zip(group)
                .for_each(|(o, j)| {
                    let _ = j.reply.send(Ok(o));
                }),
            // One bad job must not fail its company: run each on its own.
            Err(_) if group.len() > 1 => {
                for job in group {
                    let result = self.call(&task, &job.seqs);
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                if let Some(job) = group.into_iter().next() {
                    let _ = job.reply.send(Err(e));
                }
            }
        }
    }

    /// One engine call over `seqs`, timed into the metrics.
    fn call(&self, task: &Task, seqs: &[Vec<u32>]) -> wgbert::Result<Output> {
        let tokens: usize = seqs.iter().map(Vec::len).sum();
        if let Some(bad) = self.fault_token {
            if seqs.iter().any(|s| s.contains(&bad)) {
                return Err(wgbert::Error::Gpu {
                    context: "running a batch".into(),
                    message: "injected device fault".into(),
                });
            }
        }
        let start = Instant::now();
        let out = match task {
            Task::Embed(spec) => self.enc.embed_ids_with(seqs, spec).map(Output::Embeddings),
            Task::Classify => self.enc.classify_ids(seqs).map(Output::Logits),
            Task::FillMask { top_k } => {
                let mask = self.enc.tokenizer()?.mask_id()?;
                self.enc.fill_mask_ids(seqs, mask, *top_k).map(Output::TopK)
            }
        }?;
        let secs = start.elapsed().as_secs_f64();
        self.metrics.batch_tokens.observe(tokens as f64);
        self.metrics.gpu_seconds.observe(secs);
        self.metrics
            .tokens_per_second
            .observe(tokens as f64 / secs.max(1e-9));
        Ok(out)
    }
}

/// Cuts a group's results back into one `Output` per job, in job order.
fn split(out: Output, group: &[Job]) -> Vec<Output> {
    fn cut<T>(mut all: Vec<T>, group: &[Job], wrap: fn(Vec<T>) -> Output) -> Vec<Output> {
        let mut outs = Vec::with_capacity(group.len());
        for job in group.iter().rev() {
            let tail = all.split_off(all.len().saturating_sub(job.seqs.len()));
            outs.push(wrap(tail));
        }
        outs.reverse();
        outs
    }
    match out {
        Output::Embeddings(v) => cut(v, group, Output::Embeddings),
        Output::Logits(v) => cut(v, group, Output::Logits),
        Output::TopK(v) => cut(v, group, Output::TopK),
    }
}
