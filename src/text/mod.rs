//! Text handling: tokenizing with the model's tokenizer.json (`tokenizer`) and packing token
//! sequences end to end into capacity-bounded batches for the GPU (`pack`).

pub mod pack;
pub mod tokenizer;

pub use pack::{PackedBatch, Packer, pack};
pub use tokenizer::{Encoded, TextTokenizer, TruncationSide};
