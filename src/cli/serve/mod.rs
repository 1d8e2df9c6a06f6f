//! `wgbert serve`: an HTTP server speaking text-embeddings-inference (TEI) and OpenAI's
//! embeddings API, with fill-mask besides, batching requests from every connection together.
//!
//! The listeners are bound first (so `/health` answers 503 while the model loads); the model
//! is loaded, a test batch is run, the batching engine starts, and then the line
//! `listening on http://HOST:PORT` goes to stdout (and, with `--grpc-port`, `grpc listening
//! on HOST:PORT`). SIGTERM or ctrl-c stops accepting, lets the requests in flight finish,
//! and exits 0. A lost or hung device turns `/health` to 503 for good; the process stays up
//! to say why, and its orchestrator restarts it.
//!
//! Bounds, from the socket in (README's Deployment section lists each with its default and
//! TEI's): connections in total and per client address, the time to a request's head
//! (`listen.rs`); the body's size and time, then its inputs counted while it is parsed
//! (`body.rs`, `parse.rs`); a request slot only for a whole, valid body; tokens per request,
//! fill-mask candidates and the answer's size before the model runs; the engine's queue.

mod body;
mod classify;
mod engine;
mod error;
mod ext;
mod faults;
mod fill;
#[cfg(feature = "grpc")]
mod grpc;
mod health;
mod listen;
mod load;
mod metrics;
mod model;
mod openai;
mod openapi;
mod parse;
mod root;
mod routes;
mod state;
mod tei;
mod timing;
mod tokens;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::http::{HeaderValue, Method, header};
use clap::{ArgAction, Args};
use serde_json::json;
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::Global;
use super::embed::PoolingArg;
use faults::Faults;
use health::Health;
use listen::ConnLimits;
use metrics::Metrics;
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
    /// Open connections at most; more are answered 503 and closed [fewer where the
    /// open-file limit is lower].
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Open connections from one client address at most; more are answered 429 and closed
    /// (0: no bound, as behind a load balancer that holds every connection).
    #[arg(long, default_value_t = 256)]
    pub max_connections_per_client: usize,
    /// Seconds to receive a request's head; a connection slower than that, or idle that long
    /// between requests, is closed (with 408 where a request had begun).
    #[arg(long, default_value_t = 30.0)]
    pub header_timeout: f64,
    /// Seconds to receive a whole request body; a slower one is answered 408.
    #[arg(long, default_value_t = 30.0)]
    pub body_timeout: f64,
    /// Tokens across one request's inputs; more are refused with 413 [default:
    /// --max-client-batch-size times the model's longest input].
    #[arg(long)]
    pub max_request_tokens: Option<usize>,
    /// [MASK] tokens times top_k across one fill-mask request; more are refused with 413.
    #[arg(long, default_value_t = 4096)]
    pub max_fill_mask_candidates: usize,
    /// Bytes of one answer, estimated before the model runs; a larger one is refused with 413.
    #[arg(long, default_value_t = 134_217_728)]
    pub max_response_bytes: usize,
    /// Port of TEI's gRPC services (package tei.v1) on --host [default: none].
    #[cfg(feature = "grpc")]
    #[arg(long)]
    pub grpc_port: Option<u16>,
}

/// Seconds from a flag: finite and positive.
fn seconds(flag: &str, v: f64) -> Result<Duration> {
    if !v.is_finite() || v <= 0.0 {
        bail!("{flag} must be a number of seconds above 0");
    }
    Ok(Duration::from_secs_f64(v))
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
    if a.max_connections == 0
        || a.max_request_tokens == Some(0)
        || a.max_fill_mask_candidates == 0
        || a.max_response_bytes == 0
    {
        bail!(
            "--max-connections, --max-request-tokens, --max-fill-mask-candidates and \
             --max-response-bytes must be at least 1"
        );
    }
    seconds("--header-timeout", a.header_timeout)?;
    seconds("--body-timeout", a.body_timeout)?;
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
        body_timeout: seconds("--body-timeout", a.body_timeout)?,
        max_request_tokens: a.max_request_tokens,
        max_fill_candidates: a.max_fill_mask_candidates,
        max_response_bytes: a.max_response_bytes,
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
    let conns = ConnLimits {
        total: a.max_connections.min(open_file_budget()),
        per_client: a.max_connections_per_client,
        header_timeout: seconds("--header-timeout", a.header_timeout)?,
    };
    if conns.total < a.max_connections {
        log::warn!(
            "--max-connections {} is more than the open-file limit allows: {} connections",
            a.max_connections,
            conns.total
        );
    }
    let (stop, stopped) = watch::channel(false);
    let stop = Arc::new(stop);
    let app = routes::router(state.clone(), cors(&a.cors_allow_origin)?);
    let server = tokio::spawn(listen::run(
        listener,
        app,
        conns,
        metrics.clone(),
        stopped.clone(),
    ));
    #[cfg(feature = "grpc")]
    let grpc = match a.grpc_port {
        Some(port) => {
            let l = tokio::net::TcpListener::bind((a.host.as_str(), port))
                .await
                .with_context(|| format!("cannot listen for gRPC on {}:{port}", a.host))?;
            let at = l.local_addr()?;
            Some((
                at,
                tokio::spawn(grpc::serve(l, state.clone(), stopped.clone())),
            ))
        }
        None => None,
    };
    tokio::spawn(shutdown(stop.clone()));

    let setup = load::Setup {
        max_batch_tokens: a.max_batch_tokens,
        max_queued: a.max_queued_requests.unwrap_or(a.max_concurrent_requests),
        pooling: a.pooling,
        gpu_timeout: a.gpu_timeout,
        faults: Faults::from_env()?,
    };
    let (g2, h2) = (g.clone(), health.clone());
    let loaded = tokio::task::spawn_blocking(move || load::load(g2, setup, metrics, h2))
        .await
        .context("loading the model")?;
    let (model, mut info, engine_thread) = match loaded {
        Ok(m) => m,
        Err(e) => {
            let _ = stop.send(true);
            let _ = server.await;
            return Err(e);
        }
    };
    let gpu = model.enc.gpu().clone();
    let cpu = gpu.info().device_type == wgpu::DeviceType::Cpu;
    let _ = state.compute_type.set(if cpu { "cpu" } else { "gpu" });
    let _ = state.model.set(model);
    for (k, v) in [
        ("max_concurrent_requests", json!(a.max_concurrent_requests)),
        ("max_client_batch_size", json!(a.max_client_batch_size)),
        ("auto_truncate", json!(state.limits.auto_truncate)),
        ("payload_limit", json!(a.payload_limit)),
        ("max_request_tokens", json!(state.max_request_tokens())),
        (
            "max_fill_mask_candidates",
            json!(a.max_fill_mask_candidates),
        ),
        ("max_response_bytes", json!(a.max_response_bytes)),
        ("max_connections", json!(conns.total)),
        ("max_connections_per_client", json!(conns.per_client)),
        ("header_timeout_seconds", json!(a.header_timeout)),
        ("body_timeout_seconds", json!(a.body_timeout)),
    ] {
        info[k] = v;
    }
    let _ = state.info.set(info);
    health.ready(gpu);
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{addr}")?;
    #[cfg(feature = "grpc")]
    if let Some((at, _)) = &grpc {
        writeln!(out, "grpc listening on {at}")?;
    }
    out.flush()?;
    drop(out);
    let served = server.await;
    #[cfg(feature = "grpc")]
    if let Some((_, task)) = grpc {
        if let Ok(Err(e)) = task.await {
            log::error!("the gRPC server failed: {e}");
        }
    }
    // Orderly exit: the last handles go with the state, the engine thread then ends and drops
    // its encoder; wait for it (bounded) so no GPU work or teardown races the process exit.
    drop(state);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !engine_thread.is_finished() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if engine_thread.is_finished() {
        let _ = engine_thread.join();
    } else {
        log::warn!("the engine thread did not stop within 30 s; exiting anyway");
    }
    served.context("the server task failed")?;
    Ok(())
}

/// Connections the open-file limit leaves room for: the soft limit is raised to the hard
/// one first (as servers do), and some descriptors stay for the model's files and the
/// driver.
fn open_file_budget() -> usize {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `lim` is a valid rlimit for the calls to fill and read.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return usize::MAX;
            }
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim = raised;
                }
            }
        }
        usize::try_from(lim.rlim_cur)
            .unwrap_or(usize::MAX)
            .saturating_sub(128)
            .max(16)
    }
    #[cfg(not(unix))]
    usize::MAX
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

/// Turns `stop` true on SIGTERM or ctrl-c.
async fn shutdown(stop: Arc<watch::Sender<bool>>) {
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
    }
    let _ = stop.send(true);
}
