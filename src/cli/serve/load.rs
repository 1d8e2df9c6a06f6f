//! Loading the model for the server: the encoder, a test batch, the engine thread, and
//! `/info`'s answer (TEI's fields and ours).

use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;
use wgbert::encoder::{EmbedPooling, ModelTask};

use super::super::Global;
use super::super::embed::PoolingArg;
use super::engine::Engine;
use super::faults::Faults;
use super::health::Health;
use super::metrics::Metrics;
use super::model::{Model, embed_setup};

/// What the engine is started with.
pub struct Setup {
    pub max_batch_tokens: Option<usize>,
    pub max_queued: usize,
    pub pooling: Option<PoolingArg>,
    pub gpu_timeout: Option<f64>,
    pub faults: Faults,
}

/// Loads the model, runs a test batch, starts the engine; returns the model, `/info` and
/// the engine thread.
pub fn load(
    mut g: Global,
    setup: Setup,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Result<(Model, serde_json::Value, std::thread::JoinHandle<()>)> {
    // Length policy is per request here, so the encoder itself never truncates.
    g.truncate = false;
    g.max_tokens = setup.max_batch_tokens.or(g.max_tokens);
    let enc = Arc::new(g.load()?);
    let embed = embed_setup(setup.pooling, &enc)?;
    let tok = enc.tokenizer()?;
    let probe = tok.encode("", 0)?.ids;
    enc.embed_ids(&[probe], EmbedPooling::Cls, false)
        .context("the test batch failed")?;
    // The test batch ran without a limit (first pipelines compile then); batches after it
    // are held to the GPU timeout.
    let gpu = enc.gpu();
    let cpu = gpu.info().device_type == wgpu::DeviceType::Cpu;
    let timeout = match setup.gpu_timeout {
        Some(t) if t > 0.0 => Some(std::time::Duration::from_secs_f64(t)),
        Some(_) => None,
        None if cpu => None,
        None => Some(std::time::Duration::from_secs(120)),
    };
    gpu.health().set_wait_timeout(timeout);
    metrics.watch(enc.gpu().clone());
    let (engine, engine_thread) = Engine {
        enc: enc.clone(),
        metrics,
        health,
        budget: enc.capacity(),
        max_waiting: setup.max_queued,
        faults: setup.faults,
    }
    .spawn()
    .context("starting the engine thread")?;
    let model = Model::new(g.model.clone(), enc.clone(), engine, embed);
    let info = json!({
        "model_id": g.model,
        "model_sha": null,
        "model_dtype": tei_dtype(enc.dtype()),
        "served_model_name": g.model,
        "model_type": model_type(&model),
        "max_batch_tokens": enc.capacity(),
        "max_batch_requests": null,
        "max_input_length": model.max_input,
        "tokenization_workers": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "version": env!("CARGO_PKG_VERSION"),
        "sha": null,
        "docker_label": null,
        "task": model.describe(),
        "kind": model.task().name(),
        "pooling": model.setup.describe,
        "adapter": gpu.info().name,
        "f16_kernels": gpu.caps().f16,
        "gpu_timeout_seconds": timeout.map(|t| t.as_secs_f64()),
    });
    Ok((model, info, engine_thread))
}

/// TEI's spelling of a dtype.
fn tei_dtype(d: wgbert::ops::DType) -> &'static str {
    match d {
        wgbert::ops::DType::F32 => "float32",
        wgbert::ops::DType::F16 => "float16",
    }
}

/// TEI's `model_type`: `{"embedding": {"pooling"}}`, `{"classifier": {"id2label",
/// "label2id"}}` or `{"reranker": {..}}`. A masked language model is an embedder to TEI (its
/// `POST /` fills masks here; `task` says so).
fn model_type(m: &Model) -> serde_json::Value {
    let labels = || {
        let names = m.enc.label_names();
        let id2label: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (i.to_string(), json!(n)))
            .collect();
        let label2id: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), json!(i)))
            .collect();
        json!({ "id2label": id2label, "label2id": label2id })
    };
    match m.task() {
        ModelTask::Classifier | ModelTask::TokenClassifier => json!({ "classifier": labels() }),
        ModelTask::CrossEncoder => json!({ "reranker": labels() }),
        ModelTask::Sparse => json!({ "embedding": { "pooling": "splade" } }),
        ModelTask::Encoder | ModelTask::Embedder | ModelTask::FillMask | ModelTask::Colbert => {
            json!({ "embedding": { "pooling": m.setup.describe } })
        }
    }
}
