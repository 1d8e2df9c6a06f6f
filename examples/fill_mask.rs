//! The seed walkthrough: load ModernBERT, pick the GPU, run a fill-mask pipeline, read the
//! predictions.
//!
//! cargo run --release --example fill_mask -- ["text with [MASK]"] [--model ID|DIR]

use anyhow::Result;
use wgbert::encoder::{Encoder, LoadOptions};

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let model = match args.iter().position(|a| a == "--model") {
        Some(i) if i + 1 < args.len() => {
            let m = args.remove(i + 1);
            args.remove(i);
            m
        }
        _ => "answerdotai/ModernBERT-base".to_string(),
    };
    let text = args
        .first()
        .cloned()
        .unwrap_or_else(|| "The capital of France is [MASK].".into());

    // 1. Load the model (from the hub cache or a directory) onto the best adapter.
    let opts = LoadOptions {
        ..Default::default()
    };
    let encoder = Encoder::load(&model, &opts)?;
    println!(
        "running on {} ({:?})",
        encoder.gpu().info().name,
        encoder.dtype()
    );

    // 2. Fill the mask and read the predictions.
    for mask in &encoder.fill_mask(&[text.as_str()], 5)?[0] {
        println!("[MASK] at token {}:", mask.position);
        for c in &mask.candidates {
            println!("  {:.4}  {:<12} {}", c.score, c.token, c.sequence);
        }
    }
    Ok(())
}
