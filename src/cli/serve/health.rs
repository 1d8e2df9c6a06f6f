//! The server's health as `/health` (and `GET /`) tells it: 503 while the model loads, 200
//! once a test batch has run, and 503 for good once the device is lost or hung or the engine
//! thread has died. The process stays up after a failure so that the health route can say
//! why; an orchestrator's liveness probe then restarts it (see README's deployment section).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use wgbert::runtime::Gpu;

use super::error::ApiError;

#[derive(Default)]
pub struct Health {
    ready: AtomicBool,
    failure: OnceLock<String>,
    gpu: OnceLock<std::sync::Arc<Gpu>>,
}

impl Health {
    /// The model is loaded and its test batch ran; `gpu` is watched from now on.
    pub fn ready(&self, gpu: std::sync::Arc<Gpu>) {
        let _ = self.gpu.set(gpu);
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Marks the server failed for good (the first reason stays).
    pub fn fail(&self, reason: impl Into<String>) {
        let reason = reason.into();
        if self.failure.set(reason.clone()).is_ok() {
            log::error!("the server is unhealthy from now on: {reason}");
        }
    }

    /// Why the server cannot serve, if it cannot: its own failure, or its device's.
    pub fn failure(&self) -> Option<String> {
        if let Some(why) = self.failure.get() {
            return Some(why.clone());
        }
        let device = self
            .gpu
            .get()
            .and_then(|g| g.health().failure().map(str::to_string));
        if let Some(why) = device {
            self.fail(why.clone());
            return Some(why);
        }
        None
    }

    /// `Ok` when requests can be served; 503 while loading or after a failure.
    pub fn check(&self) -> Result<(), ApiError> {
        if let Some(why) = self.failure() {
            return Err(ApiError::unhealthy_because(&why));
        }
        if !self.ready.load(Ordering::SeqCst) {
            return Err(ApiError::unhealthy());
        }
        Ok(())
    }
}
