//! `wgbert serve`: an HTTP server speaking text-embeddings-inference (TEI) and OpenAI's
//! embeddings API, with fill-mask besides, batching requests from every connection together.
//!
//! The listener is bound first (so `/health` answers 503 while the model loads); the model is
//! loaded, a test batch is run, the batching engine starts, and then the one line
//! `listening on http://HOST:PORT` goes to stdout. SIGTERM or ctrl-c stops accepting, lets
//! the requests in flight finish, and exits 0.

mod engine;
mod error;
mod metrics;
mod model;
mod openai;
mod state;
mod tei;

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use clap::Args;
use serde_json::json;
use wgbert::encoder::EmbedPooling;

use super::Global;
use super::embed::PoolingArg;
use engine::Engine;
use metrics::Metrics;
use model::{Model, embed_setup};
use state::AppState;

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
    /// Inputs in one request; more are refused with 413.
    #[arg(long, default_value_t = 32)]
    pub max_client_batch_size: usize,
    /// Cut inputs over the model's limit unless a request says `"truncate": false`.
    #[arg(long)]
    pub auto_truncate: bool,
    /// Pooling of /embed and /v1/embeddings [default: the model's own, else mean].
    #[arg(long, value_enum)]
    pub pooling: Option<PoolingArg>,
    /// Bearer token required on every route but /health.
    #[arg(long, env = "WGBERT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Tests only: fail every engine call holding this token id, as a lost device would.
    #[arg(long, hide = true)]
    pub inject_device_fault: Option<u32>,
}

/// Largest request body accepted (a full client batch of long texts fits easily).
const MAX_BODY_BYTES: usize = 64 << 20;

pub fn run(g: &Global, a: &ServeArgs) -> Result<()> {
    if a.max_concurrent_requests == 0 || a.max_client_batch_size == 0 {
        bail!("--max-concurrent-requests and --max-client-batch-size must be at least 1");
    }
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
    let state = Arc::new(AppState::new(
        metrics.clone(),
        a.api_key.clone(),
        a.max_client_batch_size,
        a.max_concurrent_requests,
        a.auto_truncate || g.truncate,
    ));
    let listener = tokio::net::TcpListener::bind((a.host.as_str(), a.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", a.host, a.port))?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(tokio::sync::Notify::new());
    let server = tokio::spawn(
        axum::serve(listener, router(state.clone()))
            .with_graceful_shutdown(shutdown(stop.clone()))
            .into_future(),
    );

    let (g2, pooling, fault) = (g.clone(), a.pooling, a.inject_device_fault);
    let budget = a.max_batch_tokens;
    let loaded = tokio::task::spawn_blocking(move || load(g2, budget, pooling, fault, metrics))
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
    info["auto_truncate"] = json!(state.auto_truncate);
    let _ = state.info.set(info);
    let _ = state.model.set(model);
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

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/embed", post(tei::embed))
        .route("/embed_all", post(tei::embed_all))
        .route("/rerank", post(tei::rerank))
        .route("/predict", post(tei::predict))
        .route("/fill-mask", post(tei::fill_mask))
        .route("/tokenize", post(tei::tokenize))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/embeddings", post(openai::embeddings))
        .layer(from_fn_with_state(state.clone(), state::limit))
        .route("/health", get(state::health))
        .route("/info", get(state::info))
        .route("/metrics", get(state::metrics))
        .layer(from_fn_with_state(state.clone(), state::auth))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn_with_state(state.metrics.clone(), metrics::track))
        .with_state(state)
}

/// Loads the model, runs a test batch, starts the engine; returns the model, `/info` and
/// the engine thread.
fn load(
    mut g: Global,
    max_batch_tokens: Option<usize>,
    pooling: Option<PoolingArg>,
    fault_token: Option<u32>,
    metrics: Arc<Metrics>,
) -> Result<(Model, serde_json::Value, std::thread::JoinHandle<()>)> {
    // Length policy is per request here, so the encoder itself never truncates.
    g.truncate = false;
    g.max_tokens = max_batch_tokens.or(g.max_tokens);
    let enc = Arc::new(g.load()?);
    let setup = embed_setup(pooling, &enc)?;
    let tok = enc.tokenizer()?;
    let probe = tok.encode("", 0)?.ids;
    enc.embed_ids(&[probe], EmbedPooling::Cls, false)
        .context("the test batch failed")?;
    metrics.watch(enc.gpu().clone());
    let (engine, engine_thread) = Engine {
        enc: enc.clone(),
        metrics,
        budget: enc.capacity(),
        fault_token,
    }
    .spawn()
    .context("starting the engine thread")?;
    let model = Model::new(g.model.clone(), enc.clone(), engine, setup)?;
    let gpu = enc.gpu();
    let info = json!({
        "model_id": g.model,
        "model_dtype": format!("{:?}", enc.dtype()).to_lowercase(),
        "model_type": model.task(),
        "pooling": model.setup.describe,
        "adapter": gpu.info().name,
        "f16_kernels": gpu.caps().f16,
        "max_input_length": model.max_input,
        "max_batch_tokens": enc.capacity(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    Ok((model, info, engine_thread))
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
