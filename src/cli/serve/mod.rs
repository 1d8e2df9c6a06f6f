//! `wgbert serve`: an HTTP server speaking text-embeddings-inference (TEI) and OpenAI's
//! embeddings API, with fill-mask besides, batching requests from every connection together.
//!
//! The listener is bound first (so `/health` answers 503 while the model loads); the model is
//! loaded, a test batch is run, the batching engine starts, and then the one line
//! `listening on http://HOST:PORT` goes to stdout. SIGTERM or ctrl-c stops accepting, lets
//! the requests in flight finish, and exits 0. A lost or hung device turns `/health` to 503
//! for good; the process stays up to say why, and its orchestrator restarts it.

mod classify;
mod engine;
mod error;
mod faults;
mod fill;
mod health;
mod metrics;
mod model;
mod openai;
mod openapi;
mod root;
mod state;
mod tei;
mod timing;

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use clap::{ArgAction, Args};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};
use wgbert::encoder::EmbedPooling;

use super::Global;
use super::embed::PoolingArg;
use engine::Engine;
use faults::Faults;
use health::Health;
use metrics::Metrics;
use model::{Model, ModelKind, embed_setup};
use state::{AppState, Limits};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one; the line on stdout says which).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Tokens per GPU batch [default: 32768, less where the device's binding limit needs it].
    #[arg(long)]
    pub max_batch_tokens: Option<usize>,
    /// Requests in flight at once; more are refused with 429.
    #[arg(long, default_value_t = 512)]
    pub max_concurrent_requests: usize,
    /// Requests waiting for the GPU at once; more are refused with 429
    /// [default: --max-concurrent-requests].
    #[arg(long)]
    pub max_queued_requests: Option<usize>,
    /// Inputs in one request; more are refused with 413.
    #[arg(long, default_value_t = 32)]
    pub max_client_batch_size: usize,
    /// Cut inputs over the model's limit unless a request says `"truncate": false`, as TEI
    /// does since 1.9; `--auto-truncate false` refuses them with 413 instead.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub auto_truncate: bool,
    /// Largest request body in bytes; a larger one is refused with 413 before it is read.
    #[arg(long, default_value_t = 2_000_000)]
    pub payload_limit: usize,
    /// Origins allowed by CORS (comma-separated; `*` for any) [default: any, as TEI].
    #[arg(long, value_delimiter = ',')]
    pub cors_allow_origin: Vec<String>,
    /// Seconds a GPU batch may take before the device counts as hung and /health turns 503
    /// [default: 120 on a GPU, no limit on a CPU adapter; 0: no limit].
    #[arg(long)]
    pub gpu_timeout: Option<f64>,
    /// Pooling of /embed and /v1/embeddings [default: the model's own, else mean].
    #[arg(long, value_enum)]
    pub pooling: Option<PoolingArg>,
    /// Bearer token required on every route but the health probes (GET /, /health, /ping).
    #[arg(long, env = "WGBERT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

pub fn run(g: &Global, a: &ServeArgs) -> Result<()> {
    if a.max_concurrent_requests == 0
        || a.max_client_batch_size == 0
        || a.max_queued_requests == Some(0)
    {
        bail!(
            "--max-concurrent-requests, --max-queued-requests and --max-client-batch-size \
             must be at least 1"
        );
    }
    if a.payload_limit == 0 {
        bail!("--payload-limit must be at least 1 byte");
    }
    if a.gpu_timeout.is_some_and(|t| !t.is_finite() || t < 0.0) {
        bail!("--gpu-timeout must be a number of seconds, 0 or more");
    }
    cors(&a.cors_allow_origin).map(drop)?;
    if a.pooling == Some(PoolingArg::None) {
        bail!("--pooling none does not pool: per-token vectors come from /embed_all");
    }
    // The command line restores SIGPIPE's default action (a filter ends quietly when its
    // reader goes away); a server must not die when a client hangs up mid-response (a
    // vectored write to a reset socket raises SIGPIPE): the write fails instead, for that
    // connection only.
    #[cfg(unix)]
    // SAFETY: still single-threaded (the async runtime starts below); SIG_IGN is valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(serve(g, a))
}

async fn serve(g: &Global, a: &ServeArgs) -> Result<()> {
    let metrics = Arc::new(Metrics::new().context("setting up metrics")?);
    let health = Arc::new(Health::default());
    let limits = Limits {
        max_client_batch: a.max_client_batch_size,
        max_concurrent: a.max_concurrent_requests,
        payload: a.payload_limit,
        auto_truncate: a.auto_truncate || g.truncate,
    };
    let state = Arc::new(AppState::new(
        metrics.clone(),
        health.clone(),
        a.api_key.clone(),
        limits,
    ));
    let listener = tokio::net::TcpListener::bind((a.host.as_str(), a.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", a.host, a.port))?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(tokio::sync::Notify::new());
    let server = tokio::spawn(
        axum::serve(listener, router(state.clone(), cors(&a.cors_allow_origin)?))
            .with_graceful_shutdown(shutdown(stop.clone()))
            .into_future(),
    );

    let setup = Setup {
        max_batch_tokens: a.max_batch_tokens,
        max_queued: a.max_queued_requests.unwrap_or(a.max_concurrent_requests),
        pooling: a.pooling,
        gpu_timeout: a.gpu_timeout,
        faults: Faults::from_env()?,
    };
    let (g2, h2) = (g.clone(), health.clone());
    let loaded = tokio::task::spawn_blocking(move || load(g2, setup, metrics, h2))
        .await
        .context("loading the model")?;
    let (model, info, engine_thread) = match loaded {
        Ok(m) => m,
        Err(e) => {
            stop.notify_one();
            let _ = server.await;
            return Err(e);
        }
    };
    let mut info = info;
    info["max_concurrent_requests"] = json!(a.max_concurrent_requests);
    info["max_client_batch_size"] = json!(a.max_client_batch_size);
    info["auto_truncate"] = json!(state.limits.auto_truncate);
    info["payload_limit"] = json!(a.payload_limit);
    let gpu = model.enc.gpu().clone();
    let cpu = gpu.info().device_type == wgpu::DeviceType::Cpu;
    let _ = state.compute_type.set(if cpu { "cpu" } else { "gpu" });
    let _ = state.info.set(info);
    let _ = state.model.set(model);
    health.ready(gpu);
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{addr}")?;
    out.flush()?;
    drop(out);
    let served = server.await;
    // Orderly exit: the last handles go with the state, the engine thread then ends and drops
    // its encoder; wait for it (bounded) so no GPU work or teardown races the process exit.
    drop(state);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !engine_thread.is_finished() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    if engine_thread.is_finished() {
        let _ = engine_thread.join();
    } else {
        log::warn!("the engine thread did not stop within 30 s; exiting anyway");
    }
    served
        .context("the server task failed")?
        .context("serving")?;
    Ok(())
}

/// The routes. The model's routes share the request limit; the probes (`GET /`,
/// `/health`, `/ping`), `/info`, `/metrics` and the OpenAPI document do not. Layers, from
/// the outside in: metrics, CORS (preflights answer here), auth, the declared body size,
/// then the body limit itself.
fn router(state: Arc<AppState>, cors: CorsLayer) -> Router {
    let payload = state.limits.payload;
    Router::new()
        .route("/", post(root::post))
        .route("/invocations", post(root::post))
        .route("/embed", post(tei::embed))
        .route("/embed_all", post(tei::embed_all))
        .route("/embed_sparse", post(tei::embed_sparse))
        .route("/similarity", post(tei::similarity))
        .route("/rerank", post(classify::rerank))
        .route("/predict", post(classify::predict))
        .route("/fill-mask", post(fill::fill_mask))
        .route("/tokenize", post(tei::tokenize))
        .route("/decode", post(tei::decode))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/embeddings", post(openai::embeddings))
        .layer(from_fn_with_state(state.clone(), state::limit))
        .route("/", get(state::health))
        .route("/health", get(state::health))
        .route("/ping", get(state::health))
        .route("/info", get(state::info))
        .route("/metrics", get(state::metrics))
        .route("/api-doc/openapi.json", get(openapi::document))
        .layer(DefaultBodyLimit::max(payload))
        .layer(from_fn_with_state(state.clone(), state::payload))
        .layer(from_fn_with_state(state.clone(), state::auth))
        .layer(cors)
        .layer(from_fn_with_state(state.metrics.clone(), metrics::track))
        .with_state(state)
}

/// CORS as TEI sets it: GET and POST from the listed origins (any when none is listed).
fn cors(origins: &[String]) -> Result<CorsLayer> {
    let allow = if origins.is_empty() || origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o)
                    .with_context(|| format!("--cors-allow-origin: '{o}' is not a valid origin"))
            })
            .collect::<Result<Vec<_>>>()?;
        AllowOrigin::list(list)
    };
    Ok(CorsLayer::new()
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .allow_origin(allow))
}

/// What the engine is started with.
struct Setup {
    max_batch_tokens: Option<usize>,
    max_queued: usize,
    pooling: Option<PoolingArg>,
    gpu_timeout: Option<f64>,
    faults: Faults,
}

/// Loads the model, runs a test batch, starts the engine; returns the model, `/info` and
/// the engine thread.
fn load(
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
    let model = Model::new(g.model.clone(), enc.clone(), engine, embed)?;
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
        "task": model.task(),
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
    match m.kind() {
        ModelKind::Classifier | ModelKind::TokenClassifier => json!({ "classifier": labels() }),
        ModelKind::Reranker => json!({ "reranker": labels() }),
        ModelKind::Embedding | ModelKind::FillMask => {
            json!({ "embedding": { "pooling": m.setup.describe } })
        }
        ModelKind::Sparse => json!({ "embedding": { "pooling": "splade" } }),
    }
}

/// Resolves on SIGTERM, ctrl-c, or `stop` (the model failed to load).
async fn shutdown(stop: Arc<tokio::sync::Notify>) {
    let term = async {
        #[cfg(unix)]
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
        _ = stop.notified() => {}
    }
}
