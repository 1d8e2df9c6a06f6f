//! Text handling: tokenizing with the model's tokenizer.json (`tokenizer`) and packing token
//! sequences end to end into capacity-bounded batches for the GPU (`pack`).

mod cut;
pub mod pack;
mod splice;
pub mod tokenizer;

pub use cut::{CHARS_PER_TOKEN, OFF, prompted};
pub use pack::{PackedBatch, Packer, pack};
pub use splice::Splice;
pub use tokenizer::{Encoded, TextTokenizer, TruncationSide};
