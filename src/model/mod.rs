//! The ModernBERT model: its configuration and its checkpoint.

pub mod config;
pub mod graph;
pub mod heads;
pub mod record;
pub mod split;
pub mod upload;
pub mod weights;
