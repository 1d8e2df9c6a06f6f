//! wgbert: ModernBERT inference on any GPU.
//!
//! A small tensor runtime on wgpu (`runtime`), WGSL kernels with their Rust halves (`ops`),
//! the ModernBERT model (`model`), text handling (`text`) and model sources (`hub`).

pub mod encoder;
pub mod error;
pub mod hub;
pub mod model;
pub mod npy;
pub mod ops;
pub mod progress;
pub mod runtime;
pub mod sentence;
pub mod text;
pub mod vector;

pub use error::{Error, Result};
