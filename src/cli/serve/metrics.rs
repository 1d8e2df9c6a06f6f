//! Prometheus metrics: requests by route and status, time in the queue, tokens per engine
//! call, tokens per second and GPU time per call, jobs dropped because their client hung up,
//! engine calls that panicked, open and refused connections, and the device memory the model holds (by category, and its
//! peak), read from the device's count when `/metrics` is rendered.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder as _, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use std::sync::{Arc, OnceLock};
use wgbert::runtime::{Gpu, MemoryKind};

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    pub queue_seconds: Histogram,
    pub batch_tokens: Histogram,
    pub tokens_per_second: Histogram,
    pub gpu_seconds: Histogram,
    pub jobs_dropped: IntCounter,
    pub panics: IntCounter,
    pub connections: IntGauge,
    pub connections_refused: IntCounterVec,
    device_bytes: IntGaugeVec,
    device_peak_bytes: IntGauge,
    /// The model's device, once loaded: its memory count feeds the gauges.
    gpu: OnceLock<Arc<Gpu>>,
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> prometheus::Result<Histogram> {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
}

impl Metrics {
    pub fn new() -> prometheus::Result<Metrics> {
        let seconds = prometheus::exponential_buckets(0.0005, 2.0, 16)?;
        let m = Metrics {
            registry: Registry::new(),
            requests: IntCounterVec::new(
                Opts::new("wgbert_requests_total", "HTTP requests by route and status"),
                &["route", "status"],
            )?,
            queue_seconds: histogram(
                "wgbert_queue_seconds",
                "time a request waited for the engine",
                seconds.clone(),
            )?,
            batch_tokens: histogram(
                "wgbert_batch_tokens",
                "tokens per engine call",
                prometheus::exponential_buckets(16.0, 2.0, 12)?,
            )?,
            tokens_per_second: histogram(
                "wgbert_tokens_per_second",
                "tokens per second of each engine call",
                prometheus::exponential_buckets(100.0, 2.0, 18)?,
            )?,
            gpu_seconds: histogram("wgbert_gpu_seconds", "time of each engine call", seconds)?,
            jobs_dropped: IntCounter::new(
                "wgbert_jobs_dropped_total",
                "queued jobs not run because their client hung up",
            )?,
            panics: IntCounter::new(
                "wgbert_engine_panics_total",
                "engine calls that panicked (their requests got 500)",
            )?,
            connections: IntGauge::new("wgbert_connections", "open HTTP connections")?,
            connections_refused: IntCounterVec::new(
                Opts::new(
                    "wgbert_connections_refused_total",
                    "connections refused over --max-connections (total) or \
                     --max-connections-per-client (per_client)",
                ),
                &["limit"],
            )?,
            device_bytes: IntGaugeVec::new(
                Opts::new(
                    "wgbert_device_bytes",
                    "device memory held now by category (weights, activations, heads, other)",
                ),
                &["category"],
            )?,
            device_peak_bytes: IntGauge::new(
                "wgbert_device_peak_bytes",
                "the most device memory held at once since the device was created",
            )?,
            gpu: OnceLock::new(),
        };
        m.registry.register(Box::new(m.requests.clone()))?;
        m.registry.register(Box::new(m.jobs_dropped.clone()))?;
        m.registry.register(Box::new(m.panics.clone()))?;
        m.registry.register(Box::new(m.connections.clone()))?;
        m.registry
            .register(Box::new(m.connections_refused.clone()))?;
        m.registry.register(Box::new(m.device_bytes.clone()))?;
        m.registry.register(Box::new(m.device_peak_bytes.clone()))?;
        for h in [
            &m.queue_seconds,
            &m.batch_tokens,
            &m.tokens_per_second,
            &m.gpu_seconds,
        ] {
            m.registry.register(Box::new(h.clone()))?;
        }
        Ok(m)
    }

    /// Reports the memory of `gpu` (the loaded model's device) from now on.
    pub fn watch(&self, gpu: Arc<Gpu>) {
        let _ = self.gpu.set(gpu);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        if let Some(gpu) = self.gpu.get() {
            let m = gpu.memory();
            let gauge = |bytes: u64| i64::try_from(bytes).unwrap_or(i64::MAX);
            for kind in MemoryKind::ALL {
                self.device_bytes
                    .with_label_values(&[kind.name()])
                    .set(gauge(m.of(kind)));
            }
            self.device_peak_bytes.set(gauge(m.peak));
        }
        let mut out = Vec::new();
        if let Err(e) = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            return format!("# encoding metrics failed: {e}\n");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Middleware: counts every answer by its route pattern and status.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(req).await;
    metrics
        .requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    response
}
