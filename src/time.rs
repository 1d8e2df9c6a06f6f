//! The clock of load, compile and timing reports: std's `Instant` natively; in a browser,
//! where std's clock panics, the page's `performance.now()` (web-time).

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use std::time::Instant;
#[cfg(target_arch = "wasm32")]
pub(crate) use web_time::Instant;
