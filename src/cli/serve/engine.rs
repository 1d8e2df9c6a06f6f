//! The batching engine: one thread owns every call into the `Encoder`.
//!
//! Handlers tokenize on blocking threads and send jobs (token sequences plus the task) on a
//! channel. The engine thread takes every job that is waiting, without waiting for company
//! when it finds none, groups the jobs that run the same head, and runs each group as one
//! call, so the sequences of many requests share packed batches. Packing keeps every
//! sequence apart (no padding, attention inside each sequence), so a result does not depend
//! on which requests shared its batch.
//!
//! Faults stay with the work that caused them:
//! - a job whose client has hung up is dropped before it runs;
//! - a panic inside a call fails that call's jobs only (the call is unwound and caught);
//! - an input error in a group is retried job by job, so one bad request cannot fail its
//!   company; device errors are not retried;
//! - a lost or hung device marks the server unhealthy ([`Health`]), and every later job
//!   fails at once with the reason.
//!
//! The queue is bounded: past `--max-queued-requests` jobs waiting, a request gets 429.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use tokio::sync::oneshot;
use wgbert::encoder::{EmbedSpec, Embedding, Encoder, TopK};

use super::error::{ApiError, Kind};
use super::faults::Faults;
use super::health::Health;
use super::metrics::Metrics;

/// What a job asks of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Vectors as the spec says: the model's own modules (pooling, Dense, Normalize) or a
    /// pooling override, where `EmbedPooling::None` keeps every token's state.
    Embed(Box<EmbedSpec>),
    /// Sequence-classification logits.
    Classify,
    /// The top 64 candidates at every `[MASK]` (one MLM head serves every `top_k`; the
    /// handler keeps the first `top_k`).
    FillMask,
    /// Sparse (SPLADE) vectors, all their non-zero terms.
    Sparse,
}

/// The most candidates per mask a fill-mask request may ask for.
pub const MAX_TOP_K: usize = 64;

/// The results of one job, one entry per sequence.
#[derive(Debug)]
pub enum Output {
    Embeddings(Vec<Embedding>),
    Logits(Vec<Vec<f32>>),
    TopK(TopK),
    Sparse(Vec<wgbert::encoder::SparseVector>),
}

/// How long a job waited for the engine and how long its call ran.
#[derive(Debug, Clone, Copy, Default)]
pub struct Times {
    pub queue: Duration,
    pub inference: Duration,
}

type Reply = oneshot::Sender<Result<(Output, Times), ApiError>>;

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
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    health: Arc<Health>,
}

impl EngineHandle {
    /// Queues `seqs` and waits for their results. A full queue is a 429, an unhealthy
    /// server a 503. Dropping the returned future (the client hung up) withdraws the job.
    pub async fn run(&self, task: Task, seqs: Vec<Vec<u32>>) -> Result<(Output, Times), ApiError> {
        self.health.check()?;
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                Kind::Overloaded,
                format!(
                    "the queue is full ({} requests waiting, --max-queued-requests); retry later",
                    self.max_waiting
                ),
            ));
        }
        let (reply, rx) = oneshot::channel();
        let job = Job {
            task,
            seqs,
            queued: Instant::now(),
            reply,
        };
        if self.tx.send(job).is_err() {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(self.stopped());
        }
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(self.stopped()),
        }
    }

    fn stopped(&self) -> ApiError {
        self.health.fail("the engine thread has stopped");
        ApiError::unhealthy_because("the engine thread has stopped")
    }
}

/// Everything the engine thread owns.
pub struct Engine {
    pub enc: Arc<Encoder>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// Tokens per engine call: jobs are grouped up to this many tokens.
    pub budget: usize,
    /// Jobs that may wait for the engine at once.
    pub max_waiting: usize,
    /// Test-only fault injection (debug builds; see `faults.rs`).
    pub faults: Faults,
}

/// Marks the server unhealthy if the engine thread ends by a panic that escaped the calls'
/// own guards; an orderly end (every handle dropped) leaves the state alone.
struct Watch(Arc<Health>);

impl Drop for Watch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail("the engine thread died");
        }
    }
}

impl Engine {
    /// Starts the engine thread; it ends when every handle is dropped (join it before the
    /// process exits, so the device is never torn down under the driver's exit handlers).
    pub fn spawn(self) -> std::io::Result<(EngineHandle, std::thread::JoinHandle<()>)> {
        let (tx, rx) = std::sync::mpsc::channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        let handle = EngineHandle {
            tx,
            waiting: waiting.clone(),
            max_waiting: self.max_waiting.max(1),
            health: self.health.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("wgbert-engine".into())
            .spawn(move || self.serve(rx, waiting))?;
        Ok((handle, thread))
    }

    fn serve(self, rx: Receiver<Job>, waiting: Arc<AtomicUsize>) {
        let _watch = Watch(self.health.clone());
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
            waiting.fetch_sub(group.len(), Ordering::SeqCst);
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
        // Clients that hung up are not waited for: their jobs do not run.
        let (group, gone): (Vec<Job>, Vec<Job>) =
            group.into_iter().partition(|j| !j.reply.is_closed());
        self.metrics.jobs_dropped.inc_by(gone.len() as u64);
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
        let start = Instant::now();
        match self.call(&task, &seqs) {
            Ok(out) => {
                let inference = start.elapsed();
                split(out, &group)
                    .into_iter()
                    .zip(group)
                    .for_each(|(o, j)| {
                        let times = Times {
                            queue: now - j.queued,
                            inference,
                        };
                        let _ = j.reply.send(Ok((o, times)));
                    });
            }
            // One bad input must not fail its company: run each job on its own. Device
            // errors and panics are not retried.
            Err(Failure::Input(_)) if group.len() > 1 => {
                for job in group {
                    if job.reply.is_closed() {
                        self.metrics.jobs_dropped.inc();
                        continue;
                    }
                    let start = Instant::now();
                    let result = self.call(&task, &job.seqs).map_err(Failure::answer);
                    let times = Times {
                        queue: start - job.queued,
                        inference: start.elapsed(),
                    };
                    let _ = job.reply.send(result.map(|o| (o, times)));
                }
            }
            Err(f) => {
                let e = f.answer();
                for job in group {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// One engine call over `seqs`, unwound and caught if it panics, timed into the
    /// metrics. A lost or hung device marks the server unhealthy.
    fn call(&self, task: &Task, seqs: &[Vec<u32>]) -> Result<Output, Failure> {
        if let Some(why) = self.health.failure() {
            return Err(Failure::Unhealthy(why));
        }
        let tokens: usize = seqs.iter().map(Vec::len).sum();
        let start = Instant::now();
        let out = match catch_unwind(AssertUnwindSafe(|| self.call_inner(task, seqs))) {
            Ok(out) => out,
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                log::error!("an engine call panicked: {message}");
                self.metrics.panics.inc();
                return Err(Failure::Panic(message));
            }
        };
        let out = out.map_err(|e| self.classify(e))?;
        let secs = start.elapsed().as_secs_f64();
        self.metrics.batch_tokens.observe(tokens as f64);
        self.metrics.gpu_seconds.observe(secs);
        self.metrics
            .tokens_per_second
            .observe(tokens as f64 / secs.max(1e-9));
        Ok(out)
    }

    fn call_inner(&self, task: &Task, seqs: &[Vec<u32>]) -> wgbert::Result<Output> {
        self.faults.before_call(&self.enc, seqs)?;
        match task {
            Task::Embed(spec) => self.enc.embed_ids_with(seqs, spec).map(Output::Embeddings),
            Task::Classify => self.enc.classify_ids(seqs).map(Output::Logits),
            Task::Sparse => self.enc.embed_sparse_ids(seqs, None).map(Output::Sparse),
            Task::FillMask => {
                let mask = self.enc.tokenizer()?.mask_id()?;
                self.enc
                    .fill_mask_ids(seqs, mask, MAX_TOP_K)
                    .map(Output::TopK)
            }
        }
    }

    /// Sorts an engine error into the caller's fault, a device failure (which marks the
    /// server unhealthy) or another backend error.
    fn classify(&self, e: wgbert::Error) -> Failure {
        use wgbert::Error as E;
        let device_failure = self.enc.gpu().health().failure().map(str::to_string);
        match e {
            E::DeviceLost(_) | E::GpuTimeout { .. } => {
                let why = device_failure.unwrap_or_else(|| e.to_string());
                self.health.fail(why.clone());
                Failure::Unhealthy(why)
            }
            _ if device_failure.is_some() => {
                let why = device_failure.unwrap_or_default();
                self.health.fail(why.clone());
                Failure::Unhealthy(why)
            }
            E::Input { .. }
            | E::MissingHead { .. }
            | E::Option(_)
            | E::Tokenizer(_)
            | E::PlanInput(_)
            | E::BufferTooLarge { .. }
            | E::OutOfMemory { .. } => Failure::Input(e),
            other => Failure::Backend(other),
        }
    }
}

/// Why a call failed, sorted by what may be retried.
enum Failure {
    /// Possibly one job's fault: retried job by job.
    Input(wgbert::Error),
    /// A device or driver error: not retried.
    Backend(wgbert::Error),
    /// The call panicked: its jobs fail, the server goes on.
    Panic(String),
    /// The device is lost or hung: every job fails from now on.
    Unhealthy(String),
}

impl Failure {
    fn answer(self) -> ApiError {
        match self {
            Failure::Input(e) | Failure::Backend(e) => ApiError::from_engine(e),
            Failure::Panic(m) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Kind::Backend,
                format!("the engine failed on this batch (a bug; please report it): {m}"),
            ),
            Failure::Unhealthy(why) => ApiError::unhealthy_because(&why),
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
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
        Output::Sparse(v) => cut(v, group, Output::Sparse),
    }
}
