//! The ModernBERT model: its configuration and its checkpoint.

pub mod config;
pub mod weights;
pub mod upload;
pub mod graph;
pub mod heads;
